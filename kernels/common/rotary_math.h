// RotaryEmbedding's per-pair math, shared by the CPU kernel and its CUDA twin: which two features
// of a head form pair k, and their rotation by the angle whose cosine and sine are c and s.
//
//   int64_t i1, i2;  RotaryPair(interleaved, k, half, &i1, &i2);
//   RotatePair(x[i1], x[i2], c[k], s[k], &y[i1], &y[i2]);
#pragma once

#include <cstdint>

#include "kernels/common/hd.h"

namespace dsc {

// Pair k of the first 2 * half features: the two halves (k, k + half), or with interleaved the
// neighbours (2k, 2k + 1).
DSC_HD void RotaryPair(bool interleaved, int64_t k, int64_t half, int64_t* i1, int64_t* i2) {
  *i1 = interleaved ? 2 * k : k;
  *i2 = interleaved ? 2 * k + 1 : k + half;
}

// (x1, x2) -> (x1 c - x2 s, x1 s + x2 c), as c * x1 - s * x2 and s * x1 + c * x2. On the GPU the
// products and the sum are rounded separately (no fused multiply-add), as the CPU build computes
// them, so both sides give the same bits.
DSC_HD void RotatePair(float x1, float x2, float c, float s, float* y1, float* y2) {
#if defined(__CUDA_ARCH__)
  *y1 = __fsub_rn(__fmul_rn(c, x1), __fmul_rn(s, x2));
  *y2 = __fadd_rn(__fmul_rn(s, x1), __fmul_rn(c, x2));
#else
  *y1 = c * x1 - s * x2;
  *y2 = s * x1 + c * x2;
#endif
}

}  // namespace dsc
