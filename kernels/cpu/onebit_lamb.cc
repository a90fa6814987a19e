// CPU kernels of 1-bit Lamb (ir/dsc_ops.h: OnebitLambSnapshot, OnebitLambMomentum, OnebitLambStep;
// the math and what it reproduces of DeepSpeed's OnebitLamb in kernels/common/onebit_lamb_math.h).
// The compressed all-reduce between the momentum and the step is 1-bit Adam's CompressedAllReduce
// (kernels/cpu/onebit.cc). float32 tensors only, with lamb_state float64: 1-bit Lamb runs on
// float32 parameters (dscompile refuses it with fp16/bf16 masters).
#include <cmath>
#include <cstring>
#include <limits>

#include "ir/dsc_ops.h"
#include "kernels/common/onebit_node.h"
#include "kernels/cpu/core_util.h"
#include "kernels/kernel.h"

namespace dsc::cpu {
namespace {

using onebit::CheckLambInputs;
using onebit::OnebitLambScalars;

int64_t StepOf(const KernelContext& ctx, size_t index) { return ctx.input(index).data<int64_t>()[0]; }

StatusOr<double*> LambState(const KernelContext& ctx, size_t index, const char* op) {
  RETURN_IF_ERROR(onebit::CheckLambState(ctx, index, op));
  return ctx.input(index).data<double>();
}

// CompressedAllReduce's scale of x[0, len) (the sum of squares in double, in element order).
float MomentumScale(const float* x, int64_t len) {
  double sum = 0.0;
  for (int64_t i = 0; i < len; ++i) sum += static_cast<double>(x[i]) * x[i];
  return onebit::OnebitCompressionScale(sum, len);
}

// OnebitLambSnapshot(exp_avg, lamb_state, step[, skip]) -> (exp_avg_last, momentum_scale).
class OnebitLambSnapshotKernel : public OpKernel {
 public:
  Status Init(const Node& n) {
    RETURN_IF_ERROR(CheckLambInputs(n, {0}, 1, 2, 3));
    ASSIGN_OR_RETURN(freeze_step_, onebit::LambFreezeStep(n));
    return Status::OK();
  }
  Status Compute(KernelContext& ctx) override {
    const TensorView& m = ctx.input(0);
    TensorView& last = ctx.output(0);
    TensorView& scale = ctx.output(1);
    RETURN_IF_ERROR(optim::SameSize(last, m, "OnebitLambSnapshot"));
    if (scale.numel() != 1) return InvalidArgument("OnebitLambSnapshot: momentum_scale must have one element");
    ASSIGN_OR_RETURN(const double* state, LambState(ctx, 1, "OnebitLambSnapshot"));
    scale.data<float>()[0] = 0.0f;
    if (Skipped(ctx, 3) || StepOf(ctx, 2) <= freeze_step_) {
      std::memset(last.ptr, 0, last.nbytes());
      return Status::OK();
    }
    std::memcpy(last.ptr, m.ptr, m.nbytes());
    if (state[onebit::kScalingCoeff] == 0.0) scale.data<float>()[0] = MomentumScale(m.data<float>(), m.numel());
    return Status::OK();
  }

 private:
  int64_t freeze_step_ = 2;
};

// OnebitLambMomentum(param, grad, exp_avg, lamb_state, momentum_scales, step, grad_scale[, skip]).
class OnebitLambMomentumKernel : public OpKernel {
 public:
  Status Init(const Node& n) {
    RETURN_IF_ERROR(CheckLambInputs(n, {1, 2, 4}, 3, 5, 7));
    RETURN_IF_ERROR(optim::FloatScalar(n, 6, "OnebitLambMomentum"));
    ASSIGN_OR_RETURN(freeze_step_, onebit::LambFreezeStep(n));
    slot_ = n.GetInt("slot", 0);
    beta1_ = optim::ShortestDecimal(n.GetFloat("beta1", 0.9f));
    name_ = n.input(0)->name();
    return Status::OK();
  }
  Status Compute(KernelContext& ctx) override {
    if (Skipped(ctx, 7) || StepOf(ctx, 5) <= freeze_step_) return Status::OK();
    RETURN_IF_ERROR(optim::SameSize(ctx.input(2), ctx.input(1), "OnebitLambMomentum"));
    ASSIGN_OR_RETURN(double* state, LambState(ctx, 3, "OnebitLambMomentum"));
    if (state[onebit::kScalingCoeff] == 0.0) {
      // The first frozen step: united_scale / this tensor's scale (lamb.py:179-190).
      const TensorView& scales = ctx.input(4);
      if (slot_ >= scales.numel())
        return InvalidArgument("OnebitLambMomentum: slot ", slot_, " outside momentum_scales of ", scales.numel());
      const double coeff = onebit::OnebitLambScalingCoeff(scales.data<float>(), scales.numel(), slot_);
      if (coeff == 0.0)
        return FailedPrecondition("OnebitLambMomentum: the momentum of '", name_, "' is zero at the first compressed "
                                  "step, so its scaling coefficient divides by zero (DeepSpeed's OnebitLamb raises "
                                  "ZeroDivisionError there)");
      state[onebit::kScalingCoeff] = coeff;
    }
    const float scaling = static_cast<float>(state[onebit::kScalingCoeff]);
    const onebit::OnebitScalars c = onebit::MakeOnebitScalars(beta1_, 0.0, 0.0, 0.0, 0.0, ctx.input(6).data<float>()[0]);
    const int64_t n = ctx.input(2).numel();
    const float* g = ctx.input(1).data<float>();
    float* m = ctx.input(2).data<float>();
#pragma omp parallel for if (n >= kParallelMin)
    for (int64_t i = 0; i < n; ++i) m[i] = onebit::OnebitMoment(m[i], g[i], c) * scaling;
    return Status::OK();
  }

 private:
  int64_t freeze_step_ = 2, slot_ = 0;
  double beta1_ = 0.9;
  std::string name_;
};

// OnebitLambStep(param, grad, exp_avg, exp_avg_sq, exp_avg_sq_fresh, lamb_state, exp_avg_last, lr,
// step, grad_scale[, skip]).
class OnebitLambStepKernel : public OpKernel {
 public:
  Status Init(const Node& n) { return node_.Init(n); }

  Status Compute(KernelContext& ctx) override {
    const int64_t step = StepOf(ctx, 8);
    if (step < 1) return InvalidArgument("OnebitLambStep: step must be >= 1 (1-based), got ", step);
    if (Skipped(ctx, 10) || step == 1) return Status::OK();
    const int64_t n = ctx.input(0).numel();
    for (size_t i : {1, 2, 3, 4, 6}) RETURN_IF_ERROR(optim::StateSize(ctx.input(i), n, false, "OnebitLambStep"));
    ASSIGN_OR_RETURN(double* state, LambState(ctx, 5, "OnebitLambStep"));
    const onebit::OnebitLambStepNode& a = node_;
    const double lr = optim::ShortestDecimal(ctx.input(7).data<float>()[0]);
    const OnebitLambScalars c =
        onebit::MakeOnebitLambScalars(a.beta1, a.beta2, a.eps, a.weight_decay, ctx.input(9).data<float>()[0]);
    const onebit::OnebitScalars moments =
        onebit::MakeOnebitScalars(a.beta1, a.beta2, a.eps, a.weight_decay, lr, ctx.input(9).data<float>()[0]);
    float* p = ctx.input(0).data<float>();
    const float* g = ctx.input(1).data<float>();
    float* m = ctx.input(2).data<float>();
    float* v = ctx.input(3).data<float>();
    float* f = ctx.input(4).data<float>();
    const float* last = ctx.input(6).data<float>();
    double coeff = 1.0;
    if (step <= a.freeze_step) {
      // Warm-up: Lamb with the coefficient's moving average (lamb.py:230-255).
      const bool fresh = step == a.fresh_step;
      double w_sum = 0.0, u_sum = 0.0;
      for (int64_t i = 0; i < n; ++i) {
        const float u = onebit::OnebitLambWarmupElement(p[i], g[i], &m[i], &v[i], &f[i], fresh, moments, c);
        w_sum += static_cast<double>(p[i] * p[i]);
        u_sum += static_cast<double>(u * u);
      }
      coeff = onebit::OnebitLambWarmupFinish(onebit::OnebitLambNorm(w_sum), onebit::OnebitLambNorm(u_sum), a.max_coeff,
                                             a.min_coeff, a.coeff_beta, state);
    } else {
      // Frozen: the compressed momentum unscaled, the fresh second moment, the factor (lamb.py:318-370).
      const double scaling = state[onebit::kScalingCoeff];
      if (scaling == 0.0)
        return FailedPrecondition("OnebitLambStep: scaling_coeff is unset after the freeze (OnebitLambMomentum sets it)");
      const float sc = static_cast<float>(scaling);
      double u_sum = 0.0, prelim_sum = 0.0;
      float max_ratio = -std::numeric_limits<float>::infinity();
      bool nan = false;
      for (int64_t i = 0; i < n; ++i) {
        const onebit::OnebitLambFrozen e = onebit::OnebitLambFrozenElement(p[i], &m[i], &f[i], v[i], last[i], sc, c);
        u_sum += static_cast<double>(e.update * e.update);
        prelim_sum += static_cast<double>(e.prelim * e.prelim);
        nan |= std::isnan(e.ratio);
        if (e.ratio > max_ratio) max_ratio = e.ratio;
      }
      if (nan) max_ratio = std::numeric_limits<float>::quiet_NaN();  // torch's max propagates NaN
      const double factor = onebit::OnebitLambFactor(max_ratio, c.weight_decay > 0.0f,
                                                     onebit::OnebitLambNorm(prelim_sum), onebit::OnebitLambNorm(u_sum),
                                                     a.limits, state);
      coeff = state[onebit::kLambCoeffFreeze] * factor;
    }
    const float scale = static_cast<float>(-lr * coeff);
#pragma omp parallel for if (n >= kParallelMin)
    for (int64_t i = 0; i < n; ++i) p[i] = onebit::OnebitLambApply(p[i], m[i], v[i], scale, c);
    return Status::OK();
  }

 private:
  onebit::OnebitLambStepNode node_;
};

bool RegisterOnebitLamb() {
  KernelRegistry& r = KernelRegistry::Global();
  r.Register(KernelKey{kDscDomain, ops::kOnebitLambSnapshot, DeviceKind::kCpu, DType::kFloat32},
             MakeFactory<OnebitLambSnapshotKernel>());
  r.Register(KernelKey{kDscDomain, ops::kOnebitLambMomentum, DeviceKind::kCpu, DType::kFloat32},
             MakeFactory<OnebitLambMomentumKernel>());
  r.Register(KernelKey{kDscDomain, ops::kOnebitLambStep, DeviceKind::kCpu, DType::kFloat32},
             MakeFactory<OnebitLambStepKernel>());
  return true;
}
[[maybe_unused]] const bool kOnebitLambRegistered = RegisterOnebitLamb();

}  // namespace
}  // namespace dsc::cpu
