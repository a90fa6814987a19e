// Marks functions shared by a CPU kernel and its CUDA twin: compiled for both sides under nvcc,
// plain inline functions under the host compiler, so the CPU tests exercise the same math.
#pragma once

#if defined(__CUDACC__)
#define DSC_HD __host__ __device__ __forceinline__
#else
#define DSC_HD inline
#endif
