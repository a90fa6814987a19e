// Pointwise activations of current exports (Gelu, Mish, HardSwish, HardSigmoid, Softplus, Elu, Selu,
// Celu, Softsign) and their gradient ops (ir/dsc_ops.h): each op's forward and derivative live side by side.
#include <algorithm>
#include <cmath>
#include <type_traits>

#include "ir/dsc_ops.h"
#include "kernels/common/activation_math.h"
#include "kernels/cpu/core_util.h"
#include "kernels/cpu/simd_math.h"

namespace dsc::cpu {
namespace {

// The activations (Init, Forward, Derivative) are in kernels/common/activation_math.h.
using act::Celu;
using act::Elu;
using act::Gelu;
using act::HardSigmoid;
using act::HardSwish;
using act::Mish;
using act::Selu;
using act::Softplus;
using act::Softsign;

// Gelu through the vector erf/tanh/exp, in blocks of kBlock through stack buffers, with the
// formulas of act::Gelu: y = Forward(x), or dx = dy * Derivative(x) when dy is given.
constexpr int64_t kBlock = 256;
void GeluBlock(Isa isa, const Gelu& g, const float* x, const float* dy, float* out, int64_t n) {
  float u[kBlock], v[kBlock];
  constexpr float kRsqrt2 = static_cast<float>(M_SQRT1_2);
  constexpr float kPdf = static_cast<float>(0.5 * M_2_SQRTPI * M_SQRT1_2);
  if (g.tanh_approx) {
    RunOnIsa(isa, [&] {
      for (int64_t i = 0; i < n; ++i) u[i] = Gelu::kSqrt2OverPi * (x[i] + Gelu::kCubic * x[i] * x[i] * x[i]);
    });
    VecTanh(isa, u, u, n);
    RunOnIsa(isa, [&] {
      if (!dy) {
        for (int64_t i = 0; i < n; ++i) out[i] = 0.5f * x[i] * (1.0f + u[i]);
        return;
      }
      for (int64_t i = 0; i < n; ++i) {
        const float t = u[i];
        out[i] = dy[i] * (0.5f * (1.0f + t) + 0.5f * x[i] * (1.0f - t * t) * Gelu::kSqrt2OverPi *
                                                  (1.0f + 3.0f * Gelu::kCubic * x[i] * x[i]));
      }
    });
    return;
  }
  RunOnIsa(isa, [&] {
    for (int64_t i = 0; i < n; ++i) u[i] = x[i] * kRsqrt2;
    if (dy)
      for (int64_t i = 0; i < n; ++i) v[i] = -0.5f * x[i] * x[i];
  });
  VecErf(isa, u, u, n);
  if (dy) VecExp(isa, v, v, n);
  RunOnIsa(isa, [&] {
    if (!dy) {
      for (int64_t i = 0; i < n; ++i) out[i] = 0.5f * x[i] * (1.0f + u[i]);
      return;
    }
    for (int64_t i = 0; i < n; ++i) out[i] = dy[i] * (0.5f * (1.0f + u[i]) + x[i] * (v[i] * kPdf));
  });
}

// Gelu's forward (dy null) or gradient over n elements, parallel in chunks.
void GeluLoop(Isa isa, const Gelu& g, const float* x, const float* dy, float* out, int64_t n) {
#pragma omp parallel for if (n >= kParallelMin) schedule(static)
  for (int64_t c = 0; c < n; c += kSimdChunk) {
    const int64_t end = std::min(n, c + kSimdChunk);
    for (int64_t b = c; b < end; b += kBlock)
      GeluBlock(isa, g, x + b, dy ? dy + b : nullptr, out + b, std::min(kBlock, end - b));
  }
}

// Y = F(X), any shape.
template <typename F>
class ActivationKernel : public OpKernel {
 public:
  Status Init(const Node& node) {
    ASSIGN_OR_RETURN(isa_, SelectedIsa());
    return f_.Init(node);
  }
  Status Compute(KernelContext& ctx) override {
    const TensorView& x = ctx.input(0);
    const float* in = x.data<float>();
    float* out = ctx.output(0).data<float>();
    const int64_t n = x.numel();
    const F f = f_;
    if constexpr (std::is_same_v<F, Gelu>) {
      GeluLoop(isa_, f, in, nullptr, out, n);
      return Status::OK();
    }
#pragma omp parallel for if (n >= kParallelMin) schedule(static)
    for (int64_t c = 0; c < n; c += kSimdChunk) {
      const int64_t end = std::min(n, c + kSimdChunk);
      RunOnIsa(isa_, [&] {
        for (int64_t i = c; i < end; ++i) out[i] = f.Forward(in[i]);
      });
    }
    return Status::OK();
  }

 private:
  F f_;
  Isa isa_ = Isa::kBaseline;
};

// (dY, X) -> dX = dY * F'(X), all one shape; attributes are the forward node's.
template <typename F>
class ActivationGradKernel : public OpKernel {
 public:
  Status Init(const Node& node) {
    ASSIGN_OR_RETURN(std::vector<int64_t> dy, StaticDims(node.input(0)));
    ASSIGN_OR_RETURN(std::vector<int64_t> x, StaticDims(node.input(1)));
    if (dy != x) return InvalidArgument("dY and X must have one shape");
    ASSIGN_OR_RETURN(isa_, SelectedIsa());
    return f_.Init(node);
  }
  Status Compute(KernelContext& ctx) override {
    const float* dy = ctx.input(0).data<float>();
    const float* x = ctx.input(1).data<float>();
    float* dx = ctx.output(0).data<float>();
    const int64_t n = ctx.input(0).numel();
    const F f = f_;
    if constexpr (std::is_same_v<F, Gelu>) {
      GeluLoop(isa_, f, x, dy, dx, n);
      return Status::OK();
    }
#pragma omp parallel for if (n >= kParallelMin) schedule(static)
    for (int64_t c = 0; c < n; c += kSimdChunk) {
      const int64_t end = std::min(n, c + kSimdChunk);
      RunOnIsa(isa_, [&] {
        for (int64_t i = c; i < end; ++i) dx[i] = dy[i] * f.Derivative(x[i]);
      });
    }
    return Status::OK();
  }

 private:
  F f_;
  Isa isa_ = Isa::kBaseline;
};

#define DSC_REGISTER_ACTIVATION(Op)                                                           \
  DSC_REGISTER_KERNEL("", #Op, kCpu, kFloat32, MakeFactory<ActivationKernel<Op>>());         \
  DSC_REGISTER_KERNEL(kDscDomain, ops::k##Op##Grad, kCpu, kFloat32, MakeFactory<ActivationGradKernel<Op>>())

DSC_REGISTER_ACTIVATION(Gelu);
// ONNX's Gelu under our domain, for graphs whose opset predates it (passes/recognize.cc).
DSC_REGISTER_KERNEL(kDscDomain, ops::kGelu, kCpu, kFloat32, MakeFactory<ActivationKernel<Gelu>>());
DSC_REGISTER_ACTIVATION(Mish);
DSC_REGISTER_ACTIVATION(HardSwish);
DSC_REGISTER_ACTIVATION(HardSigmoid);
DSC_REGISTER_ACTIVATION(Softplus);
DSC_REGISTER_ACTIVATION(Elu);
DSC_REGISTER_ACTIVATION(Selu);
DSC_REGISTER_ACTIVATION(Celu);
DSC_REGISTER_ACTIVATION(Softsign);

}  // namespace
}  // namespace dsc::cpu
