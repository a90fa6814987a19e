#include "kernels/cpu/simd_math.h"

#include <immintrin.h>

#include <cstring>

// y = F(x) over n floats, W at a time; the last partial vector is padded with zeros in a buffer.
// A macro, expanded inside each target region, so that the loads, stores and calls are that ISA's.
#define DSC_MAP_VECTOR(W, F, Load, Store, x, y, n)               \
  do {                                                           \
    int64_t i = 0;                                               \
    for (; i + (W) <= (n); i += (W)) Store((y) + i, F(Load((x) + i))); \
    if (i < (n)) {                                               \
      float buf[W] = {};                                         \
      std::memcpy(buf, (x) + i, sizeof(float) * ((n) - i));     \
      Store(buf, F(Load(buf)));                                  \
      std::memcpy((y) + i, buf, sizeof(float) * ((n) - i));      \
    }                                                            \
  } while (0)

// libmvec's vector variants (x86-64 vector function ABI names: b = SSE, d = AVX2, e = AVX-512).
// Each set is declared and called under its target, where its vector type is passed in registers.
extern "C" {
__m128 _ZGVbN4v_expf(__m128);
__m128 _ZGVbN4v_logf(__m128);
__m128 _ZGVbN4v_erff(__m128);
__m128 _ZGVbN4v_tanhf(__m128);
}

// Declarations and callers carry the ISA as function attributes (GCC and clang both honour them;
// clang ignores `#pragma GCC target`).
extern "C" {
DSC_TARGET_AVX2 __m256 _ZGVdN8v_expf(__m256);
DSC_TARGET_AVX2 __m256 _ZGVdN8v_logf(__m256);
DSC_TARGET_AVX2 __m256 _ZGVdN8v_erff(__m256);
DSC_TARGET_AVX2 __m256 _ZGVdN8v_tanhf(__m256);
DSC_TARGET_AVX512 __m512 _ZGVeN16v_expf(__m512);
DSC_TARGET_AVX512 __m512 _ZGVeN16v_logf(__m512);
DSC_TARGET_AVX512 __m512 _ZGVeN16v_erff(__m512);
DSC_TARGET_AVX512 __m512 _ZGVeN16v_tanhf(__m512);
}
namespace dsc::cpu {
namespace {
template <__m256 (*F)(__m256)> DSC_TARGET_AVX2 void Map8(const float* x, float* y, int64_t n) {
  DSC_MAP_VECTOR(8, F, _mm256_loadu_ps, _mm256_storeu_ps, x, y, n);
}
template <__m512 (*F)(__m512)> DSC_TARGET_AVX512 void Map16(const float* x, float* y, int64_t n) {
  DSC_MAP_VECTOR(16, F, _mm512_loadu_ps, _mm512_storeu_ps, x, y, n);
}
}  // namespace
}  // namespace dsc::cpu

namespace dsc::cpu {
namespace {

template <__m128 (*F)(__m128)> void Map4(const float* x, float* y, int64_t n) {
  DSC_MAP_VECTOR(4, F, _mm_loadu_ps, _mm_storeu_ps, x, y, n);
}

}  // namespace

#define DSC_VEC_FUNCTION(Name, f)                                  \
  void Name(Isa isa, const float* x, float* y, int64_t n) {        \
    switch (isa) {                                                 \
      case Isa::kAvx512: Map16<_ZGVeN16v_##f>(x, y, n); break;     \
      case Isa::kAvx2: Map8<_ZGVdN8v_##f>(x, y, n); break;         \
      default: Map4<_ZGVbN4v_##f>(x, y, n); break;                 \
    }                                                              \
  }

DSC_VEC_FUNCTION(VecExp, expf)
DSC_VEC_FUNCTION(VecLog, logf)
DSC_VEC_FUNCTION(VecErf, erff)
DSC_VEC_FUNCTION(VecTanh, tanhf)
#undef DSC_VEC_FUNCTION
#undef DSC_MAP_VECTOR

void VecSigmoid(Isa isa, const float* x, float* y, int64_t n) {
  constexpr int64_t kBlock = 256;
  float e[kBlock];
  for (int64_t b = 0; b < n; b += kBlock) {
    const int64_t m = n - b < kBlock ? n - b : kBlock;
    const float* xb = x + b;
    float* yb = y + b;
    // e = exp(-|x|) <= 1; x >= 0: 1 / (1 + e), else e / (1 + e). NaN: -|x| and e are NaN.
    RunOnIsa(isa, [&] {
      for (int64_t i = 0; i < m; ++i) e[i] = xb[i] >= 0 ? -xb[i] : xb[i];
    });
    VecExp(isa, e, e, m);
    RunOnIsa(isa, [&] {
      for (int64_t i = 0; i < m; ++i) yb[i] = (xb[i] >= 0 ? 1.0f : e[i]) / (1.0f + e[i]);
    });
  }
}

}  // namespace dsc::cpu
