// float16/bfloat16 <-> float32 conversions on raw 16-bit patterns, shared by the CPU kernels
// (kernels/cpu/half_convert.h) and the CUDA kernels: round to nearest even; NaN stays a quiet NaN
// of the same sign (tests/kernels/half_kernels_test.cc checks every 16-bit pattern).
//
// The float16 routines are F. Giesen's ("float_to_half_fast3_rtne", "half_to_float_fast5"): the
// subnormal cases go through one float addition, which rounds to nearest even like the rest;
// they assume the default rounding mode (they are right with flush-to-zero too: no subnormal
// float32 appears in them).
#pragma once

#include <cstdint>
#include <cstring>

#include "kernels/common/hd.h"

namespace dsc::half {

DSC_HD uint32_t Bits(float f) {
#if defined(__CUDA_ARCH__)
  return __float_as_uint(f);
#else
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return u;
#endif
}
DSC_HD float FromBits(uint32_t u) {
#if defined(__CUDA_ARCH__)
  return __uint_as_float(u);
#else
  float f;
  std::memcpy(&f, &u, 4);
  return f;
#endif
}

// All ones when c, else zero; and a select built from it. Written as masks rather than ?: so
// GCC if-converts the element loops and vectorizes them (with ?: it kept branches).
DSC_HD uint32_t Mask(bool c) { return 0u - static_cast<uint32_t>(c); }
DSC_HD uint32_t Select(bool c, uint32_t a, uint32_t b) { return (a & Mask(c)) | (b & ~Mask(c)); }

DSC_HD float HalfBitsToFloat(uint16_t h) {
  constexpr uint32_t kShiftedExp = 0x7c00u << 13;  // the float16 exponent field, moved to float32's
  uint32_t o = (static_cast<uint32_t>(h) & 0x7fffu) << 13;
  const uint32_t exp = o & kShiftedExp;
  o += (127u - 15u) << 23;                  // rebias the exponent
  o += Mask(exp == kShiftedExp) & (128u - 16u) << 23;  // inf/NaN: exponent 255
  // Zero and subnormals: 2^-14 * (1 + m/1024) - 2^-14 = m * 2^-24, exact in float.
  const uint32_t sub = Bits(FromBits(o + (1u << 23)) - FromBits(113u << 23));
  o = Select(exp == 0, sub, o);
  return FromBits(o | (static_cast<uint32_t>(h) & 0x8000u) << 16);
}

DSC_HD uint16_t FloatToHalfBits(float value) {
  constexpr uint32_t kF32Inf = 255u << 23;
  constexpr uint32_t kF16Overflow = (127u + 16u) << 23;  // 65536: rounds to inf from here up
  constexpr uint32_t kF16MinNormal = 113u << 23;         // 2^-14
  const float denorm_magic = FromBits(((127u - 15u) + (23u - 10u) + 1u) << 23);  // 0.5f
  uint32_t f = Bits(value);
  const uint32_t sign = f & 0x80000000u;
  f ^= sign;
  const uint32_t big = 0x7c00u | (Mask(f > kF32Inf) & 0x200u);  // NaN -> quiet NaN, else inf
  // Below 2^-14: adding 0.5 aligns the value to the float16 subnormal step 2^-24 and rounds it.
  const uint32_t sub = Bits(FromBits(f) + denorm_magic) - Bits(denorm_magic);
  // Normal: rebias, add half an ulp minus one plus the kept mantissa's low bit (ties to even),
  // truncate; a carry into the exponent is the correct rounding (up to inf at 65520).
  const uint32_t odd = (f >> 13) & 1u;
  const uint32_t normal = (f + ((15u - 127u) << 23) + 0xfffu + odd) >> 13;
  const uint32_t o = Select(f >= kF16Overflow, big, Select(f < kF16MinNormal, sub, normal));
  return static_cast<uint16_t>(o | (sign >> 16));
}

DSC_HD float BFloat16BitsToFloat(uint16_t b) { return FromBits(static_cast<uint32_t>(b) << 16); }

DSC_HD uint16_t FloatToBFloat16Bits(float value) {
  const uint32_t x = Bits(value);
  const uint32_t rounded = (x + 0x7fffu + ((x >> 16) & 1u)) >> 16;
  const uint32_t nan = (x >> 16) | 0x40u;  // quiet, sign and top payload kept
  return static_cast<uint16_t>(Select((x & 0x7fffffffu) > 0x7f800000u, nan, rounded));
}

}  // namespace dsc::half
