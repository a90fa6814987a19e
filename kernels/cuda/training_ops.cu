// CUDA kernels of the training ops (ir/dsc_ops.h), twins of kernels/cpu/training_ops.cc: the same
// dtype mixes, the per-element math of kernels/common/optimizer_math.h and lamb_math.h, and the
// step's scalars (lr, step, beta1, grad_scale, skip) read on the device, so no step waits for the
// host.
//
// AdamStep, SGDStep, OptimStep and LambApply run two launches: a one-thread kernel turns the scalar inputs into the
// step's factors (in double, as the CPU does) in a small per-node device buffer, and the element
// kernel reads them there (and returns at once when the step is skipped). The element kernels
// move four elements per thread with vector loads when every pointer is aligned for it.
#include <algorithm>
#include <cstdint>

#include "ir/dsc_ops.h"
#include "kernels/common/elementwise_math.h"
#include "kernels/common/lamb_math.h"
#include "kernels/common/optimizer_math.h"
#include "kernels/common/training_node.h"
#include "kernels/cuda/cuda_util.cuh"

namespace dsc::cuda {
namespace {

using optim::CheckFloat;
using optim::NeedInputs;
using optim::OptimizerShard;
using optim::StateSize;

// ---- four elements per thread ----

template <typename T> struct alignas(4 * sizeof(T)) Vec4 { T v[4]; };

template <typename T> bool Aligned4(const void* p) {
  return reinterpret_cast<uintptr_t>(p) % (4 * sizeof(T)) == 0;
}

template <bool kVec, typename T>
__device__ __forceinline__ void Load4(const T* p, int64_t i, float out[4]) {
  if constexpr (kVec) {
    const Vec4<T> x = *reinterpret_cast<const Vec4<T>*>(p + i);
#pragma unroll
    for (int k = 0; k < 4; ++k) out[k] = ToFloat(x.v[k]);
  } else {
#pragma unroll
    for (int k = 0; k < 4; ++k) out[k] = ToFloat(p[i + k]);
  }
}
template <bool kVec, typename T>
__device__ __forceinline__ void Store4(T* p, int64_t i, const float in[4]) {
  if constexpr (kVec) {
    Vec4<T> x;
#pragma unroll
    for (int k = 0; k < 4; ++k) x.v[k] = FromFloat<T>(in[k]);
    *reinterpret_cast<Vec4<T>*>(p + i) = x;
  } else {
#pragma unroll
    for (int k = 0; k < 4; ++k) p[i + k] = FromFloat<T>(in[k]);
  }
}

__device__ __forceinline__ int64_t ThreadIndex() {
  return blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
}
__device__ __forceinline__ int64_t ThreadCount() { return static_cast<int64_t>(blockDim.x) * gridDim.x; }

// Groups of four elements, then the tail one by one: f.template Group<kVec>(i) and f.One(i), on
// the functor f.Ready() returns (which has loaded the step's scalars into registers once).
template <bool kVec, typename F>
__global__ void Vec4Kernel(int64_t n, F f0) {
  if (!f0.Active()) return;
  const F f = f0.Ready();
  const int64_t groups = n / 4;
  for (int64_t g = ThreadIndex(); g < groups; g += ThreadCount()) f.template Group<kVec>(g * 4);
  for (int64_t i = groups * 4 + ThreadIndex(); i < n; i += ThreadCount()) f.One(i);
}

template <typename F>
Status LaunchVec4(Resources& r, int64_t n, bool vec, const F& f) {
  if (n <= 0) return Status::OK();
  const unsigned grid = GridFor(r, (n + 3) / 4);
  if (vec) {
    Vec4Kernel<true><<<grid, kThreads, 0, r.compute>>>(n, f);
  } else {
    Vec4Kernel<false><<<grid, kThreads, 0, r.compute>>>(n, f);
  }
  DSC_CUDA_CHECK_LAUNCH();
  return Status::OK();
}

// ---- Accumulate ----

template <typename A, typename X>
struct AccumulateF {
  A* a;
  const X* x;
  __device__ bool Active() const { return true; }
  __device__ AccumulateF Ready() const { return *this; }
  template <bool kVec> __device__ void Group(int64_t i) const {
    float av[4], xv[4];
    Load4<kVec>(a, i, av);
    Load4<kVec>(x, i, xv);
#pragma unroll
    for (int k = 0; k < 4; ++k) av[k] = optim::AccumulateElement(av[k], xv[k]);
    Store4<kVec>(a, i, av);
  }
  __device__ void One(int64_t i) const { a[i] = FromFloat<A>(optim::AccumulateElement(ToFloat(a[i]), ToFloat(x[i]))); }
};

// acc += X, any mix of float32/float16/bfloat16, summed in float and rounded once to acc's dtype.
class AccumulateCuda : public OpKernel {
 public:
  Status Init(const Node& n) { return node_.Init(n); }
  Status Compute(KernelContext& ctx) override {
    ASSIGN_OR_RETURN(Resources * r, Res(ctx));
    const TensorView& acc = ctx.input(0);
    RETURN_IF_ERROR(optim::SameSize(acc, ctx.input(1), "Accumulate"));
    const int64_t n = acc.numel();
    Status s;
    DispatchFloat(node_.acc, [&](auto at) {
      DispatchFloat(node_.x, [&](auto xt) {
        using A = typename decltype(at)::type;
        using X = typename decltype(xt)::type;
        AccumulateF<A, X> f{acc.data<A>(), ctx.input(1).data<X>()};
        s = LaunchVec4(*r, n, Aligned4<A>(f.a) && Aligned4<X>(f.x), f);
      });
    });
    return s;
  }

 private:
  optim::AccumulateNode node_;
};

// ---- ZeroFill, Assign ----

class ZeroFillCuda : public OpKernel {
 public:
  Status Init(const Node& n) { return NeedInputs(n, 1); }
  Status Compute(KernelContext& ctx) override {
    ASSIGN_OR_RETURN(Resources * r, Res(ctx));
    const TensorView& t = ctx.input(0);
    if (t.nbytes() > 0) DSC_CUDA_CHECK(cudaMemsetAsync(t.ptr, 0, t.nbytes(), r->compute));
    return Status::OK();
  }
};

// Assign<shard>(dst, src): dst = src, or with shard = 1 src is this rank's chunk, copied to
// dst[rank*c, min(n, (rank+1)*c)).
class AssignCuda : public OpKernel {
 public:
  Status Init(const Node& n) { return node_.Init(n); }
  Status Compute(KernelContext& ctx) override {
    ASSIGN_OR_RETURN(Resources * r, Res(ctx));
    const TensorView& dst = ctx.input(0);
    const TensorView& src = ctx.input(1);
    ASSIGN_OR_RETURN(const optim::ShardRange sr, node_.Range(ctx, dst, src));
    char* d = static_cast<char*>(dst.ptr) + static_cast<size_t>(sr.offset) * node_.element_size;
    const char* s = static_cast<const char*>(src.ptr);
    const size_t bytes = static_cast<size_t>(sr.len) * node_.element_size;
    if (bytes == 0 || d == s) return Status::OK();
    if (d < s + bytes && s < d + bytes) {  // overlapping: cudaMemcpy does not move, stage it
      ASSIGN_OR_RETURN(void* tmp, r->Scratch(bytes));
      DSC_CUDA_CHECK(cudaMemcpyAsync(tmp, s, bytes, cudaMemcpyDeviceToDevice, r->compute));
      s = static_cast<const char*>(tmp);
    }
    DSC_CUDA_CHECK(cudaMemcpyAsync(d, s, bytes, cudaMemcpyDeviceToDevice, r->compute));
    return Status::OK();
  }

 private:
  optim::AssignNode node_;
};

// ---- SumSquares ----

constexpr int kSumBlocks = 1024;  // at most this many partial sums per input
constexpr int kSumThreads = 256;

__device__ __forceinline__ double BlockSumD(double v, double* shared) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = (blockDim.x + 31) >> 5;
  v = WarpSumD(v);
  __syncthreads();
  if (lane == 0) shared[warp] = v;
  __syncthreads();
  v = lane < warps ? shared[lane] : 0.0;
  return WarpSumD(v);
}

// partial[blockIdx.x] = sum of x^2 over this block's grid-stride share, in double.
template <bool kVec, typename X>
__global__ void SumSquaresPartial(const X* x, int64_t n, double* partial) {
  __shared__ double shared[32];
  double s = 0.0;
  const int64_t groups = n / 4;
  for (int64_t g = ThreadIndex(); g < groups; g += ThreadCount()) {
    float v[4];
    Load4<kVec>(x, g * 4, v);
#pragma unroll
    for (int k = 0; k < 4; ++k) s += optim::SquareD(v[k]);
  }
  for (int64_t i = groups * 4 + ThreadIndex(); i < n; i += ThreadCount()) s += optim::SquareD(ToFloat(x[i]));
  s = BlockSumD(s, shared);
  if (threadIdx.x == 0) partial[blockIdx.x] = s;
}

// out = float(sum of the partials), in a fixed order for a given count (one block).
__global__ void SumSquaresFinal(const double* partial, int64_t count, float* out) {
  __shared__ double shared[32];
  double s = 0.0;
  for (int64_t i = threadIdx.x; i < count; i += blockDim.x) s += partial[i];
  s = BlockSumD(s, shared);
  if (threadIdx.x == 0) out[0] = static_cast<float>(s);
}

// (X1, ..., Xn) -> float[]: sum of x^2 over all elements in double (each input's blocks, then the
// partials of all of them in one block): deterministic for a given device and set of sizes.
class SumSquaresCuda : public OpKernel {
 public:
  Status Init(const Node& n) {
    for (const Value* v : n.inputs())
      if (v) RETURN_IF_ERROR(CheckFloat(v, "SumSquares"));
    return Status::OK();
  }
  Status Compute(KernelContext& ctx) override {
    ASSIGN_OR_RETURN(Resources * r, Res(ctx));
    int64_t total_blocks = 0;
    for (size_t k = 0; k < ctx.inputs.size(); ++k)
      if (ctx.has_input(k) && ctx.input(k).numel() > 0) total_blocks += Blocks(*r, ctx.input(k).numel());
    double* partial = nullptr;
    if (total_blocks > 0) {
      ASSIGN_OR_RETURN(void* p, r->Scratch(static_cast<size_t>(total_blocks) * sizeof(double)));
      partial = static_cast<double*>(p);
    }
    int64_t at = 0;
    Status s;
    for (size_t k = 0; k < ctx.inputs.size() && s.ok(); ++k) {
      if (!ctx.has_input(k) || ctx.input(k).numel() == 0) continue;
      const TensorView& x = ctx.input(k);
      const int64_t n = x.numel();
      const unsigned blocks = Blocks(*r, n);
      DispatchFloat(x.dtype, [&](auto xt) {
        using X = typename decltype(xt)::type;
        const X* p = x.data<X>();
        if (Aligned4<X>(p)) SumSquaresPartial<true><<<blocks, kSumThreads, 0, r->compute>>>(p, n, partial + at);
        else SumSquaresPartial<false><<<blocks, kSumThreads, 0, r->compute>>>(p, n, partial + at);
        s = [] {
          DSC_CUDA_CHECK_LAUNCH();
          return Status::OK();
        }();
      });
      at += blocks;
    }
    RETURN_IF_ERROR(s);
    SumSquaresFinal<<<1, 1024, 0, r->compute>>>(partial, total_blocks, ctx.output(0).data<float>());
    DSC_CUDA_CHECK_LAUNCH();
    return Status::OK();
  }

 private:
  static unsigned Blocks(const Resources& r, int64_t n) {
    const unsigned g = GridFor(r, (n + 3) / 4, kSumThreads);
    return g < kSumBlocks ? g : kSumBlocks;
  }
};

// ---- ClipScale ----

__global__ void ClipScaleKernel(const float* norm, float max_norm, float* out) {
  out[0] = optim::ClipScale(norm[0], max_norm);
}

class ClipScaleCuda : public OpKernel {
 public:
  Status Init(const Node& n) {
    max_norm_ = n.GetFloat("max_norm", 0.0f);
    return Status::OK();
  }
  Status Compute(KernelContext& ctx) override {
    ASSIGN_OR_RETURN(Resources * r, Res(ctx));
    ClipScaleKernel<<<1, 1, 0, r->compute>>>(ctx.input(0).data<float>(), max_norm_, ctx.output(0).data<float>());
    DSC_CUDA_CHECK_LAUNCH();
    return Status::OK();
  }

 private:
  float max_norm_ = 0;
};

// ---- the optimizer steps ----

// An update's param_copy (ir/dsc_ops.h): element i of the update also goes to ptr[i], i < n,
// rounded to C (ew::F16 or ew::BF16) by the Cast kernel's own conversion. C = NoCopy: none. With
// a copy the element kernel runs on skipped steps too, and then only refreshes it from param.
struct NoCopy {};
template <typename C>
struct CopyOut {
  static constexpr bool kOn = !std::is_same_v<C, NoCopy>;
  C* ptr;
  int64_t n;
  __device__ void Store(int64_t i, float v) const {
    if constexpr (kOn)
      if (i < n) ptr[i] = ew::CastStore<C>(v);
  }
  __device__ void Store4(int64_t i, const float v[4]) const {
#pragma unroll
    for (int k = 0; k < 4; ++k) Store(i + k, v[k]);
  }
};

// Calls fn(Tag<C>{}) with param_copy's element type, Tag<NoCopy> without one; only a float32 param
// P has a copy (ParamCopyNode::Init), so only then are kernels with one instantiated.
template <typename P, typename Fn>
void DispatchCopy(const optim::ParamCopyNode& node, Fn&& fn) {
  if constexpr (std::is_same_v<P, float>) {
    if (node.present) {
      if (node.dtype == DType::kFloat16) fn(Tag<ew::F16>{});
      else fn(Tag<ew::BF16>{});
      return;
    }
  }
  fn(Tag<NoCopy>{});
}

// Where the update's elements go in param_copy; {null, 0} without one.
template <typename C>
StatusOr<CopyOut<C>> CopyOf(KernelContext& ctx, const optim::ParamCopyNode& node, int64_t param_numel, const char* op) {
  if constexpr (!CopyOut<C>::kOn) {
    return CopyOut<C>{nullptr, 0};
  } else {
    const TensorView& copy = ctx.input(node.index);
    ASSIGN_OR_RETURN(const optim::ShardRange r, node.Range(ctx, copy, param_numel, op));
    return CopyOut<C>{static_cast<C*>(copy.ptr) + r.offset, r.len};
  }
}

// A small device buffer a kernel keeps for its step's scalars, allocated on first use.
template <typename T>
class DeviceSlot {
 public:
  ~DeviceSlot() {
    if (p_) cudaFree(p_);  // cudaFree waits for the kernels still reading it
  }
  StatusOr<T*> Get() {
    if (!p_) DSC_CUDA_CHECK(cudaMalloc(&p_, sizeof(T)));
    return static_cast<T*>(p_);
  }

 private:
  void* p_ = nullptr;
};

// What the one-thread prep kernel leaves for the element kernel. `skip`: the skip input was set, or
// step < 1 (which the CPU reports as an error; the device cannot, so it changes nothing and
// records it in `bad_step`).
struct AdamDev {
  optim::AdamScalars c;
  int skip;
  int bad_step;
};

__global__ void AdamPrep(const float* lr, const int64_t* step, const float* beta1, const float* grad_scale,
                         const uint8_t* skip, optim::AdamAttrs a, AdamDev* out) {
  AdamDev d{};
  const int64_t s = *step;
  d.bad_step = s < 1;
  d.skip = (skip && *skip != 0) || d.bad_step;
  if (!d.skip) {
    const double b1 = optim::ShortestDecimal(beta1 ? *beta1 : a.beta1);
    d.c = optim::MakeAdamScalars(optim::ShortestDecimal(*lr), s, b1, a.b2_decimal, *grad_scale, a.weight_decay,
                                 a.wd_decimal, a.eps, a.bias_correction, a.adam_w_mode);
  }
  *out = d;
}

template <typename P, typename G, typename S, typename C>
struct AdamF {
  P* p;
  const G* g;
  S* m;
  S* v;
  const AdamDev* dev;
  CopyOut<C> copy;
  optim::AdamScalars c;  // filled by Ready()
  int skipped;           // filled by Ready()
  __device__ bool Active() const { return CopyOut<C>::kOn || !dev->skip; }
  __device__ AdamF Ready() const {
    AdamF f = *this;
    f.c = dev->c;
    f.skipped = dev->skip;
    return f;
  }
  template <bool kVec> __device__ void Group(int64_t i) const {
    float pv[4], gv[4], mv[4], vv[4];
    Load4<kVec>(p, i, pv);
    if (CopyOut<C>::kOn && skipped) return copy.Store4(i, pv);
    Load4<kVec>(g, i, gv);
    Load4<kVec>(m, i, mv);
    Load4<kVec>(v, i, vv);
#pragma unroll
    for (int k = 0; k < 4; ++k) optim::AdamElement(c, pv[k], gv[k], mv[k], vv[k], &pv[k], &mv[k], &vv[k]);
    Store4<kVec>(m, i, mv);
    Store4<kVec>(v, i, vv);
    Store4<kVec>(p, i, pv);
    copy.Store4(i, pv);
  }
  __device__ void One(int64_t i) const {
    if (CopyOut<C>::kOn && skipped) return copy.Store(i, ToFloat(p[i]));
    float pn, mn, vn;
    optim::AdamElement(c, ToFloat(p[i]), ToFloat(g[i]), ToFloat(m[i]), ToFloat(v[i]), &pn, &mn, &vn);
    m[i] = FromFloat<S>(mn);
    v[i] = FromFloat<S>(vn);
    p[i] = FromFloat<P>(pn);
    copy.Store(i, pn);
  }
};

// (param, grad, exp_avg, exp_avg_sq, lr, step, grad_scale[, beta1_override][, skip][, param_copy])
// in place; param, grad and the states may each be float32, float16 or bfloat16 (states alike).
class AdamStepCuda : public OpKernel {
 public:
  Status Init(const Node& n) { return node_.Init(n, /*int64_step=*/true); }
  Status Compute(KernelContext& ctx) override {
    ASSIGN_OR_RETURN(Resources * r, Res(ctx));
    const TensorView& param = ctx.input(0);
    ASSIGN_OR_RETURN(const optim::ShardRange sr,
                     OptimizerShard(ctx, node_.shard, node_.world_attr, param.numel(), "AdamStep"));
    for (size_t i = 1; i < 4; ++i) RETURN_IF_ERROR(StateSize(ctx.input(i), sr.state, node_.shard, "AdamStep"));
    ASSIGN_OR_RETURN(AdamDev * dev, slot_.Get());
    AdamPrep<<<1, 1, 0, r->compute>>>(ctx.input(4).data<float>(), ctx.input(5).data<int64_t>(),
                                      ctx.has_input(7) ? ctx.input(7).data<float>() : nullptr,
                                      ctx.input(6).data<float>(), SkipPtr(ctx, 8), node_.attrs, dev);
    DSC_CUDA_CHECK_LAUNCH();
    Status s;
    DispatchFloat(node_.param, [&](auto pt) {
      DispatchFloat(node_.grad, [&](auto gt) {
        DispatchFloat(node_.state, [&](auto st) {
          using P = typename decltype(pt)::type;
          using G = typename decltype(gt)::type;
          using S = typename decltype(st)::type;
          DispatchCopy<P>(node_.copy, [&](auto ct) {
            using C = typename decltype(ct)::type;
            StatusOr<CopyOut<C>> copy = CopyOf<C>(ctx, node_.copy, param.numel(), "AdamStep");
            if (!copy.ok()) return void(s = copy.status());
            AdamF<P, G, S, C> f{param.data<P>() + sr.offset, ctx.input(1).data<G>(), ctx.input(2).data<S>(),
                                ctx.input(3).data<S>(), dev, *copy, {}, 0};
            const bool vec = Aligned4<P>(f.p) && Aligned4<G>(f.g) && Aligned4<S>(f.m) && Aligned4<S>(f.v);
            s = LaunchVec4(*r, sr.len, vec, f);
          });
        });
      });
    });
    return s;
  }

 private:
  optim::AdamNode node_;
  DeviceSlot<AdamDev> slot_;
};

struct SgdDev {
  optim::SgdScalars c;
  int skip;
};

__global__ void SgdPrep(const float* lr, const int64_t* step, const float* grad_scale, const uint8_t* skip, optim::SgdAttrs a,
                        SgdDev* out) {
  SgdDev d{};
  d.skip = skip && *skip != 0;
  if (!d.skip) d.c = optim::MakeSgdScalars(*lr, *step, *grad_scale, a.momentum, a.damp_decimal, a.weight_decay, a.nesterov);
  *out = d;
}

template <typename P, typename G, typename B, typename C>
struct SgdF {
  P* p;
  const G* g;
  B* buf;  // null without momentum
  const SgdDev* dev;
  CopyOut<C> copy;
  optim::SgdScalars c;  // filled by Ready()
  int skipped;          // filled by Ready()
  __device__ bool Active() const { return CopyOut<C>::kOn || !dev->skip; }
  __device__ SgdF Ready() const {
    SgdF f = *this;
    f.c = dev->c;
    f.skipped = dev->skip;
    return f;
  }
  template <bool kVec> __device__ void Group(int64_t i) const {
    float pv[4], gv[4], bv[4] = {0.0f, 0.0f, 0.0f, 0.0f};
    Load4<kVec>(p, i, pv);
    if (CopyOut<C>::kOn && skipped) return copy.Store4(i, pv);
    Load4<kVec>(g, i, gv);
    if (c.use_buf && !c.first) Load4<kVec>(buf, i, bv);
#pragma unroll
    for (int k = 0; k < 4; ++k) optim::SgdElement(c, pv[k], gv[k], bv[k], &pv[k], &bv[k]);
    if (c.use_buf) Store4<kVec>(buf, i, bv);
    Store4<kVec>(p, i, pv);
    copy.Store4(i, pv);
  }
  __device__ void One(int64_t i) const {
    if (CopyOut<C>::kOn && skipped) return copy.Store(i, ToFloat(p[i]));
    float pn, bn;
    optim::SgdElement(c, ToFloat(p[i]), ToFloat(g[i]), c.use_buf && !c.first ? ToFloat(buf[i]) : 0.0f, &pn, &bn);
    if (c.use_buf) buf[i] = FromFloat<B>(bn);
    p[i] = FromFloat<P>(pn);
    copy.Store(i, pn);
  }
};

// (param, grad, momentum_buffer?, lr, step, grad_scale[, skip][, param_copy]): torch.optim.SGD in place.
class SGDStepCuda : public OpKernel {
 public:
  Status Init(const Node& n) { return node_.Init(n, /*int64_step=*/true); }
  Status Compute(KernelContext& ctx) override {
    ASSIGN_OR_RETURN(Resources * r, Res(ctx));
    const TensorView& param = ctx.input(0);
    ASSIGN_OR_RETURN(const optim::ShardRange sr,
                     OptimizerShard(ctx, node_.shard, node_.world_attr, param.numel(), "SGDStep"));
    RETURN_IF_ERROR(StateSize(ctx.input(1), sr.state, node_.shard, "SGDStep"));
    const bool use_buf = node_.attrs.momentum != 0.0f;
    if (use_buf) RETURN_IF_ERROR(StateSize(ctx.input(2), sr.state, node_.shard, "SGDStep"));
    ASSIGN_OR_RETURN(SgdDev * dev, slot_.Get());
    SgdPrep<<<1, 1, 0, r->compute>>>(ctx.input(3).data<float>(), ctx.input(4).data<int64_t>(),
                                     ctx.input(5).data<float>(), SkipPtr(ctx, 6), node_.attrs, dev);
    DSC_CUDA_CHECK_LAUNCH();
    Status s;
    DispatchFloat(node_.param, [&](auto pt) {
      DispatchFloat(node_.grad, [&](auto gt) {
        DispatchFloat(node_.buf, [&](auto bt) {
          using P = typename decltype(pt)::type;
          using G = typename decltype(gt)::type;
          using B = typename decltype(bt)::type;
          DispatchCopy<P>(node_.copy, [&](auto ct) {
            using C = typename decltype(ct)::type;
            StatusOr<CopyOut<C>> copy = CopyOf<C>(ctx, node_.copy, param.numel(), "SGDStep");
            if (!copy.ok()) return void(s = copy.status());
            SgdF<P, G, B, C> f{param.data<P>() + sr.offset, ctx.input(1).data<G>(),
                               use_buf ? ctx.input(2).data<B>() : nullptr, dev, *copy, {}, 0};
            const bool vec = Aligned4<P>(f.p) && Aligned4<G>(f.g) && (!f.buf || Aligned4<B>(f.buf));
            s = LaunchVec4(*r, sr.len, vec, f);
          });
        });
      });
    });
    return s;
  }

 private:
  optim::SgdNode node_;
  DeviceSlot<SgdDev> slot_;
};

// OptimStep's prep output. NAdam's mu_product of a constant beta1 lives here between steps (mu_at
// = the step it is for, 0 = none: the slot starts zeroed), advanced on the device as the CPU
// kernel advances its own; with a cycled beta1 it is the node's mu_product input instead.
struct OptimDev {
  optim::OptimScalars c;
  int skip;
  int bad_step;
  int64_t mu_at;
  float mu_product;
};

// `mu_state`: the mu_product input (NAdam with beta1_override), advanced here once per applied step.
__global__ void OptimPrep(const float* lr, const int64_t* step, const float* grad_scale, const uint8_t* skip,
                          const float* beta1, float* mu_state, optim::OptimAttrs a, OptimDev* out) {
  const int64_t s = *step;
  out->bad_step = s < 1;
  out->skip = (skip && *skip != 0) || out->bad_step;
  if (out->skip) return;
  if (beta1) optim::OverrideBeta1(&a, *beta1);
  float mu_product = 1.0f;
  if (mu_state) {
    *mu_state = optim::NadamAdvanceMuProduct(*mu_state, a.beta1_d, a.momentum_decay_d, s);
    mu_product = *mu_state;
  } else if (a.algo == optim::kNAdam) {
    mu_product = optim::NadamMuProduct(a.beta1_d, a.momentum_decay_d, s, &out->mu_at, &out->mu_product);
  }
  out->c = optim::MakeOptimScalars(a, optim::ShortestDecimal(*lr), s, *grad_scale, mu_product);
}

template <typename P, typename G, typename S, typename C>
struct OptimF {
  P* p;
  const G* g;
  S* s[kMaxOptimStates];
  int k;
  const OptimDev* dev;
  CopyOut<C> copy;
  optim::OptimScalars c;  // filled by Ready()
  int skipped;            // filled by Ready()
  __device__ bool Active() const { return CopyOut<C>::kOn || !dev->skip; }
  __device__ OptimF Ready() const {
    OptimF f = *this;
    f.c = dev->c;
    f.skipped = dev->skip;
    return f;
  }
  template <bool kVec> __device__ void Group(int64_t i) const {
    float pv[4], gv[4], sv[kMaxOptimStates][4];
    Load4<kVec>(p, i, pv);
    if (CopyOut<C>::kOn && skipped) return copy.Store4(i, pv);
    Load4<kVec>(g, i, gv);
    for (int j = 0; j < k; ++j) Load4<kVec>(s[j], i, sv[j]);
#pragma unroll
    for (int e = 0; e < 4; ++e) {
      float st[kMaxOptimStates];
      for (int j = 0; j < k; ++j) st[j] = sv[j][e];
      optim::OptimElement(c, pv[e], gv[e], st, &pv[e]);
      for (int j = 0; j < k; ++j) sv[j][e] = st[j];
    }
    for (int j = 0; j < k; ++j) Store4<kVec>(s[j], i, sv[j]);
    Store4<kVec>(p, i, pv);
    copy.Store4(i, pv);
  }
  __device__ void One(int64_t i) const {
    if (CopyOut<C>::kOn && skipped) return copy.Store(i, ToFloat(p[i]));
    float st[kMaxOptimStates], pn;
    for (int j = 0; j < k; ++j) st[j] = ToFloat(s[j][i]);
    optim::OptimElement(c, ToFloat(p[i]), ToFloat(g[i]), st, &pn);
    for (int j = 0; j < k; ++j) s[j][i] = FromFloat<S>(st[j]);
    p[i] = FromFloat<P>(pn);
    copy.Store(i, pn);
  }
};

// (param, grad, state_1..state_k, lr, step, grad_scale[, skip][, beta1_override][, param_copy]
// [, mu_product]) in place, one algorithm of ir/optim_algorithms.h; param, grad and the states (alike) each
// float32, float16 or bfloat16.
class OptimStepCuda : public OpKernel {
 public:
  Status Init(const Node& n) { return node_.Init(n, /*int64_step=*/true); }
  Status Compute(KernelContext& ctx) override {
    ASSIGN_OR_RETURN(Resources * r, Res(ctx));
    const TensorView& param = ctx.input(0);
    ASSIGN_OR_RETURN(const optim::ShardRange sr,
                     OptimizerShard(ctx, node_.shard, node_.world_attr, param.numel(), "OptimStep"));
    const int k = node_.states;
    for (int i = 1; i < k + 2; ++i) RETURN_IF_ERROR(StateSize(ctx.input(i), sr.state, node_.shard, "OptimStep"));
    ASSIGN_OR_RETURN(OptimDev * dev, slot_.Get());
    if (!zeroed_) {
      DSC_CUDA_CHECK(cudaMemsetAsync(dev, 0, sizeof(OptimDev), r->compute));
      zeroed_ = true;
    }
    OptimPrep<<<1, 1, 0, r->compute>>>(ctx.input(node_.lr()).data<float>(), ctx.input(node_.step()).data<int64_t>(),
                                       ctx.input(node_.grad_scale()).data<float>(), SkipPtr(ctx, node_.skip()),
                                       ctx.has_input(node_.beta1()) ? ctx.input(node_.beta1()).data<float>() : nullptr,
                                       node_.has_mu_product ? ctx.input(node_.mu_product()).data<float>() : nullptr,
                                       node_.attrs, dev);
    DSC_CUDA_CHECK_LAUNCH();
    Status s;
    DispatchFloat(node_.param, [&](auto pt) {
      DispatchFloat(node_.grad, [&](auto gt) {
        DispatchFloat(node_.state, [&](auto st) {
          using P = typename decltype(pt)::type;
          using G = typename decltype(gt)::type;
          using S = typename decltype(st)::type;
          DispatchCopy<P>(node_.copy, [&](auto ct) {
            using C = typename decltype(ct)::type;
            StatusOr<CopyOut<C>> copy = CopyOf<C>(ctx, node_.copy, param.numel(), "OptimStep");
            if (!copy.ok()) return void(s = copy.status());
            OptimF<P, G, S, C> f{param.data<P>() + sr.offset, ctx.input(1).data<G>(), {}, k, dev, *copy, {}, 0};
            bool vec = Aligned4<P>(f.p) && Aligned4<G>(f.g);
            for (int j = 0; j < k; ++j) {
              f.s[j] = ctx.input(2 + j).data<S>();
              vec = vec && Aligned4<S>(f.s[j]);
            }
            s = LaunchVec4(*r, sr.len, vec, f);
          });
        });
      });
    });
    return s;
  }

 private:
  optim::OptimNode node_;
  DeviceSlot<OptimDev> slot_;
  bool zeroed_ = false;
};

// ---- Lamb: LambMoments and LambApply (kernels/common/lamb_math.h) ----

// Moments in place; partial[2*block] and [2*block + 1] = this block's sums of p^2 and update^2
// over the first `counted` elements (in double), zeros when skipped.
template <typename P, typename G, typename S>
__global__ void LambMomentsPartial(const P* p, const G* g, S* m, S* v, int64_t n, int64_t counted, optim::LambAttrs a,
                                   const float* grad_scale, const uint8_t* skip, const float* beta1, double* partial) {
  __shared__ double shared[32];
  double ps = 0.0, us = 0.0;
  if (beta1) a.beta1 = *beta1;
  if (!(skip && *skip != 0)) {
    const float gs = *grad_scale;
    for (int64_t i = ThreadIndex(); i < n; i += ThreadCount()) {
      float mn, vn;
      optim::LambMomentsElement(a, ToFloat(g[i]), gs, ToFloat(m[i]), ToFloat(v[i]), &mn, &vn);
      const S ms = FromFloat<S>(mn), vs = FromFloat<S>(vn);
      m[i] = ms;
      v[i] = vs;
      if (i >= counted) continue;
      const float pi = ToFloat(p[i]);
      ps += optim::SquareD(pi);
      us += optim::SquareD(optim::LambUpdate(a, pi, ToFloat(ms), ToFloat(vs)));
    }
  }
  ps = BlockSumD(ps, shared);
  us = BlockSumD(us, shared);
  if (threadIdx.x == 0) {
    partial[2 * blockIdx.x] = ps;
    partial[2 * blockIdx.x + 1] = us;
  }
}

// out[0..1] = float(the sums of the partial pairs), in a fixed order (one block).
__global__ void LambMomentsFinal(const double* partial, int64_t blocks, float* out) {
  __shared__ double shared[32];
  double ps = 0.0, us = 0.0;
  for (int64_t i = threadIdx.x; i < blocks; i += blockDim.x) {
    ps += partial[2 * i];
    us += partial[2 * i + 1];
  }
  ps = BlockSumD(ps, shared);
  us = BlockSumD(us, shared);
  if (threadIdx.x == 0) {
    out[0] = static_cast<float>(ps);
    out[1] = static_cast<float>(us);
  }
}

// (param, grad, exp_avg, exp_avg_sq, grad_scale[, skip][, beta1_override]) -> [sum param^2, sum update^2].
class LambMomentsCuda : public OpKernel {
 public:
  Status Init(const Node& n) { return node_.Init(n); }
  Status Compute(KernelContext& ctx) override {
    ASSIGN_OR_RETURN(Resources * r, Res(ctx));
    if (ctx.output(0).numel() != 2)
      return InvalidArgument("LambMoments: the sums output has ", ctx.output(0).numel(), " elements, not 2");
    const TensorView& param = ctx.input(0);
    ASSIGN_OR_RETURN(const optim::ShardRange sr, node_.Range(ctx, param.numel()));
    for (size_t i = 1; i < 4; ++i) RETURN_IF_ERROR(StateSize(ctx.input(i), sr.state, node_.shard, "LambMoments"));
    const int64_t n = node_.shard ? sr.len : sr.state;
    const unsigned blocks = n > 0 ? std::min<unsigned>(GridFor(*r, n, kSumThreads), kSumBlocks) : 0;
    ASSIGN_OR_RETURN(void* scratch, r->Scratch(static_cast<size_t>(2 * (blocks > 0 ? blocks : 1)) * sizeof(double)));
    double* partial = static_cast<double*>(scratch);
    Status s;
    if (blocks > 0) {
      DispatchFloat(node_.param, [&](auto pt) {
        DispatchFloat(node_.grad, [&](auto gt) {
          DispatchFloat(node_.state, [&](auto st) {
            using P = typename decltype(pt)::type;
            using G = typename decltype(gt)::type;
            using S = typename decltype(st)::type;
            LambMomentsPartial<P, G, S><<<blocks, kSumThreads, 0, r->compute>>>(
                param.data<P>() + sr.offset, ctx.input(1).data<G>(), ctx.input(2).data<S>(), ctx.input(3).data<S>(), n,
                sr.len, node_.attrs, ctx.input(4).data<float>(), SkipPtr(ctx, 5),
                ctx.has_input(6) ? ctx.input(6).data<float>() : nullptr, partial);
            s = [] {
              DSC_CUDA_CHECK_LAUNCH();
              return Status::OK();
            }();
          });
        });
      });
    }
    RETURN_IF_ERROR(s);
    LambMomentsFinal<<<1, 1024, 0, r->compute>>>(partial, blocks, ctx.output(0).data<float>());
    DSC_CUDA_CHECK_LAUNCH();
    return Status::OK();
  }

 private:
  optim::LambMomentsNode node_;
};

struct LambApplyDev {
  float scale;  // step_size * trust ratio
  int skip;     // the skip input, or step < 1 (the CPU's error)
};

__global__ void LambApplyPrep(const float* lr, const int64_t* step, const float* sums, const uint8_t* skip,
                              const float* beta1, optim::LambAttrs a, LambApplyDev* out) {
  LambApplyDev d{};
  const int64_t s = *step;
  if (beta1) a.beta1 = *beta1;
  d.skip = (skip && *skip != 0) || s < 1;
  if (!d.skip) d.scale = optim::LambStepSize(a, *lr, s) * optim::LambCoeff(a, sums[0], sums[1]);
  *out = d;
}

template <typename P, typename S, typename C>
struct LambApplyF {
  P* p;
  const S* m;
  const S* v;
  const LambApplyDev* dev;
  optim::LambAttrs a;
  CopyOut<C> copy;
  float scale;  // filled by Ready()
  int skipped;  // filled by Ready()
  __device__ bool Active() const { return CopyOut<C>::kOn || !dev->skip; }
  __device__ LambApplyF Ready() const {
    LambApplyF f = *this;
    f.scale = dev->scale;
    f.skipped = dev->skip;
    return f;
  }
  template <bool kVec> __device__ void Group(int64_t i) const {
    float pv[4], mv[4], vv[4];
    Load4<kVec>(p, i, pv);
    if (CopyOut<C>::kOn && skipped) return copy.Store4(i, pv);
    Load4<kVec>(m, i, mv);
    Load4<kVec>(v, i, vv);
#pragma unroll
    for (int k = 0; k < 4; ++k) pv[k] = optim::LambApplyElement(a, scale, pv[k], mv[k], vv[k]);
    Store4<kVec>(p, i, pv);
    copy.Store4(i, pv);
  }
  __device__ void One(int64_t i) const {
    if (CopyOut<C>::kOn && skipped) return copy.Store(i, ToFloat(p[i]));
    const float pn = optim::LambApplyElement(a, scale, ToFloat(p[i]), ToFloat(m[i]), ToFloat(v[i]));
    p[i] = FromFloat<P>(pn);
    copy.Store(i, pn);
  }
};

// (param, sums, exp_avg, exp_avg_sq, lr, step[, skip][, beta1_override][, param_copy]): param in place.
class LambApplyCuda : public OpKernel {
 public:
  Status Init(const Node& n) { return node_.Init(n, /*int64_step=*/true); }
  Status Compute(KernelContext& ctx) override {
    ASSIGN_OR_RETURN(Resources * r, Res(ctx));
    const TensorView& param = ctx.input(0);
    ASSIGN_OR_RETURN(const optim::ShardRange sr,
                     OptimizerShard(ctx, node_.shard, node_.world_attr, param.numel(), "LambApply"));
    for (size_t i = 2; i < 4; ++i) RETURN_IF_ERROR(StateSize(ctx.input(i), sr.state, node_.shard, "LambApply"));
    RETURN_IF_ERROR(node_.CheckSums(ctx.input(1)));
    ASSIGN_OR_RETURN(LambApplyDev * dev, slot_.Get());
    LambApplyPrep<<<1, 1, 0, r->compute>>>(ctx.input(4).data<float>(), ctx.input(5).data<int64_t>(),
                                           ctx.input(1).data<float>() + 2 * node_.slot, SkipPtr(ctx, 6),
                                           ctx.has_input(7) ? ctx.input(7).data<float>() : nullptr, node_.attrs, dev);
    DSC_CUDA_CHECK_LAUNCH();
    Status s;
    DispatchFloat(node_.param, [&](auto pt) {
      DispatchFloat(node_.state, [&](auto st) {
        using P = typename decltype(pt)::type;
        using S = typename decltype(st)::type;
        DispatchCopy<P>(node_.copy, [&](auto ct) {
          using C = typename decltype(ct)::type;
          StatusOr<CopyOut<C>> copy = CopyOf<C>(ctx, node_.copy, param.numel(), "LambApply");
          if (!copy.ok()) return void(s = copy.status());
          LambApplyF<P, S, C> f{param.data<P>() + sr.offset, ctx.input(2).data<S>(), ctx.input(3).data<S>(), dev,
                                node_.attrs, *copy, 0.0f, 0};
          const bool vec = Aligned4<P>(f.p) && Aligned4<S>(f.m) && Aligned4<S>(f.v);
          s = LaunchVec4(*r, sr.len, vec, f);
        });
      });
    });
    return s;
  }

 private:
  optim::LambApplyNode node_;
  DeviceSlot<LambApplyDev> slot_;
};

// The dtypes the CPU registers these ops for (kernels/cpu/training_ops.cc).
bool RegisterTrainingOps() {
  KernelRegistry& r = KernelRegistry::Global();
  for (DType t : {DType::kFloat32, DType::kFloat16, DType::kBFloat16}) {
    r.Register(KernelKey{kDscDomain, ops::kAccumulate, DeviceKind::kCuda, t}, MakeFactory<AccumulateCuda>());
    r.Register(KernelKey{kDscDomain, ops::kSumSquares, DeviceKind::kCuda, t}, MakeFactory<SumSquaresCuda>());
    r.Register(KernelKey{kDscDomain, ops::kAdamStep, DeviceKind::kCuda, t}, MakeFactory<AdamStepCuda>());
    r.Register(KernelKey{kDscDomain, ops::kSGDStep, DeviceKind::kCuda, t}, MakeFactory<SGDStepCuda>());
    r.Register(KernelKey{kDscDomain, ops::kOptimStep, DeviceKind::kCuda, t}, MakeFactory<OptimStepCuda>());
    r.Register(KernelKey{kDscDomain, ops::kLambMoments, DeviceKind::kCuda, t}, MakeFactory<LambMomentsCuda>());
    r.Register(KernelKey{kDscDomain, ops::kLambApply, DeviceKind::kCuda, t}, MakeFactory<LambApplyCuda>());
  }
  for (DType t : {DType::kFloat32, DType::kFloat16, DType::kBFloat16, DType::kFloat64})
    r.Register(KernelKey{kDscDomain, ops::kZeroFill, DeviceKind::kCuda, t}, MakeFactory<ZeroFillCuda>());
  for (DType t : {DType::kFloat32, DType::kFloat16, DType::kBFloat16, DType::kFloat64, DType::kInt64, DType::kInt32,
                  DType::kInt8, DType::kUInt8, DType::kBool})
    r.Register(KernelKey{kDscDomain, ops::kAssign, DeviceKind::kCuda, t}, MakeFactory<AssignCuda>());
  return true;
}
[[maybe_unused]] const bool kTrainingOpsRegistered = RegisterTrainingOps();
DSC_REGISTER_KERNEL(kDscDomain, ops::kClipScale, kCuda, kFloat32, MakeFactory<ClipScaleCuda>());

}  // namespace
}  // namespace dsc::cuda
