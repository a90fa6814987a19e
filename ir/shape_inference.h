// Types every value of the graph with ONNX's shape inference (with data propagation, so shape
// arithmetic such as Shape→Gather→Concat→Reshape yields static shapes once inputs are static).
#pragma once

#include "ir/graph.h"

namespace dsc {

// Re-infers the types of all node outputs; existing types are kept where inference knows less.
// Ops of our own domain are skipped by ONNX and must already be typed by the pass that made them.
Status InferShapes(Graph& g);

}  // namespace dsc
