// RMSNormalization (opset 23) and its gradient RMSNormalizationGrad.
//
// Y = X / sqrt(mean(X^2 over axes [axis, rank)) + eps) * Scale, Scale broadcast (right-aligned)
// to the normalised shape. Sums accumulate in double: these kernels are the reference. stash_type
// only says which precision the statistics use; double is at least as precise as any.
#include <cmath>
#include <vector>

#include "ir/dsc_ops.h"
#include "kernels/common/norm_math.h"
#include "kernels/common/rms_norm_node.h"
#include "kernels/cpu/nn_util.h"
#include "kernels/kernel.h"

namespace dsc {
namespace {

using norm::ReadRms;
using norm::RmsShape;

// 1/sqrt(mean(x^2) + eps) of each row.
void RowInvRms(const float* x, int64_t rows, int64_t cols, float eps, std::vector<double>* inv) {
  inv->resize(static_cast<size_t>(rows));
#pragma omp parallel for if (rows * cols > nn::kParallelThreshold)
  for (int64_t r = 0; r < rows; ++r) {
    const float* xr = x + r * cols;
    double ss = 0;
#pragma omp simd reduction(+ : ss)
    for (int64_t j = 0; j < cols; ++j) ss += norm::Square(xr[j]);
    (*inv)[static_cast<size_t>(r)] = norm::RmsInv(ss, static_cast<double>(cols), eps);
  }
}

// (X, Scale) -> Y;  X:(rows,cols)  Scale: broadcast to (cols)
class RmsNormKernel : public OpKernel {
 public:
  Status Init(const Node& node) {
    ASSIGN_OR_RETURN(s_, ReadRms(node, /*grad=*/false));
    eps_ = node.GetFloat("epsilon", 1e-5f);
    return Status::OK();
  }
  Status Compute(KernelContext& ctx) override {
    const float* x = ctx.input(0).data<float>();
    const float* scale = ctx.input(1).data<float>();
    float* y = ctx.output(0).data<float>();
    const int64_t rows = s_.rows, cols = s_.cols;
    std::vector<double> inv;
    RowInvRms(x, rows, cols, eps_, &inv);
    const int64_t* si = s_.scale_index.data();
#pragma omp parallel for if (rows * cols > nn::kParallelThreshold)
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t j = 0; j < cols; ++j)
        y[r * cols + j] = norm::RmsOut(x[r * cols + j], inv[static_cast<size_t>(r)], scale[si[j]]);
    return Status::OK();
  }

 private:
  RmsShape s_;
  float eps_ = 1e-5f;
};

// (dY, X, Scale) -> dX[, dScale]; with inv = 1/rms per row, xhat = x * inv and g = dY * Scale:
//   dX = inv * (g - xhat * mean(g * xhat)),  dScale = sum over rows (and broadcast columns) of dY * xhat
class RmsNormGradKernel : public OpKernel {
 public:
  Status Init(const Node& node) {
    ASSIGN_OR_RETURN(s_, ReadRms(node, /*grad=*/true));
    eps_ = node.GetFloat("epsilon", 1e-5f);
    return Status::OK();
  }
  Status Compute(KernelContext& ctx) override {
    const float* dy = ctx.input(0).data<float>();
    const float* x = ctx.input(1).data<float>();
    const float* scale = ctx.input(2).data<float>();
    const int64_t rows = s_.rows, cols = s_.cols;
    const int64_t* si = s_.scale_index.data();
    std::vector<double> inv;
    RowInvRms(x, rows, cols, eps_, &inv);
    if (ctx.has_output(0)) {
      float* dx = ctx.output(0).data<float>();
#pragma omp parallel for if (rows * cols > nn::kParallelThreshold)
      for (int64_t r = 0; r < rows; ++r) {
        const float* xr = x + r * cols;
        const float* dyr = dy + r * cols;
        const double rs = inv[static_cast<size_t>(r)];
        double mgx = 0;
        for (int64_t j = 0; j < cols; ++j) mgx += norm::RmsGxTerm(dyr[j], scale[si[j]], xr[j], rs);
        mgx /= static_cast<double>(cols);
        for (int64_t j = 0; j < cols; ++j)
          dx[r * cols + j] = norm::RmsGradDx(dyr[j], scale[si[j]], xr[j], rs, mgx);
      }
    }
    if (ctx.has_output(1)) {
      // Serial in row order: each Scale element's sum has one fixed order, whatever the thread count.
      std::vector<double> ds(static_cast<size_t>(s_.scale_numel), 0.0);
      for (int64_t r = 0; r < rows; ++r) {
        const double rs = inv[static_cast<size_t>(r)];
        for (int64_t j = 0; j < cols; ++j)
          ds[static_cast<size_t>(si[j])] += norm::RmsDScaleTerm(dy[r * cols + j], x[r * cols + j], rs);
      }
      float* dscale = ctx.output(1).data<float>();
      for (int64_t k = 0; k < s_.scale_numel; ++k) dscale[k] = static_cast<float>(ds[static_cast<size_t>(k)]);
    }
    return Status::OK();
  }

 private:
  RmsShape s_;
  float eps_ = 1e-5f;
};

DSC_REGISTER_KERNEL("", "RMSNormalization", kCpu, kFloat32, MakeFactory<RmsNormKernel>());
DSC_REGISTER_KERNEL(kDscDomain, ops::kRMSNormalizationGrad, kCpu, kFloat32, MakeFactory<RmsNormGradKernel>());

}  // namespace
}  // namespace dsc
