// The IR's canonical text form: ONNX textual syntax (onnx.ai/onnx/repo-docs/Syntax.html) that
// prints and parses back exactly. Every dump, golden test and bug report uses it.
//
//   <
//     ir_version: 8,
//     opset_import: ["" : 17, "ai.dscompile" : 1],
//     metadata_props: ["dsc.loss" : "loss"]
//   >
//   main (float[batch,32] x, int64[batch] y) => (float[] loss)
//   <
//     float[64,32] "fc1.weight" = {0.1, -0.25, ...},   # initializer with its data
//     float[batch,64] "/fc1/Gemm_output_0"             # type of an intermediate value
//   >
//   {
//     ["/fc1/Gemm"] "/fc1/Gemm_output_0" = Gemm <alpha = 1.0, transB = 1> (x, "fc1.weight", "fc1.bias")
//     out1, , out3 = SomeOp(a, , c)                   # empty: omitted optional input/output
//     z = ai.dscompile.AllReduce <op = "sum"> (g)     # custom domain: domain.OpType
//   }
//
// Extensions to the ONNX syntax (a standard ONNX parser reads the rest where names are simple):
//  - Any name that is not [A-Za-z_][A-Za-z0-9_]* is double-quoted ("fc1.weight", "onnx::MatMul_12"),
//    with \" \\ \n \t \r \xHH escapes; the parser takes a quoted name wherever a name goes.
//  - `[name]` before a node's outputs is its name (the parser also takes unquoted `[fc1/Gemm]`).
//  - `inf`, `-inf`, `nan` in tensor data and float attributes.
//  - `= ...` instead of an initializer's data (PrintOptions::elide_above); see ParseOptions.
//  - A graph input or output whose element type is unknown prints as its bare name.
//  - A lone omitted input/output prints as "" (`"" = Op(x)`), so it differs from no output at all.
// What the text does not keep: NaN payloads (every NaN prints as nan/-nan), the shape of a value
// whose element type is unknown, types of unnamed outputs, and producer_name/doc_string etc. in
// the header (accepted and dropped: Graph has no field for them).
// Graph::training is stored as metadata_props "dsc.loss"/"dsc.parameters" (ir/training_meta.h).
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "ir/graph.h"

namespace dsc {

struct PrintOptions {
  // Initializers with more elements than this print `= ...` instead of their data. -1: never.
  int64_t elide_above = -1;
};
std::string PrintGraph(const Graph& g, const PrintOptions& opts = {});
// One node on one line, as inside the graph's { } block (for logs and error messages).
std::string PrintNode(const Node& n);

struct ParseOptions {
  // Accept `= ...` (elided initializer data) and zero-fill those initializers: for golden tests of
  // passes that never read weight values. Without it, elided data is an error, since silently
  // zeroed weights would train a different model.
  bool allow_elided = false;
};
// Parses text printed by PrintGraph (or written by hand). Errors are InvalidArgument with
// "line L, column C: ..." and the offending line; nodes may come in any order (they are
// topologically sorted; a cycle is an error).
StatusOr<std::unique_ptr<Graph>> ParseGraph(const std::string& text, const ParseOptions& opts = {});

}  // namespace dsc
