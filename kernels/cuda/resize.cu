// CUDA Resize and ResizeGrad, the twins of kernels/cpu/resize.cc (same per-element math,
// kernels/common/resize_math.h, compiled without fused multiply-adds as the CPU's is).
//
// Resize: one thread per output element. ResizeGrad gathers: one thread per input element sums, in
// the CPU's order, dY over the outputs that read it, in float; dX is deterministic and bitwise the
// CPU's, with no atomics.
#include "ir/dsc_ops.h"
#include "kernels/common/resize_math.h"
#include "kernels/common/resize_node.h"
#include "kernels/cuda/cuda_util.cuh"

namespace dsc::cuda {
namespace {

template <typename T>
struct ResizeFn {
  const T* x;
  T* y;
  resize::Geom g;
  __device__ void operator()(int64_t e) const {
    const T* src = x;
    y[e] = FromFloat<T>(resize::ResizeAt(g, e, [src](int64_t off) { return ToFloat(src[off]); }));
  }
};

template <typename T>
struct ResizeGradFn {
  const T* dy;
  T* dx;
  resize::Geom g;
  __device__ void operator()(int64_t e) const {
    const T* src = dy;
    dx[e] = FromFloat<T>(resize::ResizeGradAt(g, e, [src](int64_t off) { return ToFloat(src[off]); }));
  }
};

template <typename T>
class ResizeCuda : public OpKernel {
 public:
  Status Init(const Node& node) {
    ASSIGN_OR_RETURN(g_, resize::ReadResize(node, node.input(0), node.output(0)));
    return Status::OK();
  }
  Status Compute(KernelContext& ctx) override {
    return LaunchMap(ctx, resize::Elements(g_.out, g_.rank),
                     ResizeFn<T>{ctx.input(0).data<T>(), ctx.output(0).data<T>(), g_});
  }

 private:
  resize::Geom g_;
};

// (dY, roi, scales, sizes) -> dX
template <typename T>
class ResizeGradCuda : public OpKernel {
 public:
  Status Init(const Node& node) {
    ASSIGN_OR_RETURN(g_, resize::ReadResize(node, node.output(0), node.input(0)));
    return Status::OK();
  }
  Status Compute(KernelContext& ctx) override {
    return LaunchMap(ctx, resize::Elements(g_.in, g_.rank),
                     ResizeGradFn<T>{ctx.input(0).data<T>(), ctx.output(0).data<T>(), g_});
  }

 private:
  resize::Geom g_;
};

DSC_REGISTER_CUDA_FLOATS("", "Resize", ResizeCuda);
DSC_REGISTER_CUDA_FLOATS(kDscDomain, ops::kResizeGrad, ResizeGradCuda);

}  // namespace
}  // namespace dsc::cuda
