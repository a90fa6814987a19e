// A copy between two strided views, shared by the CUDA movement kernels (one thread per element)
// and the CPU tests that check the maps: y[y_base + sum_d c_d * ys[d]] = x[x_base + sum_d c_d * xs[d]]
// for every c in the box `dims`. Strides may be 0 (broadcast) or negative (Slice with a negative
// step); the maps are built so that every offset reached is in range.
//
//   ASSIGN_OR_RETURN(StridedMap m, MakeStridedMap(y_dims, x_strides, ContiguousStrides(y_dims), nx, ny));
//   int64_t xo, yo;  StridedOffsets<int64_t>(m, i, &xo, &yo);  // element i of the box
#pragma once

#include <cstdint>
#include <vector>

#include "ir/status.h"
#include "kernels/common/hd.h"

namespace dsc {

inline constexpr int kMaxStridedDims = 12;

struct StridedMap {
  int rank = 0;
  int64_t numel = 0;
  int64_t x_base = 0, y_base = 0;
  int64_t x_numel = 0, y_numel = 0;  // the extents addressed: 32-bit arithmetic when both fit
  int64_t dims[kMaxStridedDims] = {};
  int64_t xs[kMaxStridedDims] = {}, ys[kMaxStridedDims] = {};
};

// Drops size-1 dims and merges neighbours that both tensors walk contiguously, then checks that the
// rank fits. x_numel/y_numel: the element counts of X and Y.
inline StatusOr<StridedMap> MakeStridedMap(const std::vector<int64_t>& dims, const std::vector<int64_t>& xs,
                                           const std::vector<int64_t>& ys, int64_t x_numel, int64_t y_numel,
                                           int64_t x_base = 0, int64_t y_base = 0) {
  std::vector<int64_t> d, sx, sy;
  int64_t numel = 1;
  for (size_t i = 0; i < dims.size(); ++i) {
    numel *= dims[i];
    if (dims[i] == 1) continue;
    if (!d.empty() && sx.back() == xs[i] * dims[i] && sy.back() == ys[i] * dims[i]) {
      d.back() *= dims[i];
      sx.back() = xs[i];
      sy.back() = ys[i];
    } else {
      d.push_back(dims[i]);
      sx.push_back(xs[i]);
      sy.push_back(ys[i]);
    }
  }
  if (d.size() > static_cast<size_t>(kMaxStridedDims))
    return Unimplemented("a copy over ", d.size(), " dims that cannot be merged (at most ", kMaxStridedDims, ")");
  StridedMap m;
  m.rank = static_cast<int>(d.size());
  m.numel = numel;
  m.x_base = x_base, m.y_base = y_base;
  m.x_numel = x_numel, m.y_numel = y_numel;
  for (size_t i = 0; i < d.size(); ++i) m.dims[i] = d[i], m.xs[i] = sx[i], m.ys[i] = sy[i];
  return m;
}

// The X and Y offsets of element i of the box (row-major over dims), in index type I (int32_t
// when the map's extents fit: 32-bit division is several times faster on a GPU).
template <typename I>
DSC_HD void StridedOffsets(const StridedMap& m, I i, I* xo, I* yo) {
  I rest = i, x = static_cast<I>(m.x_base), y = static_cast<I>(m.y_base);
#if defined(__CUDA_ARCH__)  // constant indices into the map, which lives in kernel parameters
#pragma unroll
#endif
  for (int d = kMaxStridedDims - 1; d >= 0; --d) {
    if (d >= m.rank) continue;
    const I dim = static_cast<I>(m.dims[d]);
    const I c = rest % dim;
    rest /= dim;
    x += c * static_cast<I>(m.xs[d]);
    y += c * static_cast<I>(m.ys[d]);
  }
  *xo = x;
  *yo = y;
}

}  // namespace dsc
