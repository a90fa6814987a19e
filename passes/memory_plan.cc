// memory-plan: liveness analysis and arena placement; the pass records the plan in each program.
//
// Contract: every program gets metadata "dsc.memory_plan" (JSON: arena_bytes, unshared_bytes and
// an offset/size per node output). Must run last: any later change to the graph invalidates it
// (the executor recomputes a plan that does not cover the graph, so stale plans are harmless).
#include "passes/memory_plan.h"

#include <algorithm>
#include <nlohmann/json.hpp>
#include <set>
#include <unordered_map>

#include "passes/pass.h"

namespace dsc {
namespace {

struct Interval {
  std::string name;
  int64_t bytes;
  int begin, end;  // node indices, inclusive
  int64_t offset = -1;
};

// Placed intervals indexed by lifetime, so that the values live during an interval are found in
// O(log n + k) rather than by scanning everything placed so far (which made planning quadratic).
// An interval overlaps [b, e] when it starts inside [b, e] (found through the start positions) or
// starts before b and covers b (found by a point query on a segment tree over positions).
class LiveIndex {
 public:
  explicit LiveIndex(int positions) {
    while (size_ < positions) size_ *= 2;
    tree_.resize(2 * static_cast<size_t>(size_));
    by_begin_.resize(static_cast<size_t>(size_));
  }

  void Insert(size_t id, int begin, int end) {
    by_begin_[static_cast<size_t>(begin)].push_back(id);
    begins_.insert(begin);
    // The canonical cover of [begin, end]: O(log n) tree nodes.
    for (int l = begin + size_, r = end + size_ + 1; l < r; l >>= 1, r >>= 1) {
      if (l & 1) tree_[static_cast<size_t>(l++)].push_back({id, begin});
      if (r & 1) tree_[static_cast<size_t>(--r)].push_back({id, begin});
    }
  }

  // Calls f(id) once for every inserted interval overlapping [begin, end].
  template <typename F>
  void ForEachOverlapping(int begin, int end, F f) const {
    for (auto it = begins_.lower_bound(begin); it != begins_.end() && *it <= end; ++it)
      for (size_t id : by_begin_[static_cast<size_t>(*it)]) f(id);
    for (int i = begin + size_; i >= 1; i >>= 1)
      for (const auto& [id, b] : tree_[static_cast<size_t>(i)])
        if (b < begin) f(id);
  }

 private:
  int size_ = 1;
  std::vector<std::vector<std::pair<size_t, int>>> tree_;  // (interval, its begin) per node
  std::vector<std::vector<size_t>> by_begin_;
  std::set<int> begins_;
};

}  // namespace

StatusOr<MemoryPlan> ComputeMemoryPlan(const Graph& g) {
  std::vector<Interval> intervals;
  std::unordered_map<const Value*, size_t> index;
  int pos = 0;
  const int last = static_cast<int>(g.num_nodes());
  MemoryPlan plan;
  for (const auto& n : g.nodes()) {
    for (const Value* v : n->outputs()) {
      if (!v->type.shape || !IsStatic(*v->type.shape))
        return FailedPrecondition("memory planning needs static shapes: '", v->name(), "' is ", TypeToString(v->type));
      std::vector<int64_t> dims;
      for (const Dim& d : *v->type.shape) dims.push_back(d.value);
      StatusOr<int64_t> bytes = NumBytes(dims, v->type.dtype);
      int64_t aligned = 0;
      if (!bytes.ok() || !CheckedAdd(*bytes, kArenaAlignment - 1, &aligned))
        return OutOfRange("value '", v->name(), "' of type ", TypeToString(v->type), " is too large to plan");
      aligned = aligned / kArenaAlignment * kArenaAlignment;
      // Every offset is at most the sum of all sizes, so a sum that fits int64 keeps all of them in range.
      if (!CheckedAdd(plan.unshared_bytes, aligned, &plan.unshared_bytes))
        return OutOfRange("the values of the graph need more than 2^63 bytes (at '", v->name(), "')");
      index[v] = intervals.size();
      // Unused outputs still get written by their kernel, so they need bytes for that instant.
      intervals.push_back(Interval{v->name(), aligned, pos, v->is_graph_output() ? last : pos});
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
  LiveIndex live(last + 1);
  std::vector<std::pair<int64_t, int64_t>> busy;
  for (size_t i : order) {
    Interval& iv = intervals[i];
    // Occupied ranges of already placed values whose lifetimes overlap this one.
    busy.clear();
    live.ForEachOverlapping(iv.begin, iv.end, [&](size_t j) {
      busy.emplace_back(intervals[j].offset, intervals[j].offset + intervals[j].bytes);
    });
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
    live.Insert(i, iv.begin, iv.end);
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
  // A plan comes from a file: every slot must lie inside the arena it claims.
  if (plan.arena_bytes < 0 || plan.unshared_bytes < 0)
    return DataLoss("memory plan metadata has a negative arena size");
  for (const auto& [name, s] : plan.slots) {
    int64_t end = 0;
    if (s.offset < 0 || s.bytes < 0 || !CheckedAdd(s.offset, s.bytes, &end) || end > plan.arena_bytes)
      return DataLoss("memory plan metadata: slot '", name, "' [", s.offset, ", +", s.bytes, ") lies outside the arena of ",
                      plan.arena_bytes, " bytes");
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
