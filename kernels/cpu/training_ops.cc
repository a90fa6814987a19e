// CPU kernels of the training ops (ir/dsc_ops.h): in-place accumulation, zeroing, copies, the
// global gradient norm, the clip factor, and the Adam/AdamW and SGD updates. Accumulate and
// SumSquares and the updates take any mix of float32/float16/bfloat16 (computed in float, each
// tensor rounded once to its dtype), ZeroFill every float dtype, Assign every dtype.
//
// The element loops follow the formulas of ir/dsc_ops.h in float, with the scalar factors (bias
// corrections, 1 - beta) computed in double as Python does before torch casts them to float, so
// results agree with torch.optim to float rounding. That math lives in
// kernels/common/optimizer_math.h, shared with the CUDA kernels.
#include <algorithm>
#include <cmath>
#include <cstring>

#include "ir/dsc_ops.h"
#include "kernels/common/optimizer_math.h"
#include "kernels/cpu/core_util.h"
#include "kernels/cpu/half_convert.h"
#include "kernels/kernel.h"
#include "runtime/communicator.h"

namespace dsc::cpu {
namespace {

Status SameSize(const TensorView& a, const TensorView& b, const char* what) {
  if (a.numel() != b.numel())
    return InvalidArgument(what, ": ", a.numel(), " elements updated from ", b.numel());
  return Status::OK();
}

float ScalarF(const TensorView& t) { return t.data<float>()[0]; }

using optim::ShortestDecimal;

using optim::ShardRange;

// The part of `param` an optimizer step updates (optim::ShardOf). `world_attr` <= 0: no `world`
// attribute on the node (nothing to check against).
StatusOr<ShardRange> OptimizerShard(const KernelContext& ctx, bool shard, int64_t world_attr, int64_t n,
                                    const char* op) {
  if (!shard) return optim::ShardOf(n, false, 0, 1);
  int64_t rank = 0, world = 1;
  RETURN_IF_ERROR(RankAndWorld(ctx, world_attr, op, &rank, &world));
  return optim::ShardOf(n, true, rank, world);
}

Status StateSize(const TensorView& t, int64_t expected, bool shard, const char* what) {
  if (t.numel() != expected)
    return InvalidArgument(what, ": ", shard ? "shard of " : "", expected, " elements updated from ", t.numel());
  return Status::OK();
}

// The in-place ops need every input they update to be present; Init checks the counts once.
Status NeedInputs(const Node& n, size_t count) {
  for (size_t i = 0; i < count; ++i)
    if (!n.input(i)) return InvalidArgument(n.Describe(), ": input ", i, " is required");
  return Status::OK();
}

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

Status CheckFloat(const Value* v, const char* what) {
  if (!DispatchFloat(v->type.dtype, [](auto) {}))
    return Unimplemented(what, " on ", DTypeName(v->type.dtype), " (float, float16 and bfloat16 are supported)");
  return Status::OK();
}

// acc += X   (acc: any shape, X: same number of elements). acc and X may each be float32, float16
// or bfloat16: the sum is computed in float and rounded once to acc's dtype (a half gradient
// accumulated into an fp32 or half accumulator, as torch's `acc += x` with opmath float).
class AccumulateKernel : public OpKernel {
 public:
  Status Init(const Node& n) {
    RETURN_IF_ERROR(NeedInputs(n, 2));
    RETURN_IF_ERROR(CheckFloat(n.input(0), "Accumulate"));
    RETURN_IF_ERROR(CheckFloat(n.input(1), "Accumulate"));
    acc_ = n.input(0)->type.dtype;
    x_ = n.input(1)->type.dtype;
    return Status::OK();
  }
  Status Compute(KernelContext& ctx) override {
    const TensorView& acc = ctx.input(0);
    RETURN_IF_ERROR(SameSize(acc, ctx.input(1), "Accumulate"));
    void* a = acc.ptr;
    const void* x = ctx.input(1).ptr;
    const int64_t n = acc.numel();
    DispatchFloat(acc_, [&](auto at) {
      DispatchFloat(x_, [&](auto xt) {
        constexpr DType A = decltype(at)::kDType, X = decltype(xt)::kDType;
#pragma omp parallel for if (n >= kParallelMin)
        for (int64_t i = 0; i < n; ++i) StoreF<A>(a, i, optim::AccumulateElement(LoadF<A>(a, i), LoadF<X>(x, i)));
      });
    });
    return Status::OK();
  }

 private:
  DType acc_ = DType::kFloat32, x_ = DType::kFloat32;
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
  Status Init(const Node& n) {
    RETURN_IF_ERROR(NeedInputs(n, 2));
    if (n.input(0)->type.dtype != n.input(1)->type.dtype)
      return InvalidArgument("Assign: dst is ", DTypeName(n.input(0)->type.dtype), " but src is ",
                             DTypeName(n.input(1)->type.dtype));
    element_size_ = DTypeSize(n.input(0)->type.dtype);
    shard_ = n.GetInt("shard", 0) != 0;
    world_attr_ = n.HasAttr("world") ? n.GetInt("world", 1) : -1;
    return Status::OK();
  }
  Status Compute(KernelContext& ctx) override {
    const TensorView& dst = ctx.input(0);
    const TensorView& src = ctx.input(1);
    const int64_t n = dst.numel();
    int64_t begin = 0, len = n;
    if (shard_) {
      int64_t rank = 0, world = 1;
      RETURN_IF_ERROR(RankAndWorld(ctx, world_attr_, "Assign", &rank, &world));
      const int64_t c = ops::ChunkSize(n, world);
      if (src.numel() != c)
        return InvalidArgument("Assign: shard of ", c, " elements (ceil(", n, " / ", world, ")) updated from ",
                               src.numel());
      begin = std::min(n, rank * c);
      len = std::max<int64_t>(0, std::min(n, (rank + 1) * c) - begin);
    } else {
      RETURN_IF_ERROR(SameSize(dst, src, "Assign"));
    }
    char* d = static_cast<char*>(dst.ptr) + static_cast<size_t>(begin) * element_size_;
    const size_t bytes = static_cast<size_t>(len) * element_size_;
    if (bytes > 0 && d != src.ptr) std::memmove(d, src.ptr, bytes);
    return Status::OK();
  }

 private:
  size_t element_size_ = 4;
  bool shard_ = false;
  int64_t world_attr_ = -1;
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

// The optional skip input of AdamStep/SGDStep: a bool scalar; true = change nothing this step.
Status CheckSkip(const Node& n, size_t index, const char* op) {
  const Value* v = n.input(index);
  if (v && (v->type.dtype != DType::kBool))
    return InvalidArgument(op, ": skip (input ", index, ") must be bool, not ", DTypeName(v->type.dtype));
  return Status::OK();
}
bool Skipped(const KernelContext& ctx, size_t index) {
  return ctx.has_input(index) && ctx.input(index).numel() > 0 && ctx.input(index).data<uint8_t>()[0] != 0;
}

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
// tensors this is that kernel.
template <DType P, DType G, DType S>
void AdamLoop(void* p, const void* grad, void* m, void* v, int64_t n, const optim::AdamScalars& c) {
#pragma omp parallel for if (n >= kParallelMin)
  for (int64_t i = 0; i < n; ++i) {
    float pn, mn, vn;
    optim::AdamElement(c, LoadF<P>(p, i), LoadF<G>(grad, i), LoadF<S>(m, i), LoadF<S>(v, i), &pn, &mn, &vn);
    StoreF<S>(m, i, mn);
    StoreF<S>(v, i, vn);
    StoreF<P>(p, i, pn);
  }
}

// The scalar inputs (lr, grad_scale, beta1_override) are float32 scalars.
Status FloatScalar(const Node& n, size_t index, const char* op) {
  const Value* v = n.input(index);
  if (v && v->type.dtype != DType::kFloat32)
    return InvalidArgument(op, ": input ", index, " must be a float scalar, not ", DTypeName(v->type.dtype));
  return Status::OK();
}

char* Offset(void* p, int64_t elements, DType t) {
  return static_cast<char*>(p) + static_cast<size_t>(elements) * DTypeSize(t);
}

// (param, grad, exp_avg, exp_avg_sq, lr, step, grad_scale[, beta1_override][, skip]), all updated
// in place. param, grad and the states (exp_avg and exp_avg_sq alike) may each be float32, float16
// or bfloat16: an fp32 master with bf16 states (bf16_optimizer_states), a half parameter without
// master (amp O3).
class AdamStepKernel : public OpKernel {
 public:
  Status Init(const Node& n) {
    RETURN_IF_ERROR(NeedInputs(n, 7));
    for (size_t i = 0; i < 4; ++i) RETURN_IF_ERROR(CheckFloat(n.input(i), "AdamStep"));
    if (n.input(2)->type.dtype != n.input(3)->type.dtype)
      return InvalidArgument("AdamStep: exp_avg is ", DTypeName(n.input(2)->type.dtype), " but exp_avg_sq is ",
                             DTypeName(n.input(3)->type.dtype));
    for (size_t i : {4, 6, 7}) RETURN_IF_ERROR(FloatScalar(n, i, "AdamStep"));
    param_ = n.input(0)->type.dtype;
    grad_ = n.input(1)->type.dtype;
    state_ = n.input(2)->type.dtype;
    beta1_ = n.GetFloat("beta1", 0.9f);
    beta2_ = n.GetFloat("beta2", 0.999f);
    eps_ = n.GetFloat("epsilon", 1e-8f);
    weight_decay_ = n.GetFloat("weight_decay", 0.0f);
    adam_w_mode_ = n.GetInt("adam_w_mode", 1) != 0;
    bias_correction_ = n.GetInt("bias_correction", 1) != 0;
    shard_ = n.GetInt("shard", 0) != 0;
    world_attr_ = n.HasAttr("world") ? n.GetInt("world", 1) : -1;
    return CheckSkip(n, 8, "AdamStep");
  }
  Status Compute(KernelContext& ctx) override {
    if (Skipped(ctx, 8)) return Status::OK();
    const TensorView& param = ctx.input(0);
    ASSIGN_OR_RETURN(const ShardRange r, OptimizerShard(ctx, shard_, world_attr_, param.numel(), "AdamStep"));
    for (size_t i = 1; i < 4; ++i) RETURN_IF_ERROR(StateSize(ctx.input(i), r.state, shard_, "AdamStep"));
    const double lr = ShortestDecimal(ScalarF(ctx.input(4)));
    const int64_t step = ctx.input(5).data<int64_t>()[0];
    if (step < 1) return InvalidArgument("AdamStep: step must be >= 1 (1-based), got ", step);
    const double b1 = ShortestDecimal(ctx.has_input(7) ? ScalarF(ctx.input(7)) : beta1_);
    const optim::AdamScalars c =
        optim::MakeAdamScalars(lr, step, b1, ShortestDecimal(beta2_), ScalarF(ctx.input(6)), weight_decay_,
                               ShortestDecimal(weight_decay_), eps_, bias_correction_, adam_w_mode_);
    void* p = Offset(param.ptr, r.offset, param_);
    const void* grad = ctx.input(1).ptr;
    void* m = ctx.input(2).ptr;
    void* v = ctx.input(3).ptr;
    DispatchFloat(param_, [&](auto pt) {
      DispatchFloat(grad_, [&](auto gt) {
        DispatchFloat(state_, [&](auto st) {
          AdamLoop<decltype(pt)::kDType, decltype(gt)::kDType, decltype(st)::kDType>(p, grad, m, v, r.len, c);
        });
      });
    });
    return Status::OK();
  }

 private:
  DType param_ = DType::kFloat32, grad_ = DType::kFloat32, state_ = DType::kFloat32;
  float beta1_ = 0.9f, beta2_ = 0.999f, eps_ = 1e-8f, weight_decay_ = 0;
  bool adam_w_mode_ = true, bias_correction_ = true;
  bool shard_ = false;
  int64_t world_attr_ = -1;
};

// torch.optim.SGD per element in float; param and buffer rounded once to their dtypes, the step
// taken with the unrounded buffer value (as the float32 kernel on widened tensors).
template <DType P, DType G, DType B>
void SgdLoop(void* p, const void* grad, void* buf, int64_t n, const optim::SgdScalars& c) {
#pragma omp parallel for if (n >= kParallelMin)
  for (int64_t i = 0; i < n; ++i) {
    const float b = c.use_buf && !c.first ? LoadF<B>(buf, i) : 0.0f;
    float pn, bn;
    optim::SgdElement(c, LoadF<P>(p, i), LoadF<G>(grad, i), b, &pn, &bn);
    if (c.use_buf) StoreF<B>(buf, i, bn);
    StoreF<P>(p, i, pn);
  }
}

// (param, grad, momentum_buffer?, lr, step, grad_scale[, skip]): torch.optim.SGD, in place; param,
// grad and momentum_buffer may each be float32, float16 or bfloat16.
class SGDStepKernel : public OpKernel {
 public:
  Status Init(const Node& n) {
    momentum_ = n.GetFloat("momentum", 0.0f);
    dampening_ = n.GetFloat("dampening", 0.0f);
    nesterov_ = n.GetInt("nesterov", 0) != 0;
    weight_decay_ = n.GetFloat("weight_decay", 0.0f);
    if (!n.input(0) || !n.input(1) || !n.input(3) || !n.input(4) || !n.input(5))
      return InvalidArgument(n.Describe(), ": param, grad, lr, step and grad_scale are required");
    if (momentum_ != 0.0f && !n.input(2))
      return InvalidArgument(n.Describe(), ": momentum ", momentum_, " needs a momentum_buffer input");
    for (size_t i = 0; i < 3; ++i)
      if (n.input(i)) RETURN_IF_ERROR(CheckFloat(n.input(i), "SGDStep"));
    for (size_t i : {3, 5}) RETURN_IF_ERROR(FloatScalar(n, i, "SGDStep"));
    param_ = n.input(0)->type.dtype;
    grad_ = n.input(1)->type.dtype;
    buf_ = n.input(2) ? n.input(2)->type.dtype : param_;
    shard_ = n.GetInt("shard", 0) != 0;
    world_attr_ = n.HasAttr("world") ? n.GetInt("world", 1) : -1;
    return CheckSkip(n, 6, "SGDStep");
  }
  Status Compute(KernelContext& ctx) override {
    if (Skipped(ctx, 6)) return Status::OK();
    const TensorView& param = ctx.input(0);
    ASSIGN_OR_RETURN(const ShardRange r, OptimizerShard(ctx, shard_, world_attr_, param.numel(), "SGDStep"));
    RETURN_IF_ERROR(StateSize(ctx.input(1), r.state, shard_, "SGDStep"));
    if (momentum_ != 0.0f) RETURN_IF_ERROR(StateSize(ctx.input(2), r.state, shard_, "SGDStep"));
    const optim::SgdScalars c =
        optim::MakeSgdScalars(ScalarF(ctx.input(3)), ctx.input(4).data<int64_t>()[0], ScalarF(ctx.input(5)), momentum_,
                              ShortestDecimal(dampening_), weight_decay_, nesterov_);
    void* p = Offset(param.ptr, r.offset, param_);
    const void* grad = ctx.input(1).ptr;
    void* buf = c.use_buf ? ctx.input(2).ptr : nullptr;
    DispatchFloat(param_, [&](auto pt) {
      DispatchFloat(grad_, [&](auto gt) {
        DispatchFloat(buf_, [&](auto bt) {
          SgdLoop<decltype(pt)::kDType, decltype(gt)::kDType, decltype(bt)::kDType>(p, grad, buf, r.len, c);
        });
      });
    });
    return Status::OK();
  }

 private:
  DType param_ = DType::kFloat32, grad_ = DType::kFloat32, buf_ = DType::kFloat32;
  float momentum_ = 0, dampening_ = 0, weight_decay_ = 0;
  bool nesterov_ = false;
  bool shard_ = false;
  int64_t world_attr_ = -1;
};

// Registered for every dtype their first input may have; the kernels read the dtypes themselves.
bool RegisterTrainingOps() {
  KernelRegistry& r = KernelRegistry::Global();
  for (DType t : {DType::kFloat32, DType::kFloat16, DType::kBFloat16}) {
    r.Register(KernelKey{kDscDomain, ops::kAccumulate, DeviceKind::kCpu, t}, MakeFactory<AccumulateKernel>());
    r.Register(KernelKey{kDscDomain, ops::kSumSquares, DeviceKind::kCpu, t}, MakeFactory<SumSquaresKernel>());
    r.Register(KernelKey{kDscDomain, ops::kAdamStep, DeviceKind::kCpu, t}, MakeFactory<AdamStepKernel>());
    r.Register(KernelKey{kDscDomain, ops::kSGDStep, DeviceKind::kCpu, t}, MakeFactory<SGDStepKernel>());
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
