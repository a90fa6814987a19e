// Softmax and LogSoftmax (ONNX opset 13: one axis, default -1) and their gradients SoftmaxGrad/LogSoftmaxGrad.
#include <cmath>
#include <vector>

#include "ir/dsc_ops.h"
#include "kernels/common/softmax_math.h"
#include "kernels/common/softmax_node.h"
#include "kernels/cpu/nn_util.h"
#include "kernels/cpu/simd_math.h"
#include "kernels/kernel.h"

namespace dsc {
namespace {

using cpu::Isa;
using cpu::RunOnIsa;
using softmax::AxisView;

// One contiguous row of n: y = softmax(x) or log_softmax(x), max subtracted so exp never
// overflows; e is n floats of scratch (y itself will do for softmax).
template <bool kLog>
void SoftmaxRow(Isa isa, const float* x, float* y, float* e, int64_t n) {
  float mx = 0;
  RunOnIsa(isa, [&] {
    mx = cpu::RowMaxOf(x, n);
    for (int64_t k = 0; k < n; ++k) e[k] = x[k] - mx;
  });
  cpu::VecExp(isa, e, e, n);
  RunOnIsa(isa, [&] {
    const double sum = cpu::SumToDouble(e, n);
    if (kLog) {
      const double lse = std::log(sum);
      for (int64_t k = 0; k < n; ++k) y[k] = softmax::LogSoftmaxOut(x[k], mx, lse);
    } else {
      for (int64_t k = 0; k < n; ++k) y[k] = softmax::SoftmaxOut(e[k], sum);
    }
  });
}

// One contiguous row of n, rows along the axis:
//   softmax:     dX = Y * (dY - sum(dY * Y))
//   log-softmax: dX = dY - exp(Y) * sum(dY)     (e: n floats of scratch)
template <bool kLog>
void SoftmaxGradRow(Isa isa, const float* dy, const float* y, float* dx, float* e, int64_t n) {
  if (kLog) cpu::VecExp(isa, y, e, n);
  RunOnIsa(isa, [&] {
    const double s = cpu::LaneSum(n, [&](int64_t k) { return softmax::GradTerm<kLog>(dy[k], y[k]); });
    if (kLog) {
      for (int64_t k = 0; k < n; ++k) dx[k] = static_cast<float>(dy[k] - static_cast<double>(e[k]) * s);
    } else {
      for (int64_t k = 0; k < n; ++k) dx[k] = softmax::GradOut<false>(dy[k], y[k], s);
    }
  });
}

// X:(outer,n,inner) -> Y, softmax or log-softmax along n. A strided row (inner > 1) is gathered
// into a buffer first, so it is computed exactly as a contiguous one.
template <bool kLog>
class SoftmaxKernel : public OpKernel, protected softmax::SoftmaxNode {
 public:
  Status Init(const Node& node) {
    ASSIGN_OR_RETURN(isa_, cpu::SelectedIsa());
    return SoftmaxNode::Init(node, /*grad=*/false);
  }
  Status Compute(KernelContext& ctx) override {
    const float* x = ctx.input(0).data<float>();
    float* y = ctx.output(0).data<float>();
    const int64_t outer = a_.outer, n = a_.n, inner = a_.inner;
    const Isa isa = isa_;
#pragma omp parallel if (outer * n * inner > nn::kParallelThreshold)
    {
      // exp scratch, and the gathered row and its result when strided
      std::vector<float> buf(static_cast<size_t>(inner == 1 ? n : 3 * n));
      float* e = buf.data();
#pragma omp for collapse(2)
      for (int64_t o = 0; o < outer; ++o) {
        for (int64_t i = 0; i < inner; ++i) {
          const float* xr = x + o * n * inner + i;
          float* yr = y + o * n * inner + i;
          if (inner == 1) {
            SoftmaxRow<kLog>(isa, xr, yr, e, n);
            continue;
          }
          float* xg = e + n;
          float* yg = e + 2 * n;
          for (int64_t k = 0; k < n; ++k) xg[k] = xr[k * inner];
          SoftmaxRow<kLog>(isa, xg, yg, e, n);
          for (int64_t k = 0; k < n; ++k) yr[k * inner] = yg[k];
        }
      }
    }
    return Status::OK();
  }

 private:
  Isa isa_ = Isa::kBaseline;
};

// (dY, Y) -> dX, rows along the axis (SoftmaxGradRow).
template <bool kLog>
class SoftmaxGradKernel : public OpKernel, protected softmax::SoftmaxNode {
 public:
  Status Init(const Node& node) {
    ASSIGN_OR_RETURN(isa_, cpu::SelectedIsa());
    return SoftmaxNode::Init(node, /*grad=*/true);
  }
  Status Compute(KernelContext& ctx) override {
    const float* dy = ctx.input(0).data<float>();
    const float* y = ctx.input(1).data<float>();
    float* dx = ctx.output(0).data<float>();
    const int64_t outer = a_.outer, n = a_.n, inner = a_.inner;
    const Isa isa = isa_;
#pragma omp parallel if (outer * n * inner > nn::kParallelThreshold)
    {
      // exp scratch (log-softmax), and the gathered dY, Y and dX rows when strided
      std::vector<float> buf(static_cast<size_t>(inner == 1 ? n : 4 * n));
      float* e = buf.data();
#pragma omp for collapse(2)
      for (int64_t o = 0; o < outer; ++o) {
        for (int64_t i = 0; i < inner; ++i) {
          const int64_t base = o * n * inner + i;
          if (inner == 1) {
            SoftmaxGradRow<kLog>(isa, dy + base, y + base, dx + base, e, n);
            continue;
          }
          float* dyg = e + n;
          float* yg = e + 2 * n;
          float* dxg = e + 3 * n;
          for (int64_t k = 0; k < n; ++k) {
            dyg[k] = dy[base + k * inner];
            yg[k] = y[base + k * inner];
          }
          SoftmaxGradRow<kLog>(isa, dyg, yg, dxg, e, n);
          for (int64_t k = 0; k < n; ++k) dx[base + k * inner] = dxg[k];
        }
      }
    }
    return Status::OK();
  }

 private:
  Isa isa_ = Isa::kBaseline;
};

DSC_REGISTER_KERNEL("", "Softmax", kCpu, kFloat32, MakeFactory<SoftmaxKernel<false>>());
DSC_REGISTER_KERNEL("", "LogSoftmax", kCpu, kFloat32, MakeFactory<SoftmaxKernel<true>>());
DSC_REGISTER_KERNEL(kDscDomain, ops::kSoftmaxGrad, kCpu, kFloat32, MakeFactory<SoftmaxGradKernel<false>>());
DSC_REGISTER_KERNEL(kDscDomain, ops::kLogSoftmaxGrad, kCpu, kFloat32, MakeFactory<SoftmaxGradKernel<true>>());

}  // namespace
}  // namespace dsc
