// CPU kernels of 0/1 Adam (ir/dsc_ops.h: ZoadamStep, ZoadamPhase, ZoadamApply).
// The communication is CompressedAllReduce's (kernels/cpu/onebit.cc), gated by ZoadamPhase.
// float32 only, as 1-bit Adam's: DeepSpeed's optimizer sees float32 tensors (lrs is float64, the
// Python float DeepSpeed sums the learning rates in).
#include <cmath>
#include <cstring>

#include "ir/dsc_ops.h"
#include "kernels/common/onebit_node.h"
#include "kernels/cpu/core_util.h"
#include "kernels/kernel.h"

namespace dsc::cpu {
namespace {

using zoadam::NeedFloat32;
using zoadam::NeedLrs;
using zoadam::ZoadamNode;
using zoadam::ZoadamScalars;

int64_t StepOf(const KernelContext& ctx, size_t index) { return ctx.input(index).data<int64_t>()[0]; }

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
    const zoadam::ZoadamStepPhase ph = zoadam::ZoadamStepPhaseOf(node_.schedule, step, node_.world);
    if (ph.frozen) ctx.input(5).data<double>()[0] += lr;  // state['lrs'] += group['lr']
    float* p = ctx.input(0).data<float>();
    const float* grad = ctx.input(1).data<float>();
    float* m = ctx.input(2).data<float>();
    float* v = ctx.input(3).data<float>();
    float* u = ctx.input(4).data<float>();
#pragma omp parallel for if (n >= kParallelMin)
    for (int64_t i = 0; i < n; ++i) zoadam::ZoadamStepElement(ph, c, grad[i], &p[i], &m[i], &v[i], &u[i]);
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
    if (Skipped(ctx, 7) || step < 2) return Status::OK();
    const zoadam::ZoadamApplyPhase ph = zoadam::ZoadamApplyPhaseOf(node_.schedule, step, node_.world);
    const bool gradient = ph.gradient;
    if (!gradient && !ph.sync) return Status::OK();
    const int64_t n = ctx.input(0).numel();
    for (size_t i = 1; i < 4; ++i) RETURN_IF_ERROR(optim::StateSize(ctx.input(i), n, false, "ZoadamApply"));
    const ZoadamScalars c = node_.Scalars(optim::ShortestDecimal(ctx.input(5).data<float>()[0]), 1.0f);
    double* lrs = ctx.input(4).data<double>();
    const float lr_sum = static_cast<float>(lrs[0]);
    float* p = ctx.input(0).data<float>();
    float* u = ctx.input(1).data<float>();
    float* m = ctx.input(2).data<float>();
    const float* v = ctx.input(3).data<float>();
#pragma omp parallel for if (n >= kParallelMin)
    for (int64_t i = 0; i < n; ++i) zoadam::ZoadamApplyElement(gradient, c, lr_sum, &p[i], &u[i], &m[i], v[i]);
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
