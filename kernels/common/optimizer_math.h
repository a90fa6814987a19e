// The per-element math of the training ops (Accumulate, SumSquares, ClipScale, AdamStep, SGDStep),
// shared by the CPU kernels (kernels/cpu/training_ops.cc) and their CUDA twins
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
