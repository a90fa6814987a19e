#include "kernels/cpu/simd.h"

#include <atomic>
#include <cstdlib>
#include <string_view>

namespace dsc::cpu {
namespace {

StatusOr<Isa> IsaFromEnvironment() {
  const char* env = std::getenv("DSC_CPU_ISA");
  if (!env) return DetectedIsa();
  const std::string_view v = env;
  StatusOr<Isa> parsed = ParseIsa(v);
  if (!parsed.ok()) return InvalidArgument("DSC_CPU_ISA: ", parsed.status().message());
  const Isa isa = *parsed;
  if (static_cast<int>(isa) > static_cast<int>(DetectedIsa()))
    return InvalidArgument("DSC_CPU_ISA=", v, " but this CPU runs at most ", IsaName(DetectedIsa()));
  return isa;
}

// -1: no test override.
std::atomic<int> g_test_isa{-1};

}  // namespace

const char* IsaName(Isa isa) {
  switch (isa) {
    case Isa::kAvx512: return "avx512";
    case Isa::kAvx2: return "avx2";
    default: return "baseline";
  }
}

StatusOr<Isa> ParseIsa(std::string_view name) {
  if (name == "baseline") return Isa::kBaseline;
  if (name == "avx2") return Isa::kAvx2;
  if (name == "avx512") return Isa::kAvx512;
  return InvalidArgument("unknown CPU ISA \"", name, "\"; use baseline, avx2 or avx512");
}

Isa DetectedIsa() {
  static const Isa detected = [] {
    __builtin_cpu_init();
    // __builtin_cpu_supports checks the OS saves the wider registers (XGETBV) as well as cpuid.
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
        __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl") &&
        __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
      return Isa::kAvx512;
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return Isa::kAvx2;
    return Isa::kBaseline;
  }();
  return detected;
}

StatusOr<Isa> SelectedIsa() {
  const int forced = g_test_isa.load(std::memory_order_relaxed);
  if (forced >= 0) return static_cast<Isa>(forced);
  static const StatusOr<Isa> selected = IsaFromEnvironment();
  return selected;
}

void SetIsaForTesting(std::optional<Isa> isa) {
  g_test_isa.store(isa ? static_cast<int>(*isa) : -1, std::memory_order_relaxed);
}

}  // namespace dsc::cpu
