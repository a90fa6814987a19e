// Cos, Sin and Atan CUDA kernels, twins of kernels/cpu/trig.cc: y = f(x), one shape, f32/f16/bf16.
#include "kernels/common/elementwise_math.h"
#include "kernels/cuda/elementwise.cuh"

namespace dsc::cuda {
namespace {

template <typename T, typename Op>
class TrigCuda : public OpKernel {
 public:
  Status Init(const Node& node) { return ExpectDType(node, node.output(0), node.input(0)->type.dtype, "output"); }
  Status Compute(KernelContext& ctx) override {
    const TensorView& x = ctx.input(0);
    return LaunchVecMap(ctx, x.numel(), Map1<T, T, Op>{}, ctx.output(0).data<T>(), x.data<T>());
  }
};

template <typename T> using Cos = TrigCuda<T, ew::CosOp>;
template <typename T> using Sin = TrigCuda<T, ew::SinOp>;
template <typename T> using Atan = TrigCuda<T, ew::AtanOp>;

DSC_REGISTER_CUDA_FLOATS("", "Cos", Cos);
DSC_REGISTER_CUDA_FLOATS("", "Sin", Sin);
DSC_REGISTER_CUDA_FLOATS("", "Atan", Atan);

}  // namespace
}  // namespace dsc::cuda
