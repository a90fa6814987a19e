// Helpers shared by the NN CPU kernels: static dims of a node's values, axes, and a kernel base whose
// errors name the node (sliding windows: kernels/common/window_node.h).
//
//   ASSIGN_OR_RETURN(std::vector<int64_t> x, StaticDims(node.input(0), "X"));
#pragma once

#include <algorithm>
#include <cstdint>
#include <string>
#include <vector>

#include "ir/graph.h"
#include "ir/status.h"
#include "kernels/kernel.h"

namespace dsc::nn {

// Below this many elements a loop runs serially: thread start-up would cost more than it saves.
inline constexpr int64_t kParallelThreshold = 1 << 15;

inline StatusOr<std::vector<int64_t>> StaticDims(const Value* v, const char* what) {
  if (!v) return InvalidArgument("missing ", what);
  if (!v->type.shape || !IsStatic(*v->type.shape))
    return InvalidArgument(what, " '", v->name(), "' needs a static shape, has ", TypeToString(v->type));
  std::vector<int64_t> dims;
  for (const Dim& d : *v->type.shape) dims.push_back(d.value);
  return dims;
}

inline int64_t Product(const std::vector<int64_t>& dims, size_t begin, size_t end) {
  int64_t p = 1;
  for (size_t i = begin; i < end && i < dims.size(); ++i) p *= dims[i];
  return p;
}
inline int64_t Product(const std::vector<int64_t>& dims) { return Product(dims, 0, dims.size()); }

inline StatusOr<int64_t> NormalizeAxis(int64_t axis, int64_t rank) {
  if (axis < -rank || axis >= rank) return InvalidArgument("axis ", axis, " out of range for rank ", rank);
  return axis < 0 ? axis + rank : axis;
}

using ::dsc::DimsToString;

// A kernel whose Compute errors name its node: Compute runs Run and adds desc_ (set it in Init
// with node.Describe()) as context to any error.
class DescribedKernel : public OpKernel {
 public:
  Status Compute(KernelContext& ctx) final {
    Status s = Run(ctx);
    return s.ok() ? s : s.WithContext(desc_);
  }

 protected:
  virtual Status Run(KernelContext& ctx) = 0;
  std::string desc_;
};

}  // namespace dsc::nn
