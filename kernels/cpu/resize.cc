// Resize (ONNX, opsets 13+: nearest, linear and cubic over any axes) and its adjoint ResizeGrad
// (ir/dsc_ops.h), float32; half tensors come through the half adaptor. The per-element math is
// kernels/common/resize_math.h, shared with the CUDA twin kernels/cuda/resize.cu.
//
// Resize: X (any rank) -> Y, one output element at a time. ResizeGrad: dY -> dX, one input element at
// a time gathering the outputs that read it (no scatter, so threads never share a dX element).
#include "ir/dsc_ops.h"
#include "kernels/common/resize_math.h"
#include "kernels/common/resize_node.h"
#include "kernels/cpu/nn_util.h"
#include "kernels/kernel.h"

namespace dsc {
namespace {

class ResizeKernel : public OpKernel {
 public:
  Status Init(const Node& node) {
    ASSIGN_OR_RETURN(g_, resize::ReadResize(node, node.input(0), node.output(0)));
    return Status::OK();
  }
  Status Compute(KernelContext& ctx) override {
    const float* x = ctx.input(0).data<float>();
    float* y = ctx.output(0).data<float>();
    const resize::Geom& g = g_;
    const int64_t n = resize::Elements(g.out, g.rank);
    // An element costs tens of operations (coordinates and taps per axis): threads pay off sooner.
#pragma omp parallel for if (n > nn::kParallelThreshold / 8)
    for (int64_t e = 0; e < n; ++e) y[e] = resize::ResizeAt(g, e, [x](int64_t off) { return x[off]; });
    return Status::OK();
  }

 private:
  resize::Geom g_;
};

// (dY, roi, scales, sizes) -> dX; dX's shape comes from its type.
class ResizeGradKernel : public OpKernel {
 public:
  Status Init(const Node& node) {
    ASSIGN_OR_RETURN(g_, resize::ReadResize(node, node.output(0), node.input(0)));
    return Status::OK();
  }
  Status Compute(KernelContext& ctx) override {
    const float* dy = ctx.input(0).data<float>();
    float* dx = ctx.output(0).data<float>();
    const resize::Geom& g = g_;
    const int64_t n = resize::Elements(g.in, g.rank);
#pragma omp parallel for if (n > nn::kParallelThreshold / 8)
    for (int64_t e = 0; e < n; ++e) dx[e] = resize::ResizeGradAt(g, e, [dy](int64_t off) { return dy[off]; });
    return Status::OK();
  }

 private:
  resize::Geom g_;
};

DSC_REGISTER_KERNEL("", "Resize", kCpu, kFloat32, MakeFactory<ResizeKernel>());
DSC_REGISTER_KERNEL(kDscDomain, ops::kResizeGrad, kCpu, kFloat32, MakeFactory<ResizeGradKernel>());

}  // namespace
}  // namespace dsc
