// Restoring parameters onnxscript's optimizer merged into an equal one, dropped zero biases, merged constants.

#include <algorithm>
#include <cstring>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "frontend/parameter_restorer.h"
#include "ir/dtype.h"

namespace dsc {
namespace {

// One fx node's ONNX nodes (torchlib may write an aten call as several).
struct Group {
  std::string fx;
  std::vector<onnx::NodeProto*> nodes;
};

}  // namespace

// Pairs each read of a placeholder-backed initializer in `group` with the placeholder operand it
// stands for. First in order (torchlib keeps the aten argument order: LayerNormalization(x, w, b),
// Gemm(x, w, b) for aten.linear); when that contradicts an initializer's own placeholder
// (aten.addmm(bias, x, w) is Gemm(x, w, bias)), the initializers that are their own placeholders
// take them and the merged ones pair with the rest, by attribute name ("bias", "weight") where
// that decides, else in order. Empty when no pairing is consistent.
std::vector<std::pair<ParameterRestorer::Use, std::string>> ParameterRestorer::PairReads(
    const std::vector<Use>& uses, const std::vector<std::string>& operands) const {
  auto in = [](const Use& u) -> const std::string& { return u.node->input(u.input); };
  std::vector<std::string> distinct;
  for (const Use& u : uses)
    if (std::find(distinct.begin(), distinct.end(), in(u)) == distinct.end()) distinct.push_back(in(u));
  auto consistent = [&](const std::vector<std::pair<Use, std::string>>& pairs) {
    for (const auto& [use, placeholder] : pairs)
      if (placeholder_of_.at(in(use)) != placeholder && !missing_.count(placeholder)) return false;
    return !pairs.empty();
  };
  std::vector<std::pair<Use, std::string>> pairs;
  if (uses.size() == operands.size()) {
    for (size_t i = 0; i < uses.size(); ++i) pairs.push_back({uses[i], operands[i]});
    if (consistent(pairs)) return pairs;
  }
  if (distinct.size() == operands.size()) {
    pairs.clear();
    for (const Use& u : uses)
      pairs.push_back({u, operands[std::find(distinct.begin(), distinct.end(), in(u)) - distinct.begin()]});
    if (consistent(pairs)) return pairs;
  }
  std::vector<std::string> rest, merged;
  std::set<std::string> own;
  for (const std::string& i : distinct)
    if (std::count(operands.begin(), operands.end(), placeholder_of_.at(i))) own.insert(placeholder_of_.at(i));
    else merged.push_back(i);
  for (const std::string& o : operands)
    if (!own.count(o) && std::find(rest.begin(), rest.end(), o) == rest.end()) rest.push_back(o);
  if (merged.empty() || merged.size() != rest.size()) return {};
  auto attribute = [](const std::string& target) { return target.substr(target.rfind('.') + 1); };
  std::map<std::string, std::string> partner;  // merged initializer -> placeholder
  for (const std::string& m : merged) {
    const std::string a = attribute(signature_.at(placeholder_of_.at(m)).target);
    std::vector<std::string> same;
    for (const std::string& r : rest)
      if (attribute(signature_.at(r).target) == a) same.push_back(r);
    if (same.size() == 1) partner[m] = same[0];
  }
  std::set<std::string> taken;
  for (const auto& [m, r] : partner) taken.insert(r);
  if (partner.size() != merged.size() || taken.size() != rest.size())
    for (size_t i = 0; i < merged.size(); ++i) partner[merged[i]] = rest[i];
  pairs.clear();
  for (const Use& u : uses)
    if (auto p = partner.find(in(u)); p != partner.end()) pairs.push_back({u, p->second});
  return consistent(pairs) ? pairs : std::vector<std::pair<Use, std::string>>{};
}

// A zero bias that onnxscript's RemoveOptionalBias rules dropped from Conv, ConvTranspose or Gemm:
// the node lacks its third input while its fx call has one placeholder operand left, missing.
// Returns the bias shape PyTorch's parameter has, or empty when this is not such a node.
std::vector<int64_t> ParameterRestorer::DroppedBiasShape(const onnx::NodeProto& n) const {
  if (!(n.domain().empty() || n.domain() == "ai.onnx") || n.input_size() != 2) return {};
  const std::string& op = n.op_type();
  if (op != "Conv" && op != "ConvTranspose" && op != "Gemm") return {};
  auto w = initializer_dims_.find(n.input(1));
  if (w == initializer_dims_.end() || w->second.size() < 2) return {};
  const std::vector<int64_t>& d = w->second;
  int64_t trans_b = 0, group = 1;
  for (const auto& a : n.attribute()) {
    if (a.name() == "transB") trans_b = a.i();
    if (a.name() == "group") group = a.i();
  }
  if (op == "Conv") return {d[0]};
  if (op == "ConvTranspose") return {d[1] * group};
  if (d.size() != 2) return {};
  return {trans_b ? d[0] : d[1]};
}

Status ParameterRestorer::SplitMergedDuplicates() {
  std::map<std::string, Group> groups;
  std::vector<std::string> order;
  std::set<std::string> ambiguous;
  for (auto& n : *g_->mutable_node()) {
    const std::string* fx = Fx(n);
    if (!fx || IsRewritten(n)) continue;
    const std::string name = FxNodeName(*fx);
    if (name.empty()) continue;
    auto [it, fresh] = groups.try_emplace(name);
    if (fresh) {
      it->second.fx = *fx;
      order.push_back(name);
    } else if (it->second.fx != *fx) {
      ambiguous.insert(name);  // two fx nodes of one name: not a grouping to trust
    }
    it->second.nodes.push_back(&n);
  }
  // placeholder -> the kept initializer whose bytes it takes and the reads that are its own.
  struct Assignment {
    std::string from;
    std::vector<Use> uses;
    bool conflict = false;
  };
  std::map<std::string, Assignment> assigned;
  std::map<std::string, std::pair<onnx::NodeProto*, std::vector<int64_t>>> dropped_bias;
  for (const std::string& name : order) {
    if (ambiguous.count(name)) continue;
    const Group& group = groups[name];
    std::set<std::string> claimed;  // placeholders the group reads through folded initializers
    std::vector<Use> uses;
    const std::vector<std::string> raw = FxCallOperands(group.fx);
    // A read of a parameter's initializer that the call does not name is a tensor the optimizer
    // merged into it: another parameter (paired below) or one of torchlib's constants.
    std::vector<Use> foreign;
    auto own = [&](const std::string& in) {
      if (std::count(raw.begin(), raw.end(), placeholder_of_.at(in))) return true;
      for (const std::string& a : aliases_[in])
        if (std::count(raw.begin(), raw.end(), a)) return true;
      return false;
    };
    for (onnx::NodeProto* n : group.nodes)
      for (int i = 0; i < n->input_size(); ++i) {
        const std::string& in = n->input(i);
        if (auto f = folded_from_.find(in); f != folded_from_.end())
          for (const std::string& s : f->second)
            if (auto p = by_target_.find(s); p != by_target_.end()) claimed.insert(p->second);
        if (!placeholder_of_.count(in)) continue;
        if (!own(in)) foreign.push_back({n, i});
        // Read under the name of a folded call (a restored view): its own, not an operand's.
        if (!std::count(raw.begin(), raw.end(), placeholder_of_.at(in)) && own(in)) continue;
        // group_norm's InstanceNormalization takes torchlib's constant unit scale and zero bias.
        if (n->op_type() == "InstanceNormalization" && i > 0 && IsGroupNorm(group.fx)) continue;
        uses.push_back({n, i});
      }
    std::vector<std::string> operands;
    for (const std::string& o : raw)
      if (signature_.count(o) && !claimed.count(o)) operands.push_back(o);
    std::vector<std::pair<Use, std::string>> pairs;
    if (!operands.empty()) pairs = PairReads(uses, operands);
    if (pairs.empty() && group.nodes.size() == 1 && !operands.empty()) {
      // A Conv/ConvTranspose/Gemm without its bias whose call names a missing bias parameter.
      std::vector<int64_t> shape = DroppedBiasShape(*group.nodes[0]);
      std::vector<std::string> biases;
      for (const std::string& o : operands)
        if (missing_.count(o) && signature_.at(o).target.find("bias") != std::string::npos) biases.push_back(o);
      if (!shape.empty() && biases.size() == 1) {
        dropped_bias[biases[0]] = {group.nodes[0], std::move(shape)};
        operands.erase(std::find(operands.begin(), operands.end(), biases[0]));
        if (!operands.empty()) pairs = PairReads(uses, operands);
      }
    }
    // Operands named after a call whose result no longer exists: folded, then merged away.
    std::vector<std::string> orphans;
    for (const std::string& o : raw)
      if (!names_.count(o) && !signature_.count(o)) orphans.push_back(o);
    for (const Use& f : foreign) {
      bool paired = false;
      for (const auto& [use, placeholder] : pairs) paired |= use.node == f.node && use.input == f.input;
      if (paired) continue;
      constant_reads_.push_back(f);
      if (!orphans.empty())
        AddImportWarning(model_, StrCat("node '", f.node->name(), "' reads '", f.node->input(f.input), "' where its aten "
                                        "call reads '", orphans[0], "', which the exporter's optimizer folded and "
                                        "merged into it; that value stays constant, so if it came from a parameter, "
                                        "the parameter does not train as in PyTorch; re-export with "
                                        "torch.onnx.export(..., dynamo=True, optimize=False)"));
    }
    for (const auto& [use, placeholder] : pairs) {
      const std::string& in = use.node->input(use.input);
      if (placeholder_of_.at(in) == placeholder) continue;
      Assignment& a = assigned[placeholder];
      if (!a.from.empty() && a.from != in) a.conflict = true;
      a.from = in;
      a.uses.push_back(use);
    }
  }
  for (auto& [placeholder, a] : assigned) {
    const std::string& target = signature_.at(placeholder).target;
    if (a.conflict || names_.count(target) || dropped_bias.count(placeholder)) continue;
    onnx::TensorProto* t = FindInitializer(a.from);
    if (!t) continue;
    ASSIGN_OR_RETURN(Tensor kept, InitializerData(*t, *held_));
    Tensor copy(kept.dtype(), kept.dims());
    if (kept.nbytes()) std::memcpy(copy.raw(), kept.raw(), kept.nbytes());
    AddValueInfo(target, copy, placeholder);
    AddHeldInitializer(g_, target, std::move(copy), held_);
    for (const Use& u : a.uses) u.node->set_input(u.input, target);
  }
  for (auto& [placeholder, bias] : dropped_bias) {
    const std::string& target = signature_.at(placeholder).target;
    if (names_.count(target) || assigned.count(placeholder)) continue;
    onnx::NodeProto* n = bias.first;
    auto w = FindInitializer(n->input(1));
    ASSIGN_OR_RETURN(DType dtype, DTypeFromOnnx(w->data_type()));
    Tensor zeros(dtype, bias.second);
    AddValueInfo(target, zeros, placeholder);
    AddHeldInitializer(g_, target, std::move(zeros), held_);
    n->add_input(target);
  }
  // Constants merged into a parameter read from a copy of their own, which does not train.
  std::map<std::string, std::string> constant_of;
  for (const Use& u : constant_reads_) {
    const std::string from = u.node->input(u.input);
    auto [it, fresh] = constant_of.try_emplace(from);
    if (fresh) {
      std::string name = StrCat(from, "_constant");
      for (int k = 2; names_.count(name); ++k) name = StrCat(from, "_constant", k);
      onnx::TensorProto* t = FindInitializer(from);
      if (!t) continue;
      ASSIGN_OR_RETURN(Tensor kept, InitializerData(*t, *held_));
      Tensor copy(kept.dtype(), kept.dims());
      if (kept.nbytes()) std::memcpy(copy.raw(), kept.raw(), kept.nbytes());
      AddHeldInitializer(g_, name, std::move(copy), held_);
      names_.insert(name);
      it->second = name;
    }
    if (!it->second.empty()) u.node->set_input(u.input, it->second);
  }
  return Status::OK();
}

}  // namespace dsc
