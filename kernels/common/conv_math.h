// Convolution index arithmetic shared by the CPU kernels (kernels/cpu/conv.cc) and their CUDA
// twins (kernels/cuda/conv.cu): which input position a window tap reads (im2col), and which
// output position reads a given input position (col2im as a gather).
#pragma once

#include <cstdint>

#include "kernels/common/hd.h"

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

// Element (row, p) of one group's im2col matrix (Cg*kh*kw, OH*OW): its index in the group's input
// planes (Cg, H, W), or -1 for a padded tap (which reads 0). W is nn::Window2D or a copy of it.
template <typename W>
DSC_HD int64_t Im2ColSource(const W& w, int64_t row, int64_t p) {
  const int64_t c = row / (w.kh * w.kw), ki = row / w.kw % w.kh, kj = row % w.kw;
  const int64_t iy = InputPos(p / w.ow, w.sh, w.pt, ki, w.dh), ix = InputPos(p % w.ow, w.sw, w.pl, kj, w.dw);
  if (iy < 0 || iy >= w.ih || ix < 0 || ix >= w.iw) return -1;
  return (c * w.ih + iy) * w.iw + ix;
}

}  // namespace dsc::conv
