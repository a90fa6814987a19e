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

// A copy of `g` whose backward reads the originals again and without the copies: the program
// as it was before rematerialize, as far as later passes kept the names. Null when a twin's
// name is gone.
std::unique_ptr<Graph> WithoutRematerialization(const Graph& g);

}  // namespace dsc
