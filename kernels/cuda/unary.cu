// Elementwise unary CUDA kernels (Neg ... Relu, LeakyRelu, Clip, Not), twins of kernels/cpu/unary.cc.
#include "kernels/common/elementwise_math.h"
#include "kernels/cuda/elementwise.cuh"

namespace dsc::cuda {
namespace {

// Y = Op(X), one shape; half values compute in float.
template <typename T, typename Op>
class UnaryCuda : public OpKernel {
 public:
  Status Init(const Node& node) {
    const DType t = node.input(0)->type.dtype;
    return ExpectDType(node, node.output(0), t, "output");
  }
  Status Compute(KernelContext& ctx) override {
    const TensorView& x = ctx.input(0);
    return LaunchVecMap(ctx, x.numel(), Map1<T, T, Op>{op_}, ctx.output(0).data<T>(), x.data<T>());
  }

 protected:
  Op op_{};
};

template <typename T> using Neg = UnaryCuda<T, ew::NegOp>;
template <typename T> using Abs = UnaryCuda<T, ew::AbsOp>;
template <typename T> using Sign = UnaryCuda<T, ew::SignOp>;
template <typename T> using Sqrt = UnaryCuda<T, ew::SqrtOp>;
template <typename T> using Reciprocal = UnaryCuda<T, ew::ReciprocalOp>;
template <typename T> using Exp = UnaryCuda<T, ew::ExpOp>;
template <typename T> using Log = UnaryCuda<T, ew::LogOp>;
template <typename T> using Erf = UnaryCuda<T, ew::ErfOp>;
template <typename T> using Tanh = UnaryCuda<T, ew::TanhOp>;
template <typename T> using Sigmoid = UnaryCuda<T, ew::SigmoidOp>;
template <typename T> using Relu = UnaryCuda<T, ew::ReluOp>;
template <typename T> using Floor = UnaryCuda<T, ew::FloorOp>;
template <typename T> using Ceil = UnaryCuda<T, ew::CeilOp>;
template <typename T> using Round = UnaryCuda<T, ew::RoundOp>;

template <typename T>
class LeakyReluCuda : public UnaryCuda<T, ew::LeakyReluOp> {
 public:
  Status Init(const Node& node) {
    this->op_.alpha = node.GetFloat("alpha", 0.01f);
    return UnaryCuda<T, ew::LeakyReluOp>::Init(node);
  }
};

// Clip: bounds that are not constants are read on the device by every thread (a cached scalar
// load), so Compute never reads device memory on the host.
template <typename T>
struct ClipFn {
  using C = Num<T>;
  C lo, hi;
  const T* lo_ptr;  // null: use lo
  const T* hi_ptr;
  __device__ __forceinline__ T operator()(T x) const {
    const C l = lo_ptr ? LoadNum(*lo_ptr) : lo;
    const C h = hi_ptr ? LoadNum(*hi_ptr) : hi;
    return StoreNum<T>(ew::Clip(LoadNum(x), l, h));
  }
};

template <typename T>
class ClipCuda : public OpKernel {
 public:
  using C = Num<T>;
  Status Init(const Node& node) {
    const DType t = node.input(0)->type.dtype;
    RETURN_IF_ERROR(ExpectDType(node, node.input(1), t, "min"));
    RETURN_IF_ERROR(ExpectDType(node, node.input(2), t, "max"));
    RETURN_IF_ERROR(ExpectDType(node, node.output(0), t, "output"));
    return bounds_.Init(node);
  }
  Status Compute(KernelContext& ctx) override {
    ClipFn<T> f{bounds_.lo, bounds_.hi, nullptr, nullptr};
    if (bounds_.runtime[1] && ctx.has_input(1)) f.lo_ptr = ctx.input(1).data<T>();
    if (bounds_.runtime[2] && ctx.has_input(2)) f.hi_ptr = ctx.input(2).data<T>();
    const TensorView& x = ctx.input(0);
    return LaunchVecMap(ctx, x.numel(), f, ctx.output(0).data<T>(), x.data<T>());
  }

 private:
  ew::ClipBounds<C> bounds_;
};

template <typename T> using Not = UnaryCuda<T, ew::NotOp>;

// Registers K<int64_t> too, for the ops the CPU runs on int64.
#define DSC_REGISTER_CUDA_FLOATS_AND_INT64(op, K) \
  DSC_REGISTER_CUDA_FLOATS("", op, K);            \
  DSC_REGISTER_KERNEL("", op, kCuda, kInt64, MakeFactory<K<int64_t>>())

DSC_REGISTER_CUDA_FLOATS_AND_INT64("Neg", Neg);
DSC_REGISTER_CUDA_FLOATS_AND_INT64("Abs", Abs);
DSC_REGISTER_CUDA_FLOATS_AND_INT64("Sign", Sign);
DSC_REGISTER_CUDA_FLOATS_AND_INT64("Clip", ClipCuda);
DSC_REGISTER_CUDA_FLOATS("", "Sqrt", Sqrt);
DSC_REGISTER_CUDA_FLOATS("", "Reciprocal", Reciprocal);
DSC_REGISTER_CUDA_FLOATS("", "Exp", Exp);
DSC_REGISTER_CUDA_FLOATS("", "Log", Log);
DSC_REGISTER_CUDA_FLOATS("", "Erf", Erf);
DSC_REGISTER_CUDA_FLOATS("", "Tanh", Tanh);
DSC_REGISTER_CUDA_FLOATS("", "Floor", Floor);
DSC_REGISTER_CUDA_FLOATS("", "Ceil", Ceil);
DSC_REGISTER_CUDA_FLOATS("", "Round", Round);
DSC_REGISTER_CUDA_FLOATS("", "Sigmoid", Sigmoid);
DSC_REGISTER_CUDA_FLOATS("", "Relu", Relu);
DSC_REGISTER_CUDA_FLOATS("", "LeakyRelu", LeakyReluCuda);
DSC_REGISTER_KERNEL("", "Not", kCuda, kBool, MakeFactory<Not<uint8_t>>());

}  // namespace
}  // namespace dsc::cuda
