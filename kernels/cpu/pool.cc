// Pooling over 1 to 3 spatial dims: MaxPool (with optional Indices), AveragePool, GlobalAveragePool, and
// MaxPoolGrad/AveragePoolGrad.
//
// Windows follow PyTorch where ONNX leaves room: with ceil_mode a window never starts in the end
// padding; MaxPool takes the first maximum in row-major window order (NaN wins, as in PyTorch) and
// ignores padding; AveragePool's count_include_pad counts taps inside the padded extent only.
#include <algorithm>
#include <cmath>
#include <vector>

#include "ir/dsc_ops.h"
#include "kernels/common/pool_math.h"
#include "kernels/common/pool_node.h"
#include "kernels/cpu/nn_util.h"
#include "kernels/kernel.h"

namespace dsc {
namespace {

using pool::PoolShape;
using pool::ReadPool;

int64_t ArgMax(const float* x, const nn::Window& w, const int64_t* op) {
  return pool::ArgMax(w, op, [x](int64_t off) { return x[off]; });
}
int64_t Divisor(const PoolShape& s, const int64_t* op) { return pool::Divisor(s.w, s.count_include_pad, op); }
using pool::ForEachTap;
using pool::ForEachWindow;

// X -> Y[, Indices];  Indices are flat offsets into X:(N,C,spatial...) (storage_order 0).
class MaxPoolKernel : public OpKernel {
 public:
  Status Init(const Node& node) {
    ASSIGN_OR_RETURN(s_, pool::ReadMaxPool(node));
    return Status::OK();
  }
  Status Compute(KernelContext& ctx) override {
    const float* x = ctx.input(0).data<float>();
    float* y = ctx.output(0).data<float>();
    int64_t* idx = ctx.has_output(1) ? ctx.output(1).data<int64_t>() : nullptr;
    const nn::Window w = s_.w;  // a local copy: its fields stay in registers across the stores to Y or dX
    const int64_t in_plane = w.InSize(), out_plane = w.OutSize();
#pragma omp parallel for if (s_.planes * out_plane * w.Taps() > nn::kParallelThreshold)
    for (int64_t p = 0; p < s_.planes; ++p)
      ForEachWindow(w, [&](const int64_t* op, int64_t i) {
        const int64_t a = ArgMax(x + p * in_plane, w, op);
        const int64_t o = p * out_plane + i;
        y[o] = a < 0 ? 0.0f : x[p * in_plane + a];
        if (idx) idx[o] = a < 0 ? -1 : p * in_plane + a;
      });
    return Status::OK();
  }

 private:
  PoolShape s_;
};

// X -> Y, the mean of each window's taps (see Divisor for which taps count).
class AveragePoolKernel : public OpKernel {
 public:
  Status Init(const Node& node) {
    ASSIGN_OR_RETURN(s_, ReadPool(node, node.input(0), node.output(0)));
    return Status::OK();
  }
  Status Compute(KernelContext& ctx) override {
    const float* x = ctx.input(0).data<float>();
    float* y = ctx.output(0).data<float>();
    const nn::Window w = s_.w;  // a local copy: its fields stay in registers across the stores to Y or dX
    const int64_t in_plane = w.InSize(), out_plane = w.OutSize();
#pragma omp parallel for if (s_.planes * out_plane * w.Taps() > nn::kParallelThreshold)
    for (int64_t p = 0; p < s_.planes; ++p)
      ForEachWindow(w, [&](const int64_t* op, int64_t i) {
        const float* xp = x + p * in_plane;
        double sum = 0;
        ForEachTap(w, op, [&](int64_t off) { sum += xp[off]; });
        const int64_t d = Divisor(s_, op);
        y[p * out_plane + i] = d ? static_cast<float>(sum / d) : 0.0f;
      });
    return Status::OK();
  }

 private:
  PoolShape s_;
};

// X:(N,C,spatial...) -> Y:(N,C,1,...), the mean over the spatial dims.
class GlobalAveragePoolKernel : public OpKernel {
 public:
  Status Init(const Node& node) {
    ASSIGN_OR_RETURN(const pool::GlobalPoolShape g, pool::ReadGlobalPool(node));
    planes_ = g.planes;
    size_ = g.size;
    return Status::OK();
  }
  Status Compute(KernelContext& ctx) override {
    const float* x = ctx.input(0).data<float>();
    float* y = ctx.output(0).data<float>();
#pragma omp parallel for if (planes_ * size_ > nn::kParallelThreshold)
    for (int64_t p = 0; p < planes_; ++p) {
      double sum = 0;
      for (int64_t i = 0; i < size_; ++i) sum += x[p * size_ + i];
      y[p] = static_cast<float>(sum / static_cast<double>(size_));
    }
    return Status::OK();
  }

 private:
  int64_t planes_ = 0, size_ = 1;
};

// (dY, X) -> dX: each window's dY goes to its first maximum, as the forward picked it.
class MaxPoolGradKernel : public OpKernel {
 public:
  Status Init(const Node& node) {
    ASSIGN_OR_RETURN(s_, ReadPool(node, node.input(1), node.input(0)));
    return Status::OK();
  }
  Status Compute(KernelContext& ctx) override {
    const float* dy = ctx.input(0).data<float>();
    const float* x = ctx.input(1).data<float>();
    float* dx = ctx.output(0).data<float>();
    const nn::Window w = s_.w;  // a local copy: its fields stay in registers across the stores to Y or dX
    const int64_t in_plane = w.InSize(), out_plane = w.OutSize();
#pragma omp parallel for if (s_.planes * out_plane * w.Taps() > nn::kParallelThreshold)
    for (int64_t p = 0; p < s_.planes; ++p) {
      float* dxp = dx + p * in_plane;
      std::fill(dxp, dxp + in_plane, 0.0f);
      ForEachWindow(w, [&](const int64_t* op, int64_t i) {
        const int64_t a = ArgMax(x + p * in_plane, w, op);
        if (a >= 0) dxp[a] += dy[p * out_plane + i];
      });
    }
    return Status::OK();
  }

 private:
  PoolShape s_;
};

// (dY) -> dX: each window's dY / divisor goes to every tap inside X; dX's shape comes from its type.
class AveragePoolGradKernel : public OpKernel {
 public:
  Status Init(const Node& node) {
    ASSIGN_OR_RETURN(s_, ReadPool(node, node.output(0), node.input(0)));
    return Status::OK();
  }
  Status Compute(KernelContext& ctx) override {
    const float* dy = ctx.input(0).data<float>();
    float* dx = ctx.output(0).data<float>();
    const nn::Window w = s_.w;  // a local copy: its fields stay in registers across the stores to Y or dX
    const int64_t in_plane = w.InSize(), out_plane = w.OutSize();
#pragma omp parallel for if (s_.planes * out_plane * w.Taps() > nn::kParallelThreshold)
    for (int64_t p = 0; p < s_.planes; ++p) {
      float* dxp = dx + p * in_plane;
      std::fill(dxp, dxp + in_plane, 0.0f);
      ForEachWindow(w, [&](const int64_t* op, int64_t i) {
        const int64_t d = Divisor(s_, op);
        if (!d) return;
        const float g = dy[p * out_plane + i] / static_cast<float>(d);
        ForEachTap(w, op, [&](int64_t off) { dxp[off] += g; });
      });
    }
    return Status::OK();
  }

 private:
  PoolShape s_;
};

DSC_REGISTER_KERNEL("", "MaxPool", kCpu, kFloat32, MakeFactory<MaxPoolKernel>());
DSC_REGISTER_KERNEL("", "AveragePool", kCpu, kFloat32, MakeFactory<AveragePoolKernel>());
DSC_REGISTER_KERNEL("", "GlobalAveragePool", kCpu, kFloat32, MakeFactory<GlobalAveragePoolKernel>());
DSC_REGISTER_KERNEL(kDscDomain, ops::kMaxPoolGrad, kCpu, kFloat32, MakeFactory<MaxPoolGradKernel>());
DSC_REGISTER_KERNEL(kDscDomain, ops::kAveragePoolGrad, kCpu, kFloat32, MakeFactory<AveragePoolGradKernel>());

}  // namespace
}  // namespace dsc
