// Cos and Sin (rotary position embeddings computed in the graph) and Atan (torch.atan2's export):
// y = f(x), x and y of one shape.
#include "kernels/common/elementwise_math.h"
#include "kernels/cpu/core_util.h"

namespace dsc::cpu {
namespace {

template <typename F>
class TrigKernel : public OpKernel {
 public:
  Status Init(const Node&) { return Status::OK(); }
  Status Compute(KernelContext& ctx) override {
    const TensorView& x = ctx.input(0);  // X: any shape
    const float* in = x.data<float>();
    float* out = ctx.output(0).data<float>();
    const int64_t n = x.numel();
#pragma omp parallel for if (n >= kParallelMin) schedule(static)
    for (int64_t i = 0; i < n; ++i) out[i] = F{}(in[i]);
    return Status::OK();
  }
};

DSC_REGISTER_KERNEL("", "Cos", kCpu, kFloat32, MakeFactory<TrigKernel<ew::CosOp>>());
DSC_REGISTER_KERNEL("", "Sin", kCpu, kFloat32, MakeFactory<TrigKernel<ew::SinOp>>());
DSC_REGISTER_KERNEL("", "Atan", kCpu, kFloat32, MakeFactory<TrigKernel<ew::AtanOp>>());

}  // namespace
}  // namespace dsc::cpu
