// Check macros for every CUDA runtime, cuBLAS(Lt) and NCCL call: a failure returns a Status that
// names the call, the file and the line, so a GPU error reads like every other error of ours.
//
//   DSC_CUDA_CHECK(cudaMemcpyAsync(dst, src, n, cudaMemcpyDeviceToDevice, stream));
//   DSC_CUBLAS_CHECK(cublasLtMatmul(...));
//   DSC_CUDA_CHECK_LAUNCH();  // after a <<<...>>> launch
#pragma once

#include <cublasLt.h>
#include <cuda_runtime_api.h>

#include "ir/status.h"

namespace dsc::cuda {

Status CudaError(cudaError_t e, const char* call, const char* file, int line);
Status CublasError(cublasStatus_t s, const char* call, const char* file, int line);
// NCCL's result code as an int, so this header needs no nccl.h.
Status NcclError(int result, const char* message, const char* call, const char* file, int line);

}  // namespace dsc::cuda

#define DSC_CUDA_CHECK(call)                                                                        \
  do {                                                                                              \
    const cudaError_t dsc_cuda_e_ = (call);                                                         \
    if (dsc_cuda_e_ != cudaSuccess) return ::dsc::cuda::CudaError(dsc_cuda_e_, #call, __FILE__, __LINE__); \
  } while (0)

#define DSC_CUDA_CHECK_LAUNCH() DSC_CUDA_CHECK(cudaGetLastError())

#define DSC_CUBLAS_CHECK(call)                                                                           \
  do {                                                                                                   \
    const cublasStatus_t dsc_cublas_s_ = (call);                                                         \
    if (dsc_cublas_s_ != CUBLAS_STATUS_SUCCESS)                                                          \
      return ::dsc::cuda::CublasError(dsc_cublas_s_, #call, __FILE__, __LINE__);                         \
  } while (0)

// Needs nccl.h where it is used.
#define DSC_NCCL_CHECK(call)                                                                                  \
  do {                                                                                                        \
    const ncclResult_t dsc_nccl_r_ = (call);                                                                  \
    if (dsc_nccl_r_ != ncclSuccess)                                                                           \
      return ::dsc::cuda::NcclError(static_cast<int>(dsc_nccl_r_), ncclGetErrorString(dsc_nccl_r_), #call,   \
                                    __FILE__, __LINE__);                                                      \
  } while (0)
