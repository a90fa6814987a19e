// 1-bit Adam's per-element math (DeepSpeed's OnebitAdam, deepspeed/runtime/fp16/onebit/adam.py,
// and the compression of runtime/comm/nccl.py compressed_allreduce), shared by the CPU kernels
// (kernels/cpu/onebit.cc) and their CUDA twins. Scalars are C floats as torch's float32 ops use
// them: Python's 1 - beta in double, then cast.
//   OnebitScalars c = MakeOnebitScalars(attrs, lr, grad_scale);
//   m = OnebitMoment(m, g, c);  p = OnebitApply(p, m, v, c);
#pragma once

#include <cmath>
#include <cstdint>

#include "kernels/common/hd.h"

namespace dsc::onebit {

// The factors of one update, from the node's attributes and the step's scalars.
struct OnebitScalars {
  float beta1, one_minus_beta1, beta2, one_minus_beta2, eps, weight_decay, neg_lr, grad_scale;
};

// beta1..weight_decay: the attributes as the shortest decimal doubles Python held; lr likewise.
inline OnebitScalars MakeOnebitScalars(double beta1, double beta2, double eps, double weight_decay, double lr,
                                       float grad_scale) {
  return OnebitScalars{static_cast<float>(beta1), static_cast<float>(1.0 - beta1), static_cast<float>(beta2),
                       static_cast<float>(1.0 - beta2),  static_cast<float>(eps),  static_cast<float>(weight_decay),
                       static_cast<float>(-lr),          grad_scale};
}

// exp_avg.mul_(beta1).add_(1 - beta1, grad)
DSC_HD float OnebitMoment(float m, float grad, const OnebitScalars& c) {
  return m * c.beta1 + c.one_minus_beta1 * (grad * c.grad_scale);
}

// exp_avg_sq.mul_(beta2).addcmul_(1 - beta2, grad, grad)
DSC_HD float OnebitSecondMoment(float v, float grad, const OnebitScalars& c) {
  const float g = grad * c.grad_scale;
  return v * c.beta2 + c.one_minus_beta2 * g * g;
}

// update = exp_avg / (exp_avg_sq.sqrt() + eps); update += weight_decay * p (when > 0);
// p.add_(-lr * update).
DSC_HD float OnebitApply(float p, float m, float v, const OnebitScalars& c) {
  float update = m / (sqrtf(v) + c.eps);
  if (c.weight_decay > 0.0f) update += c.weight_decay * p;
  return p + c.neg_lr * update;
}

// The sign the compression keeps: buffer.sign().add_(1).bool() is false only for -1, so zeros
// and NaNs count as +1.
DSC_HD bool OnebitPositive(float x) { return !(x < 0.0f); }

// Bit i of a packed sign buffer, numpy/cupy packbits order (element 0 in the top bit).
DSC_HD bool OnebitBit(const uint8_t* packed, int64_t i) { return (packed[i >> 3] >> (7 - (i & 7))) & 1; }

}  // namespace dsc::onebit
