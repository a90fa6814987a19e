// The geometry of a sliding window over 1 to 3 spatial dims (Conv, ConvTranspose, MaxPool,
// AveragePool and their gradients), shared by the CPU kernels and their CUDA twins, which take it by
// value. nn::ParseWindow (kernels/cpu/nn_util.h) reads it from a node.
//
// A window always has 3 axes, (D, H, W): fewer spatial dims are the leading axes of size 1 (tap 1,
// stride 1, no padding), so a 1-D window over (N,C,L) is the one over (N,C,1,1,L) and a 2-D window
// over (N,C,H,W) the one over (N,C,1,H,W). The memory layout is the same, so one walk serves all
// three ranks.
//
//   pool::ForEachWindow(w, [&](const int64_t* op, int64_t o) { pool::ForEachTap(w, op, [&](int64_t off) { ... }); });
#pragma once

#include <cstdint>

#include "kernels/common/hd.h"

namespace dsc::nn {

inline constexpr int kMaxSpatial = 3;

struct Window {
  int rank = 2;                          // the node's spatial dims (1, 2 or 3): which axes are its own
  int64_t k[kMaxSpatial] = {1, 1, 1};    // taps per axis
  int64_t s[kMaxSpatial] = {1, 1, 1};    // strides
  int64_t d[kMaxSpatial] = {1, 1, 1};    // dilations
  int64_t pb[kMaxSpatial] = {0, 0, 0};   // begin pads
  int64_t pe[kMaxSpatial] = {0, 0, 0};   // end pads
  int64_t in[kMaxSpatial] = {1, 1, 1};   // input sizes
  int64_t out[kMaxSpatial] = {1, 1, 1};  // output sizes

  DSC_HD int64_t InSize() const { return in[0] * in[1] * in[2]; }
  DSC_HD int64_t OutSize() const { return out[0] * out[1] * out[2]; }
  DSC_HD int64_t Taps() const { return k[0] * k[1] * k[2]; }
  // The input position along axis `a` that output position `o` reads through tap `t`; outside
  // [0, in[a]) it is padding.
  DSC_HD int64_t Pos(int a, int64_t o, int64_t t) const { return o * s[a] - pb[a] + t * d[a]; }
};

// (z, y, x) of flat index `i` in a (sizes[0], sizes[1], sizes[2]) block, row-major.
DSC_HD void Unflatten(const int64_t* sizes, int64_t i, int64_t* zyx) {
  zyx[2] = i % sizes[2];
  zyx[1] = i / sizes[2] % sizes[1];
  zyx[0] = i / (sizes[2] * sizes[1]);
}

}  // namespace dsc::nn
