// The precision section of dsinspect's summary.
#include "backend/precision_summary.h"

#include <map>
#include <string>

namespace dsc {
namespace {

using json = nlohmann::json;

bool IsFloatType(DType t) { return t == DType::kFloat32 || IsHalf(t); }

// The dtype a node computes in: its first float output, else (in-place ops) its first float input.
DType ComputeDType(const Node& n) {
  for (const Value* v : n.outputs())
    if (v && IsFloatType(v->type.dtype)) return v->type.dtype;
  for (const Value* v : n.inputs())
    if (v && IsFloatType(v->type.dtype)) return v->type.dtype;
  return DType::kUndefined;
}

int64_t Bytes(const Value& v) {
  if (!v.type.shape) return 0;
  int64_t n = static_cast<int64_t>(DTypeSize(v.type.dtype));
  for (const Dim& d : *v.type.shape) n *= d.is_static() ? d.value : 0;
  return n;
}

}  // namespace

json PrecisionSummary(const Plan& plan) {
  json out = nullptr;
  for (const PlanProgram& p : plan.programs) {
    if (!p.graph) continue;
    auto regime = p.graph->metadata.find("dsc.precision");
    if (regime == p.graph->metadata.end()) continue;
    if (out.is_null()) {
      out = json::object();
      out["regime"] = json::parse(regime->second, nullptr, false);
      out["compute"] = json::object();
      out["casts"] = json::array();
      out["activation_bytes_by_dtype"] = json::object();
    }
    std::map<std::string, std::map<std::string, int64_t>> compute;
    for (const auto& n : p.graph->nodes()) {
      const DType t = ComputeDType(*n);
      if (t == DType::kUndefined) continue;
      ++compute[n->domain().empty() ? n->op_type() : n->domain() + "." + n->op_type()][DTypeName(t)];
    }
    out["compute"][p.name] = compute;
    auto casts = p.graph->metadata.find("dsc.precision_casts");
    if (casts != p.graph->metadata.end()) {
      json list = json::parse(casts->second, nullptr, false);
      if (list.is_array())
        for (json& c : list) out["casts"].push_back(c);
    }
    if (p.name == "micro_step")
      for (const auto& n : p.graph->nodes())
        for (const Value* v : n->outputs())
          if (v && IsFloatType(v->type.dtype))
            out["activation_bytes_by_dtype"][DTypeName(v->type.dtype)] =
                out["activation_bytes_by_dtype"].value(DTypeName(v->type.dtype), int64_t{0}) + Bytes(*v);
  }
  return out;
}

void RenderPrecisionText(std::ostream& os, const json& s) {
  if (s.is_null()) return;
  const json& r = s["regime"];
  os << "\nprecision: " << r.value("kind", "?") << " in " << r.value("half", "?") << " (" << r.value("source", "?")
     << "); master weights " << r.value("master_weights", "?") << ", optimizer states "
     << r.value("optimizer_states", "?") << ", gradients accumulate in " << r.value("grad_accum", "?")
     << " and are reduced in " << r.value("communication", "?") << "; loss scaling "
     << (r.value("loss_scaling", false) ? "on" : "off") << ", overflow check "
     << (r.value("check_overflow", false) ? "on" : "off") << "\n";
  if (const int64_t calls = r.value("optimizer_calls_before_training", int64_t{0}); calls > 0)
    os << "  before training: DeepSpeed's fp16/bf16 wrapper at ZeRO 0 calls optimizer.step() "
       << (calls == 1 ? std::string("once") : std::to_string(calls) + " times")
       << " on zero gradients with the optimizer's own lr; dsrun does too, so the first update is call " << calls + 1
       << "\n";
  for (auto p = s["compute"].begin(); p != s["compute"].end(); ++p) {
    os << "  compute dtypes in " << p.key() << ":";
    for (auto op = p.value().begin(); op != p.value().end(); ++op) {
      os << " " << op.key() << "[";
      bool first = true;
      for (auto t = op.value().begin(); t != op.value().end(); ++t) {
        os << (first ? "" : " ") << t.key() << "×" << t.value().get<int64_t>();
        first = false;
      }
      os << "]";
    }
    os << "\n";
  }
  os << "  activation values of micro_step by dtype:";
  for (auto t = s["activation_bytes_by_dtype"].begin(); t != s["activation_bytes_by_dtype"].end(); ++t)
    os << " " << t.key() << " " << t.value().get<int64_t>() << " B";
  os << "\n  casts inserted by the precision pass: " << s["casts"].size() << "\n";
  for (const json& c : s["casts"])
    os << "    " << c.value("value", "?") << " -> " << c.value("to", "?") << " for " << c.value("for", "?") << ": "
       << c.value("reason", "?") << "\n";
}

}  // namespace dsc
