// Softmax and LogSoftmax (ONNX opset 13: one axis, default -1) and their gradients SoftmaxGrad/LogSoftmaxGrad.
#include <cmath>
#include <vector>

#include "ir/dsc_ops.h"
#include "kernels/common/softmax_math.h"
#include "kernels/common/softmax_node.h"
#include "kernels/cpu/nn_util.h"
#include "kernels/kernel.h"

namespace dsc {
namespace {

using softmax::AxisView;

// X:(outer,n,inner) -> Y, softmax or log-softmax along n; max subtracted so exp never overflows.
template <bool kLog>
class SoftmaxKernel : public OpKernel, protected softmax::SoftmaxNode {
 public:
  Status Init(const Node& node) { return SoftmaxNode::Init(node, /*grad=*/false); }
  Status Compute(KernelContext& ctx) override {
    const float* x = ctx.input(0).data<float>();
    float* y = ctx.output(0).data<float>();
    const int64_t outer = a_.outer, n = a_.n, inner = a_.inner;
#pragma omp parallel if (outer * n * inner > nn::kParallelThreshold)
    {
      std::vector<double> buf(static_cast<size_t>(n));
      double* e = buf.data();  // this row's exp(x - max), computed once
#pragma omp for collapse(2)
      for (int64_t o = 0; o < outer; ++o) {
        for (int64_t i = 0; i < inner; ++i) {
          const float* xr = x + o * n * inner + i;
          float* yr = y + o * n * inner + i;
          float mx = -INFINITY;
          for (int64_t k = 0; k < n; ++k) mx = softmax::RowMax(mx, xr[k * inner]);
          double sum = 0;
          for (int64_t k = 0; k < n; ++k) {
            e[k] = softmax::ExpShifted(xr[k * inner], mx);
            sum += e[k];
          }
          if (kLog) {
            const double lse = std::log(sum);
            for (int64_t k = 0; k < n; ++k) yr[k * inner] = softmax::LogSoftmaxOut(xr[k * inner], mx, lse);
          } else {
            for (int64_t k = 0; k < n; ++k) yr[k * inner] = softmax::SoftmaxOut(e[k], sum);
          }
        }
      }
    }
    return Status::OK();
  }
};

// (dY, Y) -> dX, rows along the axis:
//   softmax:     dX = Y * (dY - sum(dY * Y))
//   log-softmax: dX = dY - exp(Y) * sum(dY)
template <bool kLog>
class SoftmaxGradKernel : public OpKernel, protected softmax::SoftmaxNode {
 public:
  Status Init(const Node& node) { return SoftmaxNode::Init(node, /*grad=*/true); }
  Status Compute(KernelContext& ctx) override {
    const float* dy = ctx.input(0).data<float>();
    const float* y = ctx.input(1).data<float>();
    float* dx = ctx.output(0).data<float>();
    const int64_t outer = a_.outer, n = a_.n, inner = a_.inner;
#pragma omp parallel for collapse(2) if (outer * n * inner > nn::kParallelThreshold)
    for (int64_t o = 0; o < outer; ++o) {
      for (int64_t i = 0; i < inner; ++i) {
        const int64_t base = o * n * inner + i;
        double s = 0;
        for (int64_t k = 0; k < n; ++k) {
          const int64_t j = base + k * inner;
          s += softmax::GradTerm<kLog>(dy[j], y[j]);
        }
        for (int64_t k = 0; k < n; ++k) {
          const int64_t j = base + k * inner;
          dx[j] = softmax::GradOut<kLog>(dy[j], y[j], s);
        }
      }
    }
    return Status::OK();
  }
};

DSC_REGISTER_KERNEL("", "Softmax", kCpu, kFloat32, MakeFactory<SoftmaxKernel<false>>());
DSC_REGISTER_KERNEL("", "LogSoftmax", kCpu, kFloat32, MakeFactory<SoftmaxKernel<true>>());
DSC_REGISTER_KERNEL(kDscDomain, ops::kSoftmaxGrad, kCpu, kFloat32, MakeFactory<SoftmaxGradKernel<false>>());
DSC_REGISTER_KERNEL(kDscDomain, ops::kLogSoftmaxGrad, kCpu, kFloat32, MakeFactory<SoftmaxGradKernel<true>>());

}  // namespace
}  // namespace dsc
