// The shape of a pooling node, read once at Init by the CPU kernels (kernels/cpu/pool.cc) and their
// CUDA twins (kernels/cuda/pool.cu); the per-window math is kernels/common/pool_math.h.
//   ASSIGN_OR_RETURN(pool::PoolShape s, pool::ReadPool(node, node.input(0), node.output(0)));
#pragma once

#include <vector>

#include "kernels/common/window_node.h"
#include "kernels/cpu/nn_util.h"

namespace dsc::pool {

// Pool attributes over X:(N,C,spatial...) -> Y:(N,C,spatial'...), 1 to 3 spatial dims; planes = N*C.
struct PoolShape {
  nn::Window w;
  int64_t planes = 0;
  bool count_include_pad = false;
};

inline StatusOr<PoolShape> ReadPool(const Node& node, const Value* xv, const Value* yv) {
  ASSIGN_OR_RETURN(std::vector<int64_t> x, nn::StaticDims(xv, "X"));
  ASSIGN_OR_RETURN(std::vector<int64_t> y, nn::StaticDims(yv, "Y"));
  if (!node.HasAttr("kernel_shape")) return InvalidArgument("kernel_shape is required");
  PoolShape s;
  ASSIGN_OR_RETURN(s.w, nn::ParseWindow(node, x, y, {}, node.GetInt("ceil_mode", 0) != 0));
  if (x[0] != y[0] || x[1] != y[1])
    return InvalidArgument("X ", nn::DimsToString(x), " and Y ", nn::DimsToString(y), " differ in N or C");
  s.planes = x[0] * x[1];
  s.count_include_pad = node.GetInt("count_include_pad", 0) != 0;
  return s;
}

// MaxPool X -> Y[, Indices]: Indices only as flat offsets (storage_order 0).
inline StatusOr<PoolShape> ReadMaxPool(const Node& node) {
  ASSIGN_OR_RETURN(PoolShape s, ReadPool(node, node.input(0), node.output(0)));
  if (node.num_outputs() > 1 && node.GetInt("storage_order", 0) != 0)
    return Unimplemented("MaxPool Indices with storage_order=1");
  return s;
}

// GlobalAveragePool X:(N,C,spatial...): planes = N*C of `size` elements each.
struct GlobalPoolShape {
  int64_t planes = 0, size = 1;
};

inline StatusOr<GlobalPoolShape> ReadGlobalPool(const Node& node) {
  ASSIGN_OR_RETURN(std::vector<int64_t> x, nn::StaticDims(node.input(0), "X"));
  if (x.size() < 3) return InvalidArgument("X ", nn::DimsToString(x), " needs rank >= 3 (N,C,spatial...)");
  GlobalPoolShape g;
  g.planes = x[0] * x[1];
  g.size = nn::Product(x, 2, x.size());
  return g;
}

}  // namespace dsc::pool
