// CUDA kernels of 0/1 Adam (ir/dsc_ops.h: ZoadamStep, ZoadamPhase, ZoadamApply), twins of
// kernels/cpu/zoadam.cc: the schedule and per-element math of kernels/common/zoadam_math.h, the
// node checks of kernels/common/onebit_node.h, float32 tensors and the float64 lrs on the device.
// The communication is CompressedAllReduce's (kernels/cuda/onebit.cu), gated by ZoadamPhase's
// output, which it reads on the host.
//
// step, lr, grad_scale, skip and lrs are read on the device (no step waits for the host): a
// one-thread kernel takes the step's decisions (the schedule, lrs) into the kernel's scratch and
// the element kernel reads them there. A step < 1, which the CPU reports as an error, changes
// nothing here.
#include <cstdint>

#include "ir/dsc_ops.h"
#include "kernels/common/onebit_node.h"
#include "kernels/common/zoadam_math.h"
#include "kernels/cuda/cuda_util.cuh"
#include "kernels/cuda/onebit_util.cuh"

namespace dsc::cuda {
namespace {

using onebit_cuda::SkipSet;
using onebit_cuda::ThreadCount;
using onebit_cuda::ThreadIndex;
using zoadam::NeedFloat32;
using zoadam::NeedLrs;
using zoadam::ZoadamNode;
using zoadam::ZoadamScalars;

// ---- ZoadamStep ----

struct StepDev {
  int active;
  zoadam::ZoadamStepPhase phase;
  ZoadamScalars c;
};

__global__ void ZoadamStepPrep(const int64_t* step, const uint8_t* skip, const float* lr, const float* grad_scale,
                               double* lrs, ZoadamNode a, StepDev* d) {
  const int64_t s = *step;
  StepDev out{};
  out.active = !SkipSet(skip) && s >= 2;  // call 1 only initialises
  if (out.active) {
    const double lr_d = optim::ShortestDecimal(*lr);
    out.c = a.Scalars(lr_d, *grad_scale);
    out.phase = zoadam::ZoadamStepPhaseOf(a.schedule, s, a.world);
    if (out.phase.frozen) lrs[0] += lr_d;  // state['lrs'] += group['lr']
  }
  *d = out;
}

__global__ void ZoadamStepKernel(int64_t n, float* p, const float* g, float* m, float* v, float* u,
                                 const StepDev* dev) {
  if (!dev->active) return;
  const StepDev d = *dev;
  for (int64_t i = ThreadIndex(); i < n; i += ThreadCount()) {
    float pi = p[i], mi = m[i], vi = v[i], ui = u[i];
    zoadam::ZoadamStepElement(d.phase, d.c, g[i], &pi, &mi, &vi, &ui);
    p[i] = pi;
    m[i] = mi;
    v[i] = vi;
    u[i] = ui;
  }
}

// ZoadamStep(param, grad, exp_avg, exp_avg_sq, accumulator, lrs, lr, step, grad_scale[, skip]).
class ZoadamStepCuda : public OpKernel {
 public:
  Status Init(const Node& n) {
    RETURN_IF_ERROR(node_.Init(n, 7, 9));
    RETURN_IF_ERROR(NeedFloat32(n, {0, 1, 2, 3, 4}));
    RETURN_IF_ERROR(NeedLrs(n, 5));
    RETURN_IF_ERROR(optim::FloatScalar(n, 6, "ZoadamStep"));
    return optim::FloatScalar(n, 8, "ZoadamStep");
  }
  Status Compute(KernelContext& ctx) override {
    ASSIGN_OR_RETURN(Resources * r, Res(ctx));
    const int64_t n = ctx.input(0).numel();
    for (size_t i = 1; i < 5; ++i) RETURN_IF_ERROR(optim::StateSize(ctx.input(i), n, false, "ZoadamStep"));
    if (ctx.input(5).numel() != 1)
      return InvalidArgument("ZoadamStep: lrs has ", ctx.input(5).numel(), " elements, not 1");
    ASSIGN_OR_RETURN(void* scratch, r->Scratch(sizeof(StepDev)));
    StepDev* dev = static_cast<StepDev*>(scratch);
    ZoadamStepPrep<<<1, 1, 0, r->compute>>>(ctx.input(7).data<int64_t>(), SkipPtr(ctx, 9), ctx.input(6).data<float>(),
                                            ctx.input(8).data<float>(), ctx.input(5).data<double>(), node_, dev);
    DSC_CUDA_CHECK_LAUNCH();
    if (n == 0) return Status::OK();
    ZoadamStepKernel<<<GridFor(*r, n), kThreads, 0, r->compute>>>(
        n, ctx.input(0).data<float>(), ctx.input(1).data<float>(), ctx.input(2).data<float>(),
        ctx.input(3).data<float>(), ctx.input(4).data<float>(), dev);
    DSC_CUDA_CHECK_LAUNCH();
    return Status::OK();
  }

 private:
  ZoadamNode node_;
};

// ---- ZoadamPhase ----

// The errors restart from zero after the freeze (zoadam.py:310-317); compress_skip says whether
// CompressedAllReduce stays idle this step.
__global__ void ZoadamPhaseKernel(float* worker_error, int64_t worker_n, float* server_error, int64_t server_n,
                                  const int64_t* step, const uint8_t* skip, zoadam::ZoadamSchedule s,
                                  uint8_t* compress_skip) {
  const int64_t st = *step;
  const bool skipped = SkipSet(skip);
  if (ThreadIndex() == 0) *compress_skip = skipped || !s.CompressedStep(st) ? 1 : 0;
  if (skipped || st != s.last_var_step + 1) return;
  for (int64_t i = ThreadIndex(); i < worker_n; i += ThreadCount()) worker_error[i] = 0.0f;
  for (int64_t i = ThreadIndex(); i < server_n; i += ThreadCount()) server_error[i] = 0.0f;
}

// ZoadamPhase(worker_error, server_error, step[, skip]) -> compress_skip.
class ZoadamPhaseCuda : public OpKernel {
 public:
  Status Init(const Node& n) {
    RETURN_IF_ERROR(node_.Init(n, 2, 3));
    RETURN_IF_ERROR(NeedFloat32(n, {0, 1}));
    if (n.output(0)->type.dtype != DType::kBool) return InvalidArgument(n.Describe(), ": output 0 must be bool");
    return Status::OK();
  }
  Status Compute(KernelContext& ctx) override {
    ASSIGN_OR_RETURN(Resources * r, Res(ctx));
    const int64_t wn = ctx.input(0).numel(), sn = ctx.input(1).numel();
    ZoadamPhaseKernel<<<GridFor(*r, wn > sn ? wn : sn), kThreads, 0, r->compute>>>(
        ctx.input(0).data<float>(), wn, ctx.input(1).data<float>(), sn, ctx.input(2).data<int64_t>(), SkipPtr(ctx, 3),
        node_.schedule, ctx.output(0).data<uint8_t>());
    DSC_CUDA_CHECK_LAUNCH();
    return Status::OK();
  }

 private:
  ZoadamNode node_;
};

// ---- ZoadamApply ----

struct ApplyDev {
  int active, gradient;
  float lr_sum;  // float(lrs) before this step resets it
  ZoadamScalars c;
};

__global__ void ZoadamApplyPrep(const int64_t* step, const uint8_t* skip, const float* lr, double* lrs, ZoadamNode a,
                                ApplyDev* d) {
  const int64_t s = *step;
  ApplyDev out{};
  if (!SkipSet(skip) && s >= 2) {
    const zoadam::ZoadamApplyPhase ph = zoadam::ZoadamApplyPhaseOf(a.schedule, s, a.world);
    out.active = ph.gradient || ph.sync;
    out.gradient = ph.gradient;
  }
  if (out.active) {
    out.c = a.Scalars(optim::ShortestDecimal(*lr), 1.0f);
    out.lr_sum = static_cast<float>(lrs[0]);
    if (!out.gradient) lrs[0] = 0.0;
  }
  *d = out;
}

__global__ void ZoadamApplyKernel(int64_t n, float* p, float* u, float* m, const float* v, const ApplyDev* dev) {
  if (!dev->active) return;
  const ApplyDev d = *dev;
  for (int64_t i = ThreadIndex(); i < n; i += ThreadCount()) {
    float pi = p[i], ui = u[i], mi = m[i];
    zoadam::ZoadamApplyElement(d.gradient != 0, d.c, d.lr_sum, &pi, &ui, &mi, v[i]);
    p[i] = pi;
    u[i] = ui;
    m[i] = mi;
  }
}

// ZoadamApply(param, accumulator, exp_avg, exp_avg_sq, lrs, lr, step[, skip]): after the compressed
// all-reduce of the accumulator u.
class ZoadamApplyCuda : public OpKernel {
 public:
  Status Init(const Node& n) {
    RETURN_IF_ERROR(node_.Init(n, 6, 7));
    RETURN_IF_ERROR(NeedFloat32(n, {0, 1, 2, 3}));
    RETURN_IF_ERROR(NeedLrs(n, 4));
    return optim::FloatScalar(n, 5, "ZoadamApply");
  }
  Status Compute(KernelContext& ctx) override {
    ASSIGN_OR_RETURN(Resources * r, Res(ctx));
    const int64_t n = ctx.input(0).numel();
    for (size_t i = 1; i < 4; ++i) RETURN_IF_ERROR(optim::StateSize(ctx.input(i), n, false, "ZoadamApply"));
    if (ctx.input(4).numel() != 1)
      return InvalidArgument("ZoadamApply: lrs has ", ctx.input(4).numel(), " elements, not 1");
    ASSIGN_OR_RETURN(void* scratch, r->Scratch(sizeof(ApplyDev)));
    ApplyDev* dev = static_cast<ApplyDev*>(scratch);
    ZoadamApplyPrep<<<1, 1, 0, r->compute>>>(ctx.input(6).data<int64_t>(), SkipPtr(ctx, 7), ctx.input(5).data<float>(),
                                             ctx.input(4).data<double>(), node_, dev);
    DSC_CUDA_CHECK_LAUNCH();
    if (n == 0) return Status::OK();
    ZoadamApplyKernel<<<GridFor(*r, n), kThreads, 0, r->compute>>>(
        n, ctx.input(0).data<float>(), ctx.input(1).data<float>(), ctx.input(2).data<float>(),
        ctx.input(3).data<float>(), dev);
    DSC_CUDA_CHECK_LAUNCH();
    return Status::OK();
  }

 private:
  ZoadamNode node_;
};

bool RegisterZoadamCuda() {
  KernelRegistry& r = KernelRegistry::Global();
  r.Register(KernelKey{kDscDomain, ops::kZoadamStep, DeviceKind::kCuda, DType::kFloat32},
             MakeFactory<ZoadamStepCuda>());
  r.Register(KernelKey{kDscDomain, ops::kZoadamPhase, DeviceKind::kCuda, DType::kFloat32},
             MakeFactory<ZoadamPhaseCuda>());
  r.Register(KernelKey{kDscDomain, ops::kZoadamApply, DeviceKind::kCuda, DType::kFloat32},
             MakeFactory<ZoadamApplyCuda>());
  return true;
}
[[maybe_unused]] const bool kZoadamCudaRegistered = RegisterZoadamCuda();

}  // namespace
}  // namespace dsc::cuda
