// Slice's copy geometry from X's and Y's dims and the starts/ends/axes/steps lists (the ONNX rules
// of kernels/common/index_math.h), shared by the CPU kernel (kernels/cpu/slice.cc, at Init or at
// run time) and its CUDA twin (kernels/cuda/slice.cu, at Init).
//   ASSIGN_OR_RETURN(SliceGeometry g, ResolveSlice(x, y, starts, ends, axes, steps));
//   // Y[j] = X[g.base + sum_d j_d * g.strides[d]], Y's dims g.len
#pragma once

#include <vector>

#include "kernels/common/index_math.h"
#include "kernels/cpu/core_util.h"

namespace dsc {

struct SliceGeometry {
  int64_t base = 0;                   // X's element at Y[0, ..., 0]
  std::vector<int64_t> len, strides;  // Y's dims (= y) and X's element stride along each
};

inline StatusOr<SliceGeometry> ResolveSlice(const std::vector<int64_t>& x, const std::vector<int64_t>& y,
                                            const std::vector<int64_t>& starts, const std::vector<int64_t>& ends,
                                            const std::vector<int64_t>& axes_in, const std::vector<int64_t>& steps) {
  const int64_t rank = static_cast<int64_t>(x.size());
  if (starts.size() != ends.size()) return InvalidArgument("starts and ends differ in length");
  std::vector<int64_t> axes = axes_in;
  if (axes.empty())
    for (size_t i = 0; i < starts.size(); ++i) axes.push_back(static_cast<int64_t>(i));
  if (axes.size() != starts.size() || (!steps.empty() && steps.size() != starts.size()))
    return InvalidArgument("starts, ends, axes and steps differ in length");
  std::vector<int64_t> begin(x.size(), 0), step(x.size(), 1);
  SliceGeometry g;
  g.len = x;
  for (size_t i = 0; i < starts.size(); ++i) {
    ASSIGN_OR_RETURN(int64_t a, cpu::NormalizeAxis(axes[i], rank));
    const size_t ai = static_cast<size_t>(a);
    const int64_t st = steps.empty() ? 1 : steps[i];
    if (st == 0) return InvalidArgument("Slice step is 0 on axis ", a);
    SliceAxis(starts[i], ends[i], st, x[ai], &begin[ai], &g.len[ai]);
    step[ai] = st;
  }
  if (g.len != y) return InvalidArgument("slice gives ", g.len.size(), "-D result that differs from the output shape");
  const std::vector<int64_t> xs = cpu::ContiguousStrides(x);
  g.strides.resize(x.size());
  for (size_t d = 0; d < x.size(); ++d) {
    if (g.len[d] > 0) g.base += begin[d] * xs[d];
    // With two or more elements |step| < dim, so the stride cannot overflow; otherwise it is never applied.
    g.strides[d] = g.len[d] > 1 ? step[d] * xs[d] : 0;
  }
  return g;
}

}  // namespace dsc
