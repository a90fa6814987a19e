// The per-element math of LambMoments and LambApply (ir/dsc_ops.h), DeepSpeed's FusedLamb split at
// its reduction so the per-tensor norms can be summed over ZeRO shards in between; shared by the
// CPU kernels (kernels/cpu/training_ops.cc) and their CUDA twins (kernels/cuda/training_ops.cu).
//
// What this reproduces, from DeepSpeed (deepspeedai/DeepSpeed at edaa72212):
//  - csrc/lamb/fused_lamb_cuda_kernel.cu:223-235 (part 1, per element, all float): g = grad /
//    grad_scale; m = b1*m + (1-b1)*g; v = b2*v + (1-b2)*g*g; denom = sqrtf(v + eps) in mode 0
//    (eps_inside_sqrt) else sqrtf(v) + eps; update = m/denom + decay*p; sums of p^2 and update^2
//    (the pre-update p). Our grad_scale multiplies (the plan's 1/loss_scale times the clip factor;
//    DeepSpeed's engine passes scale = 1 to FusedLamb, so nothing divides there).
//  - :288-297 (part 3): w = sqrtf(sum p^2), u = sqrtf(sum update^2); coeff = 1, and when both are
//    nonzero coeff = w/u, then min(coeff, max_coeff), then max(coeff, min_coeff) (in that order).
//  - :305-316: update recomputed from the stored m, v and the pre-update p; p -= step_size * coeff *
//    update, float.
//  - :363-370 (host): step_size = lr * sqrt(bc2) / bc1 in float, bc_i = float(1 - pow(beta_i, step))
//    (std::pow(float, int) computes in double); step_size = lr without bias_correction. The
//    moments themselves are never bias-corrected.
//  - deepspeed/ops/lamb/fused_lamb.py:66: eps_mode = 0 if eps_inside_sqrt else 1; :135 the
//    max_grad_norm clip, unused since the engine refuses max_grad_norm (gradient_clipping does it).
// DeepSpeed sums the squares in float per thread and block; here they are summed in double.
#pragma once

#include <cmath>
#include <cstdint>

#include "kernels/common/hd.h"

namespace dsc::optim {

// LambMoments/LambApply attributes as plain data (the CUDA kernels take it by value).
struct LambAttrs {
  float beta1, beta2, eps, weight_decay, max_coeff, min_coeff;
  bool eps_inside_sqrt, bias_correction;
};

// The new moments of one element (rounded by the caller to the state dtype) from p, the gradient
// times grad_scale, and the old moments: float as DeepSpeed's part 1.
DSC_HD void LambMomentsElement(const LambAttrs& a, float grad, float grad_scale, float m, float v, float* m_out,
                               float* v_out) {
  const float g = grad * grad_scale;
  *m_out = a.beta1 * m + (1.0f - a.beta1) * g;
  *v_out = a.beta2 * v + (1.0f - a.beta2) * g * g;
}

// update = m/denom + decay*p, from the stored moments (parts 1 and 3 compute it alike).
DSC_HD float LambUpdate(const LambAttrs& a, float p, float m, float v) {
  const float denom = a.eps_inside_sqrt ? ::sqrtf(v + a.eps) : ::sqrtf(v) + a.eps;
  return (m / denom) + (a.weight_decay * p);
}

// FusedLamb's step size: lr * sqrt(bc2) / bc1 in float (lr without bias correction); step >= 1.
DSC_HD float LambStepSize(const LambAttrs& a, float lr, int64_t step) {
  if (!a.bias_correction) return lr;
  const float bc1 = static_cast<float>(1.0 - ::pow(static_cast<double>(a.beta1), static_cast<double>(step)));
  const float bc2 = static_cast<float>(1.0 - ::pow(static_cast<double>(a.beta2), static_cast<double>(step)));
  return lr * ::sqrtf(bc2) / bc1;
}

// The trust ratio from the tensor's sums of squares: ||p|| / ||update|| clamped to
// [min_coeff, max_coeff], or 1 when either norm is 0.
DSC_HD float LambCoeff(const LambAttrs& a, float p_sumsq, float u_sumsq) {
  const float w = ::sqrtf(p_sumsq), u = ::sqrtf(u_sumsq);
  float coeff = 1.0f;
  if (w != 0.0f && u != 0.0f) {
    coeff = w / u;
    if (coeff > a.max_coeff) coeff = a.max_coeff;
    if (coeff < a.min_coeff) coeff = a.min_coeff;
  }
  return coeff;
}

// The new p of one element; scale = step_size * coeff (float, as part 3 multiplies them first).
DSC_HD float LambApplyElement(const LambAttrs& a, float scale, float p, float m, float v) {
  return p - scale * LambUpdate(a, p, m, v);
}

}  // namespace dsc::optim
