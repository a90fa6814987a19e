// Pointwise activations of current exports (Gelu, Mish, HardSwish, HardSigmoid, Softplus, Elu, Selu,
// Softsign) and their gradient ops (ir/dsc_ops.h): each op's forward and derivative live side by side.
#include "ir/dsc_ops.h"
#include "kernels/common/activation_math.h"
#include "kernels/cpu/core_util.h"

namespace dsc::cpu {
namespace {

// The activations (Init, Forward, Derivative) are in kernels/common/activation_math.h.
using act::Elu;
using act::Gelu;
using act::HardSigmoid;
using act::HardSwish;
using act::Mish;
using act::Selu;
using act::Softplus;
using act::Softsign;

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
