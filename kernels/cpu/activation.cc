// Pointwise activations of current exports (Gelu, Mish, HardSwish, HardSigmoid, Softplus, Elu, Selu,
// Softsign) and their gradient ops (ir/dsc_ops.h): each op's forward and derivative live side by side.
#include <algorithm>
#include <cmath>
#include <string>

#include "ir/dsc_ops.h"
#include "kernels/cpu/core_util.h"

namespace dsc::cpu {
namespace {

// Every activation is a struct with Init (attributes, checked once), Forward(x) and Derivative(x) =
// dY/dX at x; derivatives follow torch's backward formulas, including its choice at the kinks.

float StableSoftplus(float x) { return std::max(x, 0.0f) + std::log1p(std::exp(-std::fabs(x))); }
float StableSigmoid(float x) {
  if (x >= 0) return 1.0f / (1.0f + std::exp(-x));
  const float e = std::exp(x);
  return e / (1.0f + e);
}

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
  float Forward(float x) const {
    if (tanh_approx) return 0.5f * x * (1.0f + std::tanh(kSqrt2OverPi * (x + kCubic * x * x * x)));
    return 0.5f * x * (1.0f + std::erf(x * static_cast<float>(M_SQRT1_2)));
  }
  float Derivative(float x) const {
    if (tanh_approx) {
      const float t = std::tanh(kSqrt2OverPi * (x + kCubic * x * x * x));
      return 0.5f * (1.0f + t) + 0.5f * x * (1.0f - t * t) * kSqrt2OverPi * (1.0f + 3.0f * kCubic * x * x);
    }
    const float cdf = 0.5f * (1.0f + std::erf(x * static_cast<float>(M_SQRT1_2)));
    const float pdf = std::exp(-0.5f * x * x) * static_cast<float>(0.5 * M_2_SQRTPI * M_SQRT1_2);
    return cdf + x * pdf;
  }
};

// Mish: x * tanh(softplus(x)).
struct Mish {
  Status Init(const Node&) { return Status::OK(); }
  float Forward(float x) const { return x * std::tanh(StableSoftplus(x)); }
  float Derivative(float x) const {
    const float t = std::tanh(StableSoftplus(x));
    return t + x * (1.0f - t * t) * StableSigmoid(x);
  }
};

// HardSwish (fixed alpha 1/6, beta 0.5): x * clamp(x/6 + 1/2, 0, 1). torch: 0 for x <= -3, x/3 + 1/2
// for -3 < x < 3, 1 from 3 on.
struct HardSwish {
  Status Init(const Node&) { return Status::OK(); }
  float Forward(float x) const { return x * std::min(std::max(x / 6.0f + 0.5f, 0.0f), 1.0f); }
  float Derivative(float x) const { return x <= -3.0f ? 0.0f : x < 3.0f ? x / 3.0f + 0.5f : 1.0f; }
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
  float Forward(float x) const { return std::min(std::max(alpha * x + beta, 0.0f), 1.0f); }
  float Derivative(float x) const {
    const float v = alpha * x + beta;
    return v > 0.0f && v < 1.0f ? alpha : 0.0f;
  }
};

// Softplus: log(1 + e^x), written so that e^x never overflows.
struct Softplus {
  Status Init(const Node&) { return Status::OK(); }
  float Forward(float x) const { return StableSoftplus(x); }
  float Derivative(float x) const { return StableSigmoid(x); }
};

// Elu<alpha = 1>: x for x > 0, alpha (e^x - 1) otherwise.
struct Elu {
  float alpha = 1.0f;
  Status Init(const Node& node) {
    alpha = node.GetFloat("alpha", 1.0f);
    return Status::OK();
  }
  float Forward(float x) const { return x > 0.0f ? x : alpha * std::expm1(x); }
  float Derivative(float x) const { return x > 0.0f ? 1.0f : alpha * std::exp(x); }
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
  float Forward(float x) const { return gamma * (x > 0.0f ? x : alpha * std::expm1(x)); }
  float Derivative(float x) const { return gamma * (x > 0.0f ? 1.0f : alpha * std::exp(x)); }
};

// Softsign: x / (1 + |x|).
struct Softsign {
  Status Init(const Node&) { return Status::OK(); }
  float Forward(float x) const { return x / (1.0f + std::fabs(x)); }
  float Derivative(float x) const {
    const float d = 1.0f + std::fabs(x);
    return 1.0f / (d * d);
  }
};

// Y = F(X), any shape.
template <typename F>
class ActivationKernel : public OpKernel {
 public:
  Status Init(const Node& node) { return f_.Init(node); }
  Status Compute(KernelContext& ctx) override {
    const TensorView& x = ctx.input(0);
    const float* in = x.data<float>();
    float* out = ctx.output(0).data<float>();
    const int64_t n = x.numel();
    const F f = f_;
#pragma omp parallel for if (n >= kParallelMin) schedule(static)
    for (int64_t i = 0; i < n; ++i) out[i] = f.Forward(in[i]);
    return Status::OK();
  }

 private:
  F f_;
};

// (dY, X) -> dX = dY * F'(X), all one shape; attributes are the forward node's.
template <typename F>
class ActivationGradKernel : public OpKernel {
 public:
  Status Init(const Node& node) {
    ASSIGN_OR_RETURN(std::vector<int64_t> dy, StaticDims(node.input(0)));
    ASSIGN_OR_RETURN(std::vector<int64_t> x, StaticDims(node.input(1)));
    if (dy != x) return InvalidArgument("dY and X must have one shape");
    return f_.Init(node);
  }
  Status Compute(KernelContext& ctx) override {
    const float* dy = ctx.input(0).data<float>();
    const float* x = ctx.input(1).data<float>();
    float* dx = ctx.output(0).data<float>();
    const int64_t n = ctx.input(0).numel();
    const F f = f_;
#pragma omp parallel for if (n >= kParallelMin) schedule(static)
    for (int64_t i = 0; i < n; ++i) dx[i] = dy[i] * f.Derivative(x[i]);
    return Status::OK();
  }

 private:
  F f_;
};

#define DSC_REGISTER_ACTIVATION(Op)                                                           \
  DSC_REGISTER_KERNEL("", #Op, kCpu, kFloat32, MakeFactory<ActivationKernel<Op>>());         \
  DSC_REGISTER_KERNEL(kDscDomain, ops::k##Op##Grad, kCpu, kFloat32, MakeFactory<ActivationGradKernel<Op>>())

DSC_REGISTER_ACTIVATION(Gelu);
DSC_REGISTER_ACTIVATION(Mish);
DSC_REGISTER_ACTIVATION(HardSwish);
DSC_REGISTER_ACTIVATION(HardSigmoid);
DSC_REGISTER_ACTIVATION(Softplus);
DSC_REGISTER_ACTIVATION(Elu);
DSC_REGISTER_ACTIVATION(Selu);
DSC_REGISTER_ACTIVATION(Softsign);

}  // namespace
}  // namespace dsc::cpu
