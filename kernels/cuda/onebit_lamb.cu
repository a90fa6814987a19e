// CUDA kernels of 1-bit Lamb (ir/dsc_ops.h: OnebitLambSnapshot, OnebitLambMomentum,
// OnebitLambStep), twins of kernels/cpu/onebit_lamb.cc: the math of
// kernels/common/onebit_lamb_math.h, the node checks of kernels/common/onebit_node.h, float32
// tensors and the float64 lamb_state on the device. The compressed all-reduce between the momentum
// and the step is CompressedAllReduce's (kernels/cuda/onebit.cu).
//
// step, lr, grad_scale, skip and lamb_state are read on the device, so no step waits for the
// host: one-thread or one-block kernels take the per-tensor decisions (the scaling coefficient,
// the coefficient and factor, which update lamb_state) between the element kernels. The norms
// are block reductions in double and the max ratio a block max with a NaN flag, so they match the
// CPU's up to the order of the double sums (kernels/cuda/onebit_util.cuh). Where the CPU kernels
// return an error (a zero momentum at the first compressed step, DeepSpeed's ZeroDivisionError),
// these change nothing and report it at their next call (onebit_cuda::DeviceReport).
#include <cstdint>

#include "ir/dsc_ops.h"
#include "kernels/common/onebit_lamb_math.h"
#include "kernels/common/onebit_math.h"
#include "kernels/common/onebit_node.h"
#include "kernels/cuda/cuda_util.cuh"
#include "kernels/cuda/onebit_util.cuh"
#include "kernels/cuda/row_util.cuh"

namespace dsc::cuda {
namespace {

using onebit::OnebitLambScalars;
using onebit::OnebitScalars;
using onebit_cuda::SkipSet;
using onebit_cuda::ThreadCount;
using onebit_cuda::ThreadIndex;

// ---- OnebitLambSnapshot ----

// gate[0]: the step compresses (exp_avg_last = exp_avg, else zeros); gate[1]: the momentum scale
// is wanted too (scaling_coeff still unset).
__global__ void SnapshotPrep(const int64_t* step, const uint8_t* skip, int64_t freeze_step, const double* state,
                             int* gate) {
  gate[0] = !SkipSet(skip) && *step > freeze_step;
  gate[1] = gate[0] && state[onebit::kScalingCoeff] == 0.0;
}

__global__ void SnapshotCopy(int64_t n, const float* m, const int* gate, float* last) {
  const bool on = gate[0] != 0;
  for (int64_t i = ThreadIndex(); i < n; i += ThreadCount()) last[i] = on ? m[i] : 0.0f;
}

// OnebitLambSnapshot(exp_avg, lamb_state, step[, skip]) -> (exp_avg_last, momentum_scale).
class OnebitLambSnapshotCuda : public OpKernel {
 public:
  Status Init(const Node& n) {
    RETURN_IF_ERROR(onebit::CheckLambInputs(n, {0}, 1, 2, 3));
    ASSIGN_OR_RETURN(freeze_step_, onebit::LambFreezeStep(n));
    return Status::OK();
  }
  Status Compute(KernelContext& ctx) override {
    ASSIGN_OR_RETURN(Resources * r, Res(ctx));
    const TensorView& m = ctx.input(0);
    TensorView& last = ctx.output(0);
    TensorView& scale = ctx.output(1);
    RETURN_IF_ERROR(optim::SameSize(last, m, "OnebitLambSnapshot"));
    if (scale.numel() != 1) return InvalidArgument("OnebitLambSnapshot: momentum_scale must have one element");
    RETURN_IF_ERROR(onebit::CheckLambState(ctx, 1, "OnebitLambSnapshot"));
    const int64_t n = m.numel();
    const unsigned blocks = onebit_cuda::SquareBlocks(*r, n);
    ScratchCarver carve;
    const size_t gate_at = carve.Add(2 * sizeof(int)), partial_at = carve.Add(blocks * sizeof(double));
    ASSIGN_OR_RETURN(void* scratch, r->Scratch(carve.total()));
    int* gate = reinterpret_cast<int*>(static_cast<char*>(scratch) + gate_at);
    double* partial = reinterpret_cast<double*>(static_cast<char*>(scratch) + partial_at);
    SnapshotPrep<<<1, 1, 0, r->compute>>>(ctx.input(2).data<int64_t>(), SkipPtr(ctx, 3), freeze_step_,
                                          ctx.input(1).data<double>(), gate);
    DSC_CUDA_CHECK_LAUNCH();
    if (n > 0) {
      SnapshotCopy<<<GridFor(*r, n), kThreads, 0, r->compute>>>(n, m.data<float>(), gate, last.data<float>());
      DSC_CUDA_CHECK_LAUNCH();
    }
    return onebit_cuda::LaunchCompressionScale(*r, m.data<float>(), n, blocks, partial, gate + 1, scale.data<float>());
  }

 private:
  int64_t freeze_step_ = 2;
};

// ---- OnebitLambMomentum ----

// *active: the step compresses. At the first compressed step, scaling_coeff from the momentum
// scales (lamb.py:179-190); a zero own scale leaves it unset, changes nothing and is reported.
__global__ void LambMomentumPrep(const int64_t* step, const uint8_t* skip, int64_t freeze_step, double* state,
                                 const float* scales, int64_t count, int64_t slot, int* active, int64_t* report) {
  const int64_t s = *step;
  *active = !SkipSet(skip) && s > freeze_step;
  if (!*active || state[onebit::kScalingCoeff] != 0.0) return;
  const double coeff = onebit::OnebitLambScalingCoeff(scales, count, slot);
  if (coeff == 0.0) {
    *active = 0;
    if (*report == 0) *report = s;
    return;
  }
  state[onebit::kScalingCoeff] = coeff;
}

__global__ void LambMomentumKernel(int64_t n, const float* g, float* m, const double* state, const int* active,
                                   const float* grad_scale, double beta1) {
  if (!*active) return;
  const float scaling = static_cast<float>(state[onebit::kScalingCoeff]);
  const OnebitScalars c = onebit::MakeOnebitScalars(beta1, 0.0, 0.0, 0.0, 0.0, *grad_scale);
  for (int64_t i = ThreadIndex(); i < n; i += ThreadCount()) m[i] = onebit::OnebitMoment(m[i], g[i], c) * scaling;
}

// OnebitLambMomentum(param, grad, exp_avg, lamb_state, momentum_scales, step, grad_scale[, skip]).
class OnebitLambMomentumCuda : public OpKernel {
 public:
  Status Init(const Node& n) {
    RETURN_IF_ERROR(onebit::CheckLambInputs(n, {1, 2, 4}, 3, 5, 7));
    RETURN_IF_ERROR(optim::FloatScalar(n, 6, "OnebitLambMomentum"));
    ASSIGN_OR_RETURN(freeze_step_, onebit::LambFreezeStep(n));
    slot_ = n.GetInt("slot", 0);
    beta1_ = optim::ShortestDecimal(n.GetFloat("beta1", 0.9f));
    name_ = n.input(0)->name();
    return Status::OK();
  }
  Status Compute(KernelContext& ctx) override {
    ASSIGN_OR_RETURN(Resources * r, Res(ctx));
    if (const int64_t at = report_.Seen())
      return FailedPrecondition("OnebitLambMomentum: the momentum of '", name_, "' was zero at step ", at,
                                ", the first compressed step, so its scaling coefficient divides by zero "
                                "(DeepSpeed's OnebitLamb raises ZeroDivisionError there)");
    RETURN_IF_ERROR(optim::SameSize(ctx.input(2), ctx.input(1), "OnebitLambMomentum"));
    RETURN_IF_ERROR(onebit::CheckLambState(ctx, 3, "OnebitLambMomentum"));
    const TensorView& scales = ctx.input(4);
    if (slot_ < 0 || slot_ >= scales.numel())
      return InvalidArgument("OnebitLambMomentum: slot ", slot_, " outside momentum_scales of ", scales.numel());
    ASSIGN_OR_RETURN(int64_t * report, report_.Device());
    ASSIGN_OR_RETURN(void* scratch, r->Scratch(sizeof(int)));
    int* active = static_cast<int*>(scratch);
    LambMomentumPrep<<<1, 1, 0, r->compute>>>(ctx.input(5).data<int64_t>(), SkipPtr(ctx, 7), freeze_step_,
                                              ctx.input(3).data<double>(), scales.data<float>(), scales.numel(), slot_,
                                              active, report);
    DSC_CUDA_CHECK_LAUNCH();
    const int64_t n = ctx.input(2).numel();
    if (n == 0) return Status::OK();
    LambMomentumKernel<<<GridFor(*r, n), kThreads, 0, r->compute>>>(
        n, ctx.input(1).data<float>(), ctx.input(2).data<float>(), ctx.input(3).data<double>(), active,
        ctx.input(6).data<float>(), beta1_);
    DSC_CUDA_CHECK_LAUNCH();
    return Status::OK();
  }

 private:
  int64_t freeze_step_ = 2, slot_ = 0;
  double beta1_ = 0.9;
  std::string name_;
  onebit_cuda::DeviceReport report_;
};

// ---- OnebitLambStep ----

// The step's decisions and factors, from the prep kernel to the others.
struct LambStepDev {
  int active, warm, fresh;
  float scaling;  // float(scaling_coeff), frozen steps
  float scale;    // -lr * coeff, from the final kernel
  double lr;
  OnebitLambScalars c;
  OnebitScalars moments;
};

__global__ void LambStepPrep(const int64_t* step, const uint8_t* skip, const float* lr, const float* grad_scale,
                             const double* state, onebit::OnebitLambStepNode a, LambStepDev* d, int64_t* report) {
  const int64_t s = *step;
  LambStepDev out{};
  out.active = !SkipSet(skip) && s >= 2;  // call 1 only initialises; s < 1 is the CPU's error
  out.warm = s <= a.freeze_step;
  out.fresh = s == a.fresh_step;
  out.lr = optim::ShortestDecimal(*lr);
  out.c = onebit::MakeOnebitLambScalars(a.beta1, a.beta2, a.eps, a.weight_decay, *grad_scale);
  out.moments = onebit::MakeOnebitScalars(a.beta1, a.beta2, a.eps, a.weight_decay, out.lr, *grad_scale);
  out.scaling = static_cast<float>(state[onebit::kScalingCoeff]);
  if (out.active && !out.warm && state[onebit::kScalingCoeff] == 0.0) {
    out.active = 0;  // the CPU's "scaling_coeff is unset" (after OnebitLambMomentum's report)
    if (*report == 0) *report = s;
  }
  *d = out;
}

// Per block: sums[2b], sums[2b + 1] = warm-up: sum p^2, sum update^2; frozen: sum update^2, sum
// prelim^2 (each a float square widened to double, as the CPU); ratio_max[b], nan[b]: the frozen
// step's max of denom / denom_fresh without NaNs, and whether one was NaN. The moments,
// exp_avg_sq_fresh and (frozen) the unscaled exp_avg are updated in place.
__global__ void LambStepPartial(int64_t n, const float* p, const float* g, float* m, float* v, float* f,
                                const float* last, const LambStepDev* dev, double* sums, float* ratio_max, int* nan) {
  __shared__ double shd[32];
  __shared__ float shf[32];
  __shared__ int shi[32];
  const LambStepDev d = *dev;
  double a = 0.0, b = 0.0;
  float mx = -INFINITY;
  int any_nan = 0;
  if (d.active) {
    for (int64_t i = ThreadIndex(); i < n; i += ThreadCount()) {
      const float pi = p[i];
      if (d.warm) {
        float mi = m[i], vi = v[i], fi = 0.0f;
        const float u = onebit::OnebitLambWarmupElement(pi, g[i], &mi, &vi, &fi, d.fresh, d.moments, d.c);
        m[i] = mi;
        v[i] = vi;
        if (d.fresh) f[i] = fi;
        a += static_cast<double>(pi * pi);
        b += static_cast<double>(u * u);
      } else {
        float mi = m[i], fi = f[i];
        const onebit::OnebitLambFrozen e = onebit::OnebitLambFrozenElement(pi, &mi, &fi, v[i], last[i], d.scaling, d.c);
        m[i] = mi;
        f[i] = fi;
        a += static_cast<double>(e.update * e.update);
        b += static_cast<double>(e.prelim * e.prelim);
        any_nan |= isnan(e.ratio) ? 1 : 0;
        mx = softmax::RowMax(mx, e.ratio);  // drops NaNs, as the CPU's `ratio > max`
      }
    }
  }
  a = BlockReduceAll(a, AddOp{}, 0.0, shd);
  b = BlockReduceAll(b, AddOp{}, 0.0, shd);
  mx = BlockReduceAll(mx, RowMaxOp{}, -INFINITY, shf);
  any_nan = BlockReduceAll(any_nan, AddOp{}, 0, shi);
  if (threadIdx.x == 0) {
    sums[2 * blockIdx.x] = a;
    sums[2 * blockIdx.x + 1] = b;
    ratio_max[blockIdx.x] = mx;
    nan[blockIdx.x] = any_nan;
  }
}

// The coefficient (and lamb_state) from the partials, in a fixed order: dev->scale = -lr * coeff.
__global__ void LambStepFinal(const double* sums, const float* ratio_max, const int* nan, unsigned blocks,
                              onebit::OnebitLambStepNode a, double* state, LambStepDev* dev) {
  __shared__ double shd[32];
  __shared__ float shf[32];
  __shared__ int shi[32];
  double x = 0.0, y = 0.0;
  float mx = -INFINITY;
  int any_nan = 0;
  for (unsigned i = threadIdx.x; i < blocks; i += blockDim.x) {
    x += sums[2 * i];
    y += sums[2 * i + 1];
    mx = softmax::RowMax(mx, ratio_max[i]);
    any_nan += nan[i];
  }
  x = BlockReduceAll(x, AddOp{}, 0.0, shd);
  y = BlockReduceAll(y, AddOp{}, 0.0, shd);
  mx = BlockReduceAll(mx, RowMaxOp{}, -INFINITY, shf);
  any_nan = BlockReduceAll(any_nan, AddOp{}, 0, shi);
  if (threadIdx.x != 0 || !dev->active) return;
  double coeff;
  if (dev->warm) {
    coeff = onebit::OnebitLambWarmupFinish(onebit::OnebitLambNorm(x), onebit::OnebitLambNorm(y), a.max_coeff,
                                           a.min_coeff, a.coeff_beta, state);
  } else {
    if (any_nan) mx = NAN;  // torch's max propagates NaN
    const double factor = onebit::OnebitLambFactor(mx, dev->c.weight_decay > 0.0f, onebit::OnebitLambNorm(y),
                                                   onebit::OnebitLambNorm(x), a.limits, state);
    coeff = state[onebit::kLambCoeffFreeze] * factor;
  }
  dev->scale = static_cast<float>(-dev->lr * coeff);
}

__global__ void LambStepApply(int64_t n, float* p, const float* m, const float* v, const LambStepDev* dev) {
  if (!dev->active) return;
  const float scale = dev->scale;
  const OnebitLambScalars c = dev->c;
  for (int64_t i = ThreadIndex(); i < n; i += ThreadCount()) p[i] = onebit::OnebitLambApply(p[i], m[i], v[i], scale, c);
}

// OnebitLambStep(param, grad, exp_avg, exp_avg_sq, exp_avg_sq_fresh, lamb_state, exp_avg_last, lr,
// step, grad_scale[, skip]).
class OnebitLambStepCuda : public OpKernel {
 public:
  Status Init(const Node& n) { return node_.Init(n); }
  Status Compute(KernelContext& ctx) override {
    ASSIGN_OR_RETURN(Resources * r, Res(ctx));
    if (const int64_t at = report_.Seen())
      return FailedPrecondition("OnebitLambStep: scaling_coeff is unset after the freeze (step ", at,
                                "; OnebitLambMomentum sets it)");
    const int64_t n = ctx.input(0).numel();
    for (size_t i : {1, 2, 3, 4, 6}) RETURN_IF_ERROR(optim::StateSize(ctx.input(i), n, false, "OnebitLambStep"));
    RETURN_IF_ERROR(onebit::CheckLambState(ctx, 5, "OnebitLambStep"));
    ASSIGN_OR_RETURN(int64_t * report, report_.Device());
    const unsigned blocks = onebit_cuda::SquareBlocks(*r, n);
    ScratchCarver carve;
    const size_t dev_at = carve.Add(sizeof(LambStepDev)), sums_at = carve.Add(2 * blocks * sizeof(double));
    const size_t max_at = carve.Add(blocks * sizeof(float)), nan_at = carve.Add(blocks * sizeof(int));
    ASSIGN_OR_RETURN(void* scratch, r->Scratch(carve.total()));
    char* base = static_cast<char*>(scratch);
    LambStepDev* dev = reinterpret_cast<LambStepDev*>(base + dev_at);
    double* sums = reinterpret_cast<double*>(base + sums_at);
    float* ratio_max = reinterpret_cast<float*>(base + max_at);
    int* nan = reinterpret_cast<int*>(base + nan_at);
    double* state = ctx.input(5).data<double>();
    float* p = ctx.input(0).data<float>();
    float* m = ctx.input(2).data<float>();
    float* v = ctx.input(3).data<float>();
    LambStepPrep<<<1, 1, 0, r->compute>>>(ctx.input(8).data<int64_t>(), SkipPtr(ctx, 10), ctx.input(7).data<float>(),
                                          ctx.input(9).data<float>(), state, node_, dev, report);
    DSC_CUDA_CHECK_LAUNCH();
    LambStepPartial<<<blocks, onebit_cuda::kSquareThreads, 0, r->compute>>>(
        n, p, ctx.input(1).data<float>(), m, v, ctx.input(4).data<float>(), ctx.input(6).data<float>(), dev, sums,
        ratio_max, nan);
    DSC_CUDA_CHECK_LAUNCH();
    LambStepFinal<<<1, 1024, 0, r->compute>>>(sums, ratio_max, nan, blocks, node_, state, dev);
    DSC_CUDA_CHECK_LAUNCH();
    if (n == 0) return Status::OK();
    LambStepApply<<<GridFor(*r, n), kThreads, 0, r->compute>>>(n, p, m, v, dev);
    DSC_CUDA_CHECK_LAUNCH();
    return Status::OK();
  }

 private:
  onebit::OnebitLambStepNode node_;
  onebit_cuda::DeviceReport report_;
};

bool RegisterOnebitLambCuda() {
  KernelRegistry& r = KernelRegistry::Global();
  r.Register(KernelKey{kDscDomain, ops::kOnebitLambSnapshot, DeviceKind::kCuda, DType::kFloat32},
             MakeFactory<OnebitLambSnapshotCuda>());
  r.Register(KernelKey{kDscDomain, ops::kOnebitLambMomentum, DeviceKind::kCuda, DType::kFloat32},
             MakeFactory<OnebitLambMomentumCuda>());
  r.Register(KernelKey{kDscDomain, ops::kOnebitLambStep, DeviceKind::kCuda, DType::kFloat32},
             MakeFactory<OnebitLambStepCuda>());
  return true;
}
[[maybe_unused]] const bool kOnebitLambCudaRegistered = RegisterOnebitLambCuda();

}  // namespace
}  // namespace dsc::cuda
