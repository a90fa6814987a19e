// Reading PyTorch's parameter list from an ONNX model.
#include "frontend/torch_parameters.h"

#include "frontend/torch_node_metadata.h"

#include <algorithm>
#include <map>
#include <set>

#include <nlohmann/json.hpp>

namespace dsc {
namespace {



// nn.PReLU's weight after the dynamo exporter's optimizer: torchlib reshapes the weight to broadcast
// against the input, and the optimizer folds that Reshape into a new initializer ("val_7", marked
// folded_from ['pr.weight', 'val_6']), so the parameter has no initializer of its own. The folded
// tensor holds the weight's values in the same order, so training it elementwise is training the
// weight. Returns initializer -> parameter name for each PRelu whose fx node reads a signature
// parameter as its weight (aten.prelu.default(x, %p_pr_weight)) and whose slope initializer, with no
// kind of its own, was folded from that parameter.
std::map<std::string, std::string> FoldedPReluWeights(const onnx::GraphProto& g,
                                                      const std::map<std::string, std::string>& placeholders,
                                                      const std::map<std::string, std::string>& kind) {
  std::map<std::string, std::vector<std::string>> folded_from;
  for (const auto& v : g.value_info())
    if (const std::string* f = FindProp(v.metadata_props(), kFoldedFromKey))
      folded_from[v.name()] = QuotedNamesIn(*f);
  std::set<std::string> initializers;
  for (const auto& t : g.initializer()) initializers.insert(t.name());
  std::map<std::string, std::string> out;
  for (const auto& n : g.node()) {
    if (!(n.domain().empty() || n.domain() == "ai.onnx") || n.op_type() != "PRelu" || n.input_size() != 2) continue;
    const std::string* fx = FindProp(n.metadata_props(), kFxNodeKey);
    if (!fx) continue;
    const std::vector<std::string> args = FxCallArgs(*fx, "aten.prelu.default");
    if (args.size() != 2 || args[1].size() < 2 || args[1][0] != '%') continue;
    auto p = placeholders.find(args[1].substr(1));
    const std::string& slope = n.input(1);
    if (p == placeholders.end() || !initializers.count(slope) || kind.count(slope)) continue;
    auto f = folded_from.find(slope);
    if (f == folded_from.end() || std::count(f->second.begin(), f->second.end(), p->second) != 1) continue;
    out[slope] = p->second;
  }
  return out;
}

bool OptimizerRan(const onnx::GraphProto& g) {
  auto marked = [](const auto& props) {
    for (const auto& p : props)
      if (p.key().rfind("pkg.onnxscript.optimizer.", 0) == 0) return true;
    return false;
  };
  for (const auto& v : g.value_info())
    if (marked(v.metadata_props())) return true;
  for (const auto& t : g.initializer())
    if (marked(t.metadata_props())) return true;
  for (const auto& n : g.node())
    if (marked(n.metadata_props())) return true;
  return false;
}

}  // namespace

Status RecordTorchParameters(onnx::ModelProto* model) {
  onnx::GraphProto* g = model->mutable_graph();
  std::set<std::string> initializers;
  for (const auto& t : g->initializer()) initializers.insert(t.name());

  if (const std::string* text = FindProp(model->metadata_props(), kTorchParametersKey)) {
    ASSIGN_OR_RETURN(TorchParameters p, ParseTorchParameters(*text));
    std::set<std::string> seen;
    for (const auto* list : {&p.trainable, &p.frozen})
      for (const std::string& name : *list) {
        if (!initializers.count(name))
          return InvalidArgument("metadata_props \"", kTorchParametersKey, "\" names parameter '", name,
                                 "', which is not an initializer of the graph");
        if (!seen.insert(name).second)
          return InvalidArgument("metadata_props \"", kTorchParametersKey, "\" lists '", name, "' twice");
      }
    return Status::OK();
  }

  // torch.export's kinds sit on value_info (and on graph inputs when initializers are inputs too).
  std::map<std::string, std::string> kind, original;
  auto scan = [&](const onnx::ValueInfoProto& v) {
    if (!initializers.count(v.name())) return;
    if (const std::string* k = FindProp(v.metadata_props(), kTorchInputKindKey)) kind[v.name()] = *k;
    if (const std::string* o = FindProp(v.metadata_props(), kTorchOriginalNameKey)) original[v.name()] = *o;
  };
  for (const auto& v : g->value_info()) scan(v);
  for (const auto& v : g->input()) scan(v);
  if (kind.empty()) return Status::OK();

  nlohmann::json entry = {{"version", 1},
                          {"source", "torch.export graph signature (initializer kinds written by torch.onnx.export(dynamo=True))"},
                          {"trainable", nlohmann::json::array()},
                          {"frozen", nlohmann::json::array()}};
  std::set<std::string> present_placeholders, present_names;
  for (const auto& t : g->initializer()) {
    auto k = kind.find(t.name());
    if (k == kind.end() || k->second != "PARAMETER") continue;
    entry["trainable"].push_back({{"initializer", t.name()}});
    present_names.insert(t.name());
    if (original.count(t.name())) present_placeholders.insert(original[t.name()]);
  }
  if (const std::string* sig = FindProp(g->metadata_props(), kTorchSignatureKey)) {
    std::map<std::string, std::string> placeholders;  // placeholder -> parameter name
    for (const auto& [placeholder, input] : SignatureInputs(*sig))
      if (input.kind == "PARAMETER") placeholders[placeholder] = input.target;
    for (const auto& [slope, target] : FoldedPReluWeights(*g, placeholders, kind)) {
      if (present_names.count(target)) continue;
      entry["trainable"].push_back({{"initializer", slope}, {"torch_name", target}});
      present_names.insert(target);
    }
    // A signature parameter without an initializer is either a PyTorch tie (torch.export lists each
    // name of a shared tensor, reads one placeholder, and the exporter keeps one initializer) or a
    // merge/fold by the exporter's optimizer. Only the optimizer leaves "pkg.onnxscript.optimizer.*"
    // marks, so without them every absence is a tie. With them, one that an aten call reads or a
    // folded tensor came from is missing, and one that nothing reads may be either: a tie, or a
    // parameter whose every reading computation the optimizer merged with another's (equal
    // initial values make equal expressions, which its CSE keeps once).
    const bool optimized = OptimizerRan(*g);
    std::set<std::string> read, folded;
    if (optimized) {
      ForEachNode(*g, [&](const onnx::NodeProto& n) {
        if (const std::string* fx = FindProp(n.metadata_props(), kFxNodeKey))
          for (const std::string& o : FxCallOperands(*fx)) read.insert(o);
      });
      for (const auto& v : g->value_info())
        if (const std::string* f = FindProp(v.metadata_props(), kFoldedFromKey))
          for (const std::string& name : QuotedNamesIn(*f)) folded.insert(name);
    }
    nlohmann::json missing = nlohmann::json::array(), tied = nlohmann::json::array(),
                   unread = nlohmann::json::array();
    for (const auto& [placeholder, target] : placeholders) {
      if (present_placeholders.count(placeholder) || present_names.count(target)) continue;
      if (!optimized) tied.push_back(target);
      else (read.count(placeholder) || folded.count(target) ? missing : unread).push_back(target);
    }
    if (!missing.empty()) entry["missing"] = missing;
    if (!tied.empty()) entry["tied"] = tied;
    if (!unread.empty()) entry["unread"] = unread;
  }
  auto* prop = model->add_metadata_props();
  prop->set_key(kTorchParametersKey);
  prop->set_value(entry.dump());
  return Status::OK();
}

}  // namespace dsc
