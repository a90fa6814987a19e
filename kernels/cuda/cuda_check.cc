// The Status a failed CUDA, cuBLAS or NCCL call turns into, and the kernels' scratch buffer.
#include "kernels/cuda/cuda_check.h"

#include "kernels/cuda/cuda_resources.h"

namespace dsc::cuda {

Status CudaError(cudaError_t e, const char* call, const char* file, int line) {
  const StatusCode code = e == cudaErrorMemoryAllocation ? StatusCode::kOutOfRange : StatusCode::kInternal;
  return Status(code, StrCat("CUDA error ", cudaGetErrorName(e), " (", cudaGetErrorString(e), ") in ", call, " at ",
                             file, ":", line));
}

Status CublasError(cublasStatus_t s, const char* call, const char* file, int line) {
  return Internal("cuBLAS error ", cublasLtGetStatusName(s), " (", cublasLtGetStatusString(s), ") in ", call, " at ",
                  file, ":", line);
}

Status NcclError(int result, const char* message, const char* call, const char* file, int line) {
  return Internal("NCCL error ", result, " (", message, ") in ", call, " at ", file, ":", line);
}

namespace {

// Grows `buf` (holding `have` bytes) to at least `bytes`, in whole MiB.
StatusOr<void*> Grow(void*& buf, size_t& have, size_t bytes) {
  if (bytes <= have) return buf;
  if (buf) DSC_CUDA_CHECK(cudaFree(buf));
  buf = nullptr;
  have = 0;
  const size_t rounded = (bytes + (1u << 20) - 1) & ~static_cast<size_t>((1u << 20) - 1);
  DSC_CUDA_CHECK(cudaMalloc(&buf, rounded));
  have = rounded;
  return buf;
}

}  // namespace

StatusOr<void*> Resources::Scratch(size_t bytes) { return Grow(scratch, scratch_bytes, bytes); }

StatusOr<void*> Resources::GemmPadScratch(size_t bytes) { return Grow(gemm_pad, gemm_pad_bytes, bytes); }

}  // namespace dsc::cuda
