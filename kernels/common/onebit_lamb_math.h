// 1-bit Lamb's math (DeepSpeed's OnebitLamb, ir/dsc_ops.h: OnebitLambSnapshot, OnebitLambMomentum,
// OnebitLambStep), shared by the CPU kernels (kernels/cpu/onebit_lamb.cc) and their CUDA twins
// (kernels/cuda/onebit_lamb.cu).
//
// What this reproduces, from deepspeedai/DeepSpeed deepspeed/runtime/fp16/onebit/lamb.py
// (OnebitLamb.step, lines 148-389):
//  - Call 1 only initialises (:219-220 turn lamb_freeze_key True, so the call takes the
//    compressed branch with `initialize` False: nothing moves; :374-378 return before the freeze
//    check). Calls 2 .. T (:230-255) are Lamb without bias correction (`bias_correction` is read
//    at :196 and never used): m = b1*m + (1-b1)*g, v = b2*v + (1-b2)*g^2, at state['step'] ==
//    freeze_step exp_avg_sq_fresh = v (:234-235), update = m/(sqrt(v) + eps) (+ wd*p),
//    coeff = ||p||/||update|| clamped to [min_coeff, max_coeff] (1 when either is 0), and only
//    when coeff != 1 lamb_coeff_freeze = coeff_beta*lamb_coeff_freeze + (1-coeff_beta)*coeff
//    (:250-252, no bias correction of this EMA either); p += -lr*coeff*update.
//  - After the call with state['step'] >= freeze_step the optimizer freezes (:380-387) and the
//    engine stops all-reducing gradients. At the first frozen call (:179-190) every tensor gets
//    scaling_coeff = mean_j(||m_j||/sqrt(n_j)) / (||m_i||/sqrt(n_i)) from its momentum then.
//  - Frozen calls: m_last = m (:175-178); m = (b1*m + (1-b1)*g_local) * scaling_coeff (:259-261);
//    every momentum, flattened into one buffer (:264-284), is compressed-all-reduced (with more
//    than one rank, :294-316); then per tensor (:318-370) m /= scaling_coeff; the reconstructed
//    gradient r = (m - m_last*b1)/(1-b1) feeds exp_avg_sq_fresh = b2*f + (1-b2)*r^2 while
//    exp_avg_sq stays frozen; update = m/(sqrt(v) + eps) (+ wd*p); factor = max(denom/denom_fresh),
//    with weight decay blended toward 1 by u = min(1, ||prelim||/||update||); clamped to
//    [factor_min, factor_max] and then to last_factor*(1 -/+ factor_threshold); lamb_coeff =
//    lamb_coeff_freeze*factor (max_coeff/min_coeff no longer apply); p += -lr*lamb_coeff*update.
// Arithmetic, as models/onebit_lamb_reference.py: each float32 tensor op rounds once (the
// scalars DeepSpeed keeps as Python floats, here doubles, are cast to float where a tensor op
// takes them); norms are float32 from a double sum of the float32 squares (pow(2).sum().sqrt()),
// momentum scales as CompressedAllReduce's (||x|| from a double sum, / float(sqrt(n))); division
// by a scalar is a true division, as torch's CPU kernels do it.
#pragma once

#include <cmath>
#include <cstdint>

#include "kernels/common/hd.h"
#include "kernels/common/onebit_math.h"

namespace dsc::onebit {

// lamb_state's slots: DeepSpeed's per-tensor Python floats (doubles).
inline constexpr int kLambCoeffFreeze = 0;
inline constexpr int kLastFactor = 1;     // 0 stands for the initial 1.0 (a real factor is > 0)
inline constexpr int kScalingCoeff = 2;   // 0 until the first frozen step computes it
inline constexpr int kLambStateSize = 3;

DSC_HD double LastFactor(const double* state) { return state[kLastFactor] == 0.0 ? 1.0 : state[kLastFactor]; }

// The float factors of one step; scalars as torch casts Python floats for float32 tensors.
struct OnebitLambScalars {
  float beta1, one_minus_beta1, beta2, one_minus_beta2, eps, weight_decay, grad_scale;
};

DSC_HD OnebitLambScalars MakeOnebitLambScalars(double beta1, double beta2, double eps, double weight_decay,
                                               float grad_scale) {
  return OnebitLambScalars{static_cast<float>(beta1), static_cast<float>(1.0 - beta1), static_cast<float>(beta2),
                           static_cast<float>(1.0 - beta2), static_cast<float>(eps), static_cast<float>(weight_decay),
                           grad_scale};
}

// update = m / (sqrt(v) + eps), the part before weight decay.
DSC_HD float OnebitLambPrelim(float m, float v, const OnebitLambScalars& c) { return m / (sqrtf(v) + c.eps); }

// update = prelim + weight_decay * p (only when weight_decay > 0, as DeepSpeed adds it).
DSC_HD float OnebitLambUpdate(float prelim, float p, const OnebitLambScalars& c) {
  return c.weight_decay > 0.0f ? prelim + c.weight_decay * p : prelim;
}

// The reconstructed gradient of a frozen step: (exp_avg - exp_avg_last * beta1) / (1 - beta1).
DSC_HD float OnebitLambReconstruct(float m, float m_last, const OnebitLambScalars& c) {
  return (m - m_last * c.beta1) / c.one_minus_beta1;
}

// exp_avg_sq_fresh.mul_(beta2).addcmul_(1 - beta2, r, r)
DSC_HD float OnebitLambFresh(float f, float r, const OnebitLambScalars& c) { return f * c.beta2 + c.one_minus_beta2 * r * r; }

// The warm-up's lamb coefficient from float32 norms: (||p|| / ||update||).item() clamped, 1 when
// either norm is 0.
DSC_HD double OnebitLambWarmupCoeff(float weight_norm, float update_norm, double max_coeff, double min_coeff) {
  if (weight_norm == 0.0f || update_norm == 0.0f) return 1.0;
  double coeff = static_cast<double>(weight_norm / update_norm);
  if (coeff > max_coeff) coeff = max_coeff;
  if (coeff < min_coeff) coeff = min_coeff;
  return coeff;
}

// The frozen steps' factor from max(denom / denom_fresh) and, with weight decay, the norms of the
// update before and after it; updates last_factor in `state`.
struct FactorLimits {
  double factor_max, factor_min, factor_threshold;
};
DSC_HD double OnebitLambFactor(float max_ratio, bool weight_decay, float prelim_norm, float update_norm,
                               const FactorLimits& lim, double* state) {
  double factor = static_cast<double>(max_ratio);
  if (weight_decay) {
    // min(1.0, x): Python keeps 1.0 unless x < 1.0 (a NaN ratio keeps 1.0 too).
    const double x = static_cast<double>(prelim_norm / update_norm);
    const double ratio = x < 1.0 ? x : 1.0;
    factor = factor * ratio + (1.0 - ratio);
  }
  if (factor > lim.factor_max) factor = lim.factor_max;
  if (factor < lim.factor_min) factor = lim.factor_min;
  const double last = LastFactor(state);
  if (factor > last * (1.0 + lim.factor_threshold)) factor = last * (1.0 + lim.factor_threshold);
  if (factor < last * (1.0 - lim.factor_threshold)) factor = last * (1.0 - lim.factor_threshold);
  state[kLastFactor] = factor;
  return factor;
}

// pow(2).sum().sqrt() of a float32 tensor: the float squares summed in double, then float.
DSC_HD float OnebitLambNorm(double sum_of_squares) { return sqrtf(static_cast<float>(sum_of_squares)); }

// The first frozen step's scaling_coeff of tensor `slot`: the mean of every tensor's momentum
// scale over its own (lamb.py:179-190); 0 when its own is 0 (DeepSpeed's ZeroDivisionError, which
// the caller reports).
DSC_HD double OnebitLambScalingCoeff(const float* scales, int64_t count, int64_t slot) {
  double sum = 0.0;
  for (int64_t j = 0; j < count; ++j) sum += static_cast<double>(scales[j]);
  const double own = static_cast<double>(scales[slot]);
  return own == 0.0 ? 0.0 : sum / static_cast<double>(count) / own;
}

// One element of a warm-up step (lamb.py:230-255): the moments (and, at fresh_step,
// exp_avg_sq_fresh) in place; returns the update whose norm the coefficient takes.
DSC_HD float OnebitLambWarmupElement(float p, float g, float* m, float* v, float* f, bool fresh,
                                     const OnebitScalars& moments, const OnebitLambScalars& c) {
  *m = OnebitMoment(*m, g, moments);
  *v = OnebitSecondMoment(*v, g, moments);
  if (fresh) *f = *v;
  return OnebitLambUpdate(OnebitLambPrelim(*m, *v, c), p, c);
}

// After the warm-up's norms: the coefficient, and its moving average in `state` when it is not 1.
DSC_HD double OnebitLambWarmupFinish(float weight_norm, float update_norm, double max_coeff, double min_coeff,
                                     double coeff_beta, double* state) {
  const double coeff = OnebitLambWarmupCoeff(weight_norm, update_norm, max_coeff, min_coeff);
  if (coeff != 1.0) state[kLambCoeffFreeze] = coeff_beta * state[kLambCoeffFreeze] + (1.0 - coeff_beta) * coeff;
  return coeff;
}

// One element of a frozen step (lamb.py:318-370): exp_avg unscaled by `scaling` and
// exp_avg_sq_fresh in place; the update before and after weight decay and denom / denom_fresh.
struct OnebitLambFrozen {
  float prelim, update, ratio;
};
DSC_HD OnebitLambFrozen OnebitLambFrozenElement(float p, float* m, float* f, float v, float m_last, float scaling,
                                                const OnebitLambScalars& c) {
  *m = *m / scaling;
  *f = OnebitLambFresh(*f, OnebitLambReconstruct(*m, m_last, c), c);
  const float denom = sqrtf(v) + c.eps;
  OnebitLambFrozen out;
  out.prelim = *m / denom;
  out.update = OnebitLambUpdate(out.prelim, p, c);
  out.ratio = denom / (sqrtf(*f) + c.eps);
  return out;
}

// The parameter's update with the step's scale -lr * coeff (both steps end so).
DSC_HD float OnebitLambApply(float p, float m, float v, float scale, const OnebitLambScalars& c) {
  return p + scale * OnebitLambUpdate(OnebitLambPrelim(m, v, c), p, c);
}

}  // namespace dsc::onebit
