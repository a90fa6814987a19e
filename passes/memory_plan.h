// Liveness-based placement of a program's intermediate values in one arena, with views and
// in-place outputs sharing their input's bytes.
//
//   ASSIGN_OR_RETURN(MemoryPlan plan, ComputeMemoryPlan(graph));            // aliasing on
//   ASSIGN_OR_RETURN(MemoryPlan flat, ComputeMemoryPlan(graph, {.aliasing = false}));
//   plan.aliases.count("y")  // y shares bytes with plan.aliases.at("y").of
#pragma once

#include <map>
#include <optional>
#include <span>
#include <string>

#include "ir/graph.h"

namespace dsc {

struct MemoryPlan {
  struct Slot {
    int64_t offset = 0;
    int64_t bytes = 0;
  };
  // kView: the producer is a view op (ViewOffset); the executor does not run it, the bytes are
  // already there. kInPlace: the producer is in the in-place table and writes over its input `of`,
  // which dies at that node; the kernel runs with the output pointer equal to that input's.
  enum class AliasKind { kView, kInPlace };
  struct Alias {
    std::string of;  // the producer's input whose bytes this value shares
    AliasKind kind = AliasKind::kView;
  };
  std::map<std::string, Slot> slots;     // every node output but ToHost's (graph inputs/initializers live elsewhere)
  std::map<std::string, Alias> aliases;  // node outputs that share their input's slot
  int64_t arena_bytes = 0;               // peak: the arena size
  int64_t unshared_bytes = 0;            // what one buffer per value would need, for comparison
  int64_t unaliased_arena_bytes = 0;     // the arena the same placement needs without aliasing
  // ToHost outputs (ir/host_copy_ops.h): in a second arena of host memory, live from the ToHost to
  // the FromHost that reads them back; `slots` and `arena_bytes` are then the device's alone.
  std::map<std::string, Slot> host_slots;
  int64_t host_arena_bytes = 0;
};

struct MemoryPlanOptions {
  // Views and in-place outputs share their input's bytes (dscompile --no-memory-aliasing: off).
  bool aliasing = true;
};

inline constexpr int64_t kArenaAlignment = 64;

// Values live from their producer to their last consumer (graph outputs to the end); two values
// share bytes only when their lifetimes do not overlap, or when one aliases the other: a view
// output (ViewOffset) shares its input's bytes and the two lifetimes become one; an output of an
// in-place op (MayWriteInPlace) takes the slot of an input whose bytes are read by nothing after
// that node. Only values in the arena alias: a view of a graph input, initializer or state tensor
// is still a copy in the arena (bound inputs change between runs and training ops update state in
// place). Greedy best-fit by decreasing size over the remaining lifetimes. Offsets are multiples
// of kArenaAlignment, a SwapIn's output's of ops::kSwapBufferAlignment (O_DIRECT's page).
// ToHost outputs are placed the same way in the host arena; a node other than FromHost reading
// one is an error naming both.
StatusOr<MemoryPlan> ComputeMemoryPlan(const Graph& g, const MemoryPlanOptions& opts = {});

// Byte offset of a view node's output inside its input 0, or nullopt when the node is not a view:
// Reshape, Flatten, Squeeze, Unsqueeze, Identity and ai.dscompile.StopGradient (offset 0), and a
// Slice with constant starts/ends/axes/steps whose output is one contiguous run of its input
// starting at a multiple of kArenaAlignment bytes (slicing the outermost axis that is not 1, or
// equivalent).
std::optional<int64_t> ViewOffset(const Node& n);

// True when the node's kernels (CPU and CUDA) may write output 0 over input `input` (the in-place
// table in memory_plan.cc): elementwise, every element read before its own index is written. Also
// a CollectiveWait with one output, over its B when the two have the same bytes (a one-member
// AllReduce, or AllGather of a member the world divides: its unpack is the identity, and the
// kernels skip copying onto itself), so a gathered weight is not held twice.
// The planner adds the conditions on values: same dtype and shape as the output (no broadcast
// of that input), and no other input of the node shares its bytes.
bool MayWriteInPlace(const Node& n, size_t input);
struct InPlaceOp {
  const char* domain;
  const char* op;
  uint32_t donors;  // bit k: input k may give its slot to the output
};
std::span<const InPlaceOp> InPlaceOps();  // the table, for tests that run every row

// The plan is stored in the graph's metadata under this key as JSON, so dumps and dsinspect show
// it. Version 2 adds "aliases" and "unaliased_arena_bytes"; version 1 plans (no "version" key)
// read as plans without aliases, and a version 1 reader still runs a version 2 plan correctly
// (its slots are absolute; a view kernel copies a buffer onto itself, an in-place kernel is safe).
// Version 3 adds "host_slots" and "host_arena_bytes" and is written only by plans that have host
// slots (cpu_checkpointing), so every other plan stays version 2, byte for byte; a version 2
// reader refuses it (its slots do not cover the ToHost outputs).
inline constexpr const char* kMemoryPlanKey = "dsc.memory_plan";
inline constexpr int kMemoryPlanVersion = 3;
std::string MemoryPlanToJson(const MemoryPlan& plan);
StatusOr<MemoryPlan> MemoryPlanFromJson(const std::string& text);
const char* AliasKindName(MemoryPlan::AliasKind kind);  // "view", "in-place"

}  // namespace dsc
