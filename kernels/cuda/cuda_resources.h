// What a CUDA kernel runs with: the device's streams, the cuBLASLt handle and workspace, a scratch
// buffer for temporaries, and the device's properties. The CUDA device (runtime/cuda_device.cc)
// owns one and hands it to every kernel through KernelContext::cuda.
#pragma once

#include <cstddef>

#include <cublasLt.h>
#include <cuda_runtime_api.h>

#include "ir/status.h"

namespace dsc::cuda {

struct Resources {
  int device = 0;           // the CUDA ordinal this rank uses
  cudaStream_t compute{};   // every kernel and copy of the programs runs here, in node order
  cudaStream_t comm{};      // collectives; ordered against `compute` by events (NCCL communicator)
  cublasLtHandle_t lt{};
  void* lt_workspace = nullptr;
  size_t lt_workspace_bytes = 0;
  // TF32 tensor-core GEMMs for float32 (off: float32 GEMMs round like the CPU's within 1e-5);
  // DSC_ALLOW_TF32=1 turns it on.
  bool allow_tf32 = false;
  int sm_count = 0;
  int cc_major = 0, cc_minor = 0;
  size_t max_shared_per_block = 48 * 1024;
  // What one block may opt into with cudaFuncSetAttribute(MaxDynamicSharedMemorySize).
  size_t max_shared_optin = 48 * 1024;

  // One scratch buffer that kernels borrow for the duration of their launches (they run one at a
  // time on `compute`). Growing it frees the old one, which cudaFree orders after pending work.
  StatusOr<void*> Scratch(size_t bytes);
  void* scratch = nullptr;
  size_t scratch_bytes = 0;
  // The GEMM wrapper's own buffer for operands it copies to 16-byte leading dimensions
  // (kernels/cuda/gemm.cu); apart from `scratch`, which a GEMM's caller may be holding operands in.
  StatusOr<void*> GemmPadScratch(size_t bytes);
  void* gemm_pad = nullptr;
  size_t gemm_pad_bytes = 0;
};

}  // namespace dsc::cuda
