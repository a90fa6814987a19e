// What the CUDA kernels of the 1-bit family (onebit.cu, onebit_lamb.cu, zoadam.cu) share: the
// compression scale ||x|| / sqrt(n) as a deterministic two-launch reduction, and a word through
// which a kernel reports what its CPU twin returns as an error.
//
//   const unsigned blocks = SquareBlocks(*r, n);   // partial: `blocks` doubles of scratch
//   RETURN_IF_ERROR(LaunchCompressionScale(*r, x, n, blocks, partial, /*gate=*/nullptr, scale));
//
// Sums of squares are in double like the CPU's, but in another order (per thread, then per warp
// and block, then over the blocks): the double sums can differ in their last bits, which the
// float result they are rounded to almost never shows.
#pragma once

#include <cstdint>

#include "kernels/cuda/cuda_util.cuh"

namespace dsc::cuda::onebit_cuda {

constexpr int kSquareThreads = 256;
constexpr unsigned kMaxSquareBlocks = 1024;

__device__ __forceinline__ int64_t ThreadIndex() { return blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; }
__device__ __forceinline__ int64_t ThreadCount() { return static_cast<int64_t>(blockDim.x) * gridDim.x; }

// The skip input (null: none) says "change nothing this step".
__device__ __forceinline__ bool SkipSet(const uint8_t* skip) { return skip && *skip != 0; }

// Blocks of the partial sums over n elements (at least one).
inline unsigned SquareBlocks(const Resources& r, int64_t n) {
  const unsigned g = GridFor(r, n, kSquareThreads);
  return g < kMaxSquareBlocks ? g : kMaxSquareBlocks;
}

// *out = ||x|| / sqrt(n) of x[0, n) (onebit::OnebitCompressionScale of the double sum of squares)
// on the compute stream; `partial` holds `blocks` = SquareBlocks(n) doubles of the caller's
// scratch. With `gate` (a device int), only when *gate != 0, else *out = 0. In onebit.cu.
Status LaunchCompressionScale(Resources& r, const float* x, int64_t n, unsigned blocks, double* partial,
                              const int* gate, float* out);

// A word in mapped host memory that a kernel's device code sets (to the step it happened at) where
// the CPU twin returns an error; the host reads it at the kernel's next Compute, after the trainer
// has synchronised with the device, so the error surfaces there: one call late, and not at all
// when it happens at the run's last step (the device cannot return a Status without making every
// step wait for the host).
class DeviceReport {
 public:
  DeviceReport() = default;
  DeviceReport(const DeviceReport&) = delete;
  DeviceReport& operator=(const DeviceReport&) = delete;
  ~DeviceReport() {
    if (host_) (void)cudaFreeHost(host_);  // a destructor cannot report
  }
  // Where device code writes; allocated (zeroed) at first use.
  StatusOr<int64_t*> Device() {
    if (!host_) {
      void* h = nullptr;
      DSC_CUDA_CHECK(cudaHostAlloc(&h, sizeof(int64_t), cudaHostAllocMapped));
      host_ = static_cast<int64_t*>(h);
      *host_ = 0;
      void* d = nullptr;
      DSC_CUDA_CHECK(cudaHostGetDevicePointer(&d, h, 0));
      dev_ = static_cast<int64_t*>(d);
    }
    return dev_;
  }
  // What the device wrote so far (0: nothing).
  int64_t Seen() const { return host_ ? *static_cast<volatile int64_t*>(host_) : 0; }

 private:
  int64_t* host_ = nullptr;
  int64_t* dev_ = nullptr;
};

}  // namespace dsc::cuda::onebit_cuda
