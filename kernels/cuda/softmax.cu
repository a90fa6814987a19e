// CUDA Softmax/LogSoftmax and SoftmaxGrad/LogSoftmaxGrad, the twins of kernels/cpu/softmax.cc.
//
// X viewed as (outer, n, inner) around the axis. With inner == 1 a block (a warp for short rows)
// reduces each contiguous row; otherwise one thread walks each strided row in the CPU's order,
// which keeps loads coalesced across inner. Max in float, sums in double, as on the CPU.
#include "kernels/common/softmax_math.h"
#include "kernels/common/softmax_node.h"
#include "kernels/cpu/nn_util.h"
#include "kernels/cuda/row_util.cuh"
#include "ir/dsc_ops.h"

namespace dsc::cuda {
namespace {

using softmax::AxisView;

template <bool kLog, typename T, typename G>
__device__ __forceinline__ void SoftmaxRow(G g, const T* x, T* y, int64_t n, int64_t stride) {
  float mx = -INFINITY;
  for (int64_t k = g.lane(); k < n; k += g.size()) mx = softmax::RowMax(mx, ToFloat(x[k * stride]));
  mx = g.Max(mx);
  double sum = 0;
  for (int64_t k = g.lane(); k < n; k += g.size()) sum += softmax::ExpShifted(ToFloat(x[k * stride]), mx);
  sum = g.Sum(sum);
  if (kLog) {
    const double lse = ::log(sum);
    for (int64_t k = g.lane(); k < n; k += g.size())
      y[k * stride] = FromFloat<T>(softmax::LogSoftmaxOut(ToFloat(x[k * stride]), mx, lse));
  } else {
    for (int64_t k = g.lane(); k < n; k += g.size())
      y[k * stride] = FromFloat<T>(softmax::SoftmaxOut(softmax::ExpShifted(ToFloat(x[k * stride]), mx), sum));
  }
}

template <bool kLog, typename T, typename G>
__device__ __forceinline__ void SoftmaxGradRow(G g, const T* dy, const T* y, T* dx, int64_t n, int64_t stride) {
  double s = 0;
  for (int64_t k = g.lane(); k < n; k += g.size())
    s += softmax::GradTerm<kLog>(ToFloat(dy[k * stride]), ToFloat(y[k * stride]));
  s = g.Sum(s);
  for (int64_t k = g.lane(); k < n; k += g.size())
    dx[k * stride] = FromFloat<T>(softmax::GradOut<kLog>(ToFloat(dy[k * stride]), ToFloat(y[k * stride]), s));
}

template <bool kLog, typename T>
__global__ void SoftmaxBlocks(const T* x, T* y, int64_t rows, int64_t n) {
  __shared__ double shd[32];
  __shared__ float shf[32];
  for (int64_t r = blockIdx.x; r < rows; r += gridDim.x) SoftmaxRow<kLog>(BlockRow{shd, shf}, x + r * n, y + r * n, n, 1);
}
template <bool kLog, typename T>
__global__ void SoftmaxThreads(const T* x, T* y, AxisView a) {
  const int64_t lines = a.outer * a.inner;
  for (int64_t l = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; l < lines;
       l += static_cast<int64_t>(blockDim.x) * gridDim.x) {
    const int64_t base = (l / a.inner) * a.n * a.inner + l % a.inner;
    SoftmaxRow<kLog>(ThreadRow{}, x + base, y + base, a.n, a.inner);
  }
}
template <bool kLog, typename T>
__global__ void SoftmaxGradBlocks(const T* dy, const T* y, T* dx, int64_t rows, int64_t n) {
  __shared__ double shd[32];
  __shared__ float shf[32];
  for (int64_t r = blockIdx.x; r < rows; r += gridDim.x)
    SoftmaxGradRow<kLog>(BlockRow{shd, shf}, dy + r * n, y + r * n, dx + r * n, n, 1);
}
template <bool kLog, typename T>
__global__ void SoftmaxGradThreads(const T* dy, const T* y, T* dx, AxisView a) {
  const int64_t lines = a.outer * a.inner;
  for (int64_t l = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; l < lines;
       l += static_cast<int64_t>(blockDim.x) * gridDim.x) {
    const int64_t base = (l / a.inner) * a.n * a.inner + l % a.inner;
    SoftmaxGradRow<kLog>(ThreadRow{}, dy + base, y + base, dx + base, a.n, a.inner);
  }
}

template <bool kLog>
struct SoftmaxOf {
  template <typename T>
  class K : public OpKernel, protected softmax::SoftmaxNode {
   public:
    Status Init(const Node& node) { return SoftmaxNode::Init(node, /*grad=*/false); }
    Status Compute(KernelContext& ctx) override {
      ASSIGN_OR_RETURN(Resources * r, Res(ctx));
      if (a_.outer * a_.n * a_.inner == 0) return Status::OK();
      const T* x = ctx.input(0).data<T>();
      T* y = ctx.output(0).data<T>();
      if (a_.inner == 1)
        SoftmaxBlocks<kLog, T><<<RowGrid(*r, a_.outer), RowThreads(a_.n), 0, r->compute>>>(x, y, a_.outer, a_.n);
      else
        SoftmaxThreads<kLog, T><<<GridFor(*r, a_.outer * a_.inner), kThreads, 0, r->compute>>>(x, y, a_);
      DSC_CUDA_CHECK_LAUNCH();
      return Status::OK();
    }
  };
  // (dY, Y) -> dX
  template <typename T>
  class Grad : public OpKernel, protected softmax::SoftmaxNode {
   public:
    Status Init(const Node& node) { return SoftmaxNode::Init(node, /*grad=*/true); }
    Status Compute(KernelContext& ctx) override {
      ASSIGN_OR_RETURN(Resources * r, Res(ctx));
      if (a_.outer * a_.n * a_.inner == 0) return Status::OK();
      if (ctx.input(1).dtype != DTypeOf<T>())
        return Unimplemented("softmax gradient with dY and Y of different dtypes on CUDA");
      const T* dy = ctx.input(0).data<T>();
      const T* y = ctx.input(1).data<T>();
      T* dx = ctx.output(0).data<T>();
      if (a_.inner == 1)
        SoftmaxGradBlocks<kLog, T><<<RowGrid(*r, a_.outer), RowThreads(a_.n), 0, r->compute>>>(dy, y, dx, a_.outer,
                                                                                                a_.n);
      else
        SoftmaxGradThreads<kLog, T><<<GridFor(*r, a_.outer * a_.inner), kThreads, 0, r->compute>>>(dy, y, dx, a_);
      DSC_CUDA_CHECK_LAUNCH();
      return Status::OK();
    }
  };
};

template <typename T> using SoftmaxK = SoftmaxOf<false>::K<T>;
template <typename T> using LogSoftmaxK = SoftmaxOf<true>::K<T>;
template <typename T> using SoftmaxGradK = SoftmaxOf<false>::Grad<T>;
template <typename T> using LogSoftmaxGradK = SoftmaxOf<true>::Grad<T>;

DSC_REGISTER_CUDA_FLOATS("", "Softmax", SoftmaxK);
DSC_REGISTER_CUDA_FLOATS("", "LogSoftmax", LogSoftmaxK);
DSC_REGISTER_CUDA_FLOATS(kDscDomain, ops::kSoftmaxGrad, SoftmaxGradK);
DSC_REGISTER_CUDA_FLOATS(kDscDomain, ops::kLogSoftmaxGrad, LogSoftmaxGradK);

}  // namespace
}  // namespace dsc::cuda
