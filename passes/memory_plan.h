// Liveness-based placement of a program's intermediate values in one arena.
#pragma once

#include <map>
#include <string>

#include "ir/graph.h"

namespace dsc {

struct MemoryPlan {
  struct Slot {
    int64_t offset = 0;
    int64_t bytes = 0;
  };
  std::map<std::string, Slot> slots;  // every node output (graph inputs/initializers live elsewhere)
  int64_t arena_bytes = 0;            // peak: the arena size
  int64_t unshared_bytes = 0;         // what one buffer per value would need, for comparison
};

inline constexpr int64_t kArenaAlignment = 64;

// Values live from their producer to their last consumer (graph outputs to the end); two values
// share bytes only when their lifetimes do not overlap. Greedy best-fit by decreasing size.
StatusOr<MemoryPlan> ComputeMemoryPlan(const Graph& g);

// The plan is stored in the graph's metadata under this key as JSON, so dumps and dsinspect show it.
inline constexpr const char* kMemoryPlanKey = "dsc.memory_plan";
std::string MemoryPlanToJson(const MemoryPlan& plan);
StatusOr<MemoryPlan> MemoryPlanFromJson(const std::string& text);

}  // namespace dsc
