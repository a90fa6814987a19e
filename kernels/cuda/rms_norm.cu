// CUDA RMSNormalization and RMSNormalizationGrad, the twins of kernels/cpu/rms_norm.cc: a block per
// row (sums in double), Scale broadcast through a column -> Scale element table on the device.
// dScale: one thread per Scale element summing its (row, column) terms in the CPU's order.
#include "ir/dsc_ops.h"
#include "kernels/common/norm_math.h"
#include "kernels/common/rms_norm_node.h"
#include "kernels/cpu/nn_util.h"
#include "kernels/cuda/row_util.cuh"

namespace dsc::cuda {
namespace {

// The shared shape (kernels/common/rms_norm_node.h) with scale_index emptied when it is the identity
// (Scale has the normalised shape), and for dScale: each Scale element k's columns
// cols_of[first[k] .. first[k+1]) in order.
struct RmsShape : norm::RmsShape {
  std::vector<int64_t> first, cols_of;
};

StatusOr<RmsShape> ReadRms(const Node& node, bool grad) {
  RmsShape s;
  ASSIGN_OR_RETURN(static_cast<norm::RmsShape&>(s), norm::ReadRms(node, grad));
  const std::vector<int64_t> index = s.scale_index;
  bool identity = s.scale_numel == s.cols;
  for (int64_t j = 0; j < s.cols && identity; ++j) identity = index[static_cast<size_t>(j)] == j;
  if (identity) s.scale_index.clear();
  s.first.assign(static_cast<size_t>(s.scale_numel) + 1, 0);
  for (int64_t j = 0; j < s.cols; ++j) ++s.first[static_cast<size_t>(index[static_cast<size_t>(j)]) + 1];
  for (size_t k = 1; k < s.first.size(); ++k) s.first[k] += s.first[k - 1];
  s.cols_of.resize(static_cast<size_t>(s.cols));
  std::vector<int64_t> fill(s.first.begin(), s.first.end() - 1);
  for (int64_t j = 0; j < s.cols; ++j) s.cols_of[static_cast<size_t>(fill[static_cast<size_t>(index[j])]++)] = j;
  return s;
}

__device__ __forceinline__ int64_t ScaleAt(const int64_t* si, int64_t j) { return si ? si[j] : j; }

template <typename T>
__device__ __forceinline__ double RowInv(const BlockRow& g, const T* xr, int64_t cols, float eps) {
  double ss = 0;
  for (int64_t j = g.lane(); j < cols; j += g.size()) ss += norm::Square(ToFloat(xr[j]));
  return norm::RmsInv(g.Sum(ss), static_cast<double>(cols), eps);
}

template <typename T>
__global__ void RmsFwd(const T* x, AnyIn scale, const int64_t* si, T* y, int64_t rows, int64_t cols, float eps) {
  __shared__ double shd[32];
  __shared__ float shf[32];
  const BlockRow g{shd, shf};
  for (int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
    const T* xr = x + r * cols;
    const double inv = RowInv(g, xr, cols, eps);
    for (int64_t j = g.lane(); j < cols; j += g.size())
      y[r * cols + j] = FromFloat<T>(norm::RmsOut(ToFloat(xr[j]), inv, scale[ScaleAt(si, j)]));
  }
}

template <typename T>
__global__ void RmsBwdRows(const T* dy, const T* x, AnyIn scale, const int64_t* si, T* dx, double* invs,
                           int64_t rows, int64_t cols, float eps) {
  __shared__ double shd[32];
  __shared__ float shf[32];
  const BlockRow g{shd, shf};
  for (int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
    const T* xr = x + r * cols;
    const T* dyr = dy + r * cols;
    const double inv = RowInv(g, xr, cols, eps);
    if (invs && threadIdx.x == 0) invs[r] = inv;
    if (!dx) continue;
    double mgx = 0;
    for (int64_t j = g.lane(); j < cols; j += g.size())
      mgx += norm::RmsGxTerm(ToFloat(dyr[j]), scale[ScaleAt(si, j)], ToFloat(xr[j]), inv);
    mgx = g.Sum(mgx) / static_cast<double>(cols);
    for (int64_t j = g.lane(); j < cols; j += g.size())
      dx[r * cols + j] = FromFloat<T>(norm::RmsGradDx(ToFloat(dyr[j]), scale[ScaleAt(si, j)], ToFloat(xr[j]), inv, mgx));
  }
}

template <typename T>
__global__ void RmsBwdScale(const T* dy, const T* x, const double* invs, const int64_t* first, const int64_t* cols_of,
                            AnyOut dscale, int64_t rows, int64_t cols, int64_t numel) {
  for (int64_t k = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; k < numel;
       k += static_cast<int64_t>(blockDim.x) * gridDim.x) {
    double ds = 0;
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t q = first[k]; q < first[k + 1]; ++q) {
        const int64_t j = r * cols + cols_of[q];
        ds += norm::RmsDScaleTerm(ToFloat(dy[j]), ToFloat(x[j]), invs[r]);
      }
    dscale.Set(k, static_cast<float>(ds));
  }
}

template <typename T>
class RmsNormCuda : public OpKernel {
 public:
  Status Init(const Node& node) {
    ASSIGN_OR_RETURN(s_, ReadRms(node, false));
    eps_ = node.GetFloat("epsilon", 1e-5f);
    si_.host() = s_.scale_index;
    return Status::OK();
  }
  Status Compute(KernelContext& ctx) override {
    ASSIGN_OR_RETURN(Resources * r, Res(ctx));
    if (s_.rows * s_.cols == 0) return Status::OK();
    ASSIGN_OR_RETURN(AnyIn scale, InAt(ctx, 1));
    ASSIGN_OR_RETURN(const int64_t* si, si_.Get(r->compute));
    RmsFwd<T><<<RowGrid(*r, s_.rows), RowThreads(s_.cols), 0, r->compute>>>(ctx.input(0).data<T>(), scale, si,
                                                                            ctx.output(0).data<T>(), s_.rows, s_.cols, eps_);
    DSC_CUDA_CHECK_LAUNCH();
    return Status::OK();
  }

 private:
  RmsShape s_;
  float eps_ = 1e-5f;
  DeviceTable<int64_t> si_;
};

// (dY, X, Scale) -> dX[, dScale]
template <typename T>
class RmsNormGradCuda : public OpKernel {
 public:
  Status Init(const Node& node) {
    ASSIGN_OR_RETURN(s_, ReadRms(node, true));
    eps_ = node.GetFloat("epsilon", 1e-5f);
    si_.host() = s_.scale_index;
    first_.host() = s_.first;
    cols_of_.host() = s_.cols_of;
    return Status::OK();
  }
  Status Compute(KernelContext& ctx) override {
    ASSIGN_OR_RETURN(Resources * r, Res(ctx));
    if (s_.rows * s_.cols == 0) return Status::OK();
    if (ctx.input(1).dtype != DTypeOf<T>()) return Unimplemented("RMSNormalizationGrad with dY and X of different dtypes on CUDA");
    ASSIGN_OR_RETURN(AnyIn scale, InAt(ctx, 2));
    ASSIGN_OR_RETURN(AnyOut dscale, OutAt(ctx, 1));
    ASSIGN_OR_RETURN(const int64_t* si, si_.Get(r->compute));
    const T* dy = ctx.input(0).data<T>();
    const T* x = ctx.input(1).data<T>();
    T* dx = ctx.has_output(0) ? ctx.output(0).data<T>() : nullptr;
    double* invs = nullptr;
    if (dscale.p) {
      ASSIGN_OR_RETURN(void* scratch, r->Scratch(static_cast<size_t>(s_.rows) * sizeof(double)));
      invs = static_cast<double*>(scratch);
    }
    RmsBwdRows<T><<<RowGrid(*r, s_.rows), RowThreads(s_.cols), 0, r->compute>>>(dy, x, scale, si, dx, invs, s_.rows,
                                                                                s_.cols, eps_);
    DSC_CUDA_CHECK_LAUNCH();
    if (dscale.p) {
      ASSIGN_OR_RETURN(const int64_t* first, first_.Get(r->compute));
      ASSIGN_OR_RETURN(const int64_t* cols_of, cols_of_.Get(r->compute));
      RmsBwdScale<T><<<GridFor(*r, s_.scale_numel), kThreads, 0, r->compute>>>(dy, x, invs, first, cols_of, dscale,
                                                                                s_.rows, s_.cols, s_.scale_numel);
      DSC_CUDA_CHECK_LAUNCH();
    }
    return Status::OK();
  }

 private:
  RmsShape s_;
  float eps_ = 1e-5f;
  DeviceTable<int64_t> si_, first_, cols_of_;
};

DSC_REGISTER_CUDA_FLOATS("", "RMSNormalization", RmsNormCuda);
DSC_REGISTER_CUDA_FLOATS(kDscDomain, ops::kRMSNormalizationGrad, RmsNormGradCuda);

}  // namespace
}  // namespace dsc::cuda
