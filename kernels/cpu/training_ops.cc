// CPU kernels of the training ops (ir/dsc_ops.h): in-place accumulation, zeroing, copies, the
// global gradient norm, the clip factor, and the Adam/AdamW and SGD updates, float32.
//
// The element loops follow the formulas of ir/dsc_ops.h in float, with the scalar factors (bias
// corrections, 1 - beta) computed in double as Python does before torch casts them to float, so
// results agree with torch.optim to float rounding.
#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdlib>

#include "ir/dsc_ops.h"
#include "kernels/cpu/core_util.h"
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

// acc += X   (acc: any shape, X: same number of elements)
class AccumulateKernel : public OpKernel {
 public:
  Status Init(const Node& n) { return NeedInputs(n, 2); }
  Status Compute(KernelContext& ctx) override {
    const TensorView& acc = ctx.input(0);
    RETURN_IF_ERROR(SameSize(acc, ctx.input(1), "Accumulate"));
    float* a = acc.data<float>();
    const float* x = ctx.input(1).data<float>();
    const int64_t n = acc.numel();
#pragma omp parallel for if (n >= kParallelMin)
    for (int64_t i = 0; i < n; ++i) a[i] += x[i];
    return Status::OK();
  }
};

// T = 0
class ZeroFillKernel : public OpKernel {
 public:
  Status Init(const Node& n) { return NeedInputs(n, 1); }
  Status Compute(KernelContext& ctx) override {
    const TensorView& t = ctx.input(0);
    float* p = t.data<float>();
    const int64_t n = t.numel();
#pragma omp parallel for if (n >= kParallelMin)
    for (int64_t i = 0; i < n; ++i) p[i] = 0.0f;
    return Status::OK();
  }
};

// dst = src
class AssignKernel : public OpKernel {
 public:
  Status Init(const Node& n) { return NeedInputs(n, 2); }
  Status Compute(KernelContext& ctx) override {
    const TensorView& dst = ctx.input(0);
    RETURN_IF_ERROR(SameSize(dst, ctx.input(1), "Assign"));
    float* d = dst.data<float>();
    const float* s = ctx.input(1).data<float>();
    const int64_t n = dst.numel();
#pragma omp parallel for if (n >= kParallelMin)
    for (int64_t i = 0; i < n; ++i) d[i] = s[i];
    return Status::OK();
  }
};

// (X1, ..., Xn) -> float[]: sum of x^2 over all elements, accumulated in double so the norm of
// millions of small gradients does not lose their tail.
class SumSquaresKernel : public OpKernel {
 public:
  Status Init(const Node&) { return Status::OK(); }
  Status Compute(KernelContext& ctx) override {
    double total = 0.0;
    for (size_t k = 0; k < ctx.inputs.size(); ++k) {
      if (!ctx.has_input(k)) continue;
      const float* x = ctx.input(k).data<float>();
      const int64_t n = ctx.input(k).numel();
      double sum = 0.0;
#pragma omp parallel for reduction(+ : sum) if (n >= kParallelMin)
      for (int64_t i = 0; i < n; ++i) sum += static_cast<double>(x[i]) * x[i];
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
    return Status::OK();
  }
  Status Compute(KernelContext& ctx) override {
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
    return Status::OK();
  }
  Status Compute(KernelContext& ctx) override {
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

DSC_REGISTER_KERNEL(kDscDomain, ops::kAccumulate, kCpu, kFloat32, MakeFactory<AccumulateKernel>());
DSC_REGISTER_KERNEL(kDscDomain, ops::kZeroFill, kCpu, kFloat32, MakeFactory<ZeroFillKernel>());
DSC_REGISTER_KERNEL(kDscDomain, ops::kAssign, kCpu, kFloat32, MakeFactory<AssignKernel>());
DSC_REGISTER_KERNEL(kDscDomain, ops::kSumSquares, kCpu, kFloat32, MakeFactory<SumSquaresKernel>());
DSC_REGISTER_KERNEL(kDscDomain, ops::kClipScale, kCpu, kFloat32, MakeFactory<ClipScaleKernel>());
DSC_REGISTER_KERNEL(kDscDomain, ops::kAdamStep, kCpu, kFloat32, MakeFactory<AdamStepKernel>());
DSC_REGISTER_KERNEL(kDscDomain, ops::kSGDStep, kCpu, kFloat32, MakeFactory<SGDStepKernel>());

}  // namespace
}  // namespace dsc::cpu
