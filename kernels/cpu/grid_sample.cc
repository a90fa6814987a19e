// GridSample (ONNX opsets 16+, 4-D: linear/nearest/cubic, zeros/border/reflection padding,
// align_corners) and its gradient GridSampleGrad (ir/dsc_ops.h), float32 (the precision policy keeps
// GridSample in fp32, as autocast does). The per-point math is kernels/common/grid_sample_math.h,
// shared with the CUDA twin kernels/cuda/grid_sample.cu.
//
// GridSample: X (N, C, H, W), Grid (N, Ho, Wo, 2) -> Y (N, C, Ho, Wo), one output point (all
// channels) at a time. GridSampleGrad: (dY, X, Grid) -> dX, dGrid. dGrid is one pass over the points;
// dX is scattered by one thread per (n, c) plane, so no two threads add into one element and the sum
// order is fixed.
#include "ir/dsc_ops.h"
#include "kernels/common/grid_sample_math.h"
#include "kernels/cpu/nn_util.h"
#include "kernels/kernel.h"

namespace dsc {
namespace {

class GridSampleKernel : public OpKernel {
 public:
  Status Init(const Node& node) {
    ASSIGN_OR_RETURN(s_, grid::ReadGridSample(node, node.input(0), node.input(1)));
    return Status::OK();
  }
  Status Compute(KernelContext& ctx) override {
    const float* x = ctx.input(0).data<float>();
    const float* g = ctx.input(1).data<float>();
    float* y = ctx.output(0).data<float>();
    const grid::Spec& s = s_;
    const int64_t points = s.ho * s.wo, total = s.n * points;
#pragma omp parallel for if (total * s.c > nn::kParallelThreshold / 8)
    for (int64_t e = 0; e < total; ++e) {
      const int64_t n = e / points, p = e % points;
      const float* xn = x + n * s.c * s.h * s.w;
      float* yn = y + n * s.c * points + p;
      grid::SampleAt(s, g[2 * e], g[2 * e + 1], [xn](int64_t off) { return xn[off]; },
                     [yn, points](int64_t c, float v) { yn[c * points] = v; });
    }
    return Status::OK();
  }

 private:
  grid::Spec s_;
};

// (dY, X, Grid) -> dX, dGrid (either may be omitted).
class GridSampleGradKernel : public OpKernel {
 public:
  Status Init(const Node& node) {
    ASSIGN_OR_RETURN(s_, grid::ReadGridSample(node, node.input(1), node.input(2)));
    return Status::OK();
  }
  Status Compute(KernelContext& ctx) override {
    const float* dy = ctx.input(0).data<float>();
    const float* x = ctx.input(1).data<float>();
    const float* g = ctx.input(2).data<float>();
    const grid::Spec& s = s_;
    const int64_t points = s.ho * s.wo, plane = s.h * s.w;
    if (ctx.has_output(1)) {
      float* dg = ctx.output(1).data<float>();
      const int64_t total = s.n * points;
#pragma omp parallel for if (total * s.c > nn::kParallelThreshold / 8)
      for (int64_t e = 0; e < total; ++e) {
        const int64_t n = e / points, p = e % points;
        const float* xn = x + n * s.c * plane;
        const float* dyn = dy + n * s.c * points + p;
        grid::SampleGradAt(s, g[2 * e], g[2 * e + 1], [dyn, points](int64_t c) { return dyn[c * points]; },
                           [xn](int64_t off) { return xn[off]; }, [](int64_t, float) {}, &dg[2 * e], &dg[2 * e + 1]);
      }
    }
    if (ctx.has_output(0)) {
      float* dx = ctx.output(0).data<float>();
      std::fill(dx, dx + s.n * s.c * plane, 0.0f);
      grid::Spec one = s;  // one channel at a time
      one.c = 1;
#pragma omp parallel for if (s.n * s.c * points > nn::kParallelThreshold / 8)
      for (int64_t nc = 0; nc < s.n * s.c; ++nc) {
        const int64_t n = nc / s.c;
        const float* xp = x + nc * plane;
        float* dxp = dx + nc * plane;
        const float* dyp = dy + nc * points;
        for (int64_t p = 0; p < points; ++p) {
          const int64_t e = n * points + p;
          float unused_x = 0, unused_y = 0;
          grid::SampleGradAt(one, g[2 * e], g[2 * e + 1], [dyp, p](int64_t) { return dyp[p]; },
                             [xp](int64_t off) { return xp[off]; }, [dxp](int64_t off, float v) { dxp[off] += v; },
                             &unused_x, &unused_y);
        }
      }
    }
    return Status::OK();
  }

 private:
  grid::Spec s_;
};

DSC_REGISTER_KERNEL("", "GridSample", kCpu, kFloat32, MakeFactory<GridSampleKernel>());
DSC_REGISTER_KERNEL(kDscDomain, ops::kGridSampleGrad, kCpu, kFloat32, MakeFactory<GridSampleGradKernel>());

}  // namespace
}  // namespace dsc
