// CUDA kernels of the pointwise activations (Gelu, Mish, HardSwish, HardSigmoid, Softplus, Elu, Selu,
// Celu, Softsign) and their gradient ops, twins of kernels/cpu/activation.cc; the math is
// kernels/common/activation_math.h. f32/f16/bf16, computed in float.
#include "ir/dsc_ops.h"
#include "kernels/common/activation_math.h"
#include "kernels/cpu/core_util.h"
#include "kernels/cuda/elementwise.cuh"

namespace dsc::cuda {
namespace {

template <typename T, typename F>
struct ForwardFn {
  F f;
  __device__ __forceinline__ T operator()(T x) const { return FromFloat<T>(f.Forward(ToFloat(x))); }
};
template <typename T, typename F>
struct GradFn {
  F f;
  __device__ __forceinline__ T operator()(T dy, T x) const {
    return FromFloat<T>(ToFloat(dy) * f.Derivative(ToFloat(x)));
  }
};

// Y = F(X), any shape.
template <typename F>
struct Activation {
  template <typename T>
  class Kernel : public OpKernel {
   public:
    Status Init(const Node& node) {
      RETURN_IF_ERROR(ExpectDType(node, node.output(0), DTypeOf<T>(), "output"));
      return f_.Init(node);
    }
    Status Compute(KernelContext& ctx) override {
      const TensorView& x = ctx.input(0);
      return LaunchVecMap(ctx, x.numel(), ForwardFn<T, F>{f_}, ctx.output(0).data<T>(), x.data<T>());
    }

   private:
    F f_;
  };
};

// (dY, X) -> dX = dY * F'(X), all one shape; attributes are the forward node's.
template <typename F>
struct ActivationGrad {
  template <typename T>
  class Kernel : public OpKernel {
   public:
    Status Init(const Node& node) {
      ASSIGN_OR_RETURN(std::vector<int64_t> dy, cpu::StaticDims(node.input(0)));
      ASSIGN_OR_RETURN(std::vector<int64_t> x, cpu::StaticDims(node.input(1)));
      if (dy != x) return InvalidArgument("dY and X must have one shape");
      RETURN_IF_ERROR(ExpectDType(node, node.input(1), DTypeOf<T>(), "X"));
      RETURN_IF_ERROR(ExpectDType(node, node.output(0), DTypeOf<T>(), "dX"));
      return f_.Init(node);
    }
    Status Compute(KernelContext& ctx) override {
      const TensorView& dy = ctx.input(0);
      return LaunchVecMap(ctx, dy.numel(), GradFn<T, F>{f_}, ctx.output(0).data<T>(), dy.data<T>(),
                          ctx.input(1).data<T>());
    }

   private:
    F f_;
  };
};

#define DSC_REGISTER_CUDA_ACTIVATION(Op)                                            \
  DSC_REGISTER_CUDA_FLOATS("", #Op, Activation<act::Op>::Kernel);                   \
  DSC_REGISTER_CUDA_FLOATS(kDscDomain, ops::k##Op##Grad, ActivationGrad<act::Op>::Kernel)

DSC_REGISTER_CUDA_ACTIVATION(Gelu);
DSC_REGISTER_CUDA_FLOATS(kDscDomain, ops::kGelu, Activation<act::Gelu>::Kernel);  // passes/recognize.cc's
DSC_REGISTER_CUDA_ACTIVATION(Mish);
DSC_REGISTER_CUDA_ACTIVATION(HardSwish);
DSC_REGISTER_CUDA_ACTIVATION(HardSigmoid);
DSC_REGISTER_CUDA_ACTIVATION(Softplus);
DSC_REGISTER_CUDA_ACTIVATION(Elu);
DSC_REGISTER_CUDA_ACTIVATION(Selu);
DSC_REGISTER_CUDA_ACTIVATION(Celu);
DSC_REGISTER_CUDA_ACTIVATION(Softsign);

}  // namespace
}  // namespace dsc::cuda
