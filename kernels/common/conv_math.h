// Convolution index arithmetic shared by the CPU kernels (kernels/cpu/conv.cc) and their CUDA
// twins (kernels/cuda/conv.cu): which input position a window tap reads (im2col), and which
// output position reads a given input position (col2im as a gather). Windows are nn::Window
// (kernels/common/window.h): 1 to 3 spatial dims as 3 axes.
#pragma once

#include <cstdint>

#include "kernels/common/hd.h"
#include "kernels/common/window.h"

namespace dsc::conv {

// The input row (or column) that output position `o` reads through tap `t`; outside [0, in) it is
// padding.
DSC_HD int64_t InputPos(int64_t o, int64_t stride, int64_t pad, int64_t t, int64_t dilation) {
  return o * stride - pad + t * dilation;
}

// The output position that reads input position `i` through tap `t`, or -1 when none does: the
// inverse of InputPos.
DSC_HD int64_t OutputPos(int64_t i, int64_t stride, int64_t pad, int64_t t, int64_t dilation, int64_t out) {
  const int64_t s = i + pad - t * dilation;
  if (s < 0 || s % stride != 0) return -1;
  const int64_t o = s / stride;
  return o < out ? o : -1;
}

// Element (row, p) of one group's im2col matrix (Cg*kd*kh*kw, OD*OH*OW): its index in the group's
// input volumes (Cg, D, H, W), or -1 for a padded tap (which reads 0).
DSC_HD int64_t Im2ColSource(const nn::Window& w, int64_t row, int64_t p) {
  const int64_t taps = w.Taps(), c = row / taps;
  int64_t t[3], o[3];
  nn::Unflatten(w.k, row % taps, t);
  nn::Unflatten(w.out, p, o);
  int64_t off = c;
  for (int a = 0; a < nn::kMaxSpatial; ++a) {
    const int64_t i = InputPos(o[a], w.s[a], w.pb[a], t[a], w.d[a]);
    if (i < 0 || i >= w.in[a]) return -1;
    off = off * w.in[a] + i;
  }
  return off;
}

}  // namespace dsc::conv
