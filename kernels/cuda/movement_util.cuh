// What the CUDA data-movement and indexing kernels share: element-sized words (movement kernels
// copy bytes, so one template per element size serves every dtype), registration for every
// movement dtype, a strided copy (kernels/common/strided_map.h), index loads, and a
// deterministic scatter (destinations sorted stably, each one's sources applied in index order by
// one thread: no atomics, so runs repeat bit for bit and agree with the CPU's index-order loops).
//
//   ASSIGN_OR_RETURN(map_, MakeStridedMap(y_dims, x_strides, ContiguousStrides(y_dims)));
//   RETURN_IF_ERROR(DispatchWords(esize_, [&](auto w) { return StridedCopy<decltype(w)>(ctx, map_, x, y); }));
#pragma once

#include <cub/device/device_radix_sort.cuh>

#include <cstdint>
#include <vector>

#include "kernels/common/strided_map.h"
#include "kernels/cpu/core_util.h"
#include "kernels/cuda/cuda_util.cuh"

namespace dsc::cuda {

// Registers one factory for every dtype the CPU movement kernels take (kernels/cpu/core_util.h).
inline bool RegisterCudaMovement(const char* domain, const char* op, const KernelFactory& f) {
  for (DType t : cpu::kMovementDTypes) KernelRegistry::Global().Register(KernelKey{domain, op, DeviceKind::kCuda, t}, f);
  return true;
}

// Calls fn(W{}) with an unsigned word of the element size and returns its Status.
template <typename Fn>
Status DispatchWords(size_t size, Fn&& fn) {
  switch (size) {
    case 1: return fn(uint8_t{});
    case 2: return fn(uint16_t{});
    case 4: return fn(uint32_t{});
    case 8: return fn(uint64_t{});
    default: return Internal("no word type for elements of ", size, " bytes");
  }
}

// An int64 or int32 index tensor's element i.
__host__ __device__ __forceinline__ int64_t LoadIndex(const void* p, bool is64, int64_t i) {
  return is64 ? static_cast<const int64_t*>(p)[i] : static_cast<int64_t>(static_cast<const int32_t*>(p)[i]);
}

constexpr int kMaxDims = kMaxStridedDims;  // also the rank limit of the index geometries

template <typename W, typename I>
__global__ void StridedCopyKernel(StridedMap m, const W* __restrict__ x, W* __restrict__ y) {
  const I n = static_cast<I>(m.numel);
  for (I i = static_cast<I>(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += static_cast<I>(blockDim.x) * gridDim.x) {
    I xo, yo;
    StridedOffsets<I>(m, i, &xo, &yo);
    y[yo] = x[xo];
  }
}

// Runs the map on the compute stream; X and Y must not overlap.
template <typename W>
Status StridedCopy(const KernelContext& ctx, const StridedMap& m, const void* x, void* y) {
  if (m.numel <= 0) return Status::OK();
  ASSIGN_OR_RETURN(Resources * r, Res(ctx));
  const unsigned grid = GridFor(*r, m.numel);
  constexpr int64_t kI32 = 0x7fffffff;
  // 32-bit division is several times faster; the grid-stride loop's last step must fit too.
  if (m.numel + static_cast<int64_t>(grid) * kThreads < kI32 && m.x_numel < kI32 && m.y_numel < kI32) {
    StridedCopyKernel<W, int32_t><<<grid, kThreads, 0, r->compute>>>(m, static_cast<const W*>(x), static_cast<W*>(y));
  } else {
    StridedCopyKernel<W, int64_t><<<grid, kThreads, 0, r->compute>>>(m, static_cast<const W*>(x), static_cast<W*>(y));
  }
  DSC_CUDA_CHECK_LAUNCH();
  return Status::OK();
}

// A kernel that is one strided copy of input 0 into output 0: Init (the subclass's) sets the
// element size and the map; Expand, Tile and Slice are this.
class MappedCopyCuda : public OpKernel {
 public:
  Status Compute(KernelContext& ctx) override {
    return DispatchWords(esize_, [&](auto w) {
      return StridedCopy<decltype(w)>(ctx, map_, ctx.input(0).ptr, ctx.output(0).ptr);
    });
  }

 protected:
  size_t esize_ = 4;
  StridedMap map_;
};

// Deterministic scatter. The caller fills keys[i] (the destination slot of source row i, or
// `slots` to skip the row) with a kernel of its own; Run sorts (key, i) stably, then for every
// destination one thread per (outer o, element j of the row) runs
//   acc = f.Begin(o, key, j); for each source i of key, in increasing i: acc = f.Add(acc, o, i, j);
//   f.End(o, key, j, acc);
// All temporaries live in the device's scratch buffer: Keys() must be called first (it sizes the
// scratch) and its pointer used before Run.
class SortedScatter {
 public:
  // rows: number of source rows; slots: number of destinations (keys are in [0, slots]).
  Status Prepare(const KernelContext& ctx, int64_t rows, int64_t slots) {
    ASSIGN_OR_RETURN(r_, Res(ctx));
    rows_ = rows;
    slots_ = slots;
    end_bit_ = 1;
    while (end_bit_ < 64 && (static_cast<uint64_t>(slots) >> end_bit_) != 0) ++end_bit_;
    temp_bytes_ = 0;
    if (rows > 0)
      DSC_CUDA_CHECK(cub::DeviceRadixSort::SortPairs(nullptr, temp_bytes_, static_cast<const int64_t*>(nullptr),
                                                     static_cast<int64_t*>(nullptr), static_cast<const int64_t*>(nullptr),
                                                     static_cast<int64_t*>(nullptr), rows, 0, end_bit_, r_->compute));
    const size_t arr = Align(static_cast<size_t>(rows) * sizeof(int64_t));
    ASSIGN_OR_RETURN(void* s, r_->Scratch(4 * arr + Align(temp_bytes_)));
    char* p = static_cast<char*>(s);
    keys_in_ = reinterpret_cast<int64_t*>(p);
    vals_in_ = reinterpret_cast<int64_t*>(p + arr);
    keys_ = reinterpret_cast<int64_t*>(p + 2 * arr);
    vals_ = reinterpret_cast<int64_t*>(p + 3 * arr);
    temp_ = p + 4 * arr;
    return Status::OK();
  }

  int64_t* keys() const { return keys_in_; }

  template <typename F>
  Status Run(const KernelContext& ctx, int64_t outer, int64_t inner, F f) {
    if (rows_ <= 0 || outer <= 0 || inner <= 0) return Status::OK();
    int64_t* vals_in = vals_in_;
    RETURN_IF_ERROR(LaunchMap(ctx, rows_, [=] __device__(int64_t i) { vals_in[i] = i; }));
    size_t temp_bytes = temp_bytes_;
    DSC_CUDA_CHECK(cub::DeviceRadixSort::SortPairs(temp_, temp_bytes, keys_in_, keys_, vals_in_, vals_, rows_, 0,
                                                   end_bit_, r_->compute));
    const int64_t* keys = keys_;
    const int64_t* vals = vals_;
    const int64_t rows = rows_, slots = slots_;
    return LaunchMap(ctx, outer * rows * inner, [=] __device__(int64_t t) {
      const int64_t j = t % inner, p = t / inner % rows, o = t / (inner * rows);
      const int64_t key = keys[p];
      if (key >= slots || (p > 0 && keys[p - 1] == key)) return;  // skipped, or not the first of its key
      auto acc = f.Begin(o, key, j);
      for (int64_t q = p; q < rows && keys[q] == key; ++q) acc = f.Add(acc, o, vals[q], j);
      f.End(o, key, j, acc);
    });
  }

 private:
  static size_t Align(size_t b) { return (b + 255) / 256 * 256; }

  Resources* r_ = nullptr;
  int64_t rows_ = 0, slots_ = 0;
  int end_bit_ = 1;
  size_t temp_bytes_ = 0;
  int64_t *keys_in_ = nullptr, *vals_in_ = nullptr, *keys_ = nullptr, *vals_ = nullptr;
  void* temp_ = nullptr;
};

}  // namespace dsc::cuda
