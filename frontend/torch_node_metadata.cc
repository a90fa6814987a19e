// Reading the dynamo exporter's node metadata.
#include "frontend/torch_node_metadata.h"

#include <cctype>
#include <map>
#include <set>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

namespace dsc {
namespace {

// "... aten.embedding.default](args = (%w, %idx, 1), kwargs = {})" -> 1; -1 when absent or not a
// plain non-negative integer literal.
int64_t FxEmbeddingPadding(const std::string& fx) {
  const std::vector<std::string> args = FxCallArgs(fx, "aten.embedding.default");
  if (args.size() < 3 || args[2].empty() || args[2].size() > 18) return -1;
  for (char ch : args[2])
    if (ch < '0' || ch > '9') return -1;
  return std::stoll(args[2]);
}

}  // namespace

std::optional<int64_t> FxIntLiteral(const std::string& s) {
  const size_t digits = s.size() - (!s.empty() && s[0] == '-' ? 1 : 0);
  if (digits == 0 || digits > 18) return std::nullopt;
  for (size_t i = s.size() - digits; i < s.size(); ++i)
    if (s[i] < '0' || s[i] > '9') return std::nullopt;
  return std::stoll(s);
}

std::string FxUnderscored(std::string s) {
  for (char& c : s)
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '_') c = '_';
  return s;
}

std::string FxNodeName(const std::string& fx) {
  if (fx.empty() || fx[0] != '%') return "";
  const size_t end = fx.find(' ');
  return end == std::string::npos ? "" : fx.substr(1, end - 1);
}

std::string FxOpOfName(const std::string& fx_name) {
  const size_t end = fx_name.find_last_not_of("0123456789");
  if (end == std::string::npos) return "";
  if (end + 1 < fx_name.size() && fx_name[end] == '_') return fx_name.substr(0, end);
  return fx_name;
}

std::vector<std::string> FxCallOperands(const std::string& fx) {
  std::vector<std::string> out;
  const size_t at = fx.find("](args = (");
  if (at == std::string::npos) return out;
  for (size_t i = fx.find('%', at); i != std::string::npos; i = fx.find('%', i + 1)) {
    size_t e = i + 1;
    while (e < fx.size() && (std::isalnum(static_cast<unsigned char>(fx[e])) || fx[e] == '_')) ++e;
    if (e > i + 1) out.push_back(fx.substr(i + 1, e - i - 1));
  }
  return out;
}

// Parsed by hand: the text comes from the file, and std::regex recurses per character, so a long
// line could exhaust the stack.
std::map<std::string, SignatureInput> SignatureInputs(const std::string& signature) {
  std::map<std::string, SignatureInput> out;
  constexpr std::string_view kTarget = " target='";
  size_t start = 0;
  while (start < signature.size()) {
    size_t end = signature.find('\n', start);
    if (end == std::string::npos) end = signature.size();
    std::string_view line(signature.data() + start, end - start);
    start = end + 1;
    const size_t b = line.find_first_not_of(" \t");
    if (b == std::string_view::npos) continue;
    line.remove_prefix(b);
    const size_t colon = line.find(": ");
    if (colon == std::string_view::npos || colon == 0 || line.substr(0, colon).find_first_of(" \t") != std::string_view::npos)
      continue;
    const size_t kind_end = line.find(kTarget, colon + 2);
    if (kind_end == std::string_view::npos) continue;
    const std::string_view kind = line.substr(colon + 2, kind_end - colon - 2);
    if (kind.empty() || kind.find_first_of(" \t") != std::string_view::npos) continue;
    const size_t name_at = kind_end + kTarget.size();
    const size_t quote = line.find('\'', name_at);
    if (quote == std::string_view::npos) continue;
    out[std::string(line.substr(0, colon))] = {std::string(kind), std::string(line.substr(name_at, quote - name_at))};
  }
  return out;
}

std::vector<std::string> QuotedNamesIn(const std::string& text) {
  std::vector<std::string> out;
  for (size_t q = text.find('\''); q != std::string::npos;) {
    const size_t e = text.find('\'', q + 1);
    if (e == std::string::npos) break;
    out.push_back(text.substr(q + 1, e - q - 1));
    q = text.find('\'', e + 1);
  }
  return out;
}

void AddImportWarning(onnx::ModelProto* model, const std::string& text) {
  for (auto& p : *model->mutable_metadata_props()) {
    if (p.key() != kImportWarningsKey) continue;
    nlohmann::json list = nlohmann::json::parse(p.value(), nullptr, /*allow_exceptions=*/false);
    if (!list.is_array()) list = nlohmann::json::array();
    list.push_back(text);
    p.set_value(list.dump());
    return;
  }
  onnx::StringStringEntryProto* p = model->add_metadata_props();
  p->set_key(kImportWarningsKey);
  p->set_value(nlohmann::json::array({text}).dump());
}

std::vector<std::string> FxCallArgs(const std::string& fx, const std::string& target) {
  const std::string head = "[target=torch.ops." + target + "](args = (";
  const size_t at = fx.find(head);
  if (at == std::string::npos) return {};
  const size_t begin = at + head.size(), end = fx.find(')', begin);
  if (end == std::string::npos) return {};
  std::vector<std::string> args;
  size_t s = begin;
  while (s <= end) {
    size_t c = fx.find(',', s);
    if (c == std::string::npos || c > end) c = end;
    std::string a = fx.substr(s, c - s);
    a.erase(0, a.find_first_not_of(' '));
    a.erase(a.find_last_not_of(' ') + 1);
    args.push_back(a);
    s = c + 1;
  }
  return args;
}

Status RestoreBatchNormTraining(onnx::ModelProto* model) {
  int64_t opset = 0;
  for (const auto& o : model->opset_import())
    if (o.domain().empty() || o.domain() == "ai.onnx") opset = o.version();
  if (opset < 14) return Status::OK();  // training_mode (and its running-statistic outputs) from opset 14
  // aten op -> index of its `training` argument
  static const std::vector<std::pair<std::string, size_t>> kTargets = {
      {"aten._native_batch_norm_legit_functional.default", 5},
      {"aten._native_batch_norm_legit.default", 5},
      {"aten.native_batch_norm.default", 5},
      {"aten.batch_norm.default", 5},
      {"aten._native_batch_norm_legit.no_stats", 3},
  };
  onnx::GraphProto* g = model->mutable_graph();
  std::set<std::string> names;
  for (const auto& n : g->node())
    for (const auto& o : n.output()) names.insert(o);
  for (const auto& v : g->input()) names.insert(v.name());
  for (const auto& t : g->initializer()) names.insert(t.name());
  auto training_bn = [&](const std::string& fx) {
    for (const auto& [target, k] : kTargets) {
      const std::vector<std::string> args = FxCallArgs(fx, target);
      if (!args.empty()) return args.size() > k && args[k] == "True";
    }
    return false;
  };
  for (auto& n : *g->mutable_node()) {
    const std::string* fx = FindProp(n.metadata_props(), kFxNodeKey);
    if (!fx) continue;
    // onnxscript's optimizer folds the (inference-mode) BatchNormalization into the convolution
    // before it: the batch statistics are gone from the file, which then computes another function.
    // The fused node names the rewrite rule, and it keeps the BatchNorm's fx node, which a Conv or
    // Gemm never carries otherwise (a batch norm is never decomposed into one): files stripped of
    // every metadata key but the fx node are caught too.
    const std::string* rule = FindProp(n.metadata_props(), "pkg.onnxscript.rewriter.rule_name");
    const bool fused_rule = rule && rule->find("FuseBatchNorm") != std::string::npos;
    const bool fused_op = (n.domain().empty() || n.domain() == "ai.onnx") &&
                          (n.op_type() == "Conv" || n.op_type() == "ConvTranspose" || n.op_type() == "Gemm");
    if ((fused_rule || fused_op) && training_bn(*fx))
      return InvalidArgument("node '", n.name(), "' (", n.op_type(), "): the exporter's optimizer folded a "
                             "training-mode BatchNorm into it (", rule ? *rule : "its PyTorch node is the BatchNorm",
                             "), so the file normalises with the initial running statistics instead of each batch's "
                             "and cannot compute PyTorch's training loss; re-export with torch.onnx.export(..., "
                             "dynamo=True, optimize=False) or with tools/export_for_training.py");
    if (n.op_type() != "BatchNormalization" || !(n.domain().empty() || n.domain() == "ai.onnx")) continue;
    if (!training_bn(*fx)) continue;
    onnx::AttributeProto* mode = nullptr;
    for (auto& a : *n.mutable_attribute())
      if (a.name() == "training_mode") mode = &a;
    if (mode && mode->i() != 0) continue;
    if (!mode) {
      mode = n.add_attribute();
      mode->set_name("training_mode");
      mode->set_type(onnx::AttributeProto::INT);
    }
    mode->set_i(1);
    // The updated running statistics (outputs 1, 2), so that they evolve as PyTorch's buffers do.
    if (n.output_size() == 1 && n.input_size() == 5) {
      const std::string base = (n.name().empty() ? n.output(0) : n.name()) + "_running_";
      for (const char* which : {"mean", "var"}) {
        std::string name = base + which;
        while (names.count(name)) name += "_";
        names.insert(name);
        n.add_output(name);
      }
    }
  }
  return Status::OK();
}

Status RecordEmbeddingPadding(onnx::ModelProto* model) {
  onnx::GraphProto* g = model->mutable_graph();
  std::map<std::string, int64_t> rows;  // initializer -> dim 0
  for (const auto& t : g->initializer()) rows[t.name()] = t.dims_size() ? t.dims(0) : 0;
  nlohmann::json entry = nlohmann::json::object();
  onnx::StringStringEntryProto* prop = nullptr;
  for (auto& p : *model->mutable_metadata_props())
    if (p.key() == kEmbeddingPaddingKey) prop = &p;
  if (prop) {
    entry = nlohmann::json::parse(prop->value(), nullptr, /*allow_exceptions=*/false);
    if (!entry.is_object())
      return InvalidArgument("metadata_props \"", kEmbeddingPaddingKey, "\" must be a JSON object {name: row}");
    for (const auto& [name, k] : entry.items()) {
      auto r = rows.find(name);
      if (r == rows.end())
        return InvalidArgument("metadata_props \"", kEmbeddingPaddingKey, "\" names '", name,
                               "', which is not an initializer of the graph");
      if (!k.is_number_integer() || k.get<int64_t>() < 0 || k.get<int64_t>() >= r->second)
        return InvalidArgument("metadata_props \"", kEmbeddingPaddingKey, "\": padding row of '", name,
                               "' must be an integer in [0, ", r->second, ")");
    }
  }
  bool added = false;
  for (const auto& n : g->node()) {
    if (n.op_type() != "Gather" || n.input_size() < 1 || entry.contains(n.input(0))) continue;
    bool axis0 = true;
    for (const auto& a : n.attribute())
      if (a.name() == "axis" && a.i() != 0) axis0 = false;
    const std::string* fx = FindProp(n.metadata_props(), kFxNodeKey);
    if (!axis0 || !fx) continue;
    const int64_t k = FxEmbeddingPadding(*fx);
    auto r = rows.find(n.input(0));
    if (k < 0 || (r != rows.end() && k >= r->second)) continue;
    entry[n.input(0)] = k;
    added = true;
  }
  if (!added) return Status::OK();
  if (!prop) {
    prop = model->add_metadata_props();
    prop->set_key(kEmbeddingPaddingKey);
  }
  prop->set_value(entry.dump());
  return Status::OK();
}

}  // namespace dsc
