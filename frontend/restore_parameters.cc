// RestoreOptimizedParameters: the index of the file that the rules (restore_*.cc) read, and their order.

#include "frontend/restore_parameters.h"

#include <string>
#include <vector>

#include "frontend/parameter_restorer.h"
#include "ir/dtype.h"

namespace dsc {

Status ParameterRestorer::Run(const std::string& signature) {
  signature_ = SignatureInputs(signature);
  Index();
  if (missing_.empty() && folded_from_.empty()) return Status::OK();
  RETURN_IF_ERROR(RestoreFoldedTransposes());
  RETURN_IF_ERROR(RestoreFoldedLookups());
  RETURN_IF_ERROR(RestoreFoldedViews());
  RETURN_IF_ERROR(RestoreFoldedUnaryChains());
  RETURN_IF_ERROR(RestoreFoldedRecurrentWeights());
  RETURN_IF_ERROR(SplitMergedDuplicates());
  RETURN_IF_ERROR(SplitMergedCalls());
  RETURN_IF_ERROR(FlattenGroupNormAffines());
  if (!prepend_.empty()) {
    // The new Transposes read initializers only: first in the node list keeps it topological.
    google::protobuf::RepeatedPtrField<onnx::NodeProto> nodes;
    for (auto& n : prepend_) *nodes.Add() = std::move(n);
    for (auto& n : *g_->mutable_node()) *nodes.Add() = std::move(n);
    g_->mutable_node()->Swap(&nodes);
  }
  return Status::OK();
}

void ParameterRestorer::Index() {
  for (const auto& t : g_->initializer()) {
    initializers_.insert(t.name());
    initializer_dims_[t.name()].assign(t.dims().begin(), t.dims().end());
  }
  for (const auto& v : g_->input()) names_.insert(v.name());
  for (const auto& n : g_->node())
    for (const auto& o : n.output()) names_.insert(o);
  names_.insert(initializers_.begin(), initializers_.end());
  std::set<std::string> backed;
  auto scan = [&](const onnx::ValueInfoProto& v) {
    names_.insert(v.name());
    if (!initializers_.count(v.name())) return;
    if (const std::string* o = FindProp(v.metadata_props(), kTorchOriginalNameKey); o && signature_.count(*o)) {
      placeholder_of_[v.name()] = *o;
      backed.insert(*o);
    }
    if (const std::string* f = FindProp(v.metadata_props(), kFoldedFromKey)) folded_from_[v.name()] = QuotedNamesIn(*f);
  };
  for (const auto& v : g_->value_info()) scan(v);
  for (const auto& v : g_->input()) scan(v);
  for (const auto& [placeholder, input] : signature_) {
    by_target_[input.target] = placeholder;
    if (!backed.count(placeholder) && !initializers_.count(input.target) &&
        (input.kind == "PARAMETER" || input.kind == "BUFFER"))
      missing_.insert(placeholder);
  }
  for (auto& n : *g_->mutable_node()) {
    for (int i = 0; i < n.input_size(); ++i)
      if (initializers_.count(n.input(i))) uses_[n.input(i)].push_back({&n, i});
    auto note = [&](const onnx::NodeProto& sub) {
      for (const auto& in : sub.input()) read_in_subgraph_.insert(in);
    };
    for (const auto& a : n.attribute()) {  // values a subgraph reads: the rules leave those alone
      if (a.has_g()) ForEachNode(a.g(), note);
      for (const auto& sub : a.graphs()) ForEachNode(sub, note);
    }
  }
}

onnx::TensorProto* ParameterRestorer::FindInitializer(const std::string& name) {
  for (auto& t : *g_->mutable_initializer())
    if (t.name() == name) return &t;
  return nullptr;
}

// The value_info entry a restored tensor carries: its type and the marks RecordTorchParameters reads.
void ParameterRestorer::AddValueInfo(const std::string& name, const Tensor& data, const std::string& placeholder) {
  onnx::ValueInfoProto* v = g_->add_value_info();
  v->set_name(name);
  auto* tt = v->mutable_type()->mutable_tensor_type();
  tt->set_elem_type(DTypeToOnnx(data.dtype()));
  auto* shape = tt->mutable_shape();
  for (int64_t d : data.dims()) shape->add_dim()->set_dim_value(d);
  auto* kind = v->add_metadata_props();
  kind->set_key(kTorchInputKindKey);
  kind->set_value(signature_.at(placeholder).kind);
  auto* original = v->add_metadata_props();
  original->set_key(kTorchOriginalNameKey);
  original->set_value(placeholder);
  names_.insert(name);
  initializer_dims_[name] = data.dims();
  missing_.erase(placeholder);
}

// The folded initializers a rule replaced with nodes computing them from the restored parameter.
void ParameterRestorer::DropFolded(const std::vector<std::string>& names) {
  for (const std::string& name : names) {
    RemoveInitializer(name);
    uses_.erase(name);
  }
}

void ParameterRestorer::RemoveInitializer(const std::string& name) {
  auto* list = g_->mutable_initializer();
  for (int i = 0; i < list->size(); ++i)
    if (list->Get(i).name() == name) {
      list->DeleteSubrange(i, 1);
      break;
    }
  held_->erase(name);
  initializers_.erase(name);
  // Its value_info stays (the Transpose's output type) without the folded mark.
  for (auto& v : *g_->mutable_value_info()) {
    if (v.name() != name) continue;
    auto* props = v.mutable_metadata_props();
    for (int i = props->size() - 1; i >= 0; --i)
      if (props->Get(i).key() == kFoldedFromKey) props->DeleteSubrange(i, 1);
  }
}

bool ParameterRestorer::IsGroupNorm(const std::string& fx) {
  return fx.find("[target=torch.ops.aten.group_norm.default]") != std::string::npos ||
         fx.find("[target=torch.ops.aten.native_group_norm.default]") != std::string::npos;
}

// A node onnxscript's rewriter made from several: it carries one matched node's fx call while it
// may read the initializers of others, so its metadata pairs nothing. Rules that rewrite one node
// in place (dropping a zero bias, materialising a Reshape's shape) keep its call.
bool ParameterRestorer::IsRewritten(const onnx::NodeProto& n) {
  const std::string* rules = FindProp(n.metadata_props(), "pkg.onnxscript.rewriter.rule_name");
  if (!rules) return false;
  for (size_t s = 0; s <= rules->size();) {
    size_t e = std::min(rules->find(',', s), rules->size());
    std::string rule = rules->substr(s, e - s);
    rule.erase(0, rule.find_first_not_of(' '));
    if (rule.rfind("RemoveOptionalBiasFrom", 0) != 0 && rule != "MaterializeReshapeShape") return true;
    s = e + 1;
  }
  return false;
}

Status RestoreOptimizedParameters(onnx::ModelProto* model, HeldInitializers* held) {
  const std::string* signature = FindProp(model->graph().metadata_props(), kTorchSignatureKey);
  if (!signature) return Status::OK();
  ParameterRestorer r(model, held);
  return r.Run(*signature);
}

}  // namespace dsc
