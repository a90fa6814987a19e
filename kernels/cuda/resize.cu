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

int64_t Count(const int64_t* dims, int rank) {
  int64_t n = 1;
  for (int a = 0; a < rank; ++a) n *= dims[a];
  return n;
}

template <typename T>
__global__ void ResizeFwd(const T* x, T* y, resize::Geom g, int64_t n) {
  for (int64_t e = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; e < n;
       e += static_cast<int64_t>(blockDim.x) * gridDim.x)
    y[e] = FromFloat<T>(resize::ResizeAt(g, e, [x](int64_t off) { return ToFloat(x[off]); }));
}

template <typename T>
__global__ void ResizeBwd(const T* dy, T* dx, resize::Geom g, int64_t n) {
  for (int64_t e = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; e < n;
       e += static_cast<int64_t>(blockDim.x) * gridDim.x)
    dx[e] = FromFloat<T>(resize::ResizeGradAt(g, e, [dy](int64_t off) { return ToFloat(dy[off]); }));
}

template <typename T>
class ResizeCuda : public OpKernel {
 public:
  Status Init(const Node& node) {
    ASSIGN_OR_RETURN(g_, resize::ReadResize(node, node.input(0), node.output(0)));
    return Status::OK();
  }
  Status Compute(KernelContext& ctx) override {
    ASSIGN_OR_RETURN(Resources * r, Res(ctx));
    const int64_t n = Count(g_.out, g_.rank);
    if (n == 0) return Status::OK();
    ResizeFwd<T><<<GridFor(*r, n), kThreads, 0, r->compute>>>(ctx.input(0).data<T>(), ctx.output(0).data<T>(), g_, n);
    DSC_CUDA_CHECK_LAUNCH();
    return Status::OK();
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
    ASSIGN_OR_RETURN(Resources * r, Res(ctx));
    const int64_t n = Count(g_.in, g_.rank);
    if (n == 0) return Status::OK();
    ResizeBwd<T><<<GridFor(*r, n), kThreads, 0, r->compute>>>(ctx.input(0).data<T>(), ctx.output(0).data<T>(), g_, n);
    DSC_CUDA_CHECK_LAUNCH();
    return Status::OK();
  }

 private:
  resize::Geom g_;
};

DSC_REGISTER_CUDA_FLOATS("", "Resize", ResizeCuda);
DSC_REGISTER_CUDA_FLOATS(kDscDomain, ops::kResizeGrad, ResizeGradCuda);

}  // namespace
}  // namespace dsc::cuda
