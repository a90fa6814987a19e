// CUDA MaxPool/AveragePool/GlobalAveragePool and MaxPoolGrad/AveragePoolGrad, the twins of
// kernels/cpu/pool.cc (same window walk, kernels/common/pool_math.h).
//
// Forward: one thread per output. Gradients gather instead of scattering: one thread per input
// element visits the windows that have a tap on it in the CPU's order (increasing output position)
// and sums their share in float, so dX is deterministic and bitwise the CPU's (no atomics).
#include "ir/dsc_ops.h"
#include "kernels/common/pool_math.h"
#include "kernels/common/pool_node.h"
#include "kernels/cpu/nn_util.h"
#include "kernels/cuda/row_util.cuh"

namespace dsc::cuda {
namespace {

using pool::PoolShape;
using pool::ReadPool;

template <typename T>
__global__ void MaxPoolFwd(const T* x, T* y, int64_t* idx, nn::Window w, int64_t planes) {
  const int64_t in_plane = w.InSize(), out_plane = w.OutSize(), n = planes * out_plane;
  for (int64_t o = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; o < n;
       o += static_cast<int64_t>(blockDim.x) * gridDim.x) {
    const int64_t p = o / out_plane;
    int64_t op[3];
    nn::Unflatten(w.out, o % out_plane, op);
    const T* xp = x + p * in_plane;
    const int64_t a = pool::ArgMax(w, op, [xp](int64_t off) { return ToFloat(xp[off]); });
    y[o] = a < 0 ? FromFloat<T>(0.0f) : xp[a];
    if (idx) idx[o] = a < 0 ? -1 : p * in_plane + a;
  }
}

template <typename T>
__global__ void AvgPoolFwd(const T* x, T* y, nn::Window w, int64_t planes, bool include_pad) {
  const int64_t in_plane = w.InSize(), out_plane = w.OutSize(), n = planes * out_plane;
  for (int64_t o = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; o < n;
       o += static_cast<int64_t>(blockDim.x) * gridDim.x) {
    const int64_t p = o / out_plane;
    int64_t op[3];
    nn::Unflatten(w.out, o % out_plane, op);
    const T* xp = x + p * in_plane;
    double sum = 0;
    pool::ForEachTap(w, op, [&](int64_t off) { sum += ToFloat(xp[off]); });
    const int64_t d = pool::Divisor(w, include_pad, op);
    y[o] = FromFloat<T>(d ? static_cast<float>(sum / d) : 0.0f);
  }
}

template <typename T>
__global__ void GlobalAvgPool(const T* x, T* y, int64_t planes, int64_t size) {
  __shared__ double shd[32];
  __shared__ float shf[32];
  const BlockRow g{shd, shf};
  for (int64_t p = blockIdx.x; p < planes; p += gridDim.x) {
    double sum = 0;
    for (int64_t i = threadIdx.x; i < size; i += blockDim.x) sum += ToFloat(x[p * size + i]);
    sum = g.Sum(sum);
    if (threadIdx.x == 0) y[p] = FromFloat<T>(static_cast<float>(sum / static_cast<double>(size)));
  }
}

// dX[p, off] = sum, over the windows (op, o) with a tap at off (in increasing o), of
// share(acc, p, op, o, off).
template <typename T, typename Share>
__device__ __forceinline__ void GatherGrad(T* dx, const nn::Window& w, int64_t planes, Share share) {
  const int64_t in_plane = w.InSize(), n = planes * in_plane;
  for (int64_t e = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; e < n;
       e += static_cast<int64_t>(blockDim.x) * gridDim.x) {
    const int64_t p = e / in_plane, off = e % in_plane;
    float acc = 0.0f;
    pool::ForEachWindowOver(w, off, [&](const int64_t* op, int64_t o) { acc = share(acc, p, op, o, off); });
    dx[e] = FromFloat<T>(acc);
  }
}

template <typename T>
__global__ void MaxPoolBwd(const T* dy, const T* x, T* dx, nn::Window w, int64_t planes) {
  const int64_t in_plane = w.InSize(), out_plane = w.OutSize();
  GatherGrad(dx, w, planes, [=](float acc, int64_t p, const int64_t* op, int64_t o, int64_t off) {
    const T* xp = x + p * in_plane;
    const int64_t a = pool::ArgMax(w, op, [xp](int64_t i) { return ToFloat(xp[i]); });
    return a == off ? acc + ToFloat(dy[p * out_plane + o]) : acc;
  });
}

template <typename T>
__global__ void AvgPoolBwd(const T* dy, T* dx, nn::Window w, int64_t planes, bool include_pad) {
  const int64_t out_plane = w.OutSize();
  GatherGrad(dx, w, planes, [=](float acc, int64_t p, const int64_t* op, int64_t o, int64_t) {
    const int64_t d = pool::Divisor(w, include_pad, op);
    if (!d) return acc;
    return acc + ToFloat(dy[p * out_plane + o]) / static_cast<float>(d);
  });
}

template <typename T>
class MaxPoolCuda : public OpKernel {
 public:
  Status Init(const Node& node) {
    ASSIGN_OR_RETURN(s_, pool::ReadMaxPool(node));
    return Status::OK();
  }
  Status Compute(KernelContext& ctx) override {
    ASSIGN_OR_RETURN(Resources * r, Res(ctx));
    const int64_t n = s_.planes * s_.w.OutSize();
    if (n == 0) return Status::OK();
    int64_t* idx = ctx.has_output(1) ? ctx.output(1).data<int64_t>() : nullptr;
    MaxPoolFwd<T><<<GridFor(*r, n), kThreads, 0, r->compute>>>(ctx.input(0).data<T>(), ctx.output(0).data<T>(), idx,
                                                                s_.w, s_.planes);
    DSC_CUDA_CHECK_LAUNCH();
    return Status::OK();
  }

 private:
  PoolShape s_;
};

template <typename T>
class AveragePoolCuda : public OpKernel {
 public:
  Status Init(const Node& node) {
    ASSIGN_OR_RETURN(s_, ReadPool(node, node.input(0), node.output(0)));
    return Status::OK();
  }
  Status Compute(KernelContext& ctx) override {
    ASSIGN_OR_RETURN(Resources * r, Res(ctx));
    const int64_t n = s_.planes * s_.w.OutSize();
    if (n == 0) return Status::OK();
    AvgPoolFwd<T><<<GridFor(*r, n), kThreads, 0, r->compute>>>(ctx.input(0).data<T>(), ctx.output(0).data<T>(), s_.w,
                                                                s_.planes, s_.count_include_pad);
    DSC_CUDA_CHECK_LAUNCH();
    return Status::OK();
  }

 private:
  PoolShape s_;
};

template <typename T>
class GlobalAveragePoolCuda : public OpKernel {
 public:
  Status Init(const Node& node) {
    ASSIGN_OR_RETURN(const pool::GlobalPoolShape g, pool::ReadGlobalPool(node));
    planes_ = g.planes;
    size_ = g.size;
    return Status::OK();
  }
  Status Compute(KernelContext& ctx) override {
    ASSIGN_OR_RETURN(Resources * r, Res(ctx));
    if (planes_ == 0) return Status::OK();
    GlobalAvgPool<T><<<RowGrid(*r, planes_), RowThreads(size_), 0, r->compute>>>(
        ctx.input(0).data<T>(), ctx.output(0).data<T>(), planes_, size_);
    DSC_CUDA_CHECK_LAUNCH();
    return Status::OK();
  }

 private:
  int64_t planes_ = 0, size_ = 1;
};

// (dY, X) -> dX
template <typename T>
class MaxPoolGradCuda : public OpKernel {
 public:
  Status Init(const Node& node) {
    ASSIGN_OR_RETURN(s_, ReadPool(node, node.input(1), node.input(0)));
    return Status::OK();
  }
  Status Compute(KernelContext& ctx) override {
    ASSIGN_OR_RETURN(Resources * r, Res(ctx));
    const int64_t n = s_.planes * s_.w.InSize();
    if (n == 0) return Status::OK();
    if (ctx.input(1).dtype != DTypeOf<T>()) return Unimplemented("MaxPoolGrad with dY and X of different dtypes on CUDA");
    MaxPoolBwd<T><<<GridFor(*r, n), kThreads, 0, r->compute>>>(ctx.input(0).data<T>(), ctx.input(1).data<T>(),
                                                                ctx.output(0).data<T>(), s_.w, s_.planes);
    DSC_CUDA_CHECK_LAUNCH();
    return Status::OK();
  }

 private:
  PoolShape s_;
};

// (dY) -> dX
template <typename T>
class AveragePoolGradCuda : public OpKernel {
 public:
  Status Init(const Node& node) {
    ASSIGN_OR_RETURN(s_, ReadPool(node, node.output(0), node.input(0)));
    return Status::OK();
  }
  Status Compute(KernelContext& ctx) override {
    ASSIGN_OR_RETURN(Resources * r, Res(ctx));
    const int64_t n = s_.planes * s_.w.InSize();
    if (n == 0) return Status::OK();
    AvgPoolBwd<T><<<GridFor(*r, n), kThreads, 0, r->compute>>>(ctx.input(0).data<T>(), ctx.output(0).data<T>(), s_.w,
                                                                s_.planes, s_.count_include_pad);
    DSC_CUDA_CHECK_LAUNCH();
    return Status::OK();
  }

 private:
  PoolShape s_;
};

DSC_REGISTER_CUDA_FLOATS("", "MaxPool", MaxPoolCuda);
DSC_REGISTER_CUDA_FLOATS("", "AveragePool", AveragePoolCuda);
DSC_REGISTER_CUDA_FLOATS("", "GlobalAveragePool", GlobalAveragePoolCuda);
DSC_REGISTER_CUDA_FLOATS(kDscDomain, ops::kMaxPoolGrad, MaxPoolGradCuda);
DSC_REGISTER_CUDA_FLOATS(kDscDomain, ops::kAveragePoolGrad, AveragePoolGradCuda);

}  // namespace
}  // namespace dsc::cuda
