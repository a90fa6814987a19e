// Reading detach() back from the dynamo exporter's fx nodes (see torch_detach.h).
#include "frontend/torch_detach.h"

#include <map>
#include <set>
#include <string>
#include <vector>

#include "frontend/torch_node_metadata.h"
#include "ir/dsc_ops.h"

namespace dsc {
namespace {

bool IsDetach(const std::string& name) {
  if (name.rfind("detach", 0) != 0) return false;
  if (name.size() == 6) return true;
  if (name[6] != '_' || name.size() == 7) return false;
  for (size_t i = 7; i < name.size(); ++i)
    if (!std::isdigit(static_cast<unsigned char>(name[i]))) return false;
  return true;
}

// ai.dscompile.StopGradient: Identity that autodiff does not differentiate through (ir/dsc_ops.h).
void MakeStopGradient(onnx::NodeProto* n) {
  n->set_domain(kDscDomain);
  n->set_op_type(ops::kStopGradient);
}

// The model's opset imports name our domain, as ONNX's checker wants of a model with its nodes.
void ImportDscDomain(onnx::ModelProto* model) {
  for (const auto& op : model->opset_import())
    if (op.domain() == kDscDomain) return;
  onnx::OperatorSetIdProto* op = model->add_opset_import();
  op->set_domain(kDscDomain);
  op->set_version(1);
}

// Whether `reads` holds the placeholder torch.export names after initializer `v` (p_/b_/c_ for a
// parameter, buffer or constant, dots as underscores).
bool ReadsPlaceholder(const std::string& v, const std::set<std::string>& reads) {
  const std::string u = FxUnderscored(v);
  return reads.count("p_" + u) || reads.count("b_" + u) || reads.count("c_" + u);
}

// Whether the fx call reading `reads` reads value `v` of the file by its name (an initializer as its
// placeholder).
bool Accounted(const std::string& v, const std::set<std::string>& reads, const std::set<std::string>& initializers) {
  if (reads.count(v)) return true;
  return initializers.count(v) && (ReadsPlaceholder(v, reads) || reads.count(FxUnderscored(v)));
}

}  // namespace

Status RestoreDetach(onnx::ModelProto* model) {
  onnx::GraphProto* g = model->mutable_graph();
  // Values that stand for an fx value: graph inputs, the outputs the exporter named after their fx
  // node, and initializers some fx call reads as a placeholder (parameters, buffers, constants; not
  // the exporter's own lifted literals, val_K).
  std::set<std::string> initializers, named, taken, placeholders, defined;
  for (const auto& t : g->initializer()) initializers.insert(t.name());
  for (const auto& v : g->input()) named.insert(v.name());
  taken = named;
  taken.insert(initializers.begin(), initializers.end());
  for (const auto& n : g->node()) {
    for (const auto& o : n.output()) taken.insert(o);
    const std::string* fx = FindProp(n.metadata_props(), kFxNodeKey);
    if (!fx) continue;
    const std::string def = FxNodeName(*fx);
    defined.insert(def);
    for (const auto& o : n.output())
      if (!def.empty() && o == def) named.insert(o);
    for (const std::string& r : FxCallOperands(*fx)) placeholders.insert(r);
  }
  for (const std::string& v : initializers)
    if (ReadsPlaceholder(v, placeholders)) named.insert(v);
  bool any = false;
  for (const auto& n : g->node()) {
    const std::string* fx = FindProp(n.metadata_props(), kFxNodeKey);
    if (!fx) continue;
    for (const std::string& r : FxCallOperands(*fx)) any |= IsDetach(r);
    any |= !FxCallArgs(*fx, "aten.detach.default").empty();
  }
  if (!any) return Status::OK();

  std::vector<std::string> warnings;
  // A computation that differs from another only by a detach() is the same ONNX computation: the
  // exporter's optimizer merges the two, and the merged one's reader reads the survivor (a value
  // named after another fx node) where its fx call reads a value the file no longer has. (A
  // constant the optimizer folded is gone too, but its reader reads an unnamed literal instead.)
  std::string merged;
  for (const auto& n : g->node()) {
    const std::string* fx = FindProp(n.metadata_props(), kFxNodeKey);
    if (!fx || !merged.empty()) continue;
    const std::vector<std::string> reads = FxCallOperands(*fx);
    const std::set<std::string> read_set(reads.begin(), reads.end());
    bool stand_in = false;
    for (const auto& in : n.input()) stand_in |= !in.empty() && named.count(in) && !Accounted(in, read_set, initializers);
    for (const std::string& r : reads) {
      const bool placeholder = r.rfind("p_", 0) == 0 || r.rfind("b_", 0) == 0 || r.rfind("c_", 0) == 0 ||
                               r.rfind("sym_", 0) == 0;
      if (stand_in && !IsDetach(r) && !placeholder && !defined.count(r) && !taken.count(r)) {
        merged = "node '" + n.name() + "' (" + n.op_type() + ") reads the fx value %" + r;
        break;
      }
    }
  }
  if (!merged.empty())
    warnings.push_back("the model calls Tensor.detach() and the exporter's optimizer merged duplicate computations (" +
                       merged + ", which the file no longer has): where a merged one differed from its twin only "
                       "by a detach(), gradients flow through it in this file but not in PyTorch (a merge of plain "
                       "duplicates is harmless); to be sure, export with torch.onnx.export(..., dynamo=True, "
                       "optimize=False) or tools/export_for_training.py");
  std::map<std::string, std::string> detached;  // source value -> its stop-gradient copy
  bool stops = false;
  std::vector<onnx::NodeProto> nodes;
  for (const auto& orig : g->node()) {
    onnx::NodeProto n = orig;
    const std::string* fx = FindProp(n.metadata_props(), kFxNodeKey);
    const std::vector<std::string> reads = fx ? FxCallOperands(*fx) : std::vector<std::string>{};
    std::set<std::string> read_set(reads.begin(), reads.end()), detaches;
    for (const std::string& r : reads)
      if (IsDetach(r) && !named.count(r)) detaches.insert(r);  // one the file has is an Identity, below
    if (fx && n.op_type() == "Identity" && n.domain().empty() && !FxCallArgs(*fx, "aten.detach.default").empty()) {
      MakeStopGradient(&n);  // without the optimizer the exporter keeps each detach as an Identity
      stops = true;
    }
    if (detaches.empty()) {
      nodes.push_back(std::move(n));
      continue;
    }
    std::set<std::string> candidates;
    for (const auto& in : n.input())
      if (!in.empty() && named.count(in) && !Accounted(in, read_set, initializers)) candidates.insert(in);
    if (candidates.size() != detaches.size()) {
      warnings.push_back("node '" + n.name() + "' (" + n.op_type() + ") reads " + std::to_string(detaches.size()) +
                         " detached value(s) (Tensor.detach() in PyTorch) that dscompile cannot match to its inputs, "
                         "so gradients may flow through them where PyTorch's stop; export with "
                         "torch.onnx.export(..., dynamo=True, optimize=False) or tools/export_for_training.py, "
                         "which keep every node's metadata");
      nodes.push_back(std::move(n));
      continue;
    }
    for (const std::string& src : candidates) {
      auto it = detached.find(src);
      if (it == detached.end()) {
        std::string name = src + "/detached";
        while (taken.count(name)) name += "_";
        taken.insert(name);
        onnx::NodeProto stop;
        MakeStopGradient(&stop);
        stop.set_name(name);
        stop.add_input(src);
        stop.add_output(name);
        *stop.mutable_metadata_props() = n.metadata_props();
        nodes.push_back(std::move(stop));
        stops = true;
        it = detached.emplace(src, name).first;
      }
      for (auto& in : *n.mutable_input())
        if (in == src) in = it->second;
    }
    nodes.push_back(std::move(n));
  }
  g->clear_node();
  for (auto& n : nodes) *g->add_node() = std::move(n);
  if (stops) ImportDscDomain(model);
  for (const std::string& w : warnings) AddImportWarning(model, w);
  return Status::OK();
}

}  // namespace dsc
