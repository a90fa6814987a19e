// Device helpers that Attention's CUDA kernels share (attention.cu's reference kernels and
// attention_flash.cu's tensor-core ones): reading attn_mask's elements and nonpad_kv_seqlen.
#pragma once

#include <cstdint>

#include "kernels/common/attention_math.h"
#include "kernels/cuda/gemm.h"

namespace dsc::cuda::attn_util {

// One element of a mask-like input of dtype t as a double (bool as 0/1).
__device__ __forceinline__ double LoadD(const void* p, DType t, int64_t i) {
  switch (t) {
    case DType::kBool:
      return static_cast<const uint8_t*>(p)[i];
    case DType::kFloat64:
      return static_cast<const double*>(p)[i];
    default:
      return LoadAny(p, t, i);
  }
}

__device__ __forceinline__ int64_t NonPad(const attn::AttentionSpec& sp, const void* nonpad, int64_t b) {
  if (!sp.has_nonpad) return 0;
  return sp.nonpad_dtype == DType::kInt32 ? static_cast<const int32_t*>(nonpad)[b]
                                          : static_cast<const int64_t*>(nonpad)[b];
}

}  // namespace dsc::cuda::attn_util
