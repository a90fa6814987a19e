// The per-element math of ONNX Resize and its adjoint ResizeGrad, shared by kernels/cpu/resize.cc and
// kernels/cuda/resize.cu: where output index o of an axis reads the input (the spec's x_original),
// its taps and weights (nearest, linear, cubic), and the outputs that read an input index.
//
//   resize::Geom g = ...;                          // kernels/common/resize_node.h fills it at Init
//   y[e] = resize::ResizeAt(g, e, [&](int64_t off) { return x[off]; });
//   dx[e] = resize::ResizeGradAt(g, e, [&](int64_t off) { return dy[off]; });
//
// It follows onnx/reference/ops/op_resize.py, the spec: x_original is computed in double from the
// axis' scale (given, or output/input length for `sizes`) and the float "output width" scale *
// input length; an integer x_original takes the tap on its left with ratio 1; out-of-range taps
// read the edge (or get weight 0 with exclude_outside, the rest renormalised). Data are summed in
// float. The gradient gathers: one input element sums dY over the outputs whose taps land on it,
// in row-major output order, so dX is deterministic on both devices.
#pragma once

#include <cmath>
#include <cstdint>

#include "kernels/common/hd.h"

namespace dsc::resize {

inline constexpr int kMaxRank = 8;
inline constexpr int kMaxTaps = 4;

enum Mode : int32_t { kNearest = 0, kLinear = 1, kCubic = 2 };
enum Transform : int32_t { kHalfPixel = 0, kPytorchHalfPixel, kAlignCorners, kAsymmetric, kHalfPixelSymmetric };
enum NearestMode : int32_t { kRoundPreferFloor = 0, kRoundPreferCeil, kFloor, kCeil };

// Plain fields, so the CUDA kernels take it by value. An axis is resized unless its scale is 1 and
// its length unchanged (such an axis maps each index to itself under every transform).
struct Geom {
  int32_t rank = 0;
  int32_t mode = kNearest, transform = kHalfPixel, nearest = kRoundPreferFloor;
  int32_t exclude_outside = 0;
  double cubic_a = -0.75;
  int64_t in[kMaxRank] = {}, out[kMaxRank] = {};
  double scale[kMaxRank] = {};
  int32_t resized[kMaxRank] = {};
};

// The elements of an `in` or `out` shape of `g` (each kernel runs one element per thread or iteration).
inline int64_t Elements(const int64_t* dims, int rank) {
  int64_t n = 1;
  for (int a = 0; a < rank; ++a) n *= dims[a];
  return n;
}

// One output index's reads along one axis: n taps at input indices idx (clamped into [0, in)).
struct Taps {
  int32_t n = 0;
  int64_t idx[kMaxTaps];
  float w[kMaxTaps];
};

// x_original of output index o along axis a (op_resize.py's _interpolate_1d_with_x).
DSC_HD double SourceCoord(const Geom& g, int a, int64_t o) {
  const double x = static_cast<double>(o), s = g.scale[a], in = static_cast<double>(g.in[a]);
  const double width = s * in;  // the reference's output_width: not rounded to the integer length
  switch (g.transform) {
    case kAlignCorners: return width == 1.0 ? 0.0 : x * (in - 1.0) / (width - 1.0);
    case kAsymmetric: return x / s;
    case kPytorchHalfPixel: return width == 1.0 ? -0.5 : (x + 0.5) / s - 0.5;
    case kHalfPixelSymmetric: {
      const double adjustment = static_cast<double>(g.out[a]) / width;
      return in / 2.0 * (1.0 - adjustment) + (x + 0.5) / s - 0.5;
    }
    default: return (x + 0.5) / s - 0.5;  // half_pixel
  }
}

// Cubic convolution weights of the taps at base-1 .. base+2 for ratio r in (0, 1] (Keys, a = A).
DSC_HD void CubicWeights(double r, double A, double* c) {
  const double r1 = r + 1, q = 1 - r, q1 = q + 1;
  c[0] = ((A * r1 - 5 * A) * r1 + 8 * A) * r1 - 4 * A;
  c[1] = ((A + 2) * r - (A + 3)) * r * r + 1;
  c[2] = ((A + 2) * q - (A + 3)) * q * q + 1;
  c[3] = ((A * q1 - 5 * A) * q1 + 8 * A) * q1 - 4 * A;
}

// The taps of output index o along axis a, their indices clamped into the input (the reference pads
// with the edge value); with exclude_outside the taps that fell outside get weight 0 instead.
DSC_HD void AxisTaps(const Geom& g, int a, int64_t o, Taps* t) {
  if (!g.resized[a]) {
    t->n = 1, t->idx[0] = o, t->w[0] = 1.0f;
    return;
  }
  const double x = SourceCoord(g, a, o);
  const double fl = floor(x);
  // The neighbour on the left with ratio in (0, 1]: an integer x is the right tap of [x-1, x].
  const bool integral = x == fl;
  const int64_t base = static_cast<int64_t>(fl) - (integral ? 1 : 0);
  const double r = integral ? 1.0 : x - fl;
  const int64_t len = g.in[a];
  double c[kMaxTaps];
  int64_t raw0;
  int n;
  if (g.mode == kNearest) {
    bool right;  // take base + 1
    if (integral) right = true;
    else if (g.nearest == kRoundPreferCeil) right = r >= 0.5;
    else if (g.nearest == kFloor) right = false;
    else if (g.nearest == kCeil) right = true;
    else right = r > 0.5;  // round_prefer_floor
    raw0 = base + (right ? 1 : 0), n = 1, c[0] = 1.0;
  } else if (g.mode == kLinear) {
    raw0 = base, n = 2, c[0] = 1.0 - r, c[1] = r;
  } else {
    raw0 = base - 1, n = 4;
    CubicWeights(r, g.cubic_a, c);
  }
  if (g.exclude_outside) {
    double sum = 0;
    for (int k = 0; k < n; ++k) {
      const int64_t i = raw0 + k;
      if (i < 0 || i >= len) c[k] = 0.0;
      sum += c[k];
    }
    for (int k = 0; k < n; ++k) c[k] = sum != 0.0 ? c[k] / sum : 0.0;
  }
  t->n = n;
  for (int k = 0; k < n; ++k) {
    const int64_t i = raw0 + k;
    t->idx[k] = i < 0 ? 0 : i >= len ? len - 1 : i;
    t->w[k] = static_cast<float>(c[k]);
  }
}

// Y at flat output index e; load(offset) reads X at a flat input offset as float.
template <typename Load>
DSC_HD float ResizeAt(const Geom& g, int64_t e, Load&& load) {
  Taps t[kMaxRank];
  for (int a = g.rank - 1; a >= 0; --a) {
    AxisTaps(g, a, e % g.out[a], &t[a]);
    e /= g.out[a];
  }
  int k[kMaxRank] = {};
  float acc = 0.0f;
  for (;;) {
    int64_t off = 0;
    float w = 1.0f;
    for (int a = 0; a < g.rank; ++a) {
      off = off * g.in[a] + t[a].idx[k[a]];
      w *= t[a].w[k[a]];
    }
    if (w != 0.0f) acc += w * load(off);  // a zero-weight tap contributes nothing, not 0 * inf
    int a = g.rank - 1;
    while (a >= 0 && ++k[a] == t[a].n) k[a--] = 0;
    if (a < 0) return acc;
  }
}

// The summed weight with which output o along axis a reads input index i (0 when it does not).
DSC_HD float WeightAt(const Geom& g, int a, int64_t o, int64_t i) {
  Taps t;
  AxisTaps(g, a, o, &t);
  float w = 0.0f;
  for (int k = 0; k < t.n; ++k)
    if (t.idx[k] == i) w += t.w[k];
  return w;
}

// The outputs along axis a that may read input index i: [*lo, *hi). Taps move right as o grows
// (x_original increases with o), so the smallest and largest tap index are non-decreasing in o
// and each bound is a binary search.
DSC_HD void OutputsReading(const Geom& g, int a, int64_t i, int64_t* lo, int64_t* hi) {
  if (!g.resized[a]) {
    *lo = i, *hi = i + 1;
    return;
  }
  Taps t;
  int64_t l = 0, h = g.out[a];  // first o whose largest tap is >= i
  while (l < h) {
    const int64_t m = l + (h - l) / 2;
    AxisTaps(g, a, m, &t);
    if (t.idx[t.n - 1] >= i) h = m;
    else l = m + 1;
  }
  *lo = l;
  h = g.out[a];  // first o whose smallest tap is > i
  while (l < h) {
    const int64_t m = l + (h - l) / 2;
    AxisTaps(g, a, m, &t);
    if (t.idx[0] > i) h = m;
    else l = m + 1;
  }
  *hi = l;
}

// dX at flat input index e: the sum over the outputs reading it of dY times their weight on it, in
// row-major output order; load(offset) reads dY at a flat output offset as float.
template <typename Load>
DSC_HD float ResizeGradAt(const Geom& g, int64_t e, Load&& load) {
  int64_t i[kMaxRank], lo[kMaxRank], hi[kMaxRank], o[kMaxRank];
  float w[kMaxRank] = {};
  for (int a = g.rank - 1; a >= 0; --a) {
    i[a] = e % g.in[a];
    e /= g.in[a];
    OutputsReading(g, a, i[a], &lo[a], &hi[a]);
    if (lo[a] >= hi[a]) return 0.0f;
    o[a] = lo[a];
  }
  // w[a] is the weight product of axes 0..a at the current outputs; axes from `from` on are stale.
  float acc = 0.0f;
  int from = 0;
  for (;;) {
    for (int a = from; a < g.rank; ++a) w[a] = (a ? w[a - 1] : 1.0f) * WeightAt(g, a, o[a], i[a]);
    if (w[g.rank - 1] != 0.0f) {
      int64_t off = 0;
      for (int a = 0; a < g.rank; ++a) off = off * g.out[a] + o[a];
      acc += w[g.rank - 1] * load(off);
    }
    int a = g.rank - 1;
    while (a >= 0 && ++o[a] == hi[a]) o[a] = lo[a], --a;
    if (a < 0) return acc;
    from = a;
  }
}

}  // namespace dsc::resize
