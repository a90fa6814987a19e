// The window walk of pooling (taps, first maximum, divisor) over 1 to 3 spatial dims, shared by
// kernels/cpu/pool.cc and kernels/cuda/pool.cu. Windows are nn::Window (kernels/common/window.h):
// plain int64 fields, so the CUDA kernels take them by value. A window is named by its output
// position `op` = (oz, oy, ox) (a loop's counters; a CUDA thread unflattens its index once), an input
// offset by its flat index within one (N, C) plane of X.
#pragma once

#include <cstdint>

#include "kernels/common/hd.h"
#include "kernels/common/window.h"

namespace dsc::pool {

// Calls fn(offset) for each tap of window `op` inside X, in row-major window order; offset is
// (iz * H + iy) * W + ix within the (D,H,W) plane. Padded taps are skipped.
template <typename Fn>
DSC_HD void ForEachTap(const nn::Window& w, const int64_t* op, Fn&& fn) {
  for (int64_t ka = 0; ka < w.k[0]; ++ka) {
    const int64_t iz = w.Pos(0, op[0], ka);
    if (iz < 0 || iz >= w.in[0]) continue;
    for (int64_t kb = 0; kb < w.k[1]; ++kb) {
      const int64_t iy = w.Pos(1, op[1], kb);
      if (iy < 0 || iy >= w.in[1]) continue;
      const int64_t row = (iz * w.in[1] + iy) * w.in[2];
      for (int64_t kc = 0; kc < w.k[2]; ++kc) {
        const int64_t ix = w.Pos(2, op[2], kc);
        if (ix >= 0 && ix < w.in[2]) fn(row + ix);
      }
    }
  }
}

// Offset (within the plane) of the first maximum of window `op`, or -1 if no tap is inside X; a NaN
// wins over numbers (PyTorch). load(offset) gives the tap's value as float.
template <typename Load>
DSC_HD int64_t ArgMax(const nn::Window& w, const int64_t* op, Load&& load) {
  int64_t best = -1;
  float mx = 0;
  ForEachTap(w, op, [&](int64_t off) {
    const float v = load(off);
    if (best < 0 || v > mx || (v != v && mx == mx)) best = off, mx = v;
  });
  return best;
}

// How many of the k taps start + t * d (t in [0, k)) lie in [lo, hi): counted, not walked (a loop here
// is the slowest part of an average pool's gradient).
DSC_HD int64_t TapsWithin(int64_t start, int64_t d, int64_t k, int64_t lo, int64_t hi) {
  if (start >= hi) return 0;
  const int64_t first = start >= lo ? 0 : (lo - start + d - 1) / d;
  const int64_t last_in = (hi - 1 - start) / d, last = last_in < k - 1 ? last_in : k - 1;
  return last >= first ? last - first + 1 : 0;
}

// How many taps of window `op` an average divides by: taps inside X, or inside the padded extent with
// count_include_pad.
DSC_HD int64_t Divisor(const nn::Window& w, bool count_include_pad, const int64_t* op) {
  int64_t count = 1;
  for (int a = 0; a < nn::kMaxSpatial; ++a) {
    const int64_t lo = count_include_pad ? -w.pb[a] : 0, hi = count_include_pad ? w.in[a] + w.pe[a] : w.in[a];
    count *= TapsWithin(w.Pos(a, op[a], 0), w.d[a], w.k[a], lo, hi);
  }
  return count;
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

// Calls fn(op, o) for each output window (position op, flat index o within the plane) with a tap at
// input offset `off`, in increasing o: the order the CPU's scattering gradients add in, so a gather
// adds in the same order.
template <typename Fn>
DSC_HD void ForEachWindowOver(const nn::Window& w, int64_t off, Fn&& fn) {
  int64_t ip[3], lo[3], hi[3];
  nn::Unflatten(w.in, off, ip);
  for (int a = 0; a < nn::kMaxSpatial; ++a) WindowsOver(ip[a], w.pb[a], w.s[a], w.d[a], w.k[a], w.out[a], &lo[a], &hi[a]);
  for (int64_t oz = lo[0]; oz < hi[0]; ++oz) {
    if (!HasTapAt(ip[0], oz, w.pb[0], w.s[0], w.d[0], w.k[0])) continue;
    for (int64_t oy = lo[1]; oy < hi[1]; ++oy) {
      if (!HasTapAt(ip[1], oy, w.pb[1], w.s[1], w.d[1], w.k[1])) continue;
      for (int64_t ox = lo[2]; ox < hi[2]; ++ox)
        if (HasTapAt(ip[2], ox, w.pb[2], w.s[2], w.d[2], w.k[2])) {
          const int64_t op[3] = {oz, oy, ox};
          fn(op, (oz * w.out[1] + oy) * w.out[2] + ox);
        }
    }
  }
}

// Calls fn(op, o) for every output window of a plane in increasing flat index o: the CPU's loop.
template <typename Fn>
DSC_HD void ForEachWindow(const nn::Window& w, Fn&& fn) {
  int64_t o = 0;
  for (int64_t oz = 0; oz < w.out[0]; ++oz)
    for (int64_t oy = 0; oy < w.out[1]; ++oy)
      for (int64_t ox = 0; ox < w.out[2]; ++ox, ++o) {
        const int64_t op[3] = {oz, oy, ox};
        fn(op, o);
      }
}

}  // namespace dsc::pool
