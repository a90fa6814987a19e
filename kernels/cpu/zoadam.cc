// CPU kernels of 0/1 Adam (ir/dsc_ops.h: ZoadamStep, ZoadamPhase, ZoadamApply).
// The communication is CompressedAllReduce's (kernels/cpu/onebit.cc), gated by ZoadamPhase.
// float32 only, as 1-bit Adam's: DeepSpeed's optimizer sees float32 tensors (lrs is float64, the
// Python float DeepSpeed sums the learning rates in).
#include <cmath>
#include <cstring>

#include "ir/dsc_ops.h"
#include "kernels/common/optimizer_math.h"
#include "kernels/common/training_node.h"
#include "kernels/common/zoadam_math.h"
#include "kernels/cpu/core_util.h"
#include "kernels/kernel.h"

namespace dsc::cpu {
namespace {

using zoadam::ZoadamScalars;
using zoadam::ZoadamSchedule;

int64_t StepOf(const KernelContext& ctx, size_t index) { return ctx.input(index).data<int64_t>()[0]; }

// Inputs [from, to) are float32 tensors (those that are present).
Status NeedFloat32(const Node& n, std::initializer_list<size_t> inputs) {
  for (size_t i : inputs)
    if (n.input(i) && n.input(i)->type.dtype != DType::kFloat32)
      return Unimplemented(n.Describe(), ": input ", i, " is ", DTypeName(n.input(i)->type.dtype),
                           "; 0/1 Adam's kernels take float32 parameters, states and gradients");
  return Status::OK();
}

// The attributes every 0/1 Adam op reads, and its step and skip inputs' checks.
struct ZoadamNode {
  Status Init(const Node& n, size_t step, size_t skip_index) {
    RETURN_IF_ERROR(optim::NeedInputs(n, skip_index));
    if (n.input(step)->type.dtype != DType::kInt64)
      return InvalidArgument(n.Describe(), ": step (input ", step, ") must be int64");
    RETURN_IF_ERROR(optim::CheckSkip(n, skip_index, n.op_type().c_str()));
    schedule = ZoadamSchedule{n.GetInt("last_var_step", 0), n.GetInt("var_update_scaler", 0),
                              n.GetInt("local_step_scaler", 0), n.GetInt("local_step_clipper", 0)};
    if (schedule.last_var_step < 2 || schedule.var_update_scaler < 1 || schedule.local_step_scaler < 1 ||
        schedule.local_step_clipper < 1)
      return InvalidArgument(n.Describe(), ": needs last_var_step >= 2 and var_update_scaler, local_step_scaler, "
                             "local_step_clipper >= 1");
    world = n.GetInt("world", 1);
    beta1 = optim::ShortestDecimal(n.GetFloat("beta1", 0.9f));
    beta2 = optim::ShortestDecimal(n.GetFloat("beta2", 0.999f));
    eps = optim::ShortestDecimal(n.GetFloat("epsilon", 1e-8f));
    weight_decay = optim::ShortestDecimal(n.GetFloat("weight_decay", 0.0f));
    return Status::OK();
  }
  ZoadamScalars Scalars(double lr, float grad_scale) const {
    return zoadam::MakeZoadamScalars(beta1, beta2, eps, weight_decay, lr, grad_scale);
  }
  ZoadamSchedule schedule{2, 1, 1, 1};
  int64_t world = 1;
  double beta1 = 0.9, beta2 = 0.999, eps = 1e-8, weight_decay = 0.0;
};

Status NeedLrs(const Node& n, size_t index) {
  if (n.input(index)->type.dtype != DType::kFloat64)
    return InvalidArgument(n.Describe(), ": lrs (input ", index, ") must be float64");
  return Status::OK();
}

// ZoadamStep(param, grad, exp_avg, exp_avg_sq, accumulator, lrs, lr, step, grad_scale[, skip]).
class ZoadamStepKernel : public OpKernel {
 public:
  Status Init(const Node& n) {
    RETURN_IF_ERROR(node_.Init(n, 7, 9));
    RETURN_IF_ERROR(NeedFloat32(n, {0, 1, 2, 3, 4}));
    RETURN_IF_ERROR(NeedLrs(n, 5));
    RETURN_IF_ERROR(optim::FloatScalar(n, 6, "ZoadamStep"));
    return optim::FloatScalar(n, 8, "ZoadamStep");
  }
  Status Compute(KernelContext& ctx) override {
    const int64_t step = StepOf(ctx, 7);
    if (step < 1) return InvalidArgument("ZoadamStep: step must be >= 1 (1-based), got ", step);
    if (Skipped(ctx, 9) || step == 1) return Status::OK();
    const int64_t n = ctx.input(0).numel();
    for (size_t i = 1; i < 5; ++i) RETURN_IF_ERROR(optim::StateSize(ctx.input(i), n, false, "ZoadamStep"));
    const double lr = optim::ShortestDecimal(ctx.input(6).data<float>()[0]);
    const ZoadamScalars c = node_.Scalars(lr, ctx.input(8).data<float>()[0]);
    const ZoadamSchedule& s = node_.schedule;
    const bool frozen = s.Frozen(step), variance = !frozen && s.VarianceStep(step);
    const bool compressed = !frozen && !variance && node_.world > 1, sync = s.SyncStep(step);
    if (frozen) ctx.input(5).data<double>()[0] += lr;  // state['lrs'] += group['lr']
    float* p = ctx.input(0).data<float>();
    const float* grad = ctx.input(1).data<float>();
    float* m = ctx.input(2).data<float>();
    float* v = ctx.input(3).data<float>();
    float* u = ctx.input(4).data<float>();
#pragma omp parallel for if (n >= kParallelMin)
    for (int64_t i = 0; i < n; ++i) {
      const float g = grad[i] * c.grad_scale;
      if (compressed) {  // the rank's own gradient, for CompressedAllReduce and ZoadamApply
        u[i] = g;
        continue;
      }
      if (variance) {
        v[i] = zoadam::ZoadamSecondMoment(v[i], g, c);
        m[i] = zoadam::ZoadamMoment(m[i], g, c);
      } else if (frozen) {
        m[i] = zoadam::ZoadamMoment(m[i], g, c);
      }
      const float d = zoadam::ZoadamDelta(p[i], m[i], v[i], c);
      p[i] += d;
      if (frozen) {
        u[i] += d;
        if (sync) {
          p[i] += -u[i];
          u[i] *= sqrtf(v[i]) + c.eps;
        }
      }
    }
    return Status::OK();
  }

 private:
  ZoadamNode node_;
};

// ZoadamPhase(worker_error, server_error, step[, skip]) -> compress_skip.
class ZoadamPhaseKernel : public OpKernel {
 public:
  Status Init(const Node& n) {
    RETURN_IF_ERROR(node_.Init(n, 2, 3));
    RETURN_IF_ERROR(NeedFloat32(n, {0, 1}));
    if (n.output(0)->type.dtype != DType::kBool) return InvalidArgument(n.Describe(), ": output 0 must be bool");
    return Status::OK();
  }
  Status Compute(KernelContext& ctx) override {
    const int64_t step = StepOf(ctx, 2);
    const bool skip = Skipped(ctx, 3);
    if (!skip && step == node_.schedule.last_var_step + 1)
      for (size_t i = 0; i < 2; ++i)
        std::memset(ctx.input(i).data<float>(), 0, static_cast<size_t>(ctx.input(i).numel()) * sizeof(float));
    ctx.output(0).data<uint8_t>()[0] = skip || !node_.schedule.CompressedStep(step) ? 1 : 0;
    return Status::OK();
  }

 private:
  ZoadamNode node_;
};

// ZoadamApply(param, accumulator, exp_avg, exp_avg_sq, lrs, lr, step[, skip]): after the compressed
// all-reduce of the accumulator u.
class ZoadamApplyKernel : public OpKernel {
 public:
  Status Init(const Node& n) {
    RETURN_IF_ERROR(node_.Init(n, 6, 7));
    RETURN_IF_ERROR(NeedFloat32(n, {0, 1, 2, 3}));
    RETURN_IF_ERROR(NeedLrs(n, 4));
    return optim::FloatScalar(n, 5, "ZoadamApply");
  }
  Status Compute(KernelContext& ctx) override {
    const int64_t step = StepOf(ctx, 6);
    const ZoadamSchedule& s = node_.schedule;
    if (Skipped(ctx, 7) || step < 2) return Status::OK();
    const bool frozen = s.Frozen(step);
    const bool gradient = !frozen && !s.VarianceStep(step) && node_.world > 1;
    if (!gradient && !s.SyncStep(step)) return Status::OK();
    const int64_t n = ctx.input(0).numel();
    for (size_t i = 1; i < 4; ++i) RETURN_IF_ERROR(optim::StateSize(ctx.input(i), n, false, "ZoadamApply"));
    const ZoadamScalars c = node_.Scalars(optim::ShortestDecimal(ctx.input(5).data<float>()[0]), 1.0f);
    double* lrs = ctx.input(4).data<double>();
    // comm_buffer / state['lrs']: a tensor divided by a Python float, in float32.
    const float lr_sum = static_cast<float>(lrs[0]);
    float* p = ctx.input(0).data<float>();
    float* u = ctx.input(1).data<float>();
    float* m = ctx.input(2).data<float>();
    const float* v = ctx.input(3).data<float>();
#pragma omp parallel for if (n >= kParallelMin)
    for (int64_t i = 0; i < n; ++i) {
      if (gradient) {  // u: the compressed average of the ranks' gradients
        m[i] = zoadam::ZoadamMoment(m[i], u[i], c);
        p[i] += zoadam::ZoadamDelta(p[i], m[i], v[i], c);
      } else {  // u: the compressed average of the ranks' scaled momentum accumulators
        m[i] = -(u[i] / lr_sum);
        p[i] += u[i] / (sqrtf(v[i]) + c.eps);
      }
      u[i] = 0.0f;
    }
    if (!gradient) lrs[0] = 0.0;
    return Status::OK();
  }

 private:
  ZoadamNode node_;
};

bool RegisterZoadam() {
  KernelRegistry& r = KernelRegistry::Global();
  r.Register(KernelKey{kDscDomain, ops::kZoadamStep, DeviceKind::kCpu, DType::kFloat32},
             MakeFactory<ZoadamStepKernel>());
  r.Register(KernelKey{kDscDomain, ops::kZoadamPhase, DeviceKind::kCpu, DType::kFloat32},
             MakeFactory<ZoadamPhaseKernel>());
  r.Register(KernelKey{kDscDomain, ops::kZoadamApply, DeviceKind::kCpu, DType::kFloat32},
             MakeFactory<ZoadamApplyKernel>());
  return true;
}
[[maybe_unused]] const bool kZoadamRegistered = RegisterZoadam();

}  // namespace
}  // namespace dsc::cpu
