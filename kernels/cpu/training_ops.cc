// CPU kernels of the training ops (ir/dsc_ops.h): in-place accumulation, zeroing, copies, the
// global gradient norm, the clip factor, and the Adam/AdamW and SGD updates. Accumulate and
// SumSquares take any mix of float32/float16/bfloat16, ZeroFill every float dtype, Assign every
// dtype; the updates are float32 (half states run through the half adaptor, kernels/cpu/half_adaptor.cc).
//
// The element loops follow the formulas of ir/dsc_ops.h in float, with the scalar factors (bias
// corrections, 1 - beta) computed in double as Python does before torch casts them to float, so
// results agree with torch.optim to float rounding.
#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdlib>
#include <cstring>

#include "ir/dsc_ops.h"
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

// The double a float attribute was written as (0.999f -> 0.999): its shortest round-trip decimal.
// Attributes are float in ONNX, but torch computes 1 - beta2 from the Python double; from the
// float, 1 - 0.999f is off by 1.3e-5 relative, which shows in exp_avg_sq.
double Decimal(float f) {
  char buf[32];
  auto [end, ec] = std::to_chars(buf, buf + sizeof(buf) - 1, f);
  if (ec != std::errc()) return f;
  *end = '\0';
  return std::strtod(buf, nullptr);
}

// The part of `param` an optimizer step updates. shard = 0: all of it, from grad/state of the same
// size. shard = 1 (ZeRO 1-2): grad/state hold this rank's chunk of c = ceil(n / world) elements and
// the step updates param[rank*c, min(n, (rank+1)*c)) from their first elements.
struct ShardRange {
  int64_t offset = 0;  // first param element updated
  int64_t len = 0;     // elements updated
  int64_t state = 0;   // elements grad/state tensors must hold
};

// `world_attr` <= 0: no `world` attribute on the node (nothing to check against).
StatusOr<ShardRange> OptimizerShard(const KernelContext& ctx, bool shard, int64_t world_attr, int64_t n,
                                    const char* op) {
  if (!shard) return ShardRange{0, n, n};
  int64_t rank = 0, world = 1;
  RETURN_IF_ERROR(RankAndWorld(ctx, world_attr, op, &rank, &world));
  const int64_t c = ops::ChunkSize(n, world);
  const int64_t begin = std::min(n, rank * c);
  return ShardRange{begin, std::max<int64_t>(0, std::min(n, (rank + 1) * c) - begin), c};
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
        for (int64_t i = 0; i < n; ++i) StoreF<A>(a, i, LoadF<A>(a, i) + LoadF<X>(x, i));
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
        for (int64_t i = 0; i < n; ++i) {
          const double v = LoadF<X>(x, i);
          sum += v * v;
        }
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
    float scale = 1.0f;
    if (max_norm_ > 0) {
      float coef = max_norm_ / (ScalarF(ctx.input(0)) + 1e-6f);
      // A NaN/inf norm gives a NaN coefficient; torch multiplies by it too (the step is ruined
      // either way and the overflow check, not clipping, is what guards against it).
      scale = coef < 1.0f || std::isnan(coef) ? coef : 1.0f;
    }
    ctx.output(0).data<float>()[0] = scale;
    return Status::OK();
  }

 private:
  float max_norm_ = 0;
};

// (param, grad, exp_avg, exp_avg_sq, lr, step, grad_scale[, beta1_override]), all updated in place.
class AdamStepKernel : public OpKernel {
 public:
  Status Init(const Node& n) {
    RETURN_IF_ERROR(NeedInputs(n, 7));
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
    const double lr = Decimal(ScalarF(ctx.input(4)));
    const int64_t step = ctx.input(5).data<int64_t>()[0];
    if (step < 1) return InvalidArgument("AdamStep: step must be >= 1 (1-based), got ", step);
    const float grad_scale = ScalarF(ctx.input(6));
    const double b1 = Decimal(ctx.has_input(7) ? ScalarF(ctx.input(7)) : beta1_);
    const double b2 = Decimal(beta2_);
    const double bc1 = bias_correction_ ? 1.0 - std::pow(b1, static_cast<double>(step)) : 1.0;
    const double bc2 = bias_correction_ ? 1.0 - std::pow(b2, static_cast<double>(step)) : 1.0;
    const float fb1 = static_cast<float>(b1), f1mb1 = static_cast<float>(1.0 - b1);
    const float fb2 = static_cast<float>(b2), f1mb2 = static_cast<float>(1.0 - b2);
    const float step_size = static_cast<float>(lr / bc1);
    const float bc2_sqrt = static_cast<float>(std::sqrt(bc2));
    const float keep = static_cast<float>(1.0 - lr * Decimal(weight_decay_));  // AdamW: param *= 1 - lr*wd
    const float wd = weight_decay_, eps = eps_;
    const bool l2 = !adam_w_mode_ && wd != 0.0f;
    float* p = param.data<float>() + r.offset;
    const float* grad = ctx.input(1).data<float>();
    float* m = ctx.input(2).data<float>();
    float* v = ctx.input(3).data<float>();
    const int64_t n = r.len;
    const bool decoupled = adam_w_mode_ && wd != 0.0f;
#pragma omp parallel for if (n >= kParallelMin)
    for (int64_t i = 0; i < n; ++i) {
      float g = grad[i] * grad_scale;
      if (l2) g += wd * p[i];
      m[i] = m[i] * fb1 + f1mb1 * g;
      v[i] = v[i] * fb2 + f1mb2 * (g * g);
      const float denom = std::sqrt(v[i]) / bc2_sqrt + eps;
      float x = p[i];
      if (decoupled) x *= keep;
      p[i] = x - step_size * (m[i] / denom);
    }
    return Status::OK();
  }

 private:
  float beta1_ = 0.9f, beta2_ = 0.999f, eps_ = 1e-8f, weight_decay_ = 0;
  bool adam_w_mode_ = true, bias_correction_ = true;
  bool shard_ = false;
  int64_t world_attr_ = -1;
};

// (param, grad, momentum_buffer?, lr, step, grad_scale): torch.optim.SGD, in place.
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
    shard_ = n.GetInt("shard", 0) != 0;
    world_attr_ = n.HasAttr("world") ? n.GetInt("world", 1) : -1;
    return CheckSkip(n, 6, "SGDStep");
  }
  Status Compute(KernelContext& ctx) override {
    if (Skipped(ctx, 6)) return Status::OK();
    const TensorView& param = ctx.input(0);
    ASSIGN_OR_RETURN(const ShardRange r, OptimizerShard(ctx, shard_, world_attr_, param.numel(), "SGDStep"));
    RETURN_IF_ERROR(StateSize(ctx.input(1), r.state, shard_, "SGDStep"));
    const bool use_buf = momentum_ != 0.0f;
    if (use_buf) RETURN_IF_ERROR(StateSize(ctx.input(2), r.state, shard_, "SGDStep"));
    const float lr = ScalarF(ctx.input(3));
    const int64_t step = ctx.input(4).data<int64_t>()[0];
    const float grad_scale = ScalarF(ctx.input(5));
    const bool first = step <= 1;
    const float mom = momentum_, damp = static_cast<float>(1.0 - Decimal(dampening_));
    const float wd = weight_decay_;
    const bool nesterov = nesterov_;
    float* p = param.data<float>() + r.offset;
    const float* grad = ctx.input(1).data<float>();
    float* buf = use_buf ? ctx.input(2).data<float>() : nullptr;
    const int64_t n = r.len;
#pragma omp parallel for if (n >= kParallelMin)
    for (int64_t i = 0; i < n; ++i) {
      float d = grad[i] * grad_scale;
      if (wd != 0.0f) d += wd * p[i];
      if (use_buf) {
        buf[i] = first ? d : buf[i] * mom + damp * d;
        d = nesterov ? d + mom * buf[i] : buf[i];
      }
      p[i] -= lr * d;
    }
    return Status::OK();
  }

 private:
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
  }
  for (DType t : {DType::kFloat32, DType::kFloat16, DType::kBFloat16, DType::kFloat64})
    r.Register(KernelKey{kDscDomain, ops::kZeroFill, DeviceKind::kCpu, t}, MakeFactory<ZeroFillKernel>());
  for (DType t : kMovementDTypes)
    r.Register(KernelKey{kDscDomain, ops::kAssign, DeviceKind::kCpu, t}, MakeFactory<AssignKernel>());
  return true;
}
[[maybe_unused]] const bool kTrainingOpsRegistered = RegisterTrainingOps();
DSC_REGISTER_KERNEL(kDscDomain, ops::kClipScale, kCpu, kFloat32, MakeFactory<ClipScaleKernel>());
DSC_REGISTER_KERNEL(kDscDomain, ops::kAdamStep, kCpu, kFloat32, MakeFactory<AdamStepKernel>());
DSC_REGISTER_KERNEL(kDscDomain, ops::kSGDStep, kCpu, kFloat32, MakeFactory<SGDStepKernel>());

}  // namespace
}  // namespace dsc::cpu
