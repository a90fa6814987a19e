// The bytes alive at every node of a plan's programs, by kind, and their pictures (dsinspect
// --memory-timeline).
//
//   ASSIGN_OR_RETURN(nlohmann::json t, MemoryTimeline(plan));   // --memory-timeline OUT.json
//   std::string svg = RenderMemoryTimelineSvg(t, "gpt.dsplan");  // --memory-timeline OUT.svg
//
// Timeline JSON (version 1; key names are a stable interface):
//   version, world_size,
//   state: {parameters, master_weights, gradients, optimizer_states, buffers}: bytes per rank that
//          live for the whole run outside the arenas (the summary's memory figures),
//   programs: [{name, num_nodes, arena_bytes (the memory plan's),
//               nodes: [label of node i], ops: [op type of node i],
//               live: {kind: [bytes alive in the arena at node i]} for the arena kinds below
//                     that occur in the program,
//               arena_extent: [the highest arena byte in use at node i],
//               peak: {index, node, op, live_bytes, arena_extent,
//                      top: [{value, kind, bytes, producer}]}: the first node where the most
//                      arena bytes are alive, and the largest values alive there,
//               arena_peak: {index, node, op, arena_extent}: the first node where the arena's
//                      extent is largest; that extent is arena_bytes (the placement may need more
//                      than peak.live_bytes: the difference is fragmentation)}]
// Arena kinds, decided from the graph (not from names):
//   "communication buffers": bucket buffers B (outputs of *Start nodes);
//   "gathered parameters": outputs of AllGather and of CollectiveWait<AllGather>;
//   "gradients": outputs of AllReduce/ReduceScatter and of their Waits, and every value read by
//                Accumulate, by a reduction or its Start, or as an optimizer update's gradient;
//   "activations": everything else (forward activations, backward temporaries, recomputed values).
// A value that aliases another (a view, an in-place output) shares its bytes: the group counts once,
// under the kind of its latest member. A node's live bytes include its own outputs and the values it
// reads. arena_extent's largest entry is arena_bytes: every slot is in use when made.
// Graph inputs (the bound batch, state tensors) and initializers live outside the arena.
#pragma once

#include <string>

#include <nlohmann/json.hpp>

#include "backend/plan.h"
#include "ir/status.h"

namespace dsc {

// `only_program` non-empty: that program alone (the caller checks it exists). Fails when a
// program's graph does not have static shapes or its stored memory plan does not cover it.
StatusOr<nlohmann::json> MemoryTimeline(const Plan& plan, const std::string& only_program = "");

// One panel per program: state as constant bands, the arena's kinds stacked above them, the
// arena's extent as a dashed line, the peak marked with its largest values named. `title` names the
// plan. Wide programs are drawn at one column per pixel, each showing its node of most bytes.
std::string RenderMemoryTimelineSvg(const nlohmann::json& timeline, const std::string& title);

}  // namespace dsc
