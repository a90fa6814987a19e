// CUDA kernels of ReluGrad, LeakyReluGrad, SigmoidGrad and TanhGrad, twins of
// kernels/cpu/activation_grad.cc: (dY, T) -> dX = F(dY, T), all one shape, f32/f16/bf16.
#include "ir/dsc_ops.h"
#include "kernels/common/activation_math.h"
#include "kernels/cpu/core_util.h"
#include "kernels/cuda/elementwise.cuh"

namespace dsc::cuda {
namespace {

template <typename T, typename G>
struct PointwiseGradFn {
  G g;
  __device__ __forceinline__ T operator()(T dy, T t) const { return FromFloat<T>(g(ToFloat(dy), ToFloat(t))); }
};

template <typename G>
struct PointwiseGrad {
  template <typename T>
  class Kernel : public OpKernel {
   public:
    Status Init(const Node& node) {
      ASSIGN_OR_RETURN(std::vector<int64_t> dy, cpu::StaticDims(node.input(0)));
      ASSIGN_OR_RETURN(std::vector<int64_t> t, cpu::StaticDims(node.input(1)));
      ASSIGN_OR_RETURN(std::vector<int64_t> dx, cpu::StaticDims(node.output(0)));
      if (dy != t || dy != dx)
        return InvalidArgument("dY ", DimsToString(dy), ", input 1 ", DimsToString(t), " and dX ", DimsToString(dx),
                               " must have one shape");
      RETURN_IF_ERROR(ExpectDType(node, node.input(1), DTypeOf<T>(), "input 1"));
      RETURN_IF_ERROR(ExpectDType(node, node.output(0), DTypeOf<T>(), "dX"));
      return g_.Init(node);
    }
    Status Compute(KernelContext& ctx) override {
      const TensorView& dy = ctx.input(0);
      return LaunchVecMap(ctx, dy.numel(), PointwiseGradFn<T, G>{g_}, ctx.output(0).data<T>(), dy.data<T>(),
                          ctx.input(1).data<T>());
    }

   private:
    G g_;
  };
};

DSC_REGISTER_CUDA_FLOATS(kDscDomain, ops::kReluGrad, PointwiseGrad<act::ReluGrad>::Kernel);
DSC_REGISTER_CUDA_FLOATS(kDscDomain, ops::kLeakyReluGrad, PointwiseGrad<act::LeakyReluGrad>::Kernel);
DSC_REGISTER_CUDA_FLOATS(kDscDomain, ops::kSigmoidGrad, PointwiseGrad<act::SigmoidGrad>::Kernel);
DSC_REGISTER_CUDA_FLOATS(kDscDomain, ops::kTanhGrad, PointwiseGrad<act::TanhGrad>::Kernel);

}  // namespace
}  // namespace dsc::cuda
