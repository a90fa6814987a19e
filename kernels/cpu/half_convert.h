// float16/bfloat16 <-> float32 conversions for element loops: inline and branch-free, so a loop of
// them vectorizes, with exactly the results of FloatToHalf/HalfToFloat/FloatToBFloat16/
// BFloat16ToFloat in ir/dtype.h (round to nearest even; NaN stays a quiet NaN of the same sign;
// tests/kernels/half_kernels_test.cc checks every 16-bit pattern and the rounding boundaries).
//
//   half::ToFloat(DType::kFloat16, x.ptr, scratch.data(), n);      // widen a tensor
//   half::FromFloat(DType::kBFloat16, scratch.data(), y.ptr, n);   // round it back once
// The per-element bit conversions live in kernels/common/half_math.h, shared with the CUDA kernels.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>

#include "ir/dtype.h"
#include "ir/graph.h"
#include "kernels/common/half_math.h"

namespace dsc::half {

// One element of a float16 (`bf16` false) or bfloat16 buffer.
inline float Load(const uint16_t* p, int64_t i, bool bf16) {
  return bf16 ? BFloat16BitsToFloat(p[i]) : HalfBitsToFloat(p[i]);
}
inline uint16_t Round(float f, bool bf16) { return bf16 ? FloatToBFloat16Bits(f) : FloatToHalfBits(f); }

// dst[i] = float(src[i]) for i < n; `dtype` (float16 or bfloat16) is src's. OpenMP over large n.
void ToFloat(DType dtype, const void* src, float* dst, int64_t n);
// dst[i] = src[i] rounded to `dtype` (float16 or bfloat16), nearest even.
void FromFloat(DType dtype, const float* src, void* dst, int64_t n);

// True when any input or output of `node` is float16/bfloat16.
bool HasHalfValue(const Node& node);

// Float scratch for widened half tensors, at least `floats` long, valid until this thread's next
// call. One buffer per thread, shared by every half kernel: the executor runs one node at a time,
// so only one node's widened copies are ever live, and a half model's activations are not kept a
// second time in float32 for the whole run (the buffer grows to the largest node's need).
float* SharedScratch(size_t floats);

}  // namespace dsc::half
