// The window walk of 2-D pooling (taps, first maximum, divisor), shared by kernels/cpu/pool.cc and
// kernels/cuda/pool.cu. `W` is nn::Window2D (kernels/cpu/nn_util.h): plain int64 fields, so the
// CUDA kernels take it by value.
#pragma once

#include <cstdint>

#include "kernels/common/hd.h"

namespace dsc::pool {

// Calls fn(offset) for each tap of window (oy, ox) inside X, in row-major window order; offset is
// iy * W + ix within the (H,W) plane. Padded taps are skipped.
template <typename W, typename Fn>
DSC_HD void ForEachTap(const W& w, int64_t oy, int64_t ox, Fn&& fn) {
  for (int64_t ki = 0; ki < w.kh; ++ki) {
    const int64_t iy = oy * w.sh - w.pt + ki * w.dh;
    if (iy < 0 || iy >= w.ih) continue;
    for (int64_t kj = 0; kj < w.kw; ++kj) {
      const int64_t ix = ox * w.sw - w.pl + kj * w.dw;
      if (ix >= 0 && ix < w.iw) fn(iy * w.iw + ix);
    }
  }
}

// Offset (within the plane) of the first maximum of window (oy, ox), or -1 if no tap is inside X;
// a NaN wins over numbers (PyTorch). load(offset) gives the tap's value as float.
template <typename W, typename Load>
DSC_HD int64_t ArgMax(const W& w, int64_t oy, int64_t ox, Load&& load) {
  int64_t best = -1;
  float mx = 0;
  ForEachTap(w, oy, ox, [&](int64_t off) {
    const float v = load(off);
    if (best < 0 || v > mx || (v != v && mx == mx)) best = off, mx = v;
  });
  return best;
}

// How many taps of window (oy, ox) an average divides by: taps inside X, or inside the padded
// extent with count_include_pad.
template <typename W>
DSC_HD int64_t Divisor(const W& w, bool count_include_pad, int64_t oy, int64_t ox) {
  const int64_t lo_y = count_include_pad ? -w.pt : 0, hi_y = count_include_pad ? w.ih + w.pb : w.ih;
  const int64_t lo_x = count_include_pad ? -w.pl : 0, hi_x = count_include_pad ? w.iw + w.pr : w.iw;
  int64_t ny = 0, nx = 0;
  for (int64_t ki = 0; ki < w.kh; ++ki) {
    const int64_t iy = oy * w.sh - w.pt + ki * w.dh;
    ny += iy >= lo_y && iy < hi_y;
  }
  for (int64_t kj = 0; kj < w.kw; ++kj) {
    const int64_t ix = ox * w.sw - w.pl + kj * w.dw;
    nx += ix >= lo_x && ix < hi_x;
  }
  return ny * nx;
}

// The outputs along one axis whose window has a tap at input position i (padding pb, stride s,
// dilation d, k taps, o outputs): [*lo, *hi). A tap of output j sits at j * s - pb + t * d.
DSC_HD void WindowsOver(int64_t i, int64_t pb, int64_t s, int64_t d, int64_t k, int64_t o, int64_t* lo, int64_t* hi) {
  const int64_t top = i + pb;                   // j * s + t * d
  const int64_t first = top - (k - 1) * d;      // smallest j * s
  *lo = first <= 0 ? 0 : (first + s - 1) / s;
  const int64_t last = top / s + 1;
  *hi = last < o ? last : o;
}
// Whether output j's window has a tap exactly at input position i.
DSC_HD bool HasTapAt(int64_t i, int64_t j, int64_t pb, int64_t s, int64_t d, int64_t k) {
  const int64_t rel = i + pb - j * s;
  return rel >= 0 && rel % d == 0 && rel / d < k;
}

}  // namespace dsc::pool
