// Static cost of a node from its shapes: floating-point operations and bytes read and written,
// for dsrun --profile, the flops_profiler config section and dscompile --flops.
//
//   NodeCost c = StaticNodeCost(node);   // MatMul [8,16]x[16,4]: c.flops == 2*8*4*16
//   if (!c.flops_known) ...              // an op the table does not list: shown as "?"
//
// The counts follow DeepSpeed's flops profiler (profiling/flops_profiler/profiler.py) where it has
// a rule: a GEMM or convolution is 2 FLOPs per multiply-accumulate, an elementwise op or an
// activation 1 per output element, a reduction 1 per input element, softmax 1 and LayerNorm 5 per
// element. DeepSpeed counts only the forward and estimates the backward as twice the forward; the
// backward ops here that are GEMMs or convolutions are counted exactly, the other gradient ops as
// twice their forward op's per-element count. Data movement (Transpose, Reshape, Gather, Cast,
// collectives, ...) is 0 FLOPs and shows up in the bytes. kFlopRules lists every op with its rule.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "backend/plan.h"
#include "ir/graph.h"

namespace dsc {

struct NodeCost {
  bool flops_known = false;  // the op is in the table and its shapes are static
  int64_t flops = 0;
  int64_t bytes_read = 0;     // every present input, whole (not those an in-place op only writes)
  int64_t bytes_written = 0;  // every present output, and the inputs an in-place op updates
};

NodeCost StaticNodeCost(const Node& n);

// One row of the table: the op and its rule in words (for docs, --flops and the tests).
struct FlopRule {
  const char* op;
  const char* rule;
};
const std::vector<FlopRule>& FlopRules();

// The node's input and output shapes as "float[4,16] x float[16,32] -> float[4,32]".
std::string NodeShapes(const Node& n);

// Programs' op kinds as printed everywhere: "MatMul", or "ai.dscompile.AdamStep" for our domain.
std::string OpKind(const Node& n);

// dscompile --flops: per program, FLOPs and bytes per run by op kind, and per optimizer step
// (micro_step times gradient_accumulation_steps, plus step).
std::string FormatStaticFlops(const Plan& plan);

}  // namespace dsc
