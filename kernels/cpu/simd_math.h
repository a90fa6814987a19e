// Vectorised float exp, log, erf, tanh and sigmoid for the CPU kernels, and the row reductions
// (max, sum in double) of softmax and the losses, all under the ISA dispatch of simd.h.
//
//   VecExp(isa_, x, y, n);          // y[i] = exp(x[i]); y may be x
//   RunOnIsa(isa_, [&] { mx = RowMaxOf(x, n); sum = SumToDouble(e, n); });
//
// exp/log/erf/tanh are glibc's libmvec (the _ZGV{b,d,e} variants for baseline/AVX2/AVX-512):
// within a few ulp of the correctly rounded result over the whole float range, with libm's special
// values (inf, nan, denormals). Each element's result depends only on its value and the ISA, never
// on its position or the length: the tail goes through the same vector function, padded.
#pragma once

#include <cstdint>

#include "kernels/cpu/simd.h"

namespace dsc::cpu {

void VecExp(Isa isa, const float* x, float* y, int64_t n);
void VecLog(Isa isa, const float* x, float* y, int64_t n);
void VecErf(Isa isa, const float* x, float* y, int64_t n);
void VecTanh(Isa isa, const float* x, float* y, int64_t n);
// 1 / (1 + e^-x), written as ew::StableSigmoid so that exp never overflows.
void VecSigmoid(Isa isa, const float* x, float* y, int64_t n);

// The reductions below are inline so that RunOnIsa compiles them for the caller's ISA. Their
// order of operations is fixed by n alone (16 interleaved partial results, then a fixed tree):
// the same on every ISA and at any address.
inline constexpr int kLanes = 16;

// max over x[0..n) as a running std::max from -inf: a NaN element never becomes the max.
inline float RowMaxOf(const float* x, int64_t n) {
  float acc[kLanes];
  for (int j = 0; j < kLanes; ++j) acc[j] = -__builtin_inff();
  int64_t i = 0;
  for (; i + kLanes <= n; i += kLanes)
    for (int j = 0; j < kLanes; ++j) acc[j] = acc[j] < x[i + j] ? x[i + j] : acc[j];
  for (int j = 0; i + j < n; ++j) acc[j] = acc[j] < x[i + j] ? x[i + j] : acc[j];
  for (int w = kLanes / 2; w > 0; w /= 2)
    for (int j = 0; j < w; ++j) acc[j] = acc[j] < acc[j + w] ? acc[j + w] : acc[j];
  return acc[0];
}

// sum over i < n of f(i), f giving a double.
template <typename F> double LaneSum(int64_t n, F f) {
  double acc[kLanes] = {};
  int64_t i = 0;
  for (; i + kLanes <= n; i += kLanes)
    for (int j = 0; j < kLanes; ++j) acc[j] += f(i + j);
  for (int j = 0; i + j < n; ++j) acc[j] += f(i + j);
  for (int w = kLanes / 2; w > 0; w /= 2)
    for (int j = 0; j < w; ++j) acc[j] += acc[j + w];
  return acc[0];
}

inline double SumToDouble(const float* x, int64_t n) {
  return LaneSum(n, [x](int64_t i) { return static_cast<double>(x[i]); });
}

}  // namespace dsc::cpu
