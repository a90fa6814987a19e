// Types every value of the graph with ONNX's shape inference (with data propagation, so shape
// arithmetic such as Shape→Gather→Concat→Reshape yields static shapes once inputs are static).
#pragma once

#include <unordered_map>

#include "ir/graph.h"

namespace dsc {

// Re-infers the types of all node outputs; existing types are kept where inference knows less.
// Ops of our own domain are skipped by ONNX and must already be typed by the pass that made them.
Status InferShapes(Graph& g);

// What InferShapes would set each node output's type to, by value, leaving the graph as it is
// (for checks that compare the types passes set with inference's, without a copy of the graph).
// Outputs whose type inference would not change are left out.
StatusOr<std::unordered_map<const Value*, TensorType>> InferredTypes(const Graph& g);

}  // namespace dsc
