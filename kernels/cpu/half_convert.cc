// Bulk float16/bfloat16 <-> float32 conversions (kernels/cpu/half_convert.h).
#include "kernels/cpu/half_convert.h"

#include <vector>

#include "kernels/cpu/core_util.h"

namespace dsc::half {

void ToFloat(DType dtype, const void* src, float* dst, int64_t n) {
  const uint16_t* s = static_cast<const uint16_t*>(src);
  if (dtype == DType::kBFloat16) {
#pragma omp parallel for if (n >= cpu::kParallelMin) schedule(static)
    for (int64_t i = 0; i < n; ++i) dst[i] = BFloat16BitsToFloat(s[i]);
  } else {
#pragma omp parallel for if (n >= cpu::kParallelMin) schedule(static)
    for (int64_t i = 0; i < n; ++i) dst[i] = HalfBitsToFloat(s[i]);
  }
}

void FromFloat(DType dtype, const float* src, void* dst, int64_t n) {
  uint16_t* d = static_cast<uint16_t*>(dst);
  if (dtype == DType::kBFloat16) {
#pragma omp parallel for if (n >= cpu::kParallelMin) schedule(static)
    for (int64_t i = 0; i < n; ++i) d[i] = FloatToBFloat16Bits(src[i]);
  } else {
#pragma omp parallel for if (n >= cpu::kParallelMin) schedule(static)
    for (int64_t i = 0; i < n; ++i) d[i] = FloatToHalfBits(src[i]);
  }
}

bool HasHalfValue(const Node& node) {
  for (const Value* v : node.inputs())
    if (v && IsHalf(v->type.dtype)) return true;
  for (const Value* v : node.outputs())
    if (v && IsHalf(v->type.dtype)) return true;
  return false;
}

float* SharedScratch(size_t floats) {
  thread_local std::vector<float> pool;
  if (pool.size() < floats) pool.resize(floats);
  return pool.data();
}

}  // namespace dsc::half
