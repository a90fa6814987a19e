// 1-D and 2-D convolution (ONNX Conv: groups, strides, pads, dilations, auto_pad, optional bias) and ConvGrad,
// both as im2col/col2im around OpenBLAS sgemm.

#include <algorithm>
#include <vector>

#include "ir/dsc_ops.h"
#include "kernels/common/conv_math.h"
#include "kernels/common/conv_shape.h"
#include "kernels/cpu/blas.h"
#include "kernels/cpu/nn_util.h"
#include "kernels/kernel.h"

namespace dsc {
namespace {

// Unfolds one group of one image, x:(Cg,H,W), into col:(Cg*kh*kw, OH*OW); padded taps read 0.
void Im2Col(const float* x, int64_t cg, const nn::Window2D& w, float* col) {
  const int64_t rows = cg * w.kh * w.kw, P = w.oh * w.ow;
#pragma omp parallel for if (rows * P > nn::kParallelThreshold)
  for (int64_t row = 0; row < rows; ++row) {
    const int64_t c = row / (w.kh * w.kw), ki = row / w.kw % w.kh, kj = row % w.kw;
    const float* xc = x + c * w.ih * w.iw;
    float* out = col + row * P;
    for (int64_t oy = 0; oy < w.oh; ++oy) {
      const int64_t iy = conv::InputPos(oy, w.sh, w.pt, ki, w.dh);
      for (int64_t ox = 0; ox < w.ow; ++ox) {
        const int64_t ix = conv::InputPos(ox, w.sw, w.pl, kj, w.dw);
        const bool in = iy >= 0 && iy < w.ih && ix >= 0 && ix < w.iw;
        out[oy * w.ow + ox] = in ? xc[iy * w.iw + ix] : 0.0f;
      }
    }
  }
}

// The adjoint of Im2Col: adds col:(Cg*kh*kw, OH*OW) back into x:(Cg,H,W); padded taps are dropped.
void Col2ImAdd(const float* col, int64_t cg, const nn::Window2D& w, float* x) {
  const int64_t P = w.oh * w.ow;
  // One channel per thread: every row of a channel writes that channel's plane only.
#pragma omp parallel for if (cg * w.kh * w.kw * P > nn::kParallelThreshold)
  for (int64_t c = 0; c < cg; ++c) {
    float* xc = x + c * w.ih * w.iw;
    for (int64_t ki = 0; ki < w.kh; ++ki)
      for (int64_t kj = 0; kj < w.kw; ++kj) {
        const float* in = col + ((c * w.kh + ki) * w.kw + kj) * P;
        for (int64_t oy = 0; oy < w.oh; ++oy) {
          const int64_t iy = conv::InputPos(oy, w.sh, w.pt, ki, w.dh);
          if (iy < 0 || iy >= w.ih) continue;
          for (int64_t ox = 0; ox < w.ow; ++ox) {
            const int64_t ix = conv::InputPos(ox, w.sw, w.pl, kj, w.dw);
            if (ix >= 0 && ix < w.iw) xc[iy * w.iw + ix] += in[oy * w.ow + ox];
          }
        }
      }
  }
}

// (X, W[, B]) -> Y;  X:(N,C,H,W)  W:(M,C/group,kh,kw)  B:(M)  Y:(N,M,OH,OW); 1-D: H = kh = OH = 1
class ConvKernel : public OpKernel {
 public:
  Status Init(const Node& node) {
    ASSIGN_OR_RETURN(s_, conv::ReadConv(node, node.input(0), node.input(1), node.output(0)));
    return Status::OK();
  }
  Status Compute(KernelContext& ctx) override {
    const float* x = ctx.input(0).data<float>();
    const float* wt = ctx.input(1).data<float>();
    const float* b = ctx.has_input(2) ? ctx.input(2).data<float>() : nullptr;
    float* y = ctx.output(0).data<float>();
    const int64_t H = s_.w.ih, W = s_.w.iw;
    std::vector<float> col(static_cast<size_t>(s_.k * s_.p));
    for (int64_t n = 0; n < s_.n; ++n)
      for (int64_t g = 0; g < s_.group; ++g) {
        Im2Col(x + (n * s_.c + g * s_.cg) * H * W, s_.cg, s_.w, col.data());
        float* yg = y + (n * s_.m + g * s_.mg) * s_.p;
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, int(s_.mg), int(s_.p), int(s_.k), 1.0f,
                    wt + g * s_.mg * s_.k, int(s_.k), col.data(), int(s_.p), 0.0f, yg, int(s_.p));
        if (b)
          for (int64_t m = 0; m < s_.mg; ++m)
            for (int64_t i = 0; i < s_.p; ++i) yg[m * s_.p + i] += b[g * s_.mg + m];
      }
    return Status::OK();
  }

 private:
  conv::ConvShape s_;
};

// (dY, X, W) -> dX, dW, dB (each optional); per image and group:
//   dW_g += dY_g:(Mg,P) @ col(X)^T:(P,K),  dX += col2im(W_g^T:(K,Mg) @ dY_g),  dB = sum over N and P of dY
class ConvGradKernel : public OpKernel {
 public:
  Status Init(const Node& node) {
    ASSIGN_OR_RETURN(s_, conv::ReadConv(node, node.input(1), node.input(2), node.input(0)));
    return Status::OK();
  }
  Status Compute(KernelContext& ctx) override {
    const float* dy = ctx.input(0).data<float>();
    const float* x = ctx.input(1).data<float>();
    const float* wt = ctx.input(2).data<float>();
    float* dx = ctx.has_output(0) ? ctx.output(0).data<float>() : nullptr;
    float* dw = ctx.has_output(1) ? ctx.output(1).data<float>() : nullptr;
    float* db = ctx.has_output(2) ? ctx.output(2).data<float>() : nullptr;
    const int64_t H = s_.w.ih, W = s_.w.iw;
    if (dx) std::fill(dx, dx + s_.n * s_.c * H * W, 0.0f);
    if (dw) std::fill(dw, dw + s_.m * s_.k, 0.0f);
    std::vector<float> col(static_cast<size_t>(s_.k * s_.p));
    for (int64_t n = 0; n < s_.n; ++n)
      for (int64_t g = 0; g < s_.group; ++g) {
        const float* dyg = dy + (n * s_.m + g * s_.mg) * s_.p;
        const int64_t xoff = (n * s_.c + g * s_.cg) * H * W;
        if (dw) {
          Im2Col(x + xoff, s_.cg, s_.w, col.data());
          cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, int(s_.mg), int(s_.k), int(s_.p), 1.0f, dyg, int(s_.p),
                      col.data(), int(s_.p), 1.0f, dw + g * s_.mg * s_.k, int(s_.k));
        }
        if (dx) {
          cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, int(s_.k), int(s_.p), int(s_.mg), 1.0f,
                      wt + g * s_.mg * s_.k, int(s_.k), dyg, int(s_.p), 0.0f, col.data(), int(s_.p));
          Col2ImAdd(col.data(), s_.cg, s_.w, dx + xoff);
        }
      }
    if (db) {
#pragma omp parallel for if (s_.n * s_.m * s_.p > nn::kParallelThreshold)
      for (int64_t m = 0; m < s_.m; ++m) {
        double sum = 0;
        for (int64_t n = 0; n < s_.n; ++n)
          for (int64_t i = 0; i < s_.p; ++i) sum += dy[(n * s_.m + m) * s_.p + i];
        db[m] = static_cast<float>(sum);
      }
    }
    return Status::OK();
  }

 private:
  conv::ConvShape s_;
};

DSC_REGISTER_KERNEL("", "Conv", kCpu, kFloat32, MakeFactory<ConvKernel>());
DSC_REGISTER_KERNEL(kDscDomain, ops::kConvGrad, kCpu, kFloat32, MakeFactory<ConvGradKernel>());

}  // namespace
}  // namespace dsc
