// Elementwise unary kernels (Neg ... Relu, LeakyRelu, Clip, Not): y = f(x), x and y of one shape.
#include <algorithm>

#include "kernels/common/elementwise_math.h"
#include "kernels/cpu/core_util.h"
#include "kernels/cpu/simd_math.h"

namespace dsc::cpu {
namespace {

// y[i] = f(x[i]) over n elements, each chunk compiled for isa.
template <typename T, typename R, typename F>
void MapElements(Isa isa, const T* x, R* y, int64_t n, F f) {
#pragma omp parallel for if (n >= kParallelMin) schedule(static)
  for (int64_t c = 0; c < n; c += kSimdChunk) {
    const int64_t end = std::min(n, c + kSimdChunk);
    RunOnIsa(isa, [&] {
      for (int64_t i = c; i < end; ++i) y[i] = f(x[i]);
    });
  }
}

template <typename T, typename F>
class UnaryKernel : public OpKernel {
 public:
  Status Init(const Node&) {
    ASSIGN_OR_RETURN(isa_, SelectedIsa());
    return Status::OK();
  }
  Status Compute(KernelContext& ctx) override {
    const TensorView& x = ctx.input(0);  // X: any shape
    MapElements(isa_, x.data<T>(), ctx.output(0).data<T>(), x.numel(), F{});
    return Status::OK();
  }

 private:
  Isa isa_ = Isa::kBaseline;
};

// Exp, Log, Erf, Tanh, Sigmoid: y = f(x) through simd_math.h's vector functions.
template <void (*kFn)(Isa, const float*, float*, int64_t)>
class VecUnaryKernel : public OpKernel {
 public:
  Status Init(const Node&) {
    ASSIGN_OR_RETURN(isa_, SelectedIsa());
    return Status::OK();
  }
  Status Compute(KernelContext& ctx) override {
    const TensorView& x = ctx.input(0);  // X: any shape
    const float* in = x.data<float>();
    float* out = ctx.output(0).data<float>();
    const int64_t n = x.numel();
#pragma omp parallel for if (n >= kParallelMin) schedule(static)
    for (int64_t c = 0; c < n; c += kSimdChunk) kFn(isa_, in + c, out + c, std::min(kSimdChunk, n - c));
    return Status::OK();
  }

 private:
  Isa isa_ = Isa::kBaseline;
};

using ew::AbsOp;
using ew::NegOp;
using ew::NotOp;
using ew::ReciprocalOp;
using ew::ReluOp;
using ew::SignOp;
using ew::FloorOp;
using ew::CeilOp;
using ew::RoundOp;
using ew::SqrtOp;

template <typename F> using FloatUnary = UnaryKernel<float, F>;
template <typename F> using Int64Unary = UnaryKernel<int64_t, F>;

class LeakyReluKernel : public OpKernel {
 public:
  Status Init(const Node& node) {
    alpha_ = node.GetFloat("alpha", 0.01f);
    ASSIGN_OR_RETURN(isa_, SelectedIsa());
    return Status::OK();
  }
  Status Compute(KernelContext& ctx) override {
    const TensorView& x = ctx.input(0);
    MapElements(isa_, x.data<float>(), ctx.output(0).data<float>(), x.numel(), ew::LeakyReluOp{alpha_});
    return Status::OK();
  }

 private:
  float alpha_ = 0.01f;
  Isa isa_ = Isa::kBaseline;
};

// Clip (opset 13): min and max are optional scalar inputs 1 and 2; opset < 11 had attributes.
template <typename T>
class ClipKernel : public OpKernel {
 public:
  Status Init(const Node& node) {
    ASSIGN_OR_RETURN(isa_, SelectedIsa());
    return b_.Init(node);
  }
  Status Compute(KernelContext& ctx) override {
    T lo = b_.lo, hi = b_.hi;
    if (b_.runtime[1] && ctx.has_input(1)) lo = ctx.input(1).data<T>()[0];
    if (b_.runtime[2] && ctx.has_input(2)) hi = ctx.input(2).data<T>()[0];
    const TensorView& x = ctx.input(0);
    MapElements(isa_, x.data<T>(), ctx.output(0).data<T>(), x.numel(), [lo, hi](T v) { return ew::Clip(v, lo, hi); });
    return Status::OK();
  }

 private:
  ew::ClipBounds<T> b_;
  Isa isa_ = Isa::kBaseline;
};

DSC_REGISTER_KERNEL("", "Neg", kCpu, kFloat32, MakeFactory<FloatUnary<NegOp>>());
DSC_REGISTER_KERNEL("", "Neg", kCpu, kInt64, MakeFactory<Int64Unary<NegOp>>());
DSC_REGISTER_KERNEL("", "Abs", kCpu, kFloat32, MakeFactory<FloatUnary<AbsOp>>());
DSC_REGISTER_KERNEL("", "Abs", kCpu, kInt64, MakeFactory<Int64Unary<AbsOp>>());
DSC_REGISTER_KERNEL("", "Sign", kCpu, kInt64, MakeFactory<Int64Unary<SignOp>>());
DSC_REGISTER_KERNEL("", "Sqrt", kCpu, kFloat32, MakeFactory<FloatUnary<SqrtOp>>());
DSC_REGISTER_KERNEL("", "Reciprocal", kCpu, kFloat32, MakeFactory<FloatUnary<ReciprocalOp>>());
DSC_REGISTER_KERNEL("", "Exp", kCpu, kFloat32, MakeFactory<VecUnaryKernel<VecExp>>());
DSC_REGISTER_KERNEL("", "Log", kCpu, kFloat32, MakeFactory<VecUnaryKernel<VecLog>>());
DSC_REGISTER_KERNEL("", "Erf", kCpu, kFloat32, MakeFactory<VecUnaryKernel<VecErf>>());
DSC_REGISTER_KERNEL("", "Tanh", kCpu, kFloat32, MakeFactory<VecUnaryKernel<VecTanh>>());
DSC_REGISTER_KERNEL("", "Sigmoid", kCpu, kFloat32, MakeFactory<VecUnaryKernel<VecSigmoid>>());
DSC_REGISTER_KERNEL("", "Sign", kCpu, kFloat32, MakeFactory<FloatUnary<SignOp>>());
DSC_REGISTER_KERNEL("", "Floor", kCpu, kFloat32, MakeFactory<FloatUnary<FloorOp>>());
DSC_REGISTER_KERNEL("", "Ceil", kCpu, kFloat32, MakeFactory<FloatUnary<CeilOp>>());
DSC_REGISTER_KERNEL("", "Round", kCpu, kFloat32, MakeFactory<FloatUnary<RoundOp>>());
DSC_REGISTER_KERNEL("", "Relu", kCpu, kFloat32, MakeFactory<FloatUnary<ReluOp>>());
DSC_REGISTER_KERNEL("", "LeakyRelu", kCpu, kFloat32, MakeFactory<LeakyReluKernel>());
DSC_REGISTER_KERNEL("", "Not", kCpu, kBool, MakeFactory<UnaryKernel<uint8_t, NotOp>>());
DSC_REGISTER_KERNEL("", "Clip", kCpu, kFloat32, MakeFactory<ClipKernel<float>>());
DSC_REGISTER_KERNEL("", "Clip", kCpu, kInt64, MakeFactory<ClipKernel<int64_t>>());

}  // namespace
}  // namespace dsc::cpu
