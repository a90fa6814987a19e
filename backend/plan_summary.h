// What dsinspect shows about a plan: the summary (JSON, and text rendered from it) and a program's
// graph as IR text, ONNX bytes or Graphviz.
//
//   nlohmann::json s = SummarizePlan(plan);         // dsinspect --json
//   std::cout << RenderSummaryText(s, "mlp.plan");  // dsinspect
//   ASSIGN_OR_RETURN(std::string dot, ExportGraph(*program->graph, GraphFormat::kDot));
//
// Summary JSON (key names are a stable interface: scripts and tests read them):
//   producer, format_version, source_model, world_size, command_line,
//   pipeline: [{name, changed, seconds}],
//   config: {train_batch_size, train_micro_batch_size_per_gpu, gradient_accumulation_steps,
//            optimizer, zero_stage, precision}   (only keys the config has; precision always)
//   programs: [{name, num_nodes, ops: {type: count}, inputs: [{name, dtype, shape}], outputs,
//               loss, parameters: [{name, dtype, shape, numel, bytes}], num_parameter_tensors,
//               num_parameters (elements), parameter_bytes, num_constants, constant_bytes,
//               memory: {arena_bytes, unaliased_arena_bytes, unshared_bytes, constant_bytes,
//                        views: {op: count}, in_place: {op: count},
//                        aliases: [{value, of, kind: "view"|"in-place", op}]} (after memory-plan),
//               schedule: {buckets, gathered_peak_elements, gathered_peak_at}}],
//     schedule.buckets: one per bucketed collective (a *Start node and its CollectiveWait, ir/dsc_ops.h),
//       in Start order: {bucket (id), kind ("AllReduce"|"ReduceScatter"|"AllGather"|"AllGatherInPlace"),
//       op ("avg"|"sum", null for gathers), dtype, world, num_members, members (the Start's input
//       names), elements (sum of the members' whole numels n_i), buffer_elements (B's, padding
//       included), bytes_sent (one rank, one run of the program), only on a 1-bit optimizer's
//       all-reduce bucket until_step (it sends nothing after that step) and with 0/1 Adam
//       var_update_scaler (nor off its variance steps), start: {index, name},
//       wait: {index, name} | null, overlap: {nodes (strictly between start and wait; 0 =
//       synchronous), ops: {kind: count}, flops (backend/flops.h), flops_unknown (nodes of unknown
//       FLOPs)}}; a node's name is its own or, when unnamed, its first output's.
//     gathered_peak_elements: the most gathered parameter elements alive at once, walking the program
//       in order (+ the members' n_i at an AllGatherStart, - each input's numel at a Release);
//       gathered_peak_at: {index, name} of the node where it is first reached, null when 0.
//   state: [{name, kind, owner, dtype, shape, numel, bytes, zero_init, shard_of_numel (ZeRO chunks; 0 = whole),
//            place ("device", or "nvme" for a state swapped to NVMe, ir/swap_ops.h)}],
//   memory: {parameters, gradients, optimizer_states, master_weights (fp32 masters of a half model),
//            model_states (the four above), buffers, activations_peak (the kinds count resident
//            states only: a swapped state is in places.nvme),
//            places: {device (resident states + activations_peak: the memory the rank computes in,
//            host memory on a CPU rank), host (host memory besides it: 0, nothing is placed there
//            yet), nvme (swapped states)},
//            moved_per_step: {nvme_to_device, device_to_nvme (the SwapIns' and SwapOuts' bytes),
//            host_to_device, device_to_host (0)},
//            communication_buffers (outputs of collectives, bucket buffers B and the Waits'
//            outputs, summed over programs; part of the arenas),
//            arena_bytes_by_program: {program: bytes}}   (bytes per rank)
//   communication: {all_reduce, reduce_scatter, all_gather, total}   (bytes one rank sends per
//            optimizer step under runtime/communicator.h's ring model; a bucket sends its whole
//            buffer: sum n_i elements all-reduced, world*C reduce-scattered or gathered)
//   collectives: {all_reduce, reduce_scatter, all_gather, total}   (collective calls per optimizer
//            step: a per-tensor collective or a *Start node is one call; micro_step counts
//            gradient_accumulation_steps times; 0 at world size 1, where they are copies: what the
//            communicators' calls() count, dsrun's metric `collectives`)
//   precision: null for fp32 plans, else backend/precision_summary.h's object
// A shape is an array of ints (static dims), strings (symbols) and nulls (unknown dims), or null
// when even the rank is unknown.
#pragma once

#include <cstdint>
#include <string>

#include <nlohmann/json.hpp>

#include "backend/plan.h"
#include "ir/status.h"

namespace dsc {

// [{name, dtype, shape, numel, bytes}] for graph.training.parameters, in that order. numel and
// bytes are null for a parameter whose shape is not static.
nlohmann::json ParameterTable(const Graph& g);

// `only_program` non-empty: that program alone (the caller checks it exists).
nlohmann::json SummarizePlan(const Plan& plan, const std::string& only_program = "");
struct SummaryTextOptions {
  // Every bucket of each program's schedule, with all members and the op kinds each overlaps
  // (dsinspect --schedule); otherwise one line per bucket, at most 20 per program.
  bool full_schedule = false;
};
// The default dsinspect view; `plan_path` is only shown in the title.
std::string RenderSummaryText(const nlohmann::json& summary, const std::string& plan_path,
                              const SummaryTextOptions& opts = {});

// "512 B", "1.5 KiB", "3.2 GiB": binary units, one decimal.
std::string HumanBytes(int64_t bytes);

enum class GraphFormat { kText, kOnnx, kDot };
StatusOr<GraphFormat> ParseGraphFormat(const std::string& name);  // "text", "onnx", "dot"

// kText: PrintGraph with initializers above `elide_above` elements elided (-1: print all).
// kOnnx: a serialized ModelProto (binary). kDot: see GraphToDot.
StatusOr<std::string> ExportGraph(const Graph& g, GraphFormat format, int64_t elide_above = 64);

// Graphviz: ops as boxes labelled "OpType\nname", graph inputs and outputs as coloured ellipses,
// initializers as small boxes; each edge is labelled with its value's name and shape.
std::string GraphToDot(const Graph& g);

}  // namespace dsc
