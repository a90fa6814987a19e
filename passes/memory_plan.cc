// memory-plan: liveness analysis and arena placement; the pass records the plan in each program.
//
// Contract: every program gets metadata "dsc.memory_plan" (JSON: arena_bytes, unshared_bytes and
// an offset/size per node output). Must run last: any later change to the graph invalidates it
// (the executor recomputes a plan that does not cover the graph, so stale plans are harmless).
#include "passes/memory_plan.h"

#include <algorithm>
#include <nlohmann/json.hpp>
#include <unordered_map>

#include "passes/pass.h"

namespace dsc {
namespace {

int64_t AlignUp(int64_t n) { return (n + kArenaAlignment - 1) / kArenaAlignment * kArenaAlignment; }

struct Interval {
  std::string name;
  int64_t bytes;
  int begin, end;  // node indices, inclusive
  int64_t offset = -1;
};

}  // namespace

StatusOr<MemoryPlan> ComputeMemoryPlan(const Graph& g) {
  std::vector<Interval> intervals;
  std::unordered_map<const Value*, size_t> index;
  int pos = 0;
  const int last = static_cast<int>(g.num_nodes());
  for (const auto& n : g.nodes()) {
    for (const Value* v : n->outputs()) {
      if (!v->type.shape || !IsStatic(*v->type.shape))
        return FailedPrecondition("memory planning needs static shapes: '", v->name(), "' is ", TypeToString(v->type));
      std::vector<int64_t> dims;
      for (const Dim& d : *v->type.shape) dims.push_back(d.value);
      ASSIGN_OR_RETURN(int64_t count, NumElements(dims));
      index[v] = intervals.size();
      // Unused outputs still get written by their kernel, so they need bytes for that instant.
      intervals.push_back(Interval{v->name(), AlignUp(count * static_cast<int64_t>(DTypeSize(v->type.dtype))), pos,
                                   v->is_graph_output() ? last : pos});
    }
    for (const Value* v : n->inputs()) {
      auto it = v ? index.find(v) : index.end();
      if (it != index.end()) intervals[it->second].end = std::max(intervals[it->second].end, pos);
    }
    ++pos;
  }
  std::vector<size_t> order(intervals.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) { return intervals[a].bytes > intervals[b].bytes; });
  MemoryPlan plan;
  std::vector<size_t> placed;
  for (size_t i : order) {
    Interval& iv = intervals[i];
    plan.unshared_bytes += iv.bytes;
    // Occupied ranges of already placed values whose lifetimes overlap this one.
    std::vector<std::pair<int64_t, int64_t>> busy;
    for (size_t j : placed) {
      const Interval& o = intervals[j];
      if (o.begin <= iv.end && iv.begin <= o.end) busy.emplace_back(o.offset, o.offset + o.bytes);
    }
    std::sort(busy.begin(), busy.end());
    int64_t best = -1, best_gap = -1, cursor = 0;
    for (const auto& [b, e] : busy) {
      int64_t gap = b - cursor;
      if (gap >= iv.bytes && (best < 0 || gap < best_gap)) {
        best = cursor;
        best_gap = gap;
      }
      cursor = std::max(cursor, e);
    }
    iv.offset = best >= 0 ? best : cursor;
    plan.arena_bytes = std::max(plan.arena_bytes, iv.offset + iv.bytes);
    placed.push_back(i);
  }
  for (const Interval& iv : intervals) plan.slots[iv.name] = MemoryPlan::Slot{iv.offset, iv.bytes};
  return plan;
}

std::string MemoryPlanToJson(const MemoryPlan& plan) {
  nlohmann::json j;
  j["arena_bytes"] = plan.arena_bytes;
  j["unshared_bytes"] = plan.unshared_bytes;
  nlohmann::json slots = nlohmann::json::object();
  for (const auto& [name, s] : plan.slots) slots[name] = {s.offset, s.bytes};
  j["slots"] = slots;
  return j.dump();
}

StatusOr<MemoryPlan> MemoryPlanFromJson(const std::string& text) {
  MemoryPlan plan;
  try {
    nlohmann::json j = nlohmann::json::parse(text);
    plan.arena_bytes = j.at("arena_bytes").get<int64_t>();
    plan.unshared_bytes = j.at("unshared_bytes").get<int64_t>();
    for (const auto& [name, s] : j.at("slots").items())
      plan.slots[name] = MemoryPlan::Slot{s.at(0).get<int64_t>(), s.at(1).get<int64_t>()};
  } catch (const std::exception& e) {
    return DataLoss("memory plan metadata is malformed: ", e.what());
  }
  return plan;
}

namespace {

class MemoryPlanPass : public GraphPass {
 public:
  const char* name() const override { return "memory-plan"; }
  StatusOr<bool> RunOnGraph(Graph& g, const PassContext&) override {
    ASSIGN_OR_RETURN(MemoryPlan plan, ComputeMemoryPlan(g));
    std::string text = MemoryPlanToJson(plan);
    auto it = g.metadata.find(kMemoryPlanKey);
    if (it != g.metadata.end() && it->second == text) return false;
    g.metadata[kMemoryPlanKey] = text;
    return true;
  }
};

}  // namespace

std::unique_ptr<Pass> CreateMemoryPlanPass() { return std::make_unique<MemoryPlanPass>(); }

}  // namespace dsc
