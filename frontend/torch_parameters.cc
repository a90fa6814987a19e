// Reading PyTorch's parameter list from an ONNX model.
#include "frontend/torch_parameters.h"

#include "frontend/torch_node_metadata.h"

#include <algorithm>
#include <map>
#include <string_view>
#include <set>

#include <nlohmann/json.hpp>

namespace dsc {
namespace {

constexpr const char* kKindKey = "pkg.torch.export.graph_signature.InputSpec.kind";
constexpr const char* kOriginalNameKey = "pkg.torch.onnx.original_node_name";
constexpr const char* kSignatureKey = "pkg.torch.export.ExportedProgram.graph_signature";


// "p_fc_weight: PARAMETER target='fc.weight'" lines of torch.export's printed graph signature:
// placeholder name -> parameter name. Parsed by hand: the text comes from the file, and
// std::regex recurses per character, so a long line could exhaust the stack.
std::map<std::string, std::string> SignatureParameters(const std::string& signature) {
  std::map<std::string, std::string> out;
  size_t start = 0;
  while (start < signature.size()) {
    size_t end = signature.find('\n', start);
    if (end == std::string::npos) end = signature.size();
    std::string_view line(signature.data() + start, end - start);
    start = end + 1;
    const size_t b = line.find_first_not_of(" \t");
    if (b == std::string_view::npos) continue;
    line.remove_prefix(b);
    const size_t colon = line.find(": PARAMETER target='");
    if (colon == std::string_view::npos || colon == 0 || line.substr(0, colon).find_first_of(" \t") != std::string_view::npos)
      continue;
    const size_t name_at = colon + std::string_view(": PARAMETER target='").size();
    const size_t quote = line.find('\'', name_at);
    if (quote == std::string_view::npos) continue;
    out[std::string(line.substr(0, colon))] = std::string(line.substr(name_at, quote - name_at));
  }
  return out;
}

// The names in an onnxscript optimizer mark "['pr.weight', 'val_6']" (the values a tensor was folded
// from).
std::vector<std::string> QuotedList(const std::string& text) {
  std::vector<std::string> out;
  for (size_t q = text.find('\''); q != std::string::npos;) {
    const size_t e = text.find('\'', q + 1);
    if (e == std::string::npos) break;
    out.push_back(text.substr(q + 1, e - q - 1));
    q = text.find('\'', e + 1);
  }
  return out;
}

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
    if (const std::string* f = FindProp(v.metadata_props(), "pkg.onnxscript.optimizer.folded_from"))
      folded_from[v.name()] = QuotedList(*f);
  std::set<std::string> initializers;
  for (const auto& t : g.initializer()) initializers.insert(t.name());
  std::map<std::string, std::string> out;
  for (const auto& n : g.node()) {
    if (!(n.domain().empty() || n.domain() == "ai.onnx") || n.op_type() != "PRelu" || n.input_size() != 2) continue;
    const std::string* fx = FindProp(n.metadata_props(), "pkg.torch.onnx.fx_node");
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
    if (const std::string* k = FindProp(v.metadata_props(), kKindKey)) kind[v.name()] = *k;
    if (const std::string* o = FindProp(v.metadata_props(), kOriginalNameKey)) original[v.name()] = *o;
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
  if (const std::string* sig = FindProp(g->metadata_props(), kSignatureKey)) {
    const std::map<std::string, std::string> placeholders = SignatureParameters(*sig);
    for (const auto& [slope, target] : FoldedPReluWeights(*g, placeholders, kind)) {
      if (present_names.count(target)) continue;
      entry["trainable"].push_back({{"initializer", slope}, {"torch_name", target}});
      present_names.insert(target);
    }
    // A signature parameter without an initializer is either a PyTorch tie (torch.export lists each
    // name of a shared tensor; the exporter keeps one initializer) or a merge/fold by the exporter's
    // optimizer. Only the optimizer leaves "pkg.onnxscript.optimizer.*" marks, so without them every
    // absence is a tie.
    nlohmann::json absent = nlohmann::json::array();
    for (const auto& [placeholder, target] : placeholders)
      if (!present_placeholders.count(placeholder) && !present_names.count(target)) absent.push_back(target);
    if (!absent.empty()) entry[OptimizerRan(*g) ? "missing" : "tied"] = absent;
  }
  auto* prop = model->add_metadata_props();
  prop->set_key(kTorchParametersKey);
  prop->set_value(entry.dump());
  return Status::OK();
}

}  // namespace dsc
