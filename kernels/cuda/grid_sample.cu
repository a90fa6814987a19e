// CUDA GridSample and GridSampleGrad, the twins of kernels/cpu/grid_sample.cc (same per-point math,
// kernels/common/grid_sample_math.h, compiled without fused multiply-adds as the CPU's is).
//
// GridSample: one thread per output point (every channel), float32/float16/bfloat16 computed in
// float. GridSampleGrad (float32; the precision policy keeps GridSample in fp32): one thread per
// output point writes its dGrid and adds into dX with atomics, as PyTorch's CUDA kernel does (dX's
// sum order, so its last bits, may vary between runs).
#include "ir/dsc_ops.h"
#include "kernels/common/grid_sample_math.h"
#include "kernels/cuda/elementwise.cuh"  // ExpectDType

namespace dsc::cuda {
namespace {

template <typename T>
struct GridSampleFn {
  const T* x;
  const T* g;
  T* y;
  grid::Spec s;
  __device__ void operator()(int64_t e) const {
    const int64_t points = s.ho * s.wo, n = e / points, p = e % points;
    const T* xn = x + n * s.c * s.h * s.w;
    T* yn = y + n * s.c * points + p;
    grid::SampleAt(s, ToFloat(g[2 * e]), ToFloat(g[2 * e + 1]), [xn](int64_t off) { return ToFloat(xn[off]); },
                   [yn, points](int64_t c, float v) { yn[c * points] = FromFloat<T>(v); });
  }
};

struct GridSampleGradFn {
  const float* dy;
  const float* x;
  const float* g;
  float* dx;  // zeroed; null when not wanted
  float* dg;  // null when not wanted
  grid::Spec s;
  __device__ void operator()(int64_t e) const {
    const int64_t points = s.ho * s.wo, n = e / points, p = e % points;
    const float* xn = x + n * s.c * s.h * s.w;
    const float* dyn = dy + n * s.c * points + p;
    float* dxn = dx ? dx + n * s.c * s.h * s.w : nullptr;
    float gx = 0, gy = 0;
    grid::SampleGradAt(s, g[2 * e], g[2 * e + 1], [dyn, points](int64_t c) { return dyn[c * points]; },
                       [xn](int64_t off) { return xn[off]; },
                       [dxn](int64_t off, float v) {
                         if (dxn) atomicAdd(dxn + off, v);
                       },
                       &gx, &gy);
    if (dg) {
      dg[2 * e] = gx;
      dg[2 * e + 1] = gy;
    }
  }
};

template <typename T>
class GridSampleCuda : public OpKernel {
 public:
  Status Init(const Node& node) {
    RETURN_IF_ERROR(ExpectDType(node, node.input(1), DTypeOf<T>(), "Grid"));
    ASSIGN_OR_RETURN(s_, grid::ReadGridSample(node, node.input(0), node.input(1)));
    return Status::OK();
  }
  Status Compute(KernelContext& ctx) override {
    return LaunchMap(ctx, s_.n * s_.ho * s_.wo,
                     GridSampleFn<T>{ctx.input(0).data<T>(), ctx.input(1).data<T>(), ctx.output(0).data<T>(), s_});
  }

 private:
  grid::Spec s_;
};

class GridSampleGradCuda : public OpKernel {
 public:
  Status Init(const Node& node) {
    ASSIGN_OR_RETURN(s_, grid::ReadGridSample(node, node.input(1), node.input(2)));
    return Status::OK();
  }
  Status Compute(KernelContext& ctx) override {
    float* dx = ctx.has_output(0) ? ctx.output(0).data<float>() : nullptr;
    float* dg = ctx.has_output(1) ? ctx.output(1).data<float>() : nullptr;
    if (dx) {
      ASSIGN_OR_RETURN(Resources * r, Res(ctx));
      DSC_CUDA_CHECK(cudaMemsetAsync(dx, 0, static_cast<size_t>(s_.n * s_.c * s_.h * s_.w) * sizeof(float), r->compute));
    }
    return LaunchMap(ctx, s_.n * s_.ho * s_.wo,
                     GridSampleGradFn{ctx.input(0).data<float>(), ctx.input(1).data<float>(),
                                      ctx.input(2).data<float>(), dx, dg, s_});
  }

 private:
  grid::Spec s_;
};

DSC_REGISTER_CUDA_FLOATS("", "GridSample", GridSampleCuda);
DSC_REGISTER_KERNEL(kDscDomain, ops::kGridSampleGrad, kCuda, kFloat32, MakeFactory<GridSampleGradCuda>());

}  // namespace
}  // namespace dsc::cuda
