// What every CUDA kernel file shares: the element types of our dtypes, float loads and stores
// (half values compute in float and round once), grid-stride launches, warp and block
// reductions, and registration of one kernel template for float32, float16 and bfloat16.
//
//   template <typename T> class ReluCuda : public OpKernel { ... };
//   DSC_REGISTER_CUDA_FLOATS("", "Relu", ReluCuda);
//   ...
//   RETURN_IF_ERROR(cuda::LaunchMap(ctx, n, [=] __device__(int64_t i) { y[i] = ... }));
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cstdint>
#include <type_traits>
#include <vector>

#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/cuda_resources.h"
#include "kernels/kernel.h"

namespace dsc::cuda {

using half = __half;
using bf16 = __nv_bfloat16;

// float loads and stores of every floating element type.
__device__ __forceinline__ float ToFloat(float x) { return x; }
__device__ __forceinline__ float ToFloat(double x) { return static_cast<float>(x); }
__device__ __forceinline__ float ToFloat(half x) { return __half2float(x); }
__device__ __forceinline__ float ToFloat(bf16 x) { return __bfloat162float(x); }
template <typename T> __device__ __forceinline__ T FromFloat(float x);
template <> __device__ __forceinline__ float FromFloat<float>(float x) { return x; }
template <> __device__ __forceinline__ double FromFloat<double>(float x) { return x; }
template <> __device__ __forceinline__ half FromFloat<half>(float x) { return __float2half_rn(x); }
template <> __device__ __forceinline__ bf16 FromFloat<bf16>(float x) { return __float2bfloat16_rn(x); }

// The element type of a dtype, for kernels that switch on a TensorView's dtype at run time.
template <DType D> struct ElemOf;
template <> struct ElemOf<DType::kFloat32> { using type = float; };
template <> struct ElemOf<DType::kFloat16> { using type = half; };
template <> struct ElemOf<DType::kBFloat16> { using type = bf16; };
template <> struct ElemOf<DType::kFloat64> { using type = double; };
template <> struct ElemOf<DType::kInt64> { using type = int64_t; };
template <> struct ElemOf<DType::kInt32> { using type = int32_t; };
template <> struct ElemOf<DType::kBool> { using type = uint8_t; };
template <> struct ElemOf<DType::kUInt8> { using type = uint8_t; };
template <> struct ElemOf<DType::kInt8> { using type = int8_t; };

template <typename T> struct Tag { using type = T; };

// Calls fn(Tag<T>{}) for the element type of a float32/float16/bfloat16 dtype; false otherwise.
template <typename Fn>
bool DispatchFloat(DType t, Fn&& fn) {
  switch (t) {
    case DType::kFloat32: fn(Tag<float>{}); return true;
    case DType::kFloat16: fn(Tag<half>{}); return true;
    case DType::kBFloat16: fn(Tag<bf16>{}); return true;
    default: return false;
  }
}

// The optional overflow flag an optimizer update reads at input `index` (null: none, or empty).
inline const uint8_t* SkipPtr(const KernelContext& ctx, size_t index) {
  return ctx.has_input(index) && ctx.input(index).numel() > 0 ? ctx.input(index).data<uint8_t>() : nullptr;
}

// The dtype of a float element type.
template <typename T> constexpr DType DTypeOf() {
  if constexpr (std::is_same_v<T, float>) return DType::kFloat32;
  else if constexpr (std::is_same_v<T, half>) return DType::kFloat16;
  else if constexpr (std::is_same_v<T, bf16>) return DType::kBFloat16;
  else if constexpr (std::is_same_v<T, double>) return DType::kFloat64;
  else if constexpr (std::is_same_v<T, int64_t>) return DType::kInt64;
  else if constexpr (std::is_same_v<T, int32_t>) return DType::kInt32;
  else return DType::kUndefined;
}

// The kernel's resources; an error (not a crash) when a CUDA kernel runs without a CUDA device.
inline StatusOr<Resources*> Res(const KernelContext& ctx) {
  if (!ctx.cuda) return Internal("a CUDA kernel ran without a CUDA device in its context");
  return ctx.cuda;
}

constexpr int kThreads = 256;

// Multiprocessors, with a stand-in when the device did not say.
inline int64_t SmCount(const Resources& r) { return r.sm_count > 0 ? r.sm_count : 80; }

// Enough blocks to fill the device a few times over; the grid-stride loops cover the rest.
inline unsigned GridFor(const Resources& r, int64_t n, int threads = kThreads) {
  const int64_t want = (n + threads - 1) / threads;
  const int64_t cap = SmCount(r) * 32;
  return static_cast<unsigned>(want < 1 ? 1 : want < cap ? want : cap);
}

template <typename F>
__global__ void MapKernel(int64_t n, F f) {
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<int64_t>(blockDim.x) * gridDim.x)
    f(i);
}

// f(i) for i in [0, n) on the compute stream; f is a __device__ lambda capturing by value.
template <typename F>
Status LaunchMap(const KernelContext& ctx, int64_t n, F f) {
  if (n <= 0) return Status::OK();
  ASSIGN_OR_RETURN(Resources * r, Res(ctx));
  MapKernel<<<GridFor(*r, n), kThreads, 0, r->compute>>>(n, f);
  DSC_CUDA_CHECK_LAUNCH();
  return Status::OK();
}

// Reductions across a warp and a block (blockDim.x a multiple of 32, at most 1024). The block
// versions return the result on every thread; `shared` holds 32 floats.
__device__ __forceinline__ float WarpSum(float v) {
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}
__device__ __forceinline__ float WarpMax(float v) {
  for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
  return v;
}
__device__ __forceinline__ double WarpSumD(double v) {
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}
__device__ __forceinline__ float BlockSum(float v, float* shared) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = (blockDim.x + 31) >> 5;
  v = WarpSum(v);
  __syncthreads();  // `shared` may still be read by a previous call
  if (lane == 0) shared[warp] = v;
  __syncthreads();
  v = lane < warps ? shared[lane] : 0.0f;
  return WarpSum(v);
}
__device__ __forceinline__ float BlockMax(float v, float* shared) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = (blockDim.x + 31) >> 5;
  v = WarpMax(v);
  __syncthreads();
  if (lane == 0) shared[warp] = v;
  __syncthreads();
  v = lane < warps ? shared[lane] : -INFINITY;
  return WarpMax(v);
}

// A small host table copied to the device at first use and freed with the kernel.
template <typename T>
class DeviceTable {
 public:
  DeviceTable() = default;
  DeviceTable(const DeviceTable&) = delete;
  DeviceTable& operator=(const DeviceTable&) = delete;
  ~DeviceTable() {
    if (dev_) (void)cudaFree(dev_);  // a destructor cannot report; the context may already be gone
  }
  std::vector<T>& host() { return host_; }
  StatusOr<const T*> Get(cudaStream_t stream) {
    if (!dev_ && !host_.empty()) {
      DSC_CUDA_CHECK(cudaMalloc(&dev_, host_.size() * sizeof(T)));
      DSC_CUDA_CHECK(cudaMemcpyAsync(dev_, host_.data(), host_.size() * sizeof(T), cudaMemcpyHostToDevice, stream));
    }
    return static_cast<const T*>(dev_);
  }

 private:
  std::vector<T> host_;
  void* dev_ = nullptr;
};

}  // namespace dsc::cuda

// One kernel template `K<T>` registered for float32, float16 and bfloat16 on the CUDA device.
#define DSC_REGISTER_CUDA_FLOATS(domain, op, K)                                                       \
  DSC_REGISTER_KERNEL(domain, op, kCuda, kFloat32, ::dsc::MakeFactory<K<float>>());                  \
  DSC_REGISTER_KERNEL(domain, op, kCuda, kFloat16, ::dsc::MakeFactory<K<::dsc::cuda::half>>());      \
  DSC_REGISTER_KERNEL(domain, op, kCuda, kBFloat16, ::dsc::MakeFactory<K<::dsc::cuda::bf16>>())
