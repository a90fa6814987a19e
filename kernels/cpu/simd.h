// Run-time ISA dispatch for CPU kernel loops: one loop body, compiled for x86-64 baseline, AVX2+FMA
// and AVX-512, the copy run chosen once per process from cpuid (or DSC_CPU_ISA).
//
//   ASSIGN_OR_RETURN(isa_, SelectedIsa());                 // in Init: DSC_CPU_ISA errors land here
//   #pragma omp parallel for
//   for (int64_t c = 0; c < n; c += kSimdChunk)             // OpenMP outside, dispatch inside
//     RunOnIsa(isa_, [&] { for (...) y[i] = a[i] + b[i]; });
//
// The build has no -m flags, so the binary runs on any x86-64 CPU; only the chosen copy uses
// the wider instructions. Arithmetic (+, -, *, /, simd_math.h's fixed-order sums) gives the same
// bits on every ISA: dsc_kernels and what links it compile with -ffp-contract=off, so no copy
// fuses a*b+c into an FMA. Only libmvec's functions (simd_math.h) differ between ISAs.
#pragma once

#include <optional>
#include <string_view>

#include "ir/status.h"

namespace dsc::cpu {

enum class Isa : int { kBaseline = 0, kAvx2 = 1, kAvx512 = 2 };

// "baseline", "avx2", "avx512": the values of DSC_CPU_ISA.
const char* IsaName(Isa isa);
// The inverse of IsaName; anything else is an error naming the three.
StatusOr<Isa> ParseIsa(std::string_view name);
// The best ISA this CPU (and its OS, for the AVX register state) runs.
Isa DetectedIsa();
// The ISA the kernels use: DSC_CPU_ISA when set, else DetectedIsa(). An unknown value, or one the
// CPU cannot run, is an error (the same one at every call, so every kernel's Init reports it).
StatusOr<Isa> SelectedIsa();
// Tests force an ISA for kernels initialised after this call; nullopt goes back to SelectedIsa's.
void SetIsaForTesting(std::optional<Isa> isa);

// Elements per dispatched chunk of a parallel loop: large enough that the dispatch is free.
inline constexpr int64_t kSimdChunk = 1 << 12;

#define DSC_TARGET_AVX2 __attribute__((target("avx2,fma")))
#define DSC_TARGET_AVX512 __attribute__((target("avx512f,avx512bw,avx512dq,avx512vl,avx2,fma")))

namespace simd_detail {
// flatten inlines the body and everything it calls into the ISA's copy, so the loops in it are
// vectorised for that ISA. An OpenMP region inside body would be outlined as baseline code.
template <typename Body> __attribute__((flatten)) void RunBaseline(Body& body) { body(); }
template <typename Body> DSC_TARGET_AVX2 __attribute__((flatten)) void RunAvx2(Body& body) { body(); }
template <typename Body> DSC_TARGET_AVX512 __attribute__((flatten)) void RunAvx512(Body& body) { body(); }
}  // namespace simd_detail

// Runs body() compiled for isa.
template <typename Body> void RunOnIsa(Isa isa, Body&& body) {
  switch (isa) {
    case Isa::kAvx512: simd_detail::RunAvx512(body); break;
    case Isa::kAvx2: simd_detail::RunAvx2(body); break;
    default: simd_detail::RunBaseline(body); break;
  }
}

}  // namespace dsc::cpu
