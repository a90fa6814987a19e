// What the CUDA reduction-family kernels (reduce, softmax, loss, norm, rms_norm, pool, cumsum)
// share: deterministic block reductions of any accumulator, "row groups" (a block or one thread
// walks a row, so one row body serves both), float loads/stores of a tensor whose float dtype is
// known only at run time (mixed-precision nodes), and small per-node tables kept on the device.
#pragma once

#include <cstdint>
#include <vector>

#include "kernels/common/softmax_math.h"
#include "kernels/cuda/cuda_util.cuh"

namespace dsc::cuda {

// Combines v across the block with `op`, every thread getting the result; identity pads the
// lanes past the last warp. The order is fixed by blockDim (deterministic); op must be
// commutative on the values it sees (sums, max without NaN). `shared` holds 32 Accs.
template <typename Acc, typename Op>
__device__ __forceinline__ Acc BlockReduceAll(Acc v, Op op, Acc identity, Acc* shared) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = (blockDim.x + 31) >> 5;
  for (int o = 16; o > 0; o >>= 1) v = op(v, __shfl_xor_sync(0xffffffffu, v, o));
  if (warps == 1) return v;
  __syncthreads();  // `shared` may still be read by a previous call
  if (lane == 0) shared[warp] = v;
  __syncthreads();
  v = lane < warps ? shared[lane] : identity;
  for (int o = 16; o > 0; o >>= 1) v = op(v, __shfl_xor_sync(0xffffffffu, v, o));
  return v;
}

struct AddOp {
  template <typename A> __device__ __forceinline__ A operator()(A a, A b) const { return a + b; }
};
struct RowMaxOp {
  __device__ __forceinline__ float operator()(float a, float b) const { return softmax::RowMax(a, b); }
};

// A row walked by the whole block: thread `lane` takes elements lane, lane + size, ...
struct BlockRow {
  double* shd;  // 32 doubles of shared memory
  float* shf;   // 32 floats
  __device__ __forceinline__ int lane() const { return threadIdx.x; }
  __device__ __forceinline__ int size() const { return blockDim.x; }
  __device__ __forceinline__ double Sum(double v) const { return BlockReduceAll(v, AddOp{}, 0.0, shd); }
  __device__ __forceinline__ float Max(float v) const { return BlockReduceAll(v, RowMaxOp{}, -INFINITY, shf); }
};
// A row walked by one thread, in the CPU kernel's order.
struct ThreadRow {
  __device__ __forceinline__ int lane() const { return 0; }
  __device__ __forceinline__ int size() const { return 1; }
  __device__ __forceinline__ double Sum(double v) const { return v; }
  __device__ __forceinline__ float Max(float v) const { return v; }
};

// Threads per block for one row of n elements: a warp for short rows, more for long ones.
inline int RowThreads(int64_t n) { return n <= 128 ? 32 : n <= 2048 ? 128 : 256; }
// Blocks for `rows` row-blocks (the kernels loop over rows with a stride of gridDim.x).
inline unsigned RowGrid(const Resources& r, int64_t rows) {
  const int64_t cap = SmCount(r) * 64;
  return static_cast<unsigned>(rows < 1 ? 1 : rows < cap ? rows : cap);
}

// A float tensor of float32, float16, bfloat16 or float64 read (or written) as float: the values
// of a node beside its kernel's own dtype (Scale, B, weights, statistics) may differ from it.
struct AnyIn {
  const void* p = nullptr;
  DType d = DType::kFloat32;
  __device__ __forceinline__ float operator[](int64_t i) const {
    switch (d) {
      case DType::kFloat16: return __half2float(static_cast<const half*>(p)[i]);
      case DType::kBFloat16: return __bfloat162float(static_cast<const bf16*>(p)[i]);
      case DType::kFloat64: return static_cast<float>(static_cast<const double*>(p)[i]);
      default: return static_cast<const float*>(p)[i];
    }
  }
};
struct AnyOut {
  void* p = nullptr;
  DType d = DType::kFloat32;
  __device__ __forceinline__ void Set(int64_t i, float v) const {
    switch (d) {
      case DType::kFloat16: static_cast<half*>(p)[i] = __float2half_rn(v); break;
      case DType::kBFloat16: static_cast<bf16*>(p)[i] = __float2bfloat16_rn(v); break;
      case DType::kFloat64: static_cast<double*>(p)[i] = v; break;
      default: static_cast<float*>(p)[i] = v;
    }
  }
};
inline bool IsAnyFloat(DType d) {
  return d == DType::kFloat32 || d == DType::kFloat16 || d == DType::kBFloat16 || d == DType::kFloat64;
}
// Input i as AnyIn (p null when the optional input is absent); an error for a non-float dtype.
inline StatusOr<AnyIn> InAt(const KernelContext& ctx, size_t i) {
  if (!ctx.has_input(i)) return AnyIn{};
  const TensorView& t = ctx.input(i);
  if (!IsAnyFloat(t.dtype)) return InvalidArgument("input ", i, " has dtype ", DTypeName(t.dtype), ", not a float");
  return AnyIn{t.ptr, t.dtype};
}
inline StatusOr<AnyOut> OutAt(const KernelContext& ctx, size_t i) {
  if (!ctx.has_output(i)) return AnyOut{};
  const TensorView& t = ctx.output(i);
  if (!IsAnyFloat(t.dtype)) return InvalidArgument("output ", i, " has dtype ", DTypeName(t.dtype), ", not a float");
  return AnyOut{t.ptr, t.dtype};
}

// Carves aligned pieces out of the one scratch buffer.
class ScratchCarver {
 public:
  size_t Add(size_t bytes) {
    const size_t at = total_;
    total_ += (bytes + 255) / 256 * 256;
    return at;
  }
  size_t total() const { return total_; }

 private:
  size_t total_ = 0;
};

}  // namespace dsc::cuda
