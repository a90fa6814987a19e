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
//                        aliases: [{value, of, kind: "view"|"in-place", op}]} (after memory-plan)}],
//   state: [{name, kind, owner, dtype, shape, numel, bytes, zero_init, shard_of_numel (ZeRO chunks; 0 = whole)}],
//   memory: {parameters, gradients, optimizer_states, master_weights (fp32 masters of a half model),
//            model_states (the four above), buffers, activations_peak,
//            communication_buffers (outputs of collectives; part of activations_peak),
//            arena_bytes_by_program: {program: bytes}}   (bytes per rank)
//   communication: {all_reduce, reduce_scatter, all_gather, total}   (bytes one rank sends per
//            optimizer step under runtime/communicator.h's ring model)
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
// The default dsinspect view; `plan_path` is only shown in the title.
std::string RenderSummaryText(const nlohmann::json& summary, const std::string& plan_path);

enum class GraphFormat { kText, kOnnx, kDot };
StatusOr<GraphFormat> ParseGraphFormat(const std::string& name);  // "text", "onnx", "dot"

// kText: PrintGraph with initializers above `elide_above` elements elided (-1: print all).
// kOnnx: a serialized ModelProto (binary). kDot: see GraphToDot.
StatusOr<std::string> ExportGraph(const Graph& g, GraphFormat format, int64_t elide_above = 64);

// Graphviz: ops as boxes labelled "OpType\nname", graph inputs and outputs as coloured ellipses,
// initializers as small boxes; each edge is labelled with its value's name and shape.
std::string GraphToDot(const Graph& g);

}  // namespace dsc
