// 1-bit Adam's per-element math (DeepSpeed's OnebitAdam, deepspeed/runtime/fp16/onebit/adam.py,
// and the compression of runtime/comm/nccl.py compressed_allreduce), shared by the CPU kernels
// (kernels/cpu/onebit.cc) and their CUDA twins (kernels/cuda/onebit.cu). Scalars are C floats as
// torch's float32 ops use them: Python's 1 - beta in double, then cast.
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
DSC_HD OnebitScalars MakeOnebitScalars(double beta1, double beta2, double eps, double weight_decay, double lr,
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

// A compressed buffer's scale from the sum of its float squares (summed in double):
// ||x|| / sqrt(len) in float, as torch.linalg.norm(x) / np.sqrt(numel).
DSC_HD float OnebitCompressionScale(double sum_of_squares, int64_t len) {
  return static_cast<float>(::sqrt(sum_of_squares)) / static_cast<float>(::sqrt(static_cast<double>(len)));
}

// Eight elements x[0..7] -> their signs as one packed byte, and the errors x - scale*sign(x) into
// error[0..7] (x and error may be the same buffer).
DSC_HD uint8_t OnebitPackByte(const float* x, float scale, float* error) {
  uint8_t bits = 0;
  for (int k = 0; k < 8; ++k) {
    const float v = x[k];
    const bool pos = OnebitPositive(v);
    if (pos) bits |= static_cast<uint8_t>(0x80u >> k);
    error[k] = v - scale * (pos ? 1.0f : -1.0f);
  }
  return bits;
}

// The server side's element j of a rank's chunk: the ranks' signs for it (recv holds `world`
// packed chunks of `chunk` elements) times their scales / world, summed in rank order from 0.
DSC_HD float OnebitServerSum(const uint8_t* recv, const float* scales, int64_t world, int64_t chunk, int64_t j) {
  const float inv_world = static_cast<float>(1.0 / static_cast<double>(world));
  float sum = 0.0f;
  for (int64_t q = 0; q < world; ++q) {
    const float s = scales[q] * inv_world;
    sum += OnebitBit(recv + q * (chunk / 8), j) ? s : -s;
  }
  return sum;
}

// Element `at` of the all-reduced buffer: chunk r's sign times rank r's server scale.
DSC_HD float OnebitDecode(const uint8_t* gathered, const float* server_scales, int64_t chunk, int64_t at) {
  const float s = server_scales[at / chunk];
  return OnebitBit(gathered, at) ? s : -s;
}

}  // namespace dsc::onebit
