// CPU kernels of 1-bit Lamb (ir/dsc_ops.h: OnebitLambSnapshot, OnebitLambMomentum, OnebitLambStep;
// the math and what it reproduces of DeepSpeed's OnebitLamb in kernels/common/onebit_lamb_math.h).
// The compressed all-reduce between the momentum and the step is 1-bit Adam's CompressedAllReduce
// (kernels/cpu/onebit.cc). float32 tensors only, with lamb_state float64: 1-bit Lamb runs on
// float32 parameters (dscompile refuses it with fp16/bf16 masters).
#include <cmath>
#include <cstring>
#include <limits>

#include "ir/dsc_ops.h"
#include "kernels/common/onebit_lamb_math.h"
#include "kernels/common/onebit_math.h"
#include "kernels/common/optimizer_math.h"
#include "kernels/common/training_node.h"
#include "kernels/cpu/core_util.h"
#include "kernels/kernel.h"

namespace dsc::cpu {
namespace {

using onebit::OnebitLambScalars;

int64_t StepOf(const KernelContext& ctx, size_t index) { return ctx.input(index).data<int64_t>()[0]; }

// Inputs `floats` are float32 tensors, `state` the float64 lamb_state, `step` the int64 step; the
// inputs before `skip_index` are present.
Status CheckInputs(const Node& n, std::initializer_list<size_t> floats, size_t state, size_t step, size_t skip_index) {
  RETURN_IF_ERROR(optim::NeedInputs(n, skip_index));
  for (size_t i : floats)
    if (n.input(i)->type.dtype != DType::kFloat32)
      return Unimplemented(n.Describe(), ": input ", i, " is ", DTypeName(n.input(i)->type.dtype),
                           "; 1-bit Lamb's kernels take float32 parameters, states and gradients");
  if (n.input(state)->type.dtype != DType::kFloat64)
    return InvalidArgument(n.Describe(), ": lamb_state (input ", state, ") must be float64");
  if (n.input(step)->type.dtype != DType::kInt64)
    return InvalidArgument(n.Describe(), ": step (input ", step, ") must be int64");
  return optim::CheckSkip(n, skip_index, n.op_type().c_str());
}

StatusOr<double*> LambState(const KernelContext& ctx, size_t index, const char* op) {
  if (ctx.input(index).numel() != onebit::kLambStateSize)
    return InvalidArgument(op, ": lamb_state has ", ctx.input(index).numel(), " elements, expected ",
                           onebit::kLambStateSize);
  return ctx.input(index).data<double>();
}

int64_t FreezeStep(const Node& n) { return n.GetInt("freeze_step", 0); }

// ||x|| / sqrt(len) in float, as CompressedAllReduce's scale (torch.linalg.vector_norm(x) /
// np.sqrt(numel), the sum in double).
float MomentumScale(const float* x, int64_t len) {
  double sum = 0.0;
  for (int64_t i = 0; i < len; ++i) sum += static_cast<double>(x[i]) * x[i];
  return static_cast<float>(std::sqrt(sum)) / static_cast<float>(std::sqrt(static_cast<double>(len)));
}

// pow(2).sum().sqrt() of a float32 tensor: the float squares summed in double, then float.
float Norm(double sum_of_squares) { return sqrtf(static_cast<float>(sum_of_squares)); }

// OnebitLambSnapshot(exp_avg, lamb_state, step[, skip]) -> (exp_avg_last, momentum_scale).
class OnebitLambSnapshotKernel : public OpKernel {
 public:
  Status Init(const Node& n) {
    RETURN_IF_ERROR(CheckInputs(n, {0}, 1, 2, 3));
    freeze_step_ = FreezeStep(n);
    if (freeze_step_ < 2) return InvalidArgument(n.Describe(), ": freeze_step must be >= 2, got ", freeze_step_);
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
    RETURN_IF_ERROR(CheckInputs(n, {1, 2, 4}, 3, 5, 7));
    RETURN_IF_ERROR(optim::FloatScalar(n, 6, "OnebitLambMomentum"));
    freeze_step_ = FreezeStep(n);
    if (freeze_step_ < 2) return InvalidArgument(n.Describe(), ": freeze_step must be >= 2, got ", freeze_step_);
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
      double sum = 0.0;
      for (int64_t j = 0; j < scales.numel(); ++j) sum += static_cast<double>(scales.data<float>()[j]);
      const double own = static_cast<double>(scales.data<float>()[slot_]);
      if (own == 0.0)
        return FailedPrecondition("OnebitLambMomentum: the momentum of '", name_, "' is zero at the first compressed "
                                  "step, so its scaling coefficient divides by zero (DeepSpeed's OnebitLamb raises "
                                  "ZeroDivisionError there)");
      state[onebit::kScalingCoeff] = sum / static_cast<double>(scales.numel()) / own;
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
  Status Init(const Node& n) {
    RETURN_IF_ERROR(CheckInputs(n, {0, 1, 2, 3, 4, 6}, 5, 8, 10));
    RETURN_IF_ERROR(optim::FloatScalar(n, 7, "OnebitLambStep"));
    RETURN_IF_ERROR(optim::FloatScalar(n, 9, "OnebitLambStep"));
    freeze_step_ = FreezeStep(n);
    if (freeze_step_ < 2) return InvalidArgument(n.Describe(), ": freeze_step must be >= 2, got ", freeze_step_);
    fresh_step_ = n.GetInt("fresh_step", 0);
    auto attr = [&n](const char* name, float fallback) { return optim::ShortestDecimal(n.GetFloat(name, fallback)); };
    beta1_ = attr("beta1", 0.9f);
    beta2_ = attr("beta2", 0.999f);
    eps_ = attr("epsilon", 1e-8f);
    weight_decay_ = attr("weight_decay", 0.0f);
    max_coeff_ = attr("max_coeff", 10.0f);
    min_coeff_ = attr("min_coeff", 0.01f);
    coeff_beta_ = attr("coeff_beta", 0.9f);
    limits_ = {attr("factor_max", 4.0f), attr("factor_min", 0.5f), attr("factor_threshold", 0.1f)};
    return Status::OK();
  }

  Status Compute(KernelContext& ctx) override {
    const int64_t step = StepOf(ctx, 8);
    if (step < 1) return InvalidArgument("OnebitLambStep: step must be >= 1 (1-based), got ", step);
    if (Skipped(ctx, 10) || step == 1) return Status::OK();
    const int64_t n = ctx.input(0).numel();
    for (size_t i : {1, 2, 3, 4, 6}) RETURN_IF_ERROR(optim::StateSize(ctx.input(i), n, false, "OnebitLambStep"));
    ASSIGN_OR_RETURN(double* state, LambState(ctx, 5, "OnebitLambStep"));
    const double lr = optim::ShortestDecimal(ctx.input(7).data<float>()[0]);
    const OnebitLambScalars c =
        onebit::MakeOnebitLambScalars(beta1_, beta2_, eps_, weight_decay_, ctx.input(9).data<float>()[0]);
    const onebit::OnebitScalars moments =
        onebit::MakeOnebitScalars(beta1_, beta2_, eps_, weight_decay_, lr, ctx.input(9).data<float>()[0]);
    float* p = ctx.input(0).data<float>();
    const float* g = ctx.input(1).data<float>();
    float* m = ctx.input(2).data<float>();
    float* v = ctx.input(3).data<float>();
    float* f = ctx.input(4).data<float>();
    const float* last = ctx.input(6).data<float>();
    double coeff = 1.0;
    if (step <= freeze_step_) {
      // Warm-up: Lamb with the coefficient's moving average (lamb.py:230-255).
      const bool fresh = step == fresh_step_;
      double w_sum = 0.0, u_sum = 0.0;
      for (int64_t i = 0; i < n; ++i) {
        m[i] = onebit::OnebitMoment(m[i], g[i], moments);
        v[i] = onebit::OnebitSecondMoment(v[i], g[i], moments);
        if (fresh) f[i] = v[i];
        const float u = onebit::OnebitLambUpdate(onebit::OnebitLambPrelim(m[i], v[i], c), p[i], c);
        w_sum += static_cast<double>(p[i] * p[i]);
        u_sum += static_cast<double>(u * u);
      }
      coeff = onebit::OnebitLambWarmupCoeff(Norm(w_sum), Norm(u_sum), max_coeff_, min_coeff_);
      if (coeff != 1.0)
        state[onebit::kLambCoeffFreeze] = coeff_beta_ * state[onebit::kLambCoeffFreeze] + (1.0 - coeff_beta_) * coeff;
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
        m[i] = m[i] / sc;
        f[i] = onebit::OnebitLambFresh(f[i], onebit::OnebitLambReconstruct(m[i], last[i], c), c);
        const float denom = sqrtf(v[i]) + c.eps;
        const float prelim = m[i] / denom;
        const float u = onebit::OnebitLambUpdate(prelim, p[i], c);
        u_sum += static_cast<double>(u * u);
        prelim_sum += static_cast<double>(prelim * prelim);
        const float ratio = denom / (sqrtf(f[i]) + c.eps);
        nan |= std::isnan(ratio);
        if (ratio > max_ratio) max_ratio = ratio;
      }
      if (nan) max_ratio = std::numeric_limits<float>::quiet_NaN();  // torch's max propagates NaN
      const double factor =
          onebit::OnebitLambFactor(max_ratio, c.weight_decay > 0.0f, Norm(prelim_sum), Norm(u_sum), limits_, state);
      coeff = state[onebit::kLambCoeffFreeze] * factor;
    }
    const float scale = static_cast<float>(-lr * coeff);
#pragma omp parallel for if (n >= kParallelMin)
    for (int64_t i = 0; i < n; ++i)
      p[i] = p[i] + scale * onebit::OnebitLambUpdate(onebit::OnebitLambPrelim(m[i], v[i], c), p[i], c);
    return Status::OK();
  }

 private:
  int64_t freeze_step_ = 2, fresh_step_ = 0;
  double beta1_ = 0.9, beta2_ = 0.999, eps_ = 1e-8, weight_decay_ = 0.0, max_coeff_ = 10.0, min_coeff_ = 0.01,
         coeff_beta_ = 0.9;
  onebit::FactorLimits limits_{4.0, 0.5, 0.1};
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
