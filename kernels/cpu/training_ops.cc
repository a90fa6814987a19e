// CPU kernels of the training ops (ir/dsc_ops.h): in-place accumulation, zeroing, copies, the
// global gradient norm, the clip factor, and the optimizer updates (Adam/AdamW, SGD, the
// element-wise optimizers of OptimStep, Lamb's LambMoments/LambApply and Muon's
// MuonMomentum/MuonApply, whose Newton-Schulz GEMMs go through the BLAS). Accumulate and
// SumSquares and the updates take any mix of float32/float16/bfloat16 (computed in float, each
// tensor rounded once to its dtype), ZeroFill every float dtype, Assign every dtype. AdamStep,
// SGDStep, OptimStep and LambApply also write a float32 master's half copy (param_copy) in their
// pass over it, as the Cast and Assign the fuse pass folded into them would have.
//
// The element loops follow the formulas of ir/dsc_ops.h in float, with the scalar factors (bias
// corrections, 1 - beta) computed in double as Python does before torch casts them to float, so
// results agree with torch.optim to float rounding. That math lives in
// kernels/common/optimizer_math.h, shared with the CUDA kernels.
#include <cmath>
#include <cstring>
#include <vector>

#include "ir/dsc_ops.h"
#include "kernels/common/muon_math.h"
#include "kernels/common/optimizer_math.h"
#include "kernels/common/training_node.h"
#include "kernels/cpu/blas.h"
#include "kernels/cpu/core_util.h"
#include "kernels/cpu/half_convert.h"
#include "kernels/kernel.h"
#include "runtime/communicator.h"

namespace dsc::cpu {
namespace {

float ScalarF(const TensorView& t) { return t.data<float>()[0]; }

using optim::CheckFloat;
using optim::NeedInputs;
using optim::OptimizerShard;
using optim::ShardRange;
using optim::ShortestDecimal;
using optim::StateSize;

// The float dtypes the accumulation and norm kernels take, as a compile-time tag: float32,
// float16 or bfloat16 storage, read as float and rounded back to nearest even.
template <DType D> struct FloatTag { static constexpr DType kDType = D; };

template <DType D> inline float LoadF(const void* p, int64_t i) {
  if constexpr (D == DType::kFloat32) return static_cast<const float*>(p)[i];
  else if constexpr (D == DType::kFloat16) return half::HalfBitsToFloat(static_cast<const uint16_t*>(p)[i]);
  else return half::BFloat16BitsToFloat(static_cast<const uint16_t*>(p)[i]);
}
template <DType D> inline void StoreF(void* p, int64_t i, float v) {
  if constexpr (D == DType::kFloat32) static_cast<float*>(p)[i] = v;
  else if constexpr (D == DType::kFloat16) static_cast<uint16_t*>(p)[i] = half::FloatToHalfBits(v);
  else static_cast<uint16_t*>(p)[i] = half::FloatToBFloat16Bits(v);
}

// A loop's param_copy (ir/dsc_ops.h): elements 0..n-1 of the update also go, rounded to C as
// Cast rounds them, to ptr[0..n-1]. C = kUndefined: no copy (nothing is instantiated for it).
struct CopyOut {
  void* ptr = nullptr;
  int64_t n = 0;
};
template <DType C> inline void StoreCopy(const CopyOut& copy, int64_t i, float v) {
  if constexpr (C != DType::kUndefined)
    if (i < copy.n) StoreF<C>(copy.ptr, i, v);
}

// Calls fn(FloatTag<t>{}); false for a dtype other than float32/float16/bfloat16.
template <typename Fn>
bool DispatchFloat(DType t, Fn&& fn) {
  switch (t) {
    case DType::kFloat32: fn(FloatTag<DType::kFloat32>{}); return true;
    case DType::kFloat16: fn(FloatTag<DType::kFloat16>{}); return true;
    case DType::kBFloat16: fn(FloatTag<DType::kBFloat16>{}); return true;
    default: return false;
  }
}

char* Offset(void* p, int64_t elements, DType t) {
  return static_cast<char*>(p) + static_cast<size_t>(elements) * DTypeSize(t);
}

// Where an update's param_copy (ir/dsc_ops.h) takes the update's elements; none (n = 0) without one.
StatusOr<CopyOut> CopyOf(KernelContext& ctx, const optim::ParamCopyNode& node, int64_t param_numel, const char* op) {
  if (!node.present) return CopyOut{};
  const TensorView& copy = ctx.input(node.index);
  ASSIGN_OR_RETURN(const ShardRange r, node.Range(ctx, copy, param_numel, op));
  return CopyOut{Offset(copy.ptr, r.offset, node.dtype), r.len};
}

// Calls fn(FloatTag<C>{}) with param_copy's dtype (float16 or bfloat16), FloatTag<kUndefined>
// without one. Only a float32 param P has a copy (ParamCopyNode::Init), so only then are loops
// with one instantiated.
template <DType P, typename Fn>
void DispatchCopy(const optim::ParamCopyNode& node, Fn&& fn) {
  if constexpr (P == DType::kFloat32) {
    if (node.present) {
      if (node.dtype == DType::kFloat16) fn(FloatTag<DType::kFloat16>{});
      else fn(FloatTag<DType::kBFloat16>{});
      return;
    }
  }
  fn(FloatTag<DType::kUndefined>{});
}

// A skipped step leaves param as it is, but the Assign(param_copy, Cast(param)) the copy
// replaces runs all the same: copy[i] = param[i] rounded (param float32, as Init checked).
void RefreshCopy(const optim::ParamCopyNode& node, const void* param, const CopyOut& copy) {
  if (!node.present) return;
  const float* p = static_cast<const float*>(param);
  const int64_t n = copy.n;
  DispatchFloat(node.dtype, [&](auto ct) {
    constexpr DType C = decltype(ct)::kDType;
#pragma omp parallel for if (n >= kParallelMin)
    for (int64_t i = 0; i < n; ++i) StoreF<C>(copy.ptr, i, p[i]);
  });
}

// acc += X   (acc: any shape, X: same number of elements). acc and X may each be float32, float16
// or bfloat16: the sum is computed in float and rounded once to acc's dtype (a half gradient
// accumulated into an fp32 or half accumulator, as torch's `acc += x` with opmath float).
class AccumulateKernel : public OpKernel {
 public:
  Status Init(const Node& n) { return node_.Init(n); }
  Status Compute(KernelContext& ctx) override {
    const TensorView& acc = ctx.input(0);
    RETURN_IF_ERROR(optim::SameSize(acc, ctx.input(1), "Accumulate"));
    void* a = acc.ptr;
    const void* x = ctx.input(1).ptr;
    const int64_t n = acc.numel();
    DispatchFloat(node_.acc, [&](auto at) {
      DispatchFloat(node_.x, [&](auto xt) {
        constexpr DType A = decltype(at)::kDType, X = decltype(xt)::kDType;
#pragma omp parallel for if (n >= kParallelMin)
        for (int64_t i = 0; i < n; ++i) StoreF<A>(a, i, optim::AccumulateElement(LoadF<A>(a, i), LoadF<X>(x, i)));
      });
    });
    return Status::OK();
  }

 private:
  optim::AccumulateNode node_;
};

// T = 0, for every float dtype (all-zero bits are +0 in each).
class ZeroFillKernel : public OpKernel {
 public:
  Status Init(const Node& n) { return NeedInputs(n, 1); }
  Status Compute(KernelContext& ctx) override {
    const TensorView& t = ctx.input(0);
    if (t.nbytes() > 0) std::memset(t.ptr, 0, t.nbytes());
    return Status::OK();
  }
};

// Assign<shard>(dst, src): dst = src, any dtype (dst and src of the same dtype). shard = 1: src is
// this rank's chunk of c = ceil(n / world) elements of the n-element dst, copied to
// dst[rank*c, min(n, (rank+1)*c)) (the padded tail of the last chunk is ignored).
class AssignKernel : public OpKernel {
 public:
  Status Init(const Node& n) { return node_.Init(n); }
  Status Compute(KernelContext& ctx) override {
    const TensorView& dst = ctx.input(0);
    const TensorView& src = ctx.input(1);
    ASSIGN_OR_RETURN(const ShardRange r, node_.Range(ctx, dst, src));
    char* d = static_cast<char*>(dst.ptr) + static_cast<size_t>(r.offset) * node_.element_size;
    const size_t bytes = static_cast<size_t>(r.len) * node_.element_size;
    if (bytes > 0 && d != src.ptr) std::memmove(d, src.ptr, bytes);
    return Status::OK();
  }

 private:
  optim::AssignNode node_;
};

// (X1, ..., Xn) -> float[]: sum of x^2 over all elements, accumulated in double so the norm of
// millions of small gradients does not lose their tail. Inputs may mix float32, float16 and
// bfloat16 (each element widened exactly to double).
class SumSquaresKernel : public OpKernel {
 public:
  Status Init(const Node& n) {
    for (const Value* v : n.inputs())
      if (v) RETURN_IF_ERROR(CheckFloat(v, "SumSquares"));
    return Status::OK();
  }
  Status Compute(KernelContext& ctx) override {
    double total = 0.0;
    for (size_t k = 0; k < ctx.inputs.size(); ++k) {
      if (!ctx.has_input(k)) continue;
      const void* x = ctx.input(k).ptr;
      const int64_t n = ctx.input(k).numel();
      double sum = 0.0;
      DispatchFloat(ctx.input(k).dtype, [&](auto xt) {
        constexpr DType X = decltype(xt)::kDType;
#pragma omp parallel for reduction(+ : sum) if (n >= kParallelMin)
        for (int64_t i = 0; i < n; ++i) sum += optim::SquareD(LoadF<X>(x, i));
      });
      total += sum;
    }
    ctx.output(0).data<float>()[0] = static_cast<float>(total);
    return Status::OK();
  }
};

// norm: float[] -> float[]: min(1, max_norm / (norm + 1e-6)), in float as torch computes it.
class ClipScaleKernel : public OpKernel {
 public:
  Status Init(const Node& n) {
    max_norm_ = n.GetFloat("max_norm", 0.0f);
    return Status::OK();
  }
  Status Compute(KernelContext& ctx) override {
    ctx.output(0).data<float>()[0] = optim::ClipScale(ScalarF(ctx.input(0)), max_norm_);
    return Status::OK();
  }

 private:
  float max_norm_ = 0;
};

// The update of ir/dsc_ops.h per element, in float: param, grad and the states are read as float
// whatever their dtype and the new param/states rounded once to theirs (nearest even). The step
// uses the unrounded new moments, as the float32 kernel on widened tensors would; for all-float32
// tensors this is that kernel. C: param_copy's dtype (StoreCopy).
template <DType P, DType G, DType S, DType C>
void AdamLoop(void* p, const void* grad, void* m, void* v, int64_t n, const optim::AdamScalars& c, const CopyOut& copy) {
#pragma omp parallel for if (n >= kParallelMin)
  for (int64_t i = 0; i < n; ++i) {
    float pn, mn, vn;
    optim::AdamElement(c, LoadF<P>(p, i), LoadF<G>(grad, i), LoadF<S>(m, i), LoadF<S>(v, i), &pn, &mn, &vn);
    StoreF<S>(m, i, mn);
    StoreF<S>(v, i, vn);
    StoreF<P>(p, i, pn);
    StoreCopy<C>(copy, i, pn);
  }
}

// (param, grad, exp_avg, exp_avg_sq, lr, step, grad_scale[, beta1_override][, skip][, param_copy]),
// all updated in place. param, grad and the states (exp_avg and exp_avg_sq alike) may each be
// float32, float16 or bfloat16: an fp32 master with bf16 states (bf16_optimizer_states), a half
// parameter without master (amp O3), a half gradient the fuse pass no longer casts.
class AdamStepKernel : public OpKernel {
 public:
  Status Init(const Node& n) { return node_.Init(n, /*int64_step=*/false); }
  Status Compute(KernelContext& ctx) override {
    const TensorView& param = ctx.input(0);
    ASSIGN_OR_RETURN(const CopyOut copy, CopyOf(ctx, node_.copy, param.numel(), "AdamStep"));
    if (Skipped(ctx, 8)) {
      RefreshCopy(node_.copy, param.ptr, copy);
      return Status::OK();
    }
    ASSIGN_OR_RETURN(const ShardRange r,
                     OptimizerShard(ctx, node_.shard, node_.world_attr, param.numel(), "AdamStep"));
    for (size_t i = 1; i < 4; ++i) RETURN_IF_ERROR(StateSize(ctx.input(i), r.state, node_.shard, "AdamStep"));
    const double lr = ShortestDecimal(ScalarF(ctx.input(4)));
    const int64_t step = ctx.input(5).data<int64_t>()[0];
    if (step < 1) return InvalidArgument("AdamStep: step must be >= 1 (1-based), got ", step);
    const optim::AdamAttrs& a = node_.attrs;
    const double b1 = ShortestDecimal(ctx.has_input(7) ? ScalarF(ctx.input(7)) : a.beta1);
    const optim::AdamScalars c = optim::MakeAdamScalars(lr, step, b1, a.b2_decimal, ScalarF(ctx.input(6)),
                                                        a.weight_decay, a.wd_decimal, a.eps, a.bias_correction,
                                                        a.adam_w_mode);
    void* p = Offset(param.ptr, r.offset, node_.param);
    const void* grad = ctx.input(1).ptr;
    void* m = ctx.input(2).ptr;
    void* v = ctx.input(3).ptr;
    DispatchFloat(node_.param, [&](auto pt) {
      DispatchFloat(node_.grad, [&](auto gt) {
        DispatchFloat(node_.state, [&](auto st) {
          DispatchCopy<decltype(pt)::kDType>(node_.copy, [&](auto ct) {
            AdamLoop<decltype(pt)::kDType, decltype(gt)::kDType, decltype(st)::kDType, decltype(ct)::kDType>(
                p, grad, m, v, r.len, c, copy);
          });
        });
      });
    });
    return Status::OK();
  }

 private:
  optim::AdamNode node_;
};

// torch.optim.SGD per element in float; param and buffer rounded once to their dtypes, the step
// taken with the unrounded buffer value (as the float32 kernel on widened tensors).
template <DType P, DType G, DType B, DType C>
void SgdLoop(void* p, const void* grad, void* buf, int64_t n, const optim::SgdScalars& c, const CopyOut& copy) {
#pragma omp parallel for if (n >= kParallelMin)
  for (int64_t i = 0; i < n; ++i) {
    const float b = c.use_buf && !c.first ? LoadF<B>(buf, i) : 0.0f;
    float pn, bn;
    optim::SgdElement(c, LoadF<P>(p, i), LoadF<G>(grad, i), b, &pn, &bn);
    if (c.use_buf) StoreF<B>(buf, i, bn);
    StoreF<P>(p, i, pn);
    StoreCopy<C>(copy, i, pn);
  }
}

// (param, grad, momentum_buffer?, lr, step, grad_scale[, skip][, param_copy]): torch.optim.SGD, in
// place; param, grad and momentum_buffer may each be float32, float16 or bfloat16.
class SGDStepKernel : public OpKernel {
 public:
  Status Init(const Node& n) { return node_.Init(n, /*int64_step=*/false); }
  Status Compute(KernelContext& ctx) override {
    const TensorView& param = ctx.input(0);
    ASSIGN_OR_RETURN(const CopyOut copy, CopyOf(ctx, node_.copy, param.numel(), "SGDStep"));
    if (Skipped(ctx, 6)) {
      RefreshCopy(node_.copy, param.ptr, copy);
      return Status::OK();
    }
    ASSIGN_OR_RETURN(const ShardRange r,
                     OptimizerShard(ctx, node_.shard, node_.world_attr, param.numel(), "SGDStep"));
    const optim::SgdAttrs& a = node_.attrs;
    RETURN_IF_ERROR(StateSize(ctx.input(1), r.state, node_.shard, "SGDStep"));
    if (a.momentum != 0.0f) RETURN_IF_ERROR(StateSize(ctx.input(2), r.state, node_.shard, "SGDStep"));
    const optim::SgdScalars c =
        optim::MakeSgdScalars(ScalarF(ctx.input(3)), ctx.input(4).data<int64_t>()[0], ScalarF(ctx.input(5)),
                              a.momentum, a.damp_decimal, a.weight_decay, a.nesterov);
    void* p = Offset(param.ptr, r.offset, node_.param);
    const void* grad = ctx.input(1).ptr;
    void* buf = c.use_buf ? ctx.input(2).ptr : nullptr;
    DispatchFloat(node_.param, [&](auto pt) {
      DispatchFloat(node_.grad, [&](auto gt) {
        DispatchFloat(node_.buf, [&](auto bt) {
          DispatchCopy<decltype(pt)::kDType>(node_.copy, [&](auto ct) {
            SgdLoop<decltype(pt)::kDType, decltype(gt)::kDType, decltype(bt)::kDType, decltype(ct)::kDType>(
                p, grad, buf, r.len, c, copy);
          });
        });
      });
    });
    return Status::OK();
  }

 private:
  optim::SgdNode node_;
};

// The element-wise optimizers per element in float (optimizer_math.h's OptimElement); param and
// the states rounded once to their dtypes.
template <DType P, DType G, DType S, DType C>
void OptimLoop(void* p, const void* grad, void* const* states, int k, int64_t n, const optim::OptimScalars& c,
               const CopyOut& copy) {
#pragma omp parallel for if (n >= kParallelMin)
  for (int64_t i = 0; i < n; ++i) {
    float s[kMaxOptimStates];
    for (int j = 0; j < k; ++j) s[j] = LoadF<S>(states[j], i);
    float pn;
    optim::OptimElement(c, LoadF<P>(p, i), LoadF<G>(grad, i), s, &pn);
    for (int j = 0; j < k; ++j) StoreF<S>(states[j], i, s[j]);
    StoreF<P>(p, i, pn);
    StoreCopy<C>(copy, i, pn);
  }
}

// (param, grad, state_1..state_k, lr, step, grad_scale[, skip][, beta1_override][, param_copy]
// [, mu_product]) in place, one algorithm of ir/optim_algorithms.h; param, grad and the states
// (alike) each float32, float16 or bfloat16.
class OptimStepKernel : public OpKernel {
 public:
  Status Init(const Node& n) { return node_.Init(n, /*int64_step=*/false); }
  Status Compute(KernelContext& ctx) override {
    const TensorView& param = ctx.input(0);
    ASSIGN_OR_RETURN(const CopyOut copy, CopyOf(ctx, node_.copy, param.numel(), "OptimStep"));
    if (Skipped(ctx, node_.skip())) {
      RefreshCopy(node_.copy, param.ptr, copy);
      return Status::OK();
    }
    ASSIGN_OR_RETURN(const ShardRange r,
                     OptimizerShard(ctx, node_.shard, node_.world_attr, param.numel(), "OptimStep"));
    const int k = node_.states;
    for (int i = 1; i < k + 2; ++i) RETURN_IF_ERROR(StateSize(ctx.input(i), r.state, node_.shard, "OptimStep"));
    const int64_t step = ctx.input(node_.step()).data<int64_t>()[0];
    if (step < 1) return InvalidArgument("OptimStep: step must be >= 1 (1-based), got ", step);
    optim::OptimAttrs a = node_.attrs;
    if (ctx.has_input(node_.beta1())) optim::OverrideBeta1(&a, ScalarF(ctx.input(node_.beta1())));
    float mu_product = 1.0f;
    if (node_.has_mu_product) {  // a cycled beta1: torch's state, advanced by this step's mu
      float* state = ctx.input(node_.mu_product()).data<float>();
      *state = optim::NadamAdvanceMuProduct(*state, a.beta1_d, a.momentum_decay_d, step);
      mu_product = *state;
    } else if (a.algo == optim::kNAdam) {
      mu_product = optim::NadamMuProduct(a.beta1_d, a.momentum_decay_d, step, &mu_at_, &mu_product_);
    }
    const optim::OptimScalars c = optim::MakeOptimScalars(a, ShortestDecimal(ScalarF(ctx.input(node_.lr()))), step,
                                                          ScalarF(ctx.input(node_.grad_scale())), mu_product);
    void* p = Offset(param.ptr, r.offset, node_.param);
    const void* grad = ctx.input(1).ptr;
    void* states[kMaxOptimStates] = {};
    for (int j = 0; j < k; ++j) states[j] = ctx.input(2 + j).ptr;
    DispatchFloat(node_.param, [&](auto pt) {
      DispatchFloat(node_.grad, [&](auto gt) {
        DispatchFloat(node_.state, [&](auto st) {
          DispatchCopy<decltype(pt)::kDType>(node_.copy, [&](auto ct) {
            OptimLoop<decltype(pt)::kDType, decltype(gt)::kDType, decltype(st)::kDType, decltype(ct)::kDType>(
                p, grad, states, k, r.len, c, copy);
          });
        });
      });
    });
    return Status::OK();
  }

 private:
  optim::OptimNode node_;
  // NAdam's mu_product, advanced step by step (NadamMuProduct): the step it is for, 0 = none.
  int64_t mu_at_ = 0;
  float mu_product_ = 1.0f;
};

// LambMoments per element: the moments rounded once to their dtype, the update computed from the
// stored (rounded) moments as LambApply will recompute it; the first `counted` elements add to
// the sums (in double).
template <DType P, DType G, DType S>
void LambMomentsLoop(const void* p, const void* grad, void* m, void* v, int64_t n, int64_t counted,
                     const optim::LambAttrs& a, float grad_scale, double* p_sumsq, double* u_sumsq) {
  double ps = 0.0, us = 0.0;
#pragma omp parallel for if (n >= kParallelMin) reduction(+ : ps, us)
  for (int64_t i = 0; i < n; ++i) {
    float mn, vn;
    optim::LambMomentsElement(a, LoadF<G>(grad, i), grad_scale, LoadF<S>(m, i), LoadF<S>(v, i), &mn, &vn);
    StoreF<S>(m, i, mn);
    StoreF<S>(v, i, vn);
    if (i >= counted) continue;
    const float pi = LoadF<P>(p, i);
    ps += optim::SquareD(pi);
    us += optim::SquareD(optim::LambUpdate(a, pi, LoadF<S>(m, i), LoadF<S>(v, i)));
  }
  *p_sumsq = ps;
  *u_sumsq = us;
}

// (param, grad, exp_avg, exp_avg_sq, grad_scale[, skip][, beta1_override]) -> [sum param^2, sum update^2]: FusedLamb's
// first half (kernels/common/lamb_math.h); the moments in place, param only read. Skipped: the
// moments stay and the sums are 0.
class LambMomentsKernel : public OpKernel {
 public:
  Status Init(const Node& n) { return node_.Init(n); }
  Status Compute(KernelContext& ctx) override {
    float* sums = ctx.output(0).data<float>();
    if (ctx.output(0).numel() != 2) return InvalidArgument("LambMoments: the sums output has ", ctx.output(0).numel(), " elements, not 2");
    sums[0] = sums[1] = 0.0f;
    if (Skipped(ctx, 5)) return Status::OK();
    const TensorView& param = ctx.input(0);
    ASSIGN_OR_RETURN(const ShardRange r, node_.Range(ctx, param.numel()));
    for (size_t i = 1; i < 4; ++i) RETURN_IF_ERROR(StateSize(ctx.input(i), r.state, node_.shard, "LambMoments"));
    const void* p = Offset(param.ptr, r.offset, node_.param);
    // The padded tail of a chunk keeps its moments up to date too (as OptimStep's), but only
    // the tensor's own elements count in its norms.
    const int64_t n = node_.shard ? r.len : r.state;
    optim::LambAttrs a = node_.attrs;
    if (ctx.has_input(6)) a.beta1 = ScalarF(ctx.input(6));
    double ps = 0.0, us = 0.0;
    DispatchFloat(node_.param, [&](auto pt) {
      DispatchFloat(node_.grad, [&](auto gt) {
        DispatchFloat(node_.state, [&](auto st) {
          LambMomentsLoop<decltype(pt)::kDType, decltype(gt)::kDType, decltype(st)::kDType>(
              p, ctx.input(1).ptr, ctx.input(2).ptr, ctx.input(3).ptr, n, r.len, a, ScalarF(ctx.input(4)), &ps, &us);
        });
      });
    });
    sums[0] = static_cast<float>(ps);
    sums[1] = static_cast<float>(us);
    return Status::OK();
  }

 private:
  optim::LambMomentsNode node_;
};

template <DType P, DType S, DType C>
void LambApplyLoop(void* p, const void* m, const void* v, int64_t n, const optim::LambAttrs& a, float scale,
                   const CopyOut& copy) {
#pragma omp parallel for if (n >= kParallelMin)
  for (int64_t i = 0; i < n; ++i) {
    const float pn = optim::LambApplyElement(a, scale, LoadF<P>(p, i), LoadF<S>(m, i), LoadF<S>(v, i));
    StoreF<P>(p, i, pn);
    StoreCopy<C>(copy, i, pn);
  }
}

// (param, sums, exp_avg, exp_avg_sq, lr, step[, skip][, beta1_override][, param_copy]): FusedLamb's
// second half, param in place.
class LambApplyKernel : public OpKernel {
 public:
  Status Init(const Node& n) { return node_.Init(n, /*int64_step=*/false); }
  Status Compute(KernelContext& ctx) override {
    const TensorView& param = ctx.input(0);
    ASSIGN_OR_RETURN(const CopyOut copy, CopyOf(ctx, node_.copy, param.numel(), "LambApply"));
    if (Skipped(ctx, 6)) {
      RefreshCopy(node_.copy, param.ptr, copy);
      return Status::OK();
    }
    ASSIGN_OR_RETURN(const ShardRange r, OptimizerShard(ctx, node_.shard, node_.world_attr, param.numel(), "LambApply"));
    for (size_t i = 2; i < 4; ++i) RETURN_IF_ERROR(StateSize(ctx.input(i), r.state, node_.shard, "LambApply"));
    RETURN_IF_ERROR(node_.CheckSums(ctx.input(1)));
    const int64_t step = ctx.input(5).data<int64_t>()[0];
    if (step < 1) return InvalidArgument("LambApply: step must be >= 1 (1-based), got ", step);
    const float* sums = ctx.input(1).data<float>() + 2 * node_.slot;
    optim::LambAttrs a = node_.attrs;
    if (ctx.has_input(7)) a.beta1 = ScalarF(ctx.input(7));
    const float scale = optim::LambStepSize(a, ScalarF(ctx.input(4)), step) * optim::LambCoeff(a, sums[0], sums[1]);
    void* p = Offset(param.ptr, r.offset, node_.param);
    DispatchFloat(node_.param, [&](auto pt) {
      DispatchFloat(node_.state, [&](auto st) {
        DispatchCopy<decltype(pt)::kDType>(node_.copy, [&](auto ct) {
          LambApplyLoop<decltype(pt)::kDType, decltype(st)::kDType, decltype(ct)::kDType>(
              p, ctx.input(2).ptr, ctx.input(3).ptr, r.len, a, scale, copy);
        });
      });
    });
    return Status::OK();
  }

 private:
  optim::LambApplyNode node_;
};

// MuonMomentum per element: the momentum rounded once to its dtype, the Nesterov update read from
// the stored momentum (as torch's grad.lerp_(momentum) reads the updated buffer).
template <DType G, DType S>
void MuonMomentumLoop(const void* grad, void* m, float* update, int64_t n, float grad_scale, float beta,
                      float one_minus) {
#pragma omp parallel for if (n >= kParallelMin)
  for (int64_t i = 0; i < n; ++i) {
    const float g = LoadF<G>(grad, i);
    StoreF<S>(m, i, optim::MuonMomentumElement(g, grad_scale, LoadF<S>(m, i), one_minus));
    update[i] = optim::MuonNesterov(g, grad_scale, LoadF<S>(m, i), beta);
  }
}

// (param, grad, momentum_buffer, grad_scale[, skip]) -> update: muon_update's momentum half.
class MuonMomentumKernel : public OpKernel {
 public:
  Status Init(const Node& n) { return node_.Init(n); }
  Status Compute(KernelContext& ctx) override {
    TensorView& update = ctx.output(0);
    const int64_t n = update.numel();
    for (size_t i = 1; i < 3; ++i) RETURN_IF_ERROR(StateSize(ctx.input(i), n, false, "MuonMomentum"));
    float* u = update.data<float>();
    if (Skipped(ctx, 4)) {
      std::memset(u, 0, static_cast<size_t>(n) * sizeof(float));
      return Status::OK();
    }
    const float scale = ScalarF(ctx.input(3));
    DispatchFloat(node_.grad, [&](auto gt) {
      DispatchFloat(node_.state, [&](auto st) {
        MuonMomentumLoop<decltype(gt)::kDType, decltype(st)::kDType>(ctx.input(1).ptr, ctx.input(2).ptr, u, n, scale,
                                                                      node_.beta, node_.one_minus);
      });
    });
    return Status::OK();
  }

 private:
  optim::MuonMomentumNode node_;
};

// The matrix operations of optim::MuonNewtonSchulz on the CPU: OpenBLAS's sgemm, float loops.
struct CpuMuonOps {
  Status Gemm(bool trans_b, int64_t m, int64_t n, int64_t k, float alpha, const float* a, const float* b, float beta,
              float* c) {
    cblas_sgemm(CblasRowMajor, CblasNoTrans, trans_b ? CblasTrans : CblasNoTrans, static_cast<int>(m),
                static_cast<int>(n), static_cast<int>(k), alpha, a, static_cast<int>(k), b,
                static_cast<int>(trans_b ? k : n), beta, c, static_cast<int>(n));
    return Status::OK();
  }
  Status Scale(float* dst, const float* src, float alpha, int64_t count) {
    for (int64_t i = 0; i < count; ++i) dst[i] = alpha * src[i];
    return Status::OK();
  }
  Status AddDiagonal(float* q, float a, int64_t n) {
    for (int64_t i = 0; i < n; ++i) q[i * n + i] += a;
    return Status::OK();
  }
  Status Normalize(float* x, int64_t count) {
    double sum = 0.0;
    for (int64_t i = 0; i < count; ++i) sum += optim::SquareD(x[i]);
    const float denom = static_cast<float>(std::sqrt(sum)) + optim::kMuonNormEps;
    for (int64_t i = 0; i < count; ++i) x[i] /= denom;
    return Status::OK();
  }
};

template <DType P>
void MuonApplyLoop(void* p, const float* o, int64_t n, float lr, float decay) {
#pragma omp parallel for if (n >= kParallelMin)
  for (int64_t i = 0; i < n; ++i) StoreF<P>(p, i, optim::MuonApplyElement(LoadF<P>(p, i), o[i], lr, decay));
}

// (param, update, lr[, skip]): the orthogonalised update of the whole matrix (every rank
// computes it, as DeepSpeed's ZeRO does on the gathered gradient), applied to this op's elements.
class MuonApplyKernel : public OpKernel {
 public:
  Status Init(const Node& n) {
    RETURN_IF_ERROR(node_.Init(n));
    const optim::MuonMatrix& x = node_.matrix;
    for (auto* v : {&x_, &t_}) v->resize(static_cast<size_t>(x.n * x.m));
    for (auto* v : {&r_, &z_, &q_, &w_}) v->resize(static_cast<size_t>(x.n * x.n));
    o_.resize(static_cast<size_t>(x.numel()));
    return Status::OK();
  }
  Status Compute(KernelContext& ctx) override {
    if (Skipped(ctx, 3)) return Status::OK();
    const TensorView& param = ctx.input(0);
    ASSIGN_OR_RETURN(const ShardRange r, node_.Range(ctx, param.numel(), ctx.input(1).numel()));
    const optim::MuonMatrix& x = node_.matrix;
    const float* g = ctx.input(1).data<float>();
    const int64_t size = x.rows * x.cols;
    CpuMuonOps ops;
    for (int64_t b = 0; b < x.batch; ++b) {
      const float* gb = g + b * size;
      // X = G, or G^T when it has more rows than columns.
      for (int64_t i = 0; i < x.rows; ++i)
        for (int64_t j = 0; j < x.cols; ++j)
          x_[static_cast<size_t>(x.transposed ? j * x.m + i : i * x.m + j)] = gb[i * x.cols + j];
      float* res = nullptr;
      RETURN_IF_ERROR(optim::MuonNewtonSchulz(ops, node_.ns, node_.ns_steps, x.n, x.m, x_.data(), t_.data(), r_.data(),
                                              z_.data(), q_.data(), w_.data(), &res));
      float* ob = o_.data() + b * size;
      for (int64_t i = 0; i < x.rows; ++i)
        for (int64_t j = 0; j < x.cols; ++j)
          ob[i * x.cols + j] = res[x.transposed ? j * x.m + i : i * x.m + j] * x.scale;
    }
    const float lr = ScalarF(ctx.input(2));
    const float decay = static_cast<float>(1.0 - ShortestDecimal(lr) * ShortestDecimal(node_.weight_decay));
    void* p = Offset(param.ptr, node_.param_is_chunk() ? 0 : r.offset, node_.param);
    DispatchFloat(node_.param, [&](auto pt) {
      MuonApplyLoop<decltype(pt)::kDType>(p, o_.data() + r.offset, r.len, lr, decay);
    });
    return Status::OK();
  }

 private:
  optim::MuonApplyNode node_;
  std::vector<float> x_, t_, r_, z_, q_, w_, o_;  // Newton-Schulz scratch and the scaled result
};

// Registered for every dtype their first input may have; the kernels read the dtypes themselves.
bool RegisterTrainingOps() {
  KernelRegistry& r = KernelRegistry::Global();
  for (DType t : {DType::kFloat32, DType::kFloat16, DType::kBFloat16}) {
    r.Register(KernelKey{kDscDomain, ops::kAccumulate, DeviceKind::kCpu, t}, MakeFactory<AccumulateKernel>());
    r.Register(KernelKey{kDscDomain, ops::kSumSquares, DeviceKind::kCpu, t}, MakeFactory<SumSquaresKernel>());
    r.Register(KernelKey{kDscDomain, ops::kAdamStep, DeviceKind::kCpu, t}, MakeFactory<AdamStepKernel>());
    r.Register(KernelKey{kDscDomain, ops::kSGDStep, DeviceKind::kCpu, t}, MakeFactory<SGDStepKernel>());
    r.Register(KernelKey{kDscDomain, ops::kOptimStep, DeviceKind::kCpu, t}, MakeFactory<OptimStepKernel>());
    r.Register(KernelKey{kDscDomain, ops::kLambMoments, DeviceKind::kCpu, t}, MakeFactory<LambMomentsKernel>());
    r.Register(KernelKey{kDscDomain, ops::kLambApply, DeviceKind::kCpu, t}, MakeFactory<LambApplyKernel>());
    r.Register(KernelKey{kDscDomain, ops::kMuonMomentum, DeviceKind::kCpu, t}, MakeFactory<MuonMomentumKernel>());
    r.Register(KernelKey{kDscDomain, ops::kMuonApply, DeviceKind::kCpu, t}, MakeFactory<MuonApplyKernel>());
  }
  for (DType t : {DType::kFloat32, DType::kFloat16, DType::kBFloat16, DType::kFloat64})
    r.Register(KernelKey{kDscDomain, ops::kZeroFill, DeviceKind::kCpu, t}, MakeFactory<ZeroFillKernel>());
  for (DType t : kMovementDTypes)
    r.Register(KernelKey{kDscDomain, ops::kAssign, DeviceKind::kCpu, t}, MakeFactory<AssignKernel>());
  return true;
}
[[maybe_unused]] const bool kTrainingOpsRegistered = RegisterTrainingOps();
DSC_REGISTER_KERNEL(kDscDomain, ops::kClipScale, kCpu, kFloat32, MakeFactory<ClipScaleKernel>());

}  // namespace
}  // namespace dsc::cpu
