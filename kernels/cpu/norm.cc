// LayerNormalization (opset 17) and BatchNormalization (opset 15, inference and training) with their gradients.
//
// Statistics accumulate in double: the kernels are the reference the CUDA ones are checked against.
#include <algorithm>
#include <cmath>
#include <vector>

#include "ir/dsc_ops.h"
#include "kernels/common/norm_math.h"
#include "kernels/common/norm_node.h"
#include "kernels/cpu/nn_util.h"
#include "kernels/kernel.h"

namespace dsc {
namespace {

using norm::BatchNormShape;

// Mean and 1/sqrt(var + eps) of each row; var is biased (divides by cols).
void RowStats(const float* x, int64_t rows, int64_t cols, float eps, std::vector<double>* mean,
              std::vector<double>* rstd) {
  mean->resize(rows);
  rstd->resize(rows);
#pragma omp parallel for if (rows * cols > nn::kParallelThreshold)
  for (int64_t r = 0; r < rows; ++r) {
    const float* xr = x + r * cols;
    double m = 0, v = 0;  // simd: the double sums in a few interleaved partial sums
#pragma omp simd reduction(+ : m)
    for (int64_t j = 0; j < cols; ++j) m += xr[j];
    m /= static_cast<double>(cols);
#pragma omp simd reduction(+ : v)
    for (int64_t j = 0; j < cols; ++j) v += (xr[j] - m) * (xr[j] - m);
    v /= static_cast<double>(cols);
    (*mean)[r] = m;
    (*rstd)[r] = norm::InvStd(v, eps);
  }
}

// (X, Scale[, B]) -> Y[, Mean, InvStdDev];  X:(rows,cols)  Scale,B:(cols)  Mean,InvStdDev:(rows) as (..., 1, 1)
class LayerNormKernel : public OpKernel, protected norm::LayerNormNode {
 public:
  Status Init(const Node& node) { return LayerNormNode::Init(node, /*grad=*/false); }
  Status Compute(KernelContext& ctx) override {
    const float* x = ctx.input(0).data<float>();
    const float* scale = ctx.input(1).data<float>();
    const float* bias = ctx.has_input(2) ? ctx.input(2).data<float>() : nullptr;
    float* y = ctx.output(0).data<float>();
    const int64_t rows = s_.rows, cols = s_.cols;
    std::vector<double> mean, rstd;
    RowStats(x, rows, cols, eps_, &mean, &rstd);
#pragma omp parallel for if (rows * cols > nn::kParallelThreshold)
    for (int64_t r = 0; r < rows; ++r) {
      const float* xr = x + r * cols;
      float* yr = y + r * cols;
      const double m = mean[r], rs = rstd[r];
      for (int64_t j = 0; j < cols; ++j) yr[j] = norm::LayerNormOut(xr[j], m, rs, scale[j], bias ? bias[j] : 0.0f);
    }
    for (int64_t r = 0; r < rows; ++r) {
      if (ctx.has_output(1)) ctx.output(1).data<float>()[r] = static_cast<float>(mean[r]);
      if (ctx.has_output(2)) ctx.output(2).data<float>()[r] = static_cast<float>(rstd[r]);
    }
    return Status::OK();
  }
};

// (dY, X, Scale) -> dX, dScale, dBias; with xhat = (x - mean) * rstd and g = dY * Scale per row:
//   dX = rstd * (g - mean(g) - xhat * mean(g * xhat)),  dScale = sum_rows dY * xhat,  dBias = sum_rows dY
class LayerNormGradKernel : public OpKernel, protected norm::LayerNormNode {
 public:
  Status Init(const Node& node) { return LayerNormNode::Init(node, /*grad=*/true); }
  Status Compute(KernelContext& ctx) override {
    const float* dy = ctx.input(0).data<float>();
    const float* x = ctx.input(1).data<float>();
    const float* scale = ctx.input(2).data<float>();
    const int64_t rows = s_.rows, cols = s_.cols;
    const bool par = rows * cols > nn::kParallelThreshold;
    std::vector<double> mean, rstd;
    RowStats(x, rows, cols, eps_, &mean, &rstd);
    if (ctx.has_output(0)) {
      float* dx = ctx.output(0).data<float>();
#pragma omp parallel for if (par)
      for (int64_t r = 0; r < rows; ++r) {
        const float* xr = x + r * cols;
        const float* dyr = dy + r * cols;
        const double m = mean[r], rs = rstd[r];
        double mg = 0, mgx = 0;
#pragma omp simd reduction(+ : mg, mgx)
        for (int64_t j = 0; j < cols; ++j) {
          const double g = norm::LayerNormG(dyr[j], scale[j]);
          mg += g;
          mgx += g * (xr[j] - m) * rs;
        }
        mg /= static_cast<double>(cols);
        mgx /= static_cast<double>(cols);
        float* dxr = dx + r * cols;
        for (int64_t j = 0; j < cols; ++j) {
          const double xhat = (xr[j] - m) * rs;
          dxr[j] = norm::LayerNormGradDx(norm::LayerNormG(dyr[j], scale[j]), xhat, rs, mg, mgx);
        }
      }
    }
    float* dscale = ctx.has_output(1) ? ctx.output(1).data<float>() : nullptr;
    float* dbias = ctx.has_output(2) ? ctx.output(2).data<float>() : nullptr;
    if (dscale || dbias) {
      // Column sums over the rows, each column summed in row order; the rows are walked
      // contiguously with one block of columns per task (a column-major walk misses the cache).
      constexpr int64_t kBlock = 64;
#pragma omp parallel for if (par) schedule(static)
      for (int64_t j0 = 0; j0 < cols; j0 += kBlock) {
        const int64_t nj = std::min(kBlock, cols - j0);
        double ds[kBlock] = {}, db[kBlock] = {};
        for (int64_t r = 0; r < rows; ++r) {
          const float* dyr = dy + r * cols + j0;
          const float* xr = x + r * cols + j0;
          const double m = mean[r], rs = rstd[r];
          for (int64_t j = 0; j < nj; ++j) {
            ds[j] += norm::LayerNormDScaleTerm(dyr[j], xr[j], m, rs);
            db[j] += dyr[j];
          }
        }
        for (int64_t j = 0; j < nj; ++j) {
          if (dscale) dscale[j0 + j] = static_cast<float>(ds[j]);
          if (dbias) dbias[j0 + j] = static_cast<float>(db[j]);
        }
      }
    }
    return Status::OK();
  }
};

// Batch mean and biased variance of each channel over (N, S).
void ChannelStats(const float* x, const BatchNormShape& b, std::vector<double>* mean, std::vector<double>* var) {
  mean->assign(b.c, 0.0);
  var->assign(b.c, 0.0);
  const double count = static_cast<double>(b.n * b.s);
#pragma omp parallel for if (b.n * b.c * b.s > nn::kParallelThreshold)
  for (int64_t c = 0; c < b.c; ++c) {
    double m = 0, v = 0;
    for (int64_t n = 0; n < b.n; ++n)
      for (int64_t i = 0; i < b.s; ++i) m += x[(n * b.c + c) * b.s + i];
    m /= count;
    for (int64_t n = 0; n < b.n; ++n)
      for (int64_t i = 0; i < b.s; ++i) {
        const double d = x[(n * b.c + c) * b.s + i] - m;
        v += d * d;
      }
    (*mean)[c] = m;
    (*var)[c] = v / count;
  }
}

// (X, scale, B, input_mean, input_var) -> Y[, running_mean, running_var];  X:(N,C,S)  others:(C)
// training_mode=1: Y from the batch statistics; running = input * momentum + batch * (1 - momentum),
// with the biased batch variance as the ONNX spec says (PyTorch's running_var uses the unbiased one).
class BatchNormKernel : public OpKernel, protected norm::BatchNormNode {
 public:
  Status Init(const Node& node) { return BatchNormNode::Init(node); }
  Status Compute(KernelContext& ctx) override {
    const float* x = ctx.input(0).data<float>();
    const float* scale = ctx.input(1).data<float>();
    const float* bias = ctx.input(2).data<float>();
    const float* in_mean = ctx.input(3).data<float>();
    const float* in_var = ctx.input(4).data<float>();
    float* y = ctx.output(0).data<float>();
    std::vector<double> mean(in_mean, in_mean + b_.c), var(in_var, in_var + b_.c);
    if (training_) ChannelStats(x, b_, &mean, &var);
    const int64_t N = b_.n, C = b_.c, S = b_.s;
#pragma omp parallel for collapse(2) if (N * C * S > nn::kParallelThreshold)
    for (int64_t n = 0; n < N; ++n)
      for (int64_t c = 0; c < C; ++c) {
        const norm::Affine f = norm::BatchNormAffine(scale[c], bias[c], mean[c], var[c], eps_);
        const float* xp = x + (n * C + c) * S;
        float* yp = y + (n * C + c) * S;
        for (int64_t i = 0; i < S; ++i) yp[i] = norm::BatchNormOut(xp[i], f);
      }
    // Outside training the spec forbids these outputs; should a graph still ask, they pass the inputs on.
    {
      const double mom = training_ ? momentum_ : 1.0;
      for (int64_t c = 0; c < C; ++c) {
        if (ctx.has_output(1))
          ctx.output(1).data<float>()[c] = norm::RunningStat(in_mean[c], mean[c], mom);
        if (ctx.has_output(2))
          ctx.output(2).data<float>()[c] = norm::RunningStat(in_var[c], var[c], mom);
      }
    }
    return Status::OK();
  }
};

// (dY, X, Scale) -> dX, dScale, dBias in training mode (batch statistics), per channel over m = N*S:
//   dBias = sum dY,  dScale = sum dY * xhat,  dX = Scale * rstd / m * (m * dY - dBias - xhat * dScale)
class BatchNormGradKernel : public OpKernel, protected norm::BatchNormGradNode {
 public:
  Status Init(const Node& node) { return BatchNormGradNode::Init(node); }
  Status Compute(KernelContext& ctx) override {
    const float* dy = ctx.input(0).data<float>();
    const float* x = ctx.input(1).data<float>();
    const float* scale = ctx.input(2).data<float>();
    float* dx = ctx.has_output(0) ? ctx.output(0).data<float>() : nullptr;
    float* dscale = ctx.has_output(1) ? ctx.output(1).data<float>() : nullptr;
    float* dbias = ctx.has_output(2) ? ctx.output(2).data<float>() : nullptr;
    std::vector<double> mean, var;
    ChannelStats(x, b_, &mean, &var);
    const int64_t N = b_.n, C = b_.c, S = b_.s;
    const double m = static_cast<double>(N * S);
#pragma omp parallel for if (N * C * S > nn::kParallelThreshold)
    for (int64_t c = 0; c < C; ++c) {
      const double rstd = norm::InvStd(var[c], eps_);
      double db = 0, ds = 0;
      for (int64_t n = 0; n < N; ++n)
        for (int64_t i = 0; i < S; ++i) {
          const int64_t j = (n * C + c) * S + i;
          db += dy[j];
          ds += norm::BatchNormDScaleTerm(dy[j], x[j], mean[c], rstd);
        }
      if (dbias) dbias[c] = static_cast<float>(db);
      if (dscale) dscale[c] = static_cast<float>(ds);
      if (!dx) continue;
      for (int64_t n = 0; n < N; ++n)
        for (int64_t i = 0; i < S; ++i) {
          const int64_t j = (n * C + c) * S + i;
          dx[j] = norm::BatchNormGradDx(dy[j], x[j], scale[c], mean[c], rstd, m, db, ds);
        }
    }
    return Status::OK();
  }
};

DSC_REGISTER_KERNEL("", "LayerNormalization", kCpu, kFloat32, MakeFactory<LayerNormKernel>());
DSC_REGISTER_KERNEL(kDscDomain, ops::kLayerNormalizationGrad, kCpu, kFloat32, MakeFactory<LayerNormGradKernel>());
DSC_REGISTER_KERNEL("", "BatchNormalization", kCpu, kFloat32, MakeFactory<BatchNormKernel>());
DSC_REGISTER_KERNEL(kDscDomain, ops::kBatchNormalizationGrad, kCpu, kFloat32, MakeFactory<BatchNormGradKernel>());

}  // namespace
}  // namespace dsc
