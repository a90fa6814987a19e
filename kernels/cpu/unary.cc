// Elementwise unary kernels (Neg ... Relu, LeakyRelu, Clip, Not): y = f(x), x and y of one shape.
#include <algorithm>
#include <cmath>
#include <limits>
#include <type_traits>

#include "kernels/cpu/core_util.h"

namespace dsc::cpu {
namespace {

// y[i] = f(x[i]) over n elements.
template <typename T, typename R, typename F>
void MapElements(const T* x, R* y, int64_t n, F f) {
#pragma omp parallel for if (n >= kParallelMin) schedule(static)
  for (int64_t i = 0; i < n; ++i) y[i] = f(x[i]);
}

template <typename T, typename F>
class UnaryKernel : public OpKernel {
 public:
  Status Init(const Node&) { return Status::OK(); }
  Status Compute(KernelContext& ctx) override {
    const TensorView& x = ctx.input(0);  // X: any shape
    MapElements(x.data<T>(), ctx.output(0).data<T>(), x.numel(), F{});
    return Status::OK();
  }
};

struct NegOp { template <typename T> T operator()(T x) const { return -x; } };
struct AbsOp { template <typename T> T operator()(T x) const { return x < 0 ? -x : x; } };
struct SqrtOp { float operator()(float x) const { return std::sqrt(x); } };
struct ReciprocalOp { float operator()(float x) const { return 1.0f / x; } };
struct ExpOp { float operator()(float x) const { return std::exp(x); } };
struct LogOp { float operator()(float x) const { return std::log(x); } };
struct ErfOp { float operator()(float x) const { return std::erf(x); } };
struct TanhOp { float operator()(float x) const { return std::tanh(x); } };
// Written so that exp never overflows: for x < 0, e^x / (1 + e^x).
struct SigmoidOp {
  float operator()(float x) const {
    if (x >= 0) return 1.0f / (1.0f + std::exp(-x));
    const float e = std::exp(x);
    return e / (1.0f + e);
  }
};
// NaN stays NaN (x > 0 is false, x * 0 is NaN), as in PyTorch.
// NaN stays NaN, as torch.sign (autodiff's Abs gradient uses it).
// int64 too: DeBERTa's log-bucketed relative positions.
struct SignOp { template <typename T> T operator()(T x) const { return x > 0 ? T(1) : x < 0 ? T(-1) : x; } };
struct ReluOp { template <typename T> T operator()(T x) const { return x > 0 ? x : x * T(0); } };
// Bools are stored as one byte 0/1.
struct NotOp { uint8_t operator()(uint8_t x) const { return x ? 0 : 1; } };

template <typename F> using FloatUnary = UnaryKernel<float, F>;
template <typename F> using Int64Unary = UnaryKernel<int64_t, F>;

class LeakyReluKernel : public OpKernel {
 public:
  Status Init(const Node& node) {
    alpha_ = node.GetFloat("alpha", 0.01f);
    return Status::OK();
  }
  Status Compute(KernelContext& ctx) override {
    const TensorView& x = ctx.input(0);
    const float alpha = alpha_;
    MapElements(x.data<float>(), ctx.output(0).data<float>(), x.numel(),
                [alpha](float v) { return v >= 0 ? v : alpha * v; });
    return Status::OK();
  }

 private:
  float alpha_ = 0.01f;
};

// Clip (opset 13): min and max are optional scalar inputs 1 and 2; opset < 11 had attributes.
template <typename T>
class ClipKernel : public OpKernel {
 public:
  Status Init(const Node& node) {
    if constexpr (std::is_floating_point_v<T>) {
      lo_ = node.GetFloat("min", -std::numeric_limits<T>::infinity());
      hi_ = node.GetFloat("max", std::numeric_limits<T>::infinity());
    } else {
      lo_ = std::numeric_limits<T>::lowest();
      hi_ = std::numeric_limits<T>::max();
    }
    for (size_t i = 1; i <= 2; ++i) {
      const Value* v = node.input(i);
      if (!v) continue;
      if (v->is_initializer()) {
        if (v->initializer().numel() != 1) return InvalidArgument("Clip bound must be a scalar");
        const T b = static_cast<T>(v->initializer().GetAsDouble(0));
        (i == 1 ? lo_ : hi_) = b;
      } else {
        runtime_bound_[i] = true;
      }
    }
    return Status::OK();
  }
  Status Compute(KernelContext& ctx) override {
    T lo = lo_, hi = hi_;
    if (runtime_bound_[1] && ctx.has_input(1)) lo = ctx.input(1).data<T>()[0];
    if (runtime_bound_[2] && ctx.has_input(2)) hi = ctx.input(2).data<T>()[0];
    const TensorView& x = ctx.input(0);
    // min(max(x, lo), hi): when lo > hi every element becomes hi, as in numpy.clip.
    MapElements(x.data<T>(), ctx.output(0).data<T>(), x.numel(),
                [lo, hi](T v) { return std::min(std::max(v, lo), hi); });
    return Status::OK();
  }

 private:
  T lo_{}, hi_{};
  bool runtime_bound_[3] = {false, false, false};
};

DSC_REGISTER_KERNEL("", "Neg", kCpu, kFloat32, MakeFactory<FloatUnary<NegOp>>());
DSC_REGISTER_KERNEL("", "Neg", kCpu, kInt64, MakeFactory<Int64Unary<NegOp>>());
DSC_REGISTER_KERNEL("", "Abs", kCpu, kFloat32, MakeFactory<FloatUnary<AbsOp>>());
DSC_REGISTER_KERNEL("", "Abs", kCpu, kInt64, MakeFactory<Int64Unary<AbsOp>>());
DSC_REGISTER_KERNEL("", "Sign", kCpu, kInt64, MakeFactory<Int64Unary<SignOp>>());
DSC_REGISTER_KERNEL("", "Sqrt", kCpu, kFloat32, MakeFactory<FloatUnary<SqrtOp>>());
DSC_REGISTER_KERNEL("", "Reciprocal", kCpu, kFloat32, MakeFactory<FloatUnary<ReciprocalOp>>());
DSC_REGISTER_KERNEL("", "Exp", kCpu, kFloat32, MakeFactory<FloatUnary<ExpOp>>());
DSC_REGISTER_KERNEL("", "Log", kCpu, kFloat32, MakeFactory<FloatUnary<LogOp>>());
DSC_REGISTER_KERNEL("", "Erf", kCpu, kFloat32, MakeFactory<FloatUnary<ErfOp>>());
DSC_REGISTER_KERNEL("", "Tanh", kCpu, kFloat32, MakeFactory<FloatUnary<TanhOp>>());
DSC_REGISTER_KERNEL("", "Sigmoid", kCpu, kFloat32, MakeFactory<FloatUnary<SigmoidOp>>());
DSC_REGISTER_KERNEL("", "Sign", kCpu, kFloat32, MakeFactory<FloatUnary<SignOp>>());
DSC_REGISTER_KERNEL("", "Relu", kCpu, kFloat32, MakeFactory<FloatUnary<ReluOp>>());
DSC_REGISTER_KERNEL("", "LeakyRelu", kCpu, kFloat32, MakeFactory<LeakyReluKernel>());
DSC_REGISTER_KERNEL("", "Not", kCpu, kBool, MakeFactory<UnaryKernel<uint8_t, NotOp>>());
DSC_REGISTER_KERNEL("", "Clip", kCpu, kFloat32, MakeFactory<ClipKernel<float>>());
DSC_REGISTER_KERNEL("", "Clip", kCpu, kInt64, MakeFactory<ClipKernel<int64_t>>());

}  // namespace
}  // namespace dsc::cpu
