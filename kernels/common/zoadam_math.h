// 0/1 Adam's schedule and per-element math (DeepSpeed's ZeroOneAdam,
// deepspeed/runtime/fp16/onebit/zoadam.py), shared by the CPU kernels (kernels/cpu/zoadam.cc), the
// gradient AllReduce's retirement (kernels/common/collective_node.h), dsinspect's traffic and the
// CUDA kernels (kernels/cuda/zoadam.cu).
// Scalars are C floats as torch's float32 ops use them, one rounding per torch operation.
//   ZoadamSchedule s{last_var_step, var_update_scaler, local_step_scaler, local_step_clipper};
//   if (s.VarianceStep(step)) ...; if (s.SyncStep(step)) ...;
//
// DeepSpeed's schedule, traced (zoadam.py at deepspeedai/DeepSpeed HEAD):
//  * step() call 1 only initialises (zoadam.py:228-233, 292-301): no state moves but the step count.
//  * Before the freeze (freeze_key False), a step s is a "variance step" when s % var_interval == 0
//    (zoadam.py:210): exp_avg_sq and exp_avg take the engine-averaged gradient. After each such step
//    var_counter += 1 and, at var_update_scaler, var_interval doubles (zoadam.py:270-274); the
//    engine all-reduces the next step's gradients only when (s+1) % var_interval == 0
//    (zoadam.py:275-284), i.e. exactly on variance steps. The other steps take the rank's own
//    gradient through the compressed all-reduce into exp_avg (zoadam.py:213-222; nothing at all on
//    one rank). var_interval starts at 1, so steps 2 .. var_update_scaler+1 are variance steps,
//    then every other step for var_update_scaler more, and so on.
//  * The freeze: after a step s > var_freeze_step (zoadam.py:303-308; never after call 1), so the
//    last unfrozen step is U = max(2, floor(var_freeze_step) + 1). Then the engine never
//    all-reduces again and the errors restart from zero (zoadam.py:310-317).
//  * Frozen steps: local_step_interval starts at 1 and doubles (clipped at local_step_clipper)
//    after every local_step_scaler frozen steps (zoadam.py:285-290); a frozen step s with
//    s % local_step_interval == 0 synchronises the parameters (zoadam.py:247-264).
#pragma once

#include <cmath>
#include <cstdint>

#include "kernels/common/hd.h"

namespace dsc::zoadam {

struct ZoadamSchedule {
  int64_t last_var_step;      // U: the last step before the freeze (>= 2)
  int64_t var_update_scaler;  // >= 1
  int64_t local_step_scaler;  // >= 1
  int64_t local_step_clipper; // >= 1

  DSC_HD bool Frozen(int64_t step) const { return step > last_var_step; }

  // Whether unfrozen step `step` updates the variance (and the engine all-reduces its gradients).
  // Step 1 counts as one: the engine's default all-reduce runs, though call 1 reads nothing.
  DSC_HD bool VarianceStep(int64_t step) const {
    if (step <= 2) return true;
    int64_t interval = 1, next = 2;  // `next`: the first step this interval's phase may use
    for (;;) {
      const int64_t first = (next + interval - 1) / interval * interval;
      if (step < first) return false;
      // This phase's var_update_scaler variance steps: first, first + interval, ...
      if ((step - first) / interval < var_update_scaler) return (step - first) % interval == 0;
      next = first + var_update_scaler * interval;
      interval *= 2;
    }
  }

  // local_step_interval during frozen step `step`.
  DSC_HD int64_t LocalStepInterval(int64_t step) const {
    const int64_t doublings = (step - last_var_step - 1) / local_step_scaler;
    int64_t interval = 1;
    for (int64_t k = 0; k < doublings && interval < local_step_clipper; ++k) interval *= 2;
    return interval < local_step_clipper ? interval : local_step_clipper;
  }

  // Whether frozen step `step` synchronises the parameters.
  DSC_HD bool SyncStep(int64_t step) const { return Frozen(step) && step % LocalStepInterval(step) == 0; }

  // Whether `step` runs the compressed all-reduce (with more than one rank): an unfrozen step
  // >= 2 that is no variance step (the gradient), or a frozen sync step (the momentum).
  DSC_HD bool CompressedStep(int64_t step) const {
    if (step < 2) return false;
    return Frozen(step) ? SyncStep(step) : !VarianceStep(step);
  }
};

// The factors of one update, from the node's attributes and the step's scalars.
struct ZoadamScalars {
  float beta1, one_minus_beta1, beta2, one_minus_beta2, eps, weight_decay, neg_lr, grad_scale;
};

DSC_HD ZoadamScalars MakeZoadamScalars(double beta1, double beta2, double eps, double weight_decay, double lr,
                                       float grad_scale) {
  return ZoadamScalars{static_cast<float>(beta1), static_cast<float>(1.0 - beta1), static_cast<float>(beta2),
                       static_cast<float>(1.0 - beta2),  static_cast<float>(eps),  static_cast<float>(weight_decay),
                       static_cast<float>(-lr),          grad_scale};
}

// exp_avg.mul_(beta1).add_(1 - beta1, g); g already scaled.
DSC_HD float ZoadamMoment(float m, float g, const ZoadamScalars& c) { return m * c.beta1 + c.one_minus_beta1 * g; }

// exp_avg_sq.mul_(beta2).addcmul_(1 - beta2, g, g)
DSC_HD float ZoadamSecondMoment(float v, float g, const ZoadamScalars& c) {
  return v * c.beta2 + c.one_minus_beta2 * g * g;
}

// -lr * (exp_avg / (exp_avg_sq.sqrt() + eps) [+ weight_decay * p]): the step p and, frozen, the
// momentum accumulator add (zoadam.py:240-246).
DSC_HD float ZoadamDelta(float p, float m, float v, const ZoadamScalars& c) {
  float update = m / (sqrtf(v) + c.eps);
  if (c.weight_decay > 0.0f) update += c.weight_decay * p;
  return c.neg_lr * update;
}

// What ZoadamStep does on `step` (>= 2) with `world` ranks.
struct ZoadamStepPhase {
  bool frozen, variance, compressed, sync;
};
DSC_HD ZoadamStepPhase ZoadamStepPhaseOf(const ZoadamSchedule& s, int64_t step, int64_t world) {
  ZoadamStepPhase ph;
  ph.frozen = s.Frozen(step);
  ph.variance = !ph.frozen && s.VarianceStep(step);
  ph.compressed = !ph.frozen && !ph.variance && world > 1;
  ph.sync = s.SyncStep(step);
  return ph;
}

// One element of ZoadamStep (zoadam.py:203-264): p, the moments and the accumulator u in place.
DSC_HD void ZoadamStepElement(const ZoadamStepPhase& ph, const ZoadamScalars& c, float grad, float* p, float* m,
                              float* v, float* u) {
  const float g = grad * c.grad_scale;
  if (ph.compressed) {  // the rank's own gradient, for CompressedAllReduce and ZoadamApply
    *u = g;
    return;
  }
  if (ph.variance) {
    *v = ZoadamSecondMoment(*v, g, c);
    *m = ZoadamMoment(*m, g, c);
  } else if (ph.frozen) {
    *m = ZoadamMoment(*m, g, c);
  }
  const float d = ZoadamDelta(*p, *m, *v, c);
  *p += d;
  if (ph.frozen) {
    *u += d;
    if (ph.sync) {
      *p += -*u;
      *u *= sqrtf(*v) + c.eps;
    }
  }
}

// What ZoadamApply does on `step` (>= 2): apply the compressed gradient of an unfrozen step that is
// no variance step (more than one rank), or the synchronisation of a frozen sync step; else nothing.
struct ZoadamApplyPhase {
  bool gradient, sync;
};
DSC_HD ZoadamApplyPhase ZoadamApplyPhaseOf(const ZoadamSchedule& s, int64_t step, int64_t world) {
  ZoadamApplyPhase ph;
  ph.gradient = !s.Frozen(step) && !s.VarianceStep(step) && world > 1;
  ph.sync = s.SyncStep(step);
  return ph;
}

// One element of ZoadamApply after the compressed all-reduce of u: with `gradient` u is the ranks'
// averaged gradient, else their averaged scaled momentum accumulators (lr_sum: float(lrs)).
DSC_HD void ZoadamApplyElement(bool gradient, const ZoadamScalars& c, float lr_sum, float* p, float* u, float* m,
                               float v) {
  if (gradient) {
    *m = ZoadamMoment(*m, *u, c);
    *p += ZoadamDelta(*p, *m, v, c);
  } else {  // comm_buffer / state['lrs']: a tensor divided by a Python float, in float32
    *m = -(*u / lr_sum);
    *p += *u / (sqrtf(v) + c.eps);
  }
  *u = 0.0f;
}

}  // namespace dsc::zoadam
