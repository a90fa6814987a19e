// The CUDA twins of kernels/cpu/scatter_gather.h: gather, scatter and gather-gradient kernels of
// the Elements and ND ops, written once over a device geometry (ElementGeom or NdGeom) that maps
// source row r (an index of GatherElements, a tuple of GatherND) to its destination slot of
// `inner` elements in data. The host geometry (cpu::ElementOffsets / cpu::NdOffsets) checks the
// shapes at Init, as on the CPU.
//
// Out-of-range indices: the CPU kernels report them; a CUDA kernel cannot, so here a gather
// writes zeros for them and a scatter or gradient skips them.
//
// Scatters and gradients are deterministic (SortedScatter, kernels/cuda/movement_util.cuh): each
// destination's sources are applied by one thread in index order, as the CPU loops do, so
// duplicates accumulate in the same order and reduction "none" keeps the last, like the CPU.
#pragma once

#include <string>
#include <type_traits>
#include <vector>

#include "ir/dsc_ops.h"
#include "kernels/common/index_math.h"
#include "kernels/cpu/index_offsets.h"
#include "kernels/cuda/movement_util.cuh"

namespace dsc::cuda {

// GatherElements geometry: element e of indices (row-major over the indices' dims) reads data at
// the same coordinates, except along `axis` where the index value is used.
struct ElementGeom {
  static constexpr int64_t inner = 1;
  int rank = 0, axis = 0;
  int64_t axis_size = 0, rows = 0, slots = 0;
  int64_t idx_dims[kMaxDims] = {}, data_strides[kMaxDims] = {};

  Status Init(const cpu::ElementOffsets& p, int64_t data_numel) {
    if (p.idx_dims.size() > static_cast<size_t>(kMaxDims))
      return Unimplemented("indices of rank ", p.idx_dims.size(), " (the CUDA kernels take at most ", kMaxDims, ")");
    rank = static_cast<int>(p.idx_dims.size());
    axis = static_cast<int>(p.axis);
    axis_size = p.axis_size;
    rows = cpu::Product(p.idx_dims);
    slots = data_numel;
    for (int d = 0; d < rank; ++d) idx_dims[d] = p.idx_dims[static_cast<size_t>(d)], data_strides[d] = p.data_strides[static_cast<size_t>(d)];
    return Status::OK();
  }

  // The data offset element e reads, or -1 when its index is out of range.
  __host__ __device__ int64_t Slot(const void* idx, bool is64, int64_t e) const {
    int64_t i;
    if (!NormalizeIndex(LoadIndex(idx, is64, e), axis_size, &i)) return -1;
    int64_t rest = e, off = 0;
#if defined(__CUDA_ARCH__)  // the host compiler warns on the pragma
#pragma unroll
#endif
    for (int d = kMaxDims - 1; d >= 0; --d) {
      if (d >= rank) continue;
      const int64_t c = rest % idx_dims[d];
      rest /= idx_dims[d];
      off += (d == axis ? i : c) * data_strides[d];
    }
    return off;
  }
};

// GatherND geometry: tuple t of batch bi addresses the slice data[bi, idx[bi, t, 0..k)] of `inner`
// elements; slots count slices of `inner` elements.
struct NdGeom {
  int64_t rows = 0, tuples = 0, k = 0, inner = 1, batch_stride = 0, slots = 0;
  int64_t dims[kMaxDims] = {}, strides[kMaxDims] = {};

  Status Init(const cpu::NdOffsets& p) {
    if (p.k > kMaxDims) return Unimplemented("index tuples of ", p.k, " (the CUDA kernels take at most ", kMaxDims, ")");
    rows = p.batch * p.tuples;
    tuples = p.tuples;
    k = p.k;
    inner = p.inner;
    batch_stride = p.batch_stride;
    slots = inner > 0 ? p.batch * p.batch_stride / inner : 0;
    for (int64_t j = 0; j < k; ++j) dims[j] = p.dims[static_cast<size_t>(j)], strides[j] = p.strides[static_cast<size_t>(j)];
    return Status::OK();
  }

  // The slice (in units of `inner` elements) that tuple bt addresses, or -1 when an index is out of range.
  __host__ __device__ int64_t Slot(const void* idx, bool is64, int64_t bt) const {
    int64_t off = bt / (tuples > 0 ? tuples : 1) * batch_stride;
    for (int64_t j = 0; j < k; ++j) {
      int64_t i;
      if (!NormalizeIndex(LoadIndex(idx, is64, bt * k + j), dims[j], &i)) return -1;
      off += i * strides[j];
    }
    return off / inner;  // strides and batch_stride are multiples of inner
  }
};

// SortedScatter's per-destination steps (kernels/cuda/movement_util.cuh): a scatter folds the
// updates into Y's value; a gradient sums dY in float from zero and rounds once.
// Half types combine in float and round once per slot, as the CPU's half adaptor does by running
// the float32 kernel on converted tensors.
template <typename T>
struct ScatterCombineOp {
  using Acc = std::conditional_t<std::is_same_v<T, half> || std::is_same_v<T, bf16>, float, T>;
  T* y;
  const T* upd;
  int64_t inner;
  ScatterReduction r;
  __device__ static Acc In(T v) {
    if constexpr (std::is_same_v<Acc, T>) return v;
    else return ToFloat(v);
  }
  __device__ Acc Begin(int64_t, int64_t key, int64_t j) const { return In(y[key * inner + j]); }
  __device__ Acc Add(Acc acc, int64_t, int64_t src, int64_t j) const { return ScatterCombine(r, acc, In(upd[src * inner + j])); }
  __device__ void End(int64_t, int64_t key, int64_t j, Acc acc) const {
    if constexpr (std::is_same_v<Acc, T>) y[key * inner + j] = acc;
    else y[key * inner + j] = FromFloat<T>(acc);
  }
};

template <typename T>
struct ScatterSumOp {
  T* dd;
  const T* dy;
  int64_t inner;
  __device__ float Begin(int64_t, int64_t, int64_t) const { return 0.0f; }
  __device__ float Add(float acc, int64_t, int64_t src, int64_t j) const { return acc + ToFloat(dy[src * inner + j]); }
  __device__ void End(int64_t, int64_t key, int64_t j, float acc) const { dd[key * inner + j] = FromFloat<T>(acc); }
};

// Y[r * inner + j] = data[Slot(r) * inner + j]; zeros for an out-of-range index.
template <typename Geom>
class GatherCuda : public OpKernel {
 public:
  Status Compute(KernelContext& ctx) override {
    return DispatchWords(esize_, [&](auto w) { return Run<decltype(w)>(ctx); });
  }

  // Public: nvcc refuses extended lambdas in private member functions.
  template <typename W>
  Status Run(KernelContext& ctx) {
    const W* x = ctx.input(0).data<W>();
    const void* idx = ctx.input(1).ptr;
    W* y = ctx.output(0).data<W>();
    const Geom g = geom_;
    const bool is64 = is64_;
    return LaunchMap(ctx, g.rows * g.inner, [=] __device__(int64_t t) {
      const int64_t r = t / g.inner, j = t % g.inner;
      const int64_t s = g.Slot(idx, is64, r);
      y[t] = s < 0 ? W{0} : x[s * g.inner + j];
    });
  }

 protected:
  Geom geom_;
  bool is64_ = true;
  size_t esize_ = 4;
};

// Y = copy of data, then Y[slot(r) * inner + j] = f(Y[...], updates[r * inner + j]) in index order.
template <typename Geom>
class ScatterCuda : public OpKernel {
 public:
  Status Init(const Node& node) {
    ASSIGN_OR_RETURN(auto data, cpu::StaticDims(node.input(0)));
    ASSIGN_OR_RETURN(auto idx, cpu::StaticDims(node.input(1)));
    ASSIGN_OR_RETURN(auto upd, cpu::StaticDims(node.input(2)));
    RETURN_IF_ERROR(cpu::CheckIndexDType(node.input(1)->type.dtype));
    RETURN_IF_ERROR(InitPlan(node, data, idx, upd));
    is64_ = node.input(1)->type.dtype == DType::kInt64;
    dtype_ = node.input(0)->type.dtype;
    ASSIGN_OR_RETURN(reduction_, cpu::ParseScatterReduction(node.GetString("reduction", "none")));
    if (!cpu::ScatterDTypeSupports(dtype_, reduction_) && dtype_ != DType::kFloat16 && dtype_ != DType::kBFloat16)
      return Unimplemented("reduction '", node.GetString("reduction", "none"), "' on ", DTypeName(dtype_));
    bytes_ = static_cast<size_t>(cpu::Product(data)) * DTypeSize(dtype_);
    return Status::OK();
  }

  Status Compute(KernelContext& ctx) override {
    ASSIGN_OR_RETURN(Resources * r, Res(ctx));
    void* y = ctx.output(0).ptr;
    if (y != ctx.input(0).ptr && bytes_ > 0)
      DSC_CUDA_CHECK(cudaMemcpyAsync(y, ctx.input(0).ptr, bytes_, cudaMemcpyDeviceToDevice, r->compute));
    if (reduction_ == ScatterReduction::kNone)
      return DispatchWords(DTypeSize(dtype_), [&](auto w) { return Run<decltype(w)>(ctx); });
    switch (dtype_) {
      case DType::kFloat32: return Run<float>(ctx);
      case DType::kFloat64: return Run<double>(ctx);
      case DType::kInt64: return Run<int64_t>(ctx);
      case DType::kInt32: return Run<int32_t>(ctx);
      case DType::kFloat16: return Run<half>(ctx);
      case DType::kBFloat16: return Run<bf16>(ctx);
      default: return Internal("scatter reduction on ", DTypeName(dtype_));  // refused at Init
    }
  }

  // Public: nvcc refuses extended lambdas in private member functions.
  template <typename T>
  Status Run(KernelContext& ctx) {
    const Geom g = geom_;
    const bool is64 = is64_;
    const void* idx = ctx.input(1).ptr;
    SortedScatter sorted;
    RETURN_IF_ERROR(sorted.Prepare(ctx, g.rows, g.slots));
    int64_t* keys = sorted.keys();
    RETURN_IF_ERROR(LaunchMap(ctx, g.rows, [=] __device__(int64_t r) {
      const int64_t s = g.Slot(idx, is64, r);
      keys[r] = s < 0 ? g.slots : s;
    }));
    return sorted.Run(ctx, 1, g.inner, ScatterCombineOp<T>{ctx.output(0).data<T>(), ctx.input(2).data<T>(), g.inner, reduction_});
  }

 protected:
  // Initialises geom_ from the op's attribute and checks the updates' shape.
  virtual Status InitPlan(const Node& node, const std::vector<int64_t>& data, const std::vector<int64_t>& idx,
                          const std::vector<int64_t>& upd) = 0;
  Geom geom_;

 private:
  bool is64_ = true;
  DType dtype_ = DType::kFloat32;
  ScatterReduction reduction_ = ScatterReduction::kNone;
  size_t bytes_ = 0;
};

// (dY, indices) -> dData of T (float32, float16, bfloat16): zeros, then dData[slot(r) * inner + j]
// += dY[r * inner + j], summed in float in index order and rounded once.
template <typename T, typename Geom>
class GatherGradCuda : public OpKernel {
 public:
  Status Init(const Node& node) {
    ASSIGN_OR_RETURN(auto data, cpu::StaticDims(node.output(0)));
    ASSIGN_OR_RETURN(auto idx, cpu::StaticDims(node.input(1)));
    ASSIGN_OR_RETURN(auto dy, cpu::StaticDims(node.input(0)));
    RETURN_IF_ERROR(cpu::CheckIndexDType(node.input(1)->type.dtype));
    RETURN_IF_ERROR(InitPlan(node, data, idx, dy));
    is64_ = node.input(1)->type.dtype == DType::kInt64;
    if (node.output(0)->type.dtype != DTypeOf<T>())
      return Unimplemented("a gather gradient of ", DTypeName(DTypeOf<T>()), " into ", DTypeName(node.output(0)->type.dtype),
                           " (the CUDA kernel writes the dtype of its input)");
    bytes_ = static_cast<size_t>(cpu::Product(data)) * sizeof(T);
    return Status::OK();
  }

  Status Compute(KernelContext& ctx) override {
    ASSIGN_OR_RETURN(Resources * res, Res(ctx));
    T* dd = ctx.output(0).data<T>();
    if (bytes_ > 0) DSC_CUDA_CHECK(cudaMemsetAsync(dd, 0, bytes_, res->compute));
    const Geom g = geom_;
    const bool is64 = is64_;
    const void* idx = ctx.input(1).ptr;
    SortedScatter sorted;
    RETURN_IF_ERROR(sorted.Prepare(ctx, g.rows, g.slots));
    int64_t* keys = sorted.keys();
    RETURN_IF_ERROR(LaunchMap(ctx, g.rows, [=] __device__(int64_t r) {
      const int64_t s = g.Slot(idx, is64, r);
      keys[r] = s < 0 ? g.slots : s;
    }));
    return sorted.Run(ctx, 1, g.inner, ScatterSumOp<T>{dd, ctx.input(0).data<T>(), g.inner});
  }

 protected:
  // Initialises geom_ from the op's attribute and checks dY's shape.
  virtual Status InitPlan(const Node& node, const std::vector<int64_t>& data, const std::vector<int64_t>& idx,
                          const std::vector<int64_t>& dy) = 0;
  Geom geom_;

 private:
  bool is64_ = true;
  size_t bytes_ = 0;
};

}  // namespace dsc::cuda
