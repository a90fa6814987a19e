// Restoring aten calls that onnxscript's common-subexpression elimination merged into an equal call.

#include <algorithm>
#include <cctype>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "frontend/parameter_restorer.h"

namespace dsc {
namespace {

std::string LastComponent(const std::string& target) { return target.substr(target.rfind('.') + 1); }

size_t CommonPrefix(const std::string& a, const std::string& b) {
  size_t n = 0;
  while (n < a.size() && n < b.size() && a[n] == b[n]) ++n;
  return n;
}

}  // namespace

// A fresh model's parallel norms (GPT-NeoX's input_layernorm and post_attention_layernorm, both
// reading the block's input) start equal: the optimizer first merges the second norm's parameters
// into the first's, then CSE keeps one of the two now identical calls, and the second norm's
// parameters are read by no node. The evidence stays in the consumers' fx calls: a node reading
// the kept call X's output names another call Y of the same aten op ("layer_norm_1") that no node
// of the file computes. The kept call's nodes are copied as Y, reading in place of each of X's
// parameters the missing parameter of the same attribute name ("weight", "bias") that shares the
// longest module path with it (the same layer), and Y's readers are moved to the copy. When a
// parameter has no such unique partner the merge is left, and select-loss warns as before.
Status ParameterRestorer::SplitMergedCalls() {
  if (missing_.empty()) return Status::OK();
  auto* nodes = g_->mutable_node();
  std::map<std::string, std::vector<int>> calls;  // fx name -> its nodes, in file order
  std::map<std::string, int> producer;
  for (int i = 0; i < nodes->size(); ++i) {
    const onnx::NodeProto& n = nodes->Get(i);
    if (const std::string* fx = Fx(n)) {
      const std::string name = FxNodeName(*fx);
      if (!name.empty()) calls[name].push_back(i);
    }
    for (const auto& o : n.output()) producer[o] = i;
  }
  // (kept call X, lost call Y) -> the reads of X's values that stand for Y's.
  std::map<std::pair<std::string, std::string>, std::vector<std::pair<int, int>>> lost;
  for (int i = 0; i < nodes->size(); ++i) {
    const onnx::NodeProto& n = nodes->Get(i);
    const std::string* fx = Fx(n);
    if (!fx || IsRewritten(n)) continue;
    const std::string self = FxNodeName(*fx);
    const std::vector<std::string> operands = FxCallOperands(*fx);
    for (int k = 0; k < n.input_size(); ++k) {
      auto p = producer.find(n.input(k));
      if (p == producer.end()) continue;
      const std::string* pfx = Fx(nodes->Get(p->second));
      if (!pfx || IsRewritten(nodes->Get(p->second))) continue;
      const std::string x = FxNodeName(*pfx);
      if (x.empty() || x == self || std::count(operands.begin(), operands.end(), x)) continue;
      std::vector<std::string> ys;
      for (const std::string& y : operands)
        if (y != x && FxOpOfName(y) == FxOpOfName(x) && !calls.count(y) &&
            std::find(ys.begin(), ys.end(), y) == ys.end())
          ys.push_back(y);
      if (ys.size() == 1) lost[{x, ys[0]}].push_back({i, k});
    }
  }
  std::set<std::string> taken;  // missing placeholders given to a copy
  std::map<int, std::vector<onnx::NodeProto>> insert_after;
  for (const auto& [xy, reads] : lost) {
    const auto& [x, y] = xy;
    const std::vector<int>& group = calls.at(x);
    const int last = group.back();
    bool after = true;
    for (const auto& [i, k] : reads) after &= i > last;
    if (!after) continue;
    // X's parameters, each paired with a missing parameter of the same attribute name.
    std::map<std::string, std::string> partner;  // X's initializer -> missing placeholder
    std::map<std::string, std::string> placeholder_read;  // X's initializer -> its placeholder
    bool paired = true;
    for (int idx : group)
      for (const auto& in : nodes->Get(idx).input()) {
        // A parameter's own initializer, or the copy SplitMergedDuplicates gave it (named after it).
        std::string placeholder;
        if (auto own = placeholder_of_.find(in); own != placeholder_of_.end()) placeholder = own->second;
        else if (auto t = by_target_.find(in); t != by_target_.end()) placeholder = t->second;
        if (placeholder.empty() || partner.count(in)) continue;
        const std::string& target = signature_.at(placeholder).target;
        std::string best;
        size_t best_len = 0;
        bool tie = false;
        for (const std::string& q : missing_) {
          const SignatureInput& s = signature_.at(q);
          if (s.kind != signature_.at(placeholder).kind || taken.count(q) ||
              LastComponent(s.target) != LastComponent(target))
            continue;
          const size_t len = CommonPrefix(s.target, target);
          if (len > best_len) best = q, best_len = len, tie = false;
          else if (len == best_len) tie = true;
        }
        if (best.empty() || tie || names_.count(signature_.at(best).target)) paired = false;
        else partner[in] = best, placeholder_read[in] = placeholder;
      }
    if (!paired || partner.empty()) continue;
    for (const auto& [in, q] : partner) {
      onnx::TensorProto* t = FindInitializer(in);
      if (!t) return Internal("initializer '", in, "' of a merged call is gone");
      ASSIGN_OR_RETURN(Tensor data, InitializerData(*t, *held_));
      const std::string& target = signature_.at(q).target;
      AddValueInfo(target, data, q);
      AddHeldInitializer(g_, target, std::move(data), held_);
      initializers_.insert(target);
      placeholder_of_[target] = q;
      taken.insert(q);
    }
    std::map<std::string, std::string> renamed;
    for (const auto& [in, q] : partner) renamed[in] = signature_.at(q).target;
    std::vector<onnx::NodeProto> copies;
    for (int idx : group) {
      onnx::NodeProto c = nodes->Get(idx);
      for (auto& in : *c.mutable_input())
        if (auto r = renamed.find(in); r != renamed.end()) in = r->second;
      for (auto& out : *c.mutable_output()) {
        if (out.empty()) continue;
        std::string fresh = StrCat(out, "_", y);
        while (names_.count(fresh)) fresh += "_";
        names_.insert(fresh);
        renamed[out] = fresh;
        out = fresh;
      }
      c.set_name(StrCat(c.name(), "_", y));
      // The copy is Y's call now: its fx record names Y and the partners' placeholders.
      for (auto& p : *c.mutable_metadata_props()) {
        if (p.key() != kFxNodeKey) continue;
        std::string fx = p.value();
        fx.replace(1, x.size(), y);
        for (const auto& [in, q] : partner) {
          const std::string from = "%" + placeholder_read.at(in), to = "%" + q;
          for (size_t at = fx.find(from); at != std::string::npos; at = fx.find(from, at + 1)) {
            const size_t end = at + from.size();
            if (end < fx.size() && (std::isalnum(static_cast<unsigned char>(fx[end])) || fx[end] == '_')) continue;
            fx.replace(at, from.size(), to);
          }
        }
        p.set_value(fx);
      }
      copies.push_back(std::move(c));
    }
    for (const auto& [i, k] : reads) nodes->Mutable(i)->set_input(k, renamed.at(nodes->Get(i).input(k)));
    auto& slot = insert_after[last];
    for (auto& c : copies) slot.push_back(std::move(c));
  }
  if (insert_after.empty()) return Status::OK();
  google::protobuf::RepeatedPtrField<onnx::NodeProto> out;
  for (int i = 0; i < nodes->size(); ++i) {
    *out.Add() = std::move(*nodes->Mutable(i));
    if (auto it = insert_after.find(i); it != insert_after.end())
      for (auto& c : it->second) *out.Add() = std::move(c);
  }
  nodes->Swap(&out);
  return Status::OK();
}

}  // namespace dsc
