// The per-element math of the training ops (Accumulate, SumSquares, ClipScale, AdamStep, SGDStep,
// OptimStep), shared by the CPU kernels (kernels/cpu/training_ops.cc) and their CUDA twins
// (kernels/cuda/training_ops.cu): the scalar factors of a step, computed in double as Python does
// before torch casts them to float, and the float update of one element.
#pragma once

#include <cmath>
#include <cstdint>

#include "kernels/common/hd.h"

namespace dsc::optim {

// 10^k as a double, exact for 0 <= k <= 22 (a product of exact powers, no libm call).
DSC_HD double Pow10(int k) {
  double r = 1.0;
  for (int i = 0; i < k; ++i) r *= 10.0;
  return r;
}

// The double a float attribute was written as (0.999f -> 0.999): its shortest round-trip decimal,
// the value std::to_chars prints, read back by strtod. Attributes and the lr input are float, but
// torch computes 1 - beta2 and lr * wd from the Python double; from the float, 1 - 0.999f is off by
// 1.3e-5 relative, which shows in exp_avg_sq.
//
// For k decimal places the nearest decimal is rint(f * 10^k) / 10^k, and n / 10^k (n * 10^-k) of
// exact operands rounds correctly, as strtod does; the smallest k that round-trips gives the
// fewest significant digits. Beyond 10^22 the powers are inexact: f itself is returned there
// (|f| < 1e-14 or > 1e22, no learning rate or beta).
DSC_HD double ShortestDecimal(float f) {
  const double x = f;
  if (!(x != 0.0) || !(::fabs(x) < 1e22) || !(::fabs(x) >= 1e-14)) return x;  // 0, NaN, inf, extremes
  // First k with at most one significant digit; every k below it rounds f to 0 or a power of ten
  // that a smaller k would already have produced.
  const int e = static_cast<int>(::floor(::log10(::fabs(x))));
  for (int k = -e - 1; k <= 22; ++k) {
    double d;
    if (k >= 0) {
      const double s = Pow10(k);
      d = ::rint(x * s) / s;
    } else {
      const double s = Pow10(-k);
      d = ::rint(x / s) * s;
    }
    if (static_cast<float>(d) == f) return d;
  }
  return x;
}

// The part of a param an optimizer step (or a sharded Assign) updates. shard = 0: all n elements,
// from grad/state of the same size. shard = 1 (ZeRO 1-2): grad/state hold this rank's chunk of
// c = ceil(n / world) elements and the step updates param[rank*c, min(n, (rank+1)*c)) from their
// first elements (the padded tail of the last chunk is ignored).
struct ShardRange {
  int64_t offset = 0;  // first param element updated
  int64_t len = 0;     // elements updated
  int64_t state = 0;   // elements grad/state tensors must hold
};
inline ShardRange ShardOf(int64_t n, bool shard, int64_t rank, int64_t world) {
  if (!shard) return ShardRange{0, n, n};
  const int64_t c = (n + world - 1) / world;
  const int64_t begin = n < rank * c ? n : rank * c;
  const int64_t end = n < (rank + 1) * c ? n : (rank + 1) * c;
  return ShardRange{begin, end > begin ? end - begin : 0, c};
}

// The scalar factors of one Adam step.
struct AdamScalars {
  float grad_scale, fb1, f1mb1, fb2, f1mb2, step_size, bc2_sqrt, keep, wd, eps;
  bool l2, decoupled;
};

// lr and b1 (the step's, maybe the beta1 override) and b2, wd_decimal as ShortestDecimal gives
// them; wd and eps the float attributes; step >= 1.
DSC_HD AdamScalars MakeAdamScalars(double lr, int64_t step, double b1, double b2, float grad_scale, float wd,
                                   double wd_decimal, float eps, bool bias_correction, bool adam_w_mode) {
  const double bc1 = bias_correction ? 1.0 - ::pow(b1, static_cast<double>(step)) : 1.0;
  const double bc2 = bias_correction ? 1.0 - ::pow(b2, static_cast<double>(step)) : 1.0;
  AdamScalars c;
  c.grad_scale = grad_scale;
  c.fb1 = static_cast<float>(b1);
  c.f1mb1 = static_cast<float>(1.0 - b1);
  c.fb2 = static_cast<float>(b2);
  c.f1mb2 = static_cast<float>(1.0 - b2);
  c.step_size = static_cast<float>(lr / bc1);
  c.bc2_sqrt = static_cast<float>(::sqrt(bc2));
  c.keep = static_cast<float>(1.0 - lr * wd_decimal);  // AdamW: param *= 1 - lr*wd
  c.wd = wd;
  c.eps = eps;
  c.l2 = !adam_w_mode && wd != 0.0f;
  c.decoupled = adam_w_mode && wd != 0.0f;
  return c;
}

// The update of ir/dsc_ops.h for one element, in float: p, g, m, v read as float whatever their
// dtype; the new moments and param are returned unrounded (the caller rounds each once to its
// dtype) and the step uses the unrounded moments, as the float32 kernel on widened tensors would.
DSC_HD void AdamElement(const AdamScalars& c, float p, float grad, float m, float v, float* p_out, float* m_out,
                        float* v_out) {
  float g = grad * c.grad_scale;
  if (c.l2) g += c.wd * p;
  const float mi = m * c.fb1 + c.f1mb1 * g;
  const float vi = v * c.fb2 + c.f1mb2 * (g * g);
  *m_out = mi;
  *v_out = vi;
  const float denom = ::sqrtf(vi) / c.bc2_sqrt + c.eps;
  float x = p;
  if (c.decoupled) x *= c.keep;
  *p_out = x - c.step_size * (mi / denom);
}

struct SgdScalars {
  float grad_scale, lr, mom, damp, wd;
  bool first, nesterov, use_buf;
};

// lr and grad_scale are the float inputs as given (torch.optim.SGD uses lr as a float);
// damp_decimal is ShortestDecimal(dampening).
DSC_HD SgdScalars MakeSgdScalars(float lr, int64_t step, float grad_scale, float momentum, double damp_decimal,
                                 float wd, bool nesterov) {
  SgdScalars c;
  c.use_buf = momentum != 0.0f;
  c.lr = lr;
  c.first = step <= 1;
  c.grad_scale = grad_scale;
  c.mom = momentum;
  c.damp = static_cast<float>(1.0 - damp_decimal);
  c.wd = wd;
  c.nesterov = nesterov;
  return c;
}

// torch.optim.SGD for one element in float; `buf` is read only when c.use_buf and not c.first.
// The new buffer value (when c.use_buf) and param are returned unrounded.
DSC_HD void SgdElement(const SgdScalars& c, float p, float grad, float buf, float* p_out, float* buf_out) {
  float d = grad * c.grad_scale;
  if (c.wd != 0.0f) d += c.wd * p;
  if (c.use_buf) {
    const float b = c.first ? d : buf * c.mom + c.damp * d;
    *buf_out = b;
    d = c.nesterov ? d + c.mom * b : b;
  }
  *p_out = p - c.lr * d;
}

// ---- OptimStep: the element-wise optimizers of ir/optim_algorithms.h ----

// The algorithm ids of ir/optim_algorithms.h's OptimAlgorithm (this header stays free of ir/).
enum OptimAlgo : int { kLion = 0, kAdagrad, kRMSprop, kAdamax, kNAdam, kRAdam, kAdadelta };

// An OptimStep's attributes as plain data (the CUDA prep kernel takes it by value). The floats
// are the node's attributes; the *_d doubles their ShortestDecimal, the values Python computes
// with before torch casts a factor to float.
struct OptimAttrs {
  int algo;
  float beta1, beta2, eps, weight_decay, lr_decay, initial_acc, alpha, momentum, momentum_decay, rho;
  double beta1_d, beta2_d, wd_d, lr_decay_d, alpha_d, momentum_decay_d, rho_d;
  bool centered, decoupled;
};

// This step's beta1 from OptimStep's beta1_override input (OneCycle's cycled momentum): the float
// the runtime fed, as DeepSpeed's kernels receive it, and its shortest decimal as torch's Python
// float for the double factors.
DSC_HD void OverrideBeta1(OptimAttrs* a, float beta1) {
  a->beta1 = beta1;
  a->beta1_d = ShortestDecimal(beta1);
}

// One step's factors, in float as torch applies them. Which fields an algorithm reads:
//   all:      grad_scale; l2 (added as l2 * p to the gradient; 0: none); keep (p *= keep first; 1: none)
//   Lion:     d1 = beta1, w1 = 1 - beta1, d2 = beta2, w2 = 1 - beta2 (float arithmetic), lr
//   Adagrad:  lr = -lr/(1+(step-1)*lr_decay), eps, first (sum starts at init), init
//   RMSprop:  d1 = alpha, w1 = 1 - alpha, eps, lr = -lr, momentum, centered
//   Adamax:   w1 = 1 - beta1 (lerp weight), d2 = beta2, eps, lr = -lr/(1 - beta1^step)
//   NAdam:    w1, d2, w2 = 1 - beta2, bc = 1 - beta2^step, eps, lr = -lr*(1-mu)/(1-mu_product),
//             lr2 = -lr*mu_next/(1-mu_product*mu_next)
//   RAdam:    w1, d2, w2, bc = 1 - beta1^step, eps, lr, rectified (rho_t > 5), bc2_sqrt, rect
//   Adadelta: d1 = rho, w1 = 1 - rho, eps, lr = -lr
struct OptimScalars {
  int algo;
  float grad_scale, l2, keep;
  float d1, w1, d2, w2, eps, lr, lr2, bc, bc2_sqrt, rect, momentum, init;
  bool first, centered, rectified;
};

// NAdam's mu_t for step t, in double as torch computes it.
DSC_HD double NadamMu(double beta1, double momentum_decay, double t) {
  return beta1 * (1.0 - 0.5 * ::pow(0.96, t * momentum_decay));
}

// torch.optim.NAdam's `mu_product *= mu` of step t: the float32 state times mu_t (this step's beta1)
// cast to float, as ATen multiplies a float tensor by a Python float. With OneCycle's cycled beta1
// the kernels apply it to their mu_product input once per applied step.
DSC_HD float NadamAdvanceMuProduct(float product, double beta1, double momentum_decay, int64_t t) {
  return product * static_cast<float>(NadamMu(beta1, momentum_decay, static_cast<double>(t)));
}

// torch.optim.NAdam's mu_product after `step` steps of a constant beta1, a float32 tensor
// multiplied by each mu_t in turn (NadamAdvanceMuProduct). (*at, *product) caches the last result: the
// product advances from it, or starts again from step 0 when `step` is before it (a resumed run);
// *at = 0 means nothing cached.
DSC_HD float NadamMuProduct(double beta1, double momentum_decay, int64_t step, int64_t* at, float* product) {
  if (*at <= 0 || *at > step) {
    *at = 0;
    *product = 1.0f;
  }
  for (int64_t t = *at + 1; t <= step; ++t) *product = NadamAdvanceMuProduct(*product, beta1, momentum_decay, t);
  *at = step;
  return *product;
}

// lr as Python's double (ShortestDecimal of the float input); step >= 1; mu_product this step's
// (NAdam only: NadamMuProduct, or the advanced mu_product input with a cycled beta1).
DSC_HD OptimScalars MakeOptimScalars(const OptimAttrs& a, double lr, int64_t step, float grad_scale,
                                     float mu_product) {
  OptimScalars c{};
  c.algo = a.algo;
  c.grad_scale = grad_scale;
  c.keep = 1.0f;
  c.eps = a.eps;
  const double t = static_cast<double>(step);  // torch >= 2 keeps step as a float tensor
  const bool l2 = a.weight_decay != 0.0f && !(a.decoupled && (a.algo == kNAdam || a.algo == kRAdam));
  c.l2 = l2 && a.algo != kLion ? a.weight_decay : 0.0f;
  switch (a.algo) {
    case kLion: {  // every factor a float, as DeepSpeed's kernel receives them
      const float flr = static_cast<float>(lr);
      c.d1 = a.beta1;
      c.w1 = 1.0f - a.beta1;
      c.d2 = a.beta2;
      c.w2 = 1.0f - a.beta2;
      c.lr = flr;
      c.keep = 1.0f - flr * a.weight_decay;
      break;
    }
    case kAdagrad:
      c.lr = static_cast<float>(-(lr / (1.0 + (t - 1.0) * a.lr_decay_d)));
      c.first = step <= 1;
      c.init = a.initial_acc;
      break;
    case kRMSprop:
      c.d1 = a.alpha;
      c.w1 = static_cast<float>(1.0 - a.alpha_d);
      c.lr = static_cast<float>(-lr);
      c.momentum = a.momentum;
      c.centered = a.centered;
      break;
    case kAdamax:
      c.w1 = static_cast<float>(1.0 - a.beta1_d);
      c.d2 = a.beta2;
      c.lr = static_cast<float>(-(lr / (1.0 - ::pow(a.beta1_d, t))));
      break;
    case kNAdam: {
      c.w1 = static_cast<float>(1.0 - a.beta1_d);
      c.d2 = a.beta2;
      c.w2 = static_cast<float>(1.0 - a.beta2_d);
      c.bc = static_cast<float>(1.0 - ::pow(a.beta2_d, t));
      const double mu = NadamMu(a.beta1_d, a.momentum_decay_d, t);
      const double mu_next = NadamMu(a.beta1_d, a.momentum_decay_d, t + 1.0);
      const double product = mu_product;
      c.lr = static_cast<float>(-lr * (1.0 - mu) / (1.0 - product));
      c.lr2 = static_cast<float>((-lr * mu_next) / (1.0 - product * mu_next));
      if (a.decoupled && a.weight_decay != 0.0f) c.keep = static_cast<float>(1.0 - lr * a.wd_d);
      break;
    }
    case kRAdam: {
      c.w1 = static_cast<float>(1.0 - a.beta1_d);
      c.d2 = a.beta2;
      c.w2 = static_cast<float>(1.0 - a.beta2_d);
      const double bc1 = 1.0 - ::pow(a.beta1_d, t);
      const double bc2 = 1.0 - ::pow(a.beta2_d, t);
      c.bc = static_cast<float>(bc1);
      c.lr = static_cast<float>(lr);
      const double rho_inf = 2.0 / (1.0 - a.beta2_d) - 1.0;
      const double rho_t = rho_inf - 2.0 * t * ::pow(a.beta2_d, t) / bc2;
      c.rectified = rho_t > 5.0;
      if (c.rectified) {
        c.rect = static_cast<float>(
            ::sqrt((rho_t - 4.0) * (rho_t - 2.0) * rho_inf / ((rho_inf - 4.0) * (rho_inf - 2.0) * rho_t)));
        c.bc2_sqrt = static_cast<float>(::sqrt(bc2));
      }
      if (a.decoupled && a.weight_decay != 0.0f) c.keep = static_cast<float>(1.0 - lr * a.wd_d);
      break;
    }
    case kAdadelta:
      c.d1 = a.rho;
      c.w1 = static_cast<float>(1.0 - a.rho_d);
      c.lr = static_cast<float>(-lr);
      break;
  }
  return c;
}

// torch's lerp(self, end, weight) for a float weight (ATen's two-sided form).
DSC_HD float Lerp(float self, float end, float w) {
  return ::fabsf(w) < 0.5f ? self + w * (end - self) : end - (end - self) * (1.0f - w);
}

// One element of an OptimStep: p, grad and the states s[0..k) read as float whatever their
// dtype; s is updated in place and the new param returned in *p_out, both unrounded (the caller
// rounds each once to its dtype). Each line is one torch (or DeepSpeed) tensor op, rounded to
// float as that op rounds.
DSC_HD void OptimElement(const OptimScalars& c, float p, float grad, float* s, float* p_out) {
  float g = grad * c.grad_scale;
  if (c.l2 != 0.0f) g = g + c.l2 * p;
  if (c.keep != 1.0f && c.algo != kLion) p = p * c.keep;
  switch (c.algo) {
    case kLion: {
      const float m = s[0];
      const float u = c.d1 * m + c.w1 * g;
      p = p * c.keep + (u > 0.0f ? -c.lr : c.lr);
      s[0] = c.d2 * m + c.w2 * g;
      break;
    }
    case kAdagrad: {
      const float sum = (c.first ? c.init : s[0]) + g * g;
      s[0] = sum;
      p = p + (c.lr * g) / (::sqrtf(sum) + c.eps);
      break;
    }
    case kRMSprop: {
      const float sq = s[0] * c.d1 + (c.w1 * g) * g;
      s[0] = sq;
      float avg;
      if (c.centered) {
        float& ga = s[c.momentum != 0.0f ? 2 : 1];
        ga = Lerp(ga, g, c.w1);
        avg = ::sqrtf(sq + (-1.0f * ga) * ga);
      } else {
        avg = ::sqrtf(sq);
      }
      avg = avg + c.eps;
      if (c.momentum != 0.0f) {
        const float buf = s[1] * c.momentum + g / avg;
        s[1] = buf;
        p = p + c.lr * buf;
      } else {
        p = p + (c.lr * g) / avg;
      }
      break;
    }
    case kAdamax: {
      const float m = Lerp(s[0], g, c.w1);
      const float a = s[1] * c.d2, b = ::fabsf(g) + c.eps;
      const float u = (a != a || a > b) ? a : b;  // torch.maximum: NaN propagates
      s[0] = m;
      s[1] = u;
      p = p + (c.lr * m) / u;
      break;
    }
    case kNAdam: {
      const float m = Lerp(s[0], g, c.w1);
      const float v = s[1] * c.d2 + (c.w2 * g) * g;
      s[0] = m;
      s[1] = v;
      const float denom = ::sqrtf(v / c.bc) + c.eps;
      p = p + (c.lr * g) / denom;
      p = p + (c.lr2 * m) / denom;
      break;
    }
    case kRAdam: {
      const float m = Lerp(s[0], g, c.w1);
      const float v = s[1] * c.d2 + (c.w2 * g) * g;
      s[0] = m;
      s[1] = v;
      const float corrected = m / c.bc;
      if (c.rectified) {
        const float adaptive = (1.0f / (::sqrtf(v) + c.eps)) * c.bc2_sqrt;  // python float / tensor
        p = p - ((corrected * c.lr) * adaptive) * c.rect;
      } else {
        p = p - corrected * c.lr;
      }
      break;
    }
    case kAdadelta: {
      const float sq = s[0] * c.d1 + (c.w1 * g) * g;
      s[0] = sq;
      const float delta = ::sqrtf(s[1] + c.eps) / ::sqrtf(sq + c.eps) * g;
      s[1] = s[1] * c.d1 + (c.w1 * delta) * delta;
      p = p + c.lr * delta;
      break;
    }
  }
  *p_out = p;
}

// ClipScale: min(1, max_norm / (norm + 1e-6)) in float, as torch computes it; max_norm <= 0: 1.
// A NaN/inf norm gives a NaN coefficient; torch multiplies by it too (the step is ruined either
// way and the overflow check, not clipping, is what guards against it).
DSC_HD float ClipScale(float norm, float max_norm) {
  if (!(max_norm > 0)) return 1.0f;
  const float coef = max_norm / (norm + 1e-6f);
  return coef < 1.0f || coef != coef ? coef : 1.0f;
}

// Accumulate: acc + x in float (rounded once to acc's dtype by the caller).
DSC_HD float AccumulateElement(float acc, float x) { return acc + x; }

// SumSquares' term for one element: widened exactly to double, squared in double.
DSC_HD double SquareD(float x) {
  const double v = x;
  return v * v;
}

}  // namespace dsc::optim
