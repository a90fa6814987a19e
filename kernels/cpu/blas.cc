// What the BLAS runs on this CPU, for dsrun's startup line, and its parallel jobs run on OpenMP
// threads (see blas.h).
#include "kernels/cpu/blas.h"

#include <omp.h>

#include <algorithm>
#include <cctype>
#include <string_view>
#include <thread>
#include <vector>

#include "ir/status.h"

namespace dsc::cpu {
namespace {

bool OneOf(const std::string& corename, std::initializer_list<std::string_view> names) {
  std::string lower = corename;
  std::transform(lower.begin(), lower.end(), lower.begin(), [](unsigned char c) { return std::tolower(c); });
  return std::find(names.begin(), names.end(), lower) != names.end();
}

// "OpenBLAS 0.3.34.481.3 DYNAMIC_ARCH NO_AFFINITY SkylakeX MAX_THREADS=64" -> "OpenBLAS 0.3.34.481.3".
std::string LibraryName(std::string_view config) {
  size_t first = config.find(' ');
  size_t second = first == std::string_view::npos ? first : config.find(' ', first + 1);
  return std::string(config.substr(0, second));
}

// OpenBLAS's caller-managed threading: run its `numjobs` jobs at once, job i on thread i. The jobs of
// one GEMM wait for each other's packed panels, so they must all run concurrently: on a full OpenMP
// team when one can be had, else (inside a parallel region, or a team cut short) on plain threads.
void RunBlasJobs(int /*sync*/, openblas_dojob_callback dojob, int numjobs, size_t job_bytes, void* jobs,
                 int dojob_data) {
  auto run = [&](int i) { dojob(i, static_cast<char*>(jobs) + static_cast<size_t>(i) * job_bytes, dojob_data); };
  if (!omp_in_parallel()) {
    bool whole_team = false;
#pragma omp parallel num_threads(numjobs)
    {
      const bool whole = omp_get_num_threads() == numjobs;  // the same answer on every thread
      if (whole) run(omp_get_thread_num());
#pragma omp master
      whole_team = whole;
    }
    if (whole_team) return;
  }
  std::vector<std::thread> threads;
  threads.reserve(static_cast<size_t>(numjobs - 1));
  for (int i = 1; i < numjobs; ++i) threads.emplace_back(run, i);
  run(0);
  for (std::thread& t : threads) t.join();
}

// Before any other OpenBLAS call (OpenBLAS asks for that): kernels run only after static
// initialisation.
const bool kBlasOnOpenMp = [] {
  openblas_set_threads_callback_function(&RunBlasJobs);
  return true;
}();

}  // namespace

std::string BlasKernelWarning(const std::string& corename, bool cpu_has_avx512, bool cpu_has_avx2_fma) {
  // OpenBLAS's x86-64 core names whose sgemm uses AVX-512, and those that use AVX2 with FMA.
  const std::initializer_list<std::string_view> avx512 = {"skylakex", "cooperlake", "sapphirerapids"};
  const std::initializer_list<std::string_view> avx2 = {"haswell", "zen", "skylakex", "cooperlake", "sapphirerapids"};
  if (cpu_has_avx512 && !OneOf(corename, avx512))
    return StrCat("this CPU has AVX-512 but OpenBLAS chose its ", corename,
                  " kernels (GEMMs several times slower); set OPENBLAS_CORETYPE=SkylakeX to override");
  if (!cpu_has_avx512 && cpu_has_avx2_fma && !OneOf(corename, avx2))
    return StrCat("this CPU has AVX2 but OpenBLAS chose its ", corename,
                  " kernels (GEMMs several times slower); set OPENBLAS_CORETYPE=Haswell to override");
  return "";
}

std::string BlasDescription() {
  const std::string corename = openblas_get_corename();
  std::string text = StrCat(LibraryName(openblas_get_config()), ", ", corename, " kernels");
  __builtin_cpu_init();
  const std::string warning = BlasKernelWarning(corename, __builtin_cpu_supports("avx512f"),
                                                __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"));
  if (!warning.empty()) text += StrCat(" (warning: ", warning, ")");
  return text;
}

}  // namespace dsc::cpu
