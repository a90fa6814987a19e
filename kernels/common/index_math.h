// Index math shared by the CPU indexing kernels and their CUDA twins: negative indices counting
// from the end, ONNX Slice's clamping of starts/ends per axis, and the scatter reductions.
//
//   int64_t j;  if (!NormalizeIndex(v, n, &j)) ...out of range...;  // v in [-n, n) -> j in [0, n)
//   d = ScatterCombine(ScatterReduction::kAdd, d, s);
#pragma once

#include <cstdint>

#include "kernels/common/hd.h"

namespace dsc {

// v in [-n, n) counts from the front (v >= 0) or the end (v < 0); *out gets the index in [0, n).
// False (and *out untouched) when v is out of range.
DSC_HD bool NormalizeIndex(int64_t v, int64_t n, int64_t* out) {
  if (v < -n || v >= n) return false;
  *out = v < 0 ? v + n : v;
  return true;
}

// One axis of ONNX Slice (opset 10+): start/end may be negative and are clamped to the axis; a
// negative step walks backwards. *first is the first element read, *len how many (0 for empty).
// The step must not be 0 (callers check it, with a message naming the axis).
DSC_HD void SliceAxis(int64_t start, int64_t end, int64_t step, int64_t dim, int64_t* first, int64_t* len) {
  int64_t b = start < 0 ? start + dim : start;
  int64_t e = end < 0 ? end + dim : end;
  // Forward: both in [0, dim]; backward: start in [0, dim - 1], end in [-1, dim - 1] (-1: up to
  // and including element 0). Clamped as std::clamp does, low bound first.
  const int64_t hi = step > 0 ? dim : dim - 1, lo_e = step > 0 ? 0 : -1;
  b = b < 0 ? 0 : b > hi ? hi : b;
  e = e < lo_e ? lo_e : e > hi ? hi : e;
  // In uint64: -step overflows for INT64_MIN and span + |step| - 1 for large steps.
  const int64_t span = step > 0 ? e - b : b - e;
  const uint64_t abs_step = step > 0 ? static_cast<uint64_t>(step) : uint64_t{0} - static_cast<uint64_t>(step);
  *len = span <= 0 ? 0 : static_cast<int64_t>((static_cast<uint64_t>(span) - 1) / abs_step + 1);
  *first = b;
}

enum class ScatterReduction { kNone, kAdd, kMul, kMax, kMin };

// The value a scatter leaves at a destination d receiving s. max/min are std::max(d, s) and
// std::min(d, s) spelled out (d is kept on ties and NaN comparisons), so CPU and GPU agree.
template <typename T>
DSC_HD T ScatterCombine(ScatterReduction r, T d, T s) {
  switch (r) {
    case ScatterReduction::kNone: return s;
    case ScatterReduction::kAdd: return d + s;
    case ScatterReduction::kMul: return d * s;
    case ScatterReduction::kMax: return d < s ? s : d;
    case ScatterReduction::kMin: return s < d ? s : d;
  }
  return s;
}

}  // namespace dsc
