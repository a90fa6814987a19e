// Gradients of the pointwise activations: ReluGrad, LeakyReluGrad, SigmoidGrad, TanhGrad (see ir/dsc_ops.h).
#include <algorithm>
#include <vector>

#include "ir/dsc_ops.h"
#include "kernels/common/activation_math.h"
#include "kernels/cpu/nn_util.h"
#include "kernels/cpu/simd.h"
#include "kernels/kernel.h"

namespace dsc {
namespace {

// (dY, T) -> dX with dX[i] = F(dY[i], T[i]); T is X (Relu, LeakyRelu) or Y (Sigmoid, Tanh), all one
// shape. F (kernels/common/activation_math.h) reads its attributes in Init.
template <typename F>
class PointwiseGradKernel : public OpKernel {
 public:
  Status Init(const Node& node) {
    ASSIGN_OR_RETURN(std::vector<int64_t> dy, nn::StaticDims(node.input(0), "dY"));
    ASSIGN_OR_RETURN(std::vector<int64_t> t, nn::StaticDims(node.input(1), "input 1"));
    ASSIGN_OR_RETURN(std::vector<int64_t> dx, nn::StaticDims(node.output(0), "dX"));
    if (dy != t || dy != dx)
      return InvalidArgument("dY ", nn::DimsToString(dy), ", input 1 ", nn::DimsToString(t), " and dX ",
                             nn::DimsToString(dx), " must have one shape");
    n_ = nn::Product(dy);
    ASSIGN_OR_RETURN(isa_, cpu::SelectedIsa());
    return f_.Init(node);
  }
  Status Compute(KernelContext& ctx) override {
    const float* dy = ctx.input(0).data<float>();
    const float* t = ctx.input(1).data<float>();
    float* dx = ctx.output(0).data<float>();
    const F f = f_;
    const int64_t n = n_;
#pragma omp parallel for if (n > nn::kParallelThreshold)
    for (int64_t c = 0; c < n; c += cpu::kSimdChunk) {
      const int64_t end = std::min(n, c + cpu::kSimdChunk);
      cpu::RunOnIsa(isa_, [&] {
        for (int64_t i = c; i < end; ++i) dx[i] = f(dy[i], t[i]);
      });
    }
    return Status::OK();
  }

 private:
  int64_t n_ = 0;
  F f_;
  cpu::Isa isa_ = cpu::Isa::kBaseline;
};

template <typename F> using Grad = PointwiseGradKernel<F>;

DSC_REGISTER_KERNEL(kDscDomain, ops::kReluGrad, kCpu, kFloat32, MakeFactory<Grad<act::ReluGrad>>());
DSC_REGISTER_KERNEL(kDscDomain, ops::kLeakyReluGrad, kCpu, kFloat32, MakeFactory<Grad<act::LeakyReluGrad>>());
DSC_REGISTER_KERNEL(kDscDomain, ops::kSigmoidGrad, kCpu, kFloat32, MakeFactory<Grad<act::SigmoidGrad>>());
DSC_REGISTER_KERNEL(kDscDomain, ops::kTanhGrad, kCpu, kFloat32, MakeFactory<Grad<act::TanhGrad>>());

}  // namespace
}  // namespace dsc
