// The pointwise activations of current exports (Gelu, Mish, HardSwish, HardSigmoid, Softplus, Elu,
// Selu, Celu, Softsign) and the gradient functions of ReluGrad, LeakyReluGrad, SigmoidGrad and TanhGrad,
// shared by kernels/cpu/activation{,_grad}.cc and kernels/cuda/activation{,_grad}.cu.
//
// Every activation is a struct with Init (attributes, checked once, host only), Forward(x) and
// Derivative(x) = dY/dX at x; derivatives follow torch's backward formulas, including its choice at
// the kinks. The structs are plain values, passed to CUDA kernels by value.
//
//   Gelu g;  RETURN_IF_ERROR(g.Init(node));  y = g.Forward(x);  dx = dy * g.Derivative(x);
#pragma once

#include <math.h>

#include <cmath>

#include <string>

#include "ir/graph.h"
#include "kernels/common/elementwise_math.h"
#include "kernels/common/hd.h"

namespace dsc::act {

DSC_HD float StableSoftplus(float x) { return ew::StdMax(x, 0.0f) + ::log1pf(::expf(-::fabsf(x))); }
using ew::StableSigmoid;

// Gelu (opset 20): approximate = "none": x * Phi(x); "tanh": 0.5 x (1 + tanh(sqrt(2/pi)(x + 0.044715 x^3))).
struct Gelu {
  bool tanh_approx = false;
  Status Init(const Node& node) {
    const std::string a = node.GetString("approximate", "none");
    if (a != "none" && a != "tanh")
      return InvalidArgument("Gelu approximate = \"", a, "\"; ONNX defines \"none\" and \"tanh\"");
    tanh_approx = a == "tanh";
    return Status::OK();
  }
  static constexpr float kSqrt2OverPi = 0.7978845608028654f;
  static constexpr float kCubic = 0.044715f;
  DSC_HD float Forward(float x) const {
    if (tanh_approx) return 0.5f * x * (1.0f + ::tanhf(kSqrt2OverPi * (x + kCubic * x * x * x)));
    return 0.5f * x * (1.0f + ::erff(x * static_cast<float>(M_SQRT1_2)));
  }
  DSC_HD float Derivative(float x) const {
    if (tanh_approx) {
      const float t = ::tanhf(kSqrt2OverPi * (x + kCubic * x * x * x));
      return 0.5f * (1.0f + t) + 0.5f * x * (1.0f - t * t) * kSqrt2OverPi * (1.0f + 3.0f * kCubic * x * x);
    }
    const float cdf = 0.5f * (1.0f + ::erff(x * static_cast<float>(M_SQRT1_2)));
    const float pdf = ::expf(-0.5f * x * x) * static_cast<float>(0.5 * M_2_SQRTPI * M_SQRT1_2);
    return cdf + x * pdf;
  }
};

// Mish: x * tanh(softplus(x)).
struct Mish {
  Status Init(const Node&) { return Status::OK(); }
  DSC_HD float Forward(float x) const { return x * ::tanhf(StableSoftplus(x)); }
  DSC_HD float Derivative(float x) const {
    const float t = ::tanhf(StableSoftplus(x));
    return t + x * (1.0f - t * t) * StableSigmoid(x);
  }
};

// HardSwish (fixed alpha 1/6, beta 0.5): x * clamp(x/6 + 1/2, 0, 1). torch: 0 for x <= -3, x/3 + 1/2
// for -3 < x < 3, 1 from 3 on.
struct HardSwish {
  Status Init(const Node&) { return Status::OK(); }
  DSC_HD float Forward(float x) const { return x * ew::StdMin(ew::StdMax(x / 6.0f + 0.5f, 0.0f), 1.0f); }
  DSC_HD float Derivative(float x) const { return x <= -3.0f ? 0.0f : x < 3.0f ? x / 3.0f + 0.5f : 1.0f; }
};

// HardSigmoid<alpha = 0.2, beta = 0.5>: clamp(alpha x + beta, 0, 1); the slope alpha only strictly
// inside (0, 1), as torch's hardsigmoid_backward.
struct HardSigmoid {
  float alpha = 0.2f, beta = 0.5f;
  Status Init(const Node& node) {
    alpha = node.GetFloat("alpha", 0.2f);
    beta = node.GetFloat("beta", 0.5f);
    return Status::OK();
  }
  DSC_HD float Forward(float x) const { return ew::StdMin(ew::StdMax(alpha * x + beta, 0.0f), 1.0f); }
  DSC_HD float Derivative(float x) const {
    const float v = alpha * x + beta;
    return v > 0.0f && v < 1.0f ? alpha : 0.0f;
  }
};

// Softplus: log(1 + e^x), written so that e^x never overflows.
struct Softplus {
  Status Init(const Node&) { return Status::OK(); }
  DSC_HD float Forward(float x) const { return StableSoftplus(x); }
  DSC_HD float Derivative(float x) const { return StableSigmoid(x); }
};

// Elu<alpha = 1>: x for x > 0, alpha (e^x - 1) otherwise.
struct Elu {
  float alpha = 1.0f;
  Status Init(const Node& node) {
    alpha = node.GetFloat("alpha", 1.0f);
    return Status::OK();
  }
  DSC_HD float Forward(float x) const { return x > 0.0f ? x : alpha * ::expm1f(x); }
  DSC_HD float Derivative(float x) const { return x > 0.0f ? 1.0f : alpha * ::expf(x); }
};

// Selu<alpha, gamma>: gamma * (x for x > 0, alpha (e^x - 1) otherwise); defaults are the ONNX
// constants (float-rounded, the same as torch's).
struct Selu {
  float alpha = 1.67326319217681884765625f, gamma = 1.05070102214813232421875f;
  Status Init(const Node& node) {
    alpha = node.GetFloat("alpha", 1.67326319217681884765625f);
    gamma = node.GetFloat("gamma", 1.05070102214813232421875f);
    return Status::OK();
  }
  DSC_HD float Forward(float x) const { return gamma * (x > 0.0f ? x : alpha * ::expm1f(x)); }
  DSC_HD float Derivative(float x) const { return gamma * (x > 0.0f ? 1.0f : alpha * ::expf(x)); }
};

// Celu<alpha = 1>: x for x > 0, alpha (e^(x/alpha) - 1) otherwise; torch computes x / alpha as
// x * (1 / alpha) (elu's input_scale), and so do we. alpha = 0 is refused (ONNX divides by it).
struct Celu {
  float alpha = 1.0f, inv_alpha = 1.0f;
  Status Init(const Node& node) {
    alpha = node.GetFloat("alpha", 1.0f);
    if (alpha == 0.0f || !std::isfinite(alpha)) return InvalidArgument("Celu alpha = ", alpha, " must be non-zero and finite");
    inv_alpha = 1.0f / alpha;
    return Status::OK();
  }
  DSC_HD float Forward(float x) const { return x > 0.0f ? x : alpha * ::expm1f(x * inv_alpha); }
  DSC_HD float Derivative(float x) const { return x > 0.0f ? 1.0f : ::expf(x * inv_alpha); }
};

// Softsign: x / (1 + |x|).
struct Softsign {
  Status Init(const Node&) { return Status::OK(); }
  DSC_HD float Forward(float x) const { return x / (1.0f + ::fabsf(x)); }
  DSC_HD float Derivative(float x) const {
    const float d = 1.0f + ::fabsf(x);
    return 1.0f / (d * d);
  }
};

// Gradients taking (dY, T) -> dX, where T is X (Relu, LeakyRelu) or Y (Sigmoid, Tanh).
struct ReluGrad {
  Status Init(const Node&) { return Status::OK(); }
  DSC_HD float operator()(float dy, float x) const { return x > 0 ? dy : 0.0f; }
};
struct LeakyReluGrad {
  float alpha = 0.01f;  // ONNX default
  Status Init(const Node& node) {
    alpha = node.GetFloat("alpha", 0.01f);
    return Status::OK();
  }
  DSC_HD float operator()(float dy, float x) const { return x > 0 ? dy : dy * alpha; }
};
struct SigmoidGrad {
  Status Init(const Node&) { return Status::OK(); }
  DSC_HD float operator()(float dy, float y) const { return dy * y * (1.0f - y); }
};
struct TanhGrad {
  Status Init(const Node&) { return Status::OK(); }
  DSC_HD float operator()(float dy, float y) const { return dy * (1.0f - y * y); }
};

}  // namespace dsc::act
