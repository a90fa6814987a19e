// Per-node validation of what kernels, gradient builders and ONNX's shape inference assume of a
// node: operator schema (inputs, attribute kinds), attribute ranges, lengths and permutations,
// window geometry, axes, constant index inputs, and the shapes each op requires where known.
#pragma once

#include <cstdint>

#include "ir/graph.h"

namespace dsc {

// The largest element count a value may have: larger shapes are refused as absurd (2^40 elements
// is terabytes, beyond any device this project targets).
inline constexpr int64_t kMaxElements = int64_t{1} << 40;
// Window attributes (kernel_shape, strides, dilations, pads) above this are refused: kernels pass
// them to 32-bit BLAS sizes, and products of two of them stay far from int64 overflow.
inline constexpr int64_t kMaxWindowAttr = (int64_t{1} << 31) - 1;

enum class NodeCheckStage {
  // Before shape inference: types of intermediate values may still be the file's unchecked
  // declarations, so shapes are read only from graph inputs, initializers and Constant nodes.
  kAttributes,
  // After shape inference (the verifier): every known type is trusted and checked against the op.
  kShapes,
};

// The first violation, as InvalidArgument naming the node (via Describe) and the attribute,
// input or value. `opset` is the graph's default-domain opset (selects ONNX's schema).
Status CheckNode(const Node& n, int64_t opset, NodeCheckStage stage);

// A value whose static shape holds more than kMaxElements elements, or whose bytes overflow int64.
Status CheckValueSize(const Value& v);

// CheckNode on every node, in graph order.
Status CheckNodes(const Graph& g, NodeCheckStage stage);

}  // namespace dsc
