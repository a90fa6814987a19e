// Numpy broadcasting (and any strided walk) on the GPU: output element index -> each input's element
// offset, for up to 8 collapsed dims, in a struct passed to kernels by value. Made in Init from a
// BroadcastPlan (kernels/cpu/broadcast.h: MakeBroadcastPlan or StridedPlan), so both sides collapse
// dims the same way.
//
//   ASSIGN_OR_RETURN(cpu::BroadcastPlan p, cpu::MakeBroadcastPlan(y, {a, b}));
//   ASSIGN_OR_RETURN(index_, cuda::MakeBroadcastIndex<2>(p));
//   RETURN_IF_ERROR(cuda::LaunchBroadcast(ctx, index_, MyFn{a, b, y}));  // fn(i, off) per element
#pragma once

#include <cstdint>

#include "kernels/cpu/broadcast.h"
#include "kernels/cuda/cuda_util.cuh"

namespace dsc::cuda {

inline constexpr int kMaxRank = 8;

// K inputs (or walked tensors) over a collapsed output of `rank` dims.
template <int K>
struct BroadcastIndex {
  int rank = 1;
  int64_t numel = 0;
  int64_t dims[kMaxRank] = {};
  int64_t strides[K][kMaxRank] = {};
  // Every offset and index fits in 31 bits: the kernels unravel with 32-bit divisions (64-bit ones
  // are emulated and cost several times more).
  bool index32 = false;

  // off[k] = the element offset in input k of output element i (row-major over dims).
  template <typename I>
  __device__ __forceinline__ void Offsets(I i, I (&off)[K]) const {
#pragma unroll
    for (int k = 0; k < K; ++k) off[k] = 0;
    for (int d = rank - 1; d > 0; --d) {
      const I n = static_cast<I>(dims[d]);
      const I q = i / n, r = i - q * n;
#pragma unroll
      for (int k = 0; k < K; ++k) off[k] += r * static_cast<I>(strides[k][d]);
      i = q;
    }
#pragma unroll
    for (int k = 0; k < K; ++k) off[k] += i * static_cast<I>(strides[k][0]);
  }
};

// The index of a plan made for K inputs; ranks above kMaxRank are refused.
template <int K>
StatusOr<BroadcastIndex<K>> MakeBroadcastIndex(const cpu::BroadcastPlan& p) {
  if (p.strides.size() != static_cast<size_t>(K))
    return Internal("a broadcast plan of ", p.strides.size(), " inputs where ", K, " were expected");
  if (p.dims.size() > static_cast<size_t>(kMaxRank))
    return Unimplemented("the CUDA kernels walk at most ", kMaxRank, " dims after collapsing, this needs ",
                         p.dims.size());
  BroadcastIndex<K> b;
  b.rank = static_cast<int>(p.dims.size());
  b.numel = p.numel;
  constexpr int64_t kLimit32 = int64_t{1} << 31;
  bool fits = p.numel < kLimit32 / 2;  // room for the grid stride past the end
  for (int d = 0; d < b.rank; ++d) b.dims[d] = p.dims[static_cast<size_t>(d)];
  for (int k = 0; k < K; ++k) {
    int64_t max_offset = 0;
    for (int d = 0; d < b.rank; ++d) {
      const int64_t s = p.strides[static_cast<size_t>(k)][static_cast<size_t>(d)];
      b.strides[k][d] = s;
      max_offset += (b.dims[d] - 1) * (s < 0 ? -s : s);
    }
    fits = fits && max_offset < kLimit32;
  }
  b.index32 = fits;
  return b;
}

template <typename I, int K, typename F>
__global__ void BroadcastKernel(I n, BroadcastIndex<K> index, F f) {
  const I stride = static_cast<I>(blockDim.x) * gridDim.x;
  for (I i = static_cast<I>(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride) {
    I off[K];
    index.Offsets(i, off);
    f(static_cast<int64_t>(i), off);
  }
}

// f(i, off) for every output element i, off[k] its offset in input k (an array of int64_t or
// uint32_t: write f's second parameter as `const I* off` with a template I, or `auto`).
template <int K, typename F>
Status LaunchBroadcast(const KernelContext& ctx, const BroadcastIndex<K>& index, F f) {
  if (index.numel <= 0) return Status::OK();
  ASSIGN_OR_RETURN(Resources * r, Res(ctx));
  if (index.index32) {
    BroadcastKernel<uint32_t, K><<<GridFor(*r, index.numel), kThreads, 0, r->compute>>>(
        static_cast<uint32_t>(index.numel), index, f);
  } else {
    BroadcastKernel<int64_t, K><<<GridFor(*r, index.numel), kThreads, 0, r->compute>>>(index.numel, index, f);
  }
  DSC_CUDA_CHECK_LAUNCH();
  return Status::OK();
}

}  // namespace dsc::cuda
