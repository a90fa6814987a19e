// What the rematerialize pass (activation checkpointing) records for dsinspect and later passes.
#pragma once

#include <memory>

#include "ir/graph.h"

namespace dsc {

// Graph metadata key: a JSON array with one object per forward segment: first and last node,
// "nodes", "recomputed", "saved_bytes" (what it still saves for the backward), and for recomputed
// ones "copied_nodes", "dropped_bytes" (the activations no longer held from forward to backward)
// and "twins" ([original, copy] value names).
inline constexpr const char* kRematSegmentsKey = "dsc.remat_segments";
// Graph metadata key (memory-plan): the activation arena `g` would need if the backward read the
// originals instead of the copies, in bytes.
inline constexpr const char* kRematArenaWithoutKey = "dsc.remat_arena_without";

// Graph metadata key (memory-plan, only with cpu_checkpointing's host copies): the device arena
// `g` would need if its checkpoints stayed on the device, in bytes.
inline constexpr const char* kHostCheckpointArenaWithoutKey = "dsc.host_checkpoint_arena_without";

// cpu_checkpointing moves a checkpoint to host memory only when it has at least this many bytes:
// below a page a copy's fixed cost (a launch and a PCIe round trip, microseconds each way) buys
// almost no device memory, and the small values of a block (LayerNorm statistics, masks of a
// few rows) stay where they are.
inline constexpr int64_t kHostCheckpointMinBytes = 4096;

// A copy of `g` whose backward reads the originals again and without the copies (and without the
// host copies of cpu_checkpointing): the program as it was before rematerialize, as far as later
// passes kept the names. Null when a twin's name is gone.
std::unique_ptr<Graph> WithoutRematerialization(const Graph& g);

// A copy of `g` without its ToHost/FromHost pairs (ir/host_copy_ops.h): the readers of each copy
// back read the original value, which stays on the device.
std::unique_ptr<Graph> WithoutHostCheckpoints(const Graph& g);

}  // namespace dsc
