// The BLAS every CPU kernel calls (include this instead of <cblas.h>), and what it runs on this CPU.
//
// The library is OpenBLAS from PyPI's scipy-openblas32 wheel (scripts/install-openblas.sh), a
// current DYNAMIC_ARCH build: Debian 12's 0.3.21 silently runs its oldest kernels on CPUs newer
// than it. The wheel prefixes every symbol with `scipy_` (scipy_cblas_sgemm, ...) so that it can
// share a process with another OpenBLAS; the macros below keep the usual names in our code (one line
// per function we call: a call to another one fails to compile until it is added).
//
// OpenBLAS's parallel GEMMs run on the kernels' OpenMP threads (blas.cc hands it a threads callback
// at start-up), not on a pthread pool of its own: with both pools, OpenMP workers still spinning
// after a loop and OpenBLAS's threads fought for the cores, and on a 2-core machine the bundled gpt
// took about 370 ms a step instead of 3.
//
//   cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, m, n, k, 1.0f, a, k, b, k, 0.0f, c, n);
//   std::cerr << "dsrun: BLAS " << cpu::BlasDescription() << "\n";
#pragma once

#include <cblas.h>  // the wheel's: declares the scipy_-prefixed functions and the Cblas* enums

#include <string>

#define DSC_BLAS_PREFIXED(name) scipy_##name
#define cblas_sgemm DSC_BLAS_PREFIXED(cblas_sgemm)
#define openblas_set_num_threads DSC_BLAS_PREFIXED(openblas_set_num_threads)
#define openblas_get_num_threads DSC_BLAS_PREFIXED(openblas_get_num_threads)
#define openblas_get_config DSC_BLAS_PREFIXED(openblas_get_config)
#define openblas_get_corename DSC_BLAS_PREFIXED(openblas_get_corename)
#define openblas_set_threads_callback_function DSC_BLAS_PREFIXED(openblas_set_threads_callback_function)

namespace dsc::cpu {

// The library and the kernel set it chose for this CPU, e.g. "OpenBLAS 0.3.34.481.3, SkylakeX
// kernels", followed by BlasKernelWarning's text when that is not empty.
std::string BlasDescription();

// Empty when OpenBLAS's kernels use the widest vector units this CPU has; otherwise a sentence
// saying what it fell back to and how to override it (OPENBLAS_CORETYPE), because a fallback costs
// up to 7x in every GEMM and is otherwise silent. `corename` is openblas_get_corename()'s answer.
std::string BlasKernelWarning(const std::string& corename, bool cpu_has_avx512, bool cpu_has_avx2_fma);

}  // namespace dsc::cpu
