// CUDA SoftmaxCrossEntropyLoss / NegativeLogLikelihoodLoss and their gradients, the twins of
// kernels/cpu/loss.cc (per-element math in kernels/common/{loss,softmax}_math.h).
//
// Rows are the (n, d) positions, each over C classes at stride D: a block per row when D == 1,
// else a thread per row. Labels are checked on the device: a label outside [0, C) that is not
// ignore_index cannot fail the node there, so it gets weight NaN and makes the loss (and its
// gradient) NaN instead of the CPU's InvalidArgument. Reduced sums run on one block in a fixed
// order (deterministic). Log-probabilities are float, the loss is written in its output's dtype.
#include <string>

#include "ir/dsc_ops.h"
#include "kernels/common/loss_math.h"
#include "kernels/common/loss_node.h"
#include "kernels/common/softmax_math.h"
#include "kernels/cpu/nn_util.h"
#include "kernels/cuda/row_util.cuh"

namespace dsc::cuda {
namespace {

using loss::Reduction;

using loss::LossShape;
using loss::ReadLoss;

struct Labels {
  const void* p = nullptr;
  bool is64 = true;
  __device__ __forceinline__ int64_t operator[](int64_t i) const {
    return is64 ? static_cast<const int64_t*>(p)[i] : static_cast<const int32_t*>(p)[i];
  }
};

// Each element's weight: 0 when ignored, NaN for a label outside [0, C), else weights[label] or 1.
__global__ void LabelWeights(Labels t, AnyIn weights, double* w, LossShape s) {
  const int64_t m = s.n * s.d;
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < m;
       i += static_cast<int64_t>(blockDim.x) * gridDim.x) {
    const int64_t label = t[i];
    if (s.has_ignore && label == s.ignore_index) w[i] = 0;
    else if (label < 0 || label >= s.c) w[i] = NAN;
    else w[i] = weights.p ? weights[label] : 1.0;
  }
}

// Max and sum of exp over one row's classes, then lse.
template <typename T, typename G>
__device__ __forceinline__ double RowLse(G g, const T* xr, int64_t C, int64_t D) {
  float mx = -INFINITY;
  for (int64_t c = g.lane(); c < C; c += g.size()) mx = softmax::RowMax(mx, ToFloat(xr[c * D]));
  mx = g.Max(mx);
  double sum = 0;
  for (int64_t c = g.lane(); c < C; c += g.size()) sum += softmax::ExpShifted(ToFloat(xr[c * D]), mx);
  return softmax::LogSumExp(mx, g.Sum(sum));
}

template <typename T, typename G>
__device__ __forceinline__ void LogSoftmaxRow(G g, const T* x, float* logp, AnyOut log_prob, LossShape s, int64_t row) {
  const int64_t n = row / s.d, d = row % s.d, base = n * s.c * s.d + d;
  const double lse = RowLse(g, x + base, s.c, s.d);
  for (int64_t c = g.lane(); c < s.c; c += g.size()) {
    const float lp = softmax::LogProb(ToFloat(x[base + c * s.d]), lse);
    logp[base + c * s.d] = lp;
    if (log_prob.p) log_prob.Set(base + c * s.d, lp);
  }
}
template <typename T>
__global__ void LogSoftmaxBlocks(const T* x, float* logp, AnyOut log_prob, LossShape s) {
  __shared__ double shd[32];
  __shared__ float shf[32];
  for (int64_t row = blockIdx.x; row < s.n * s.d; row += gridDim.x) LogSoftmaxRow(BlockRow{shd, shf}, x, logp, log_prob, s, row);
}
template <typename T>
__global__ void LogSoftmaxThreads(const T* x, float* logp, AnyOut log_prob, LossShape s) {
  for (int64_t row = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; row < s.n * s.d;
       row += static_cast<int64_t>(blockDim.x) * gridDim.x)
    LogSoftmaxRow(ThreadRow{}, x, logp, log_prob, s, row);
}

// Element losses into l (and the output for reduction none).
__global__ void ElementLosses(AnyIn logp, Labels t, const double* w, double* l, AnyOut loss_out, LossShape s) {
  const int64_t m = s.n * s.d;
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < m;
       i += static_cast<int64_t>(blockDim.x) * gridDim.x) {
    const int64_t n = i / s.d, d = i % s.d, label = t[i];
    double li = 0.0;
    if (w[i] != 0) li = w[i] != w[i] ? w[i] : loss::ElementLoss(w[i], logp[(n * s.c + label) * s.d + d]);
    l[i] = li;
    if (s.reduction == Reduction::kNone) loss_out.Set(i, static_cast<float>(li));
  }
}

// One block: the sums of l (optional) and w; writes the reduced loss, or the weight sum to *wsum.
__global__ void SumLosses(const double* l, const double* w, int64_t m, AnyOut loss_out, Reduction red, double* wsum) {
  __shared__ double shd[32];
  __shared__ float shf[32];
  const BlockRow g{shd, shf};
  double tl = 0, tw = 0;
  for (int64_t i = threadIdx.x; i < m; i += blockDim.x) {
    if (l) tl += l[i];
    tw += w[i];
  }
  tl = g.Sum(tl);
  tw = g.Sum(tw);
  if (threadIdx.x == 0) {
    if (wsum) *wsum = tw;
    if (l) loss_out.Set(0, loss::ReducedLoss(red, tl, tw));
  }
}

template <bool kSoftmax, typename T, typename G>
__device__ __forceinline__ void GradRow(G g, AnyIn dloss, const T* x, Labels t, const double* w, const double* wsum,
                                        T* dx, LossShape s, int64_t row) {
  const int64_t n = row / s.d, d = row % s.d, base = n * s.c * s.d + d;
  const double coef = loss::GradCoef(s.reduction, w[row], s.reduction == Reduction::kNone ? dloss[row] : dloss[0],
                                     s.reduction == Reduction::kMean ? *wsum : 1.0);
  const int64_t label = t[row];
  if (kSoftmax) {
    const double lse = RowLse(g, x + base, s.c, s.d);
    for (int64_t c = g.lane(); c < s.c; c += g.size()) {
      const float lp = softmax::LogProb(ToFloat(x[base + c * s.d]), lse);
      dx[base + c * s.d] = FromFloat<T>(loss::SoftmaxLossGrad(coef, lp, loss::OneHot(c, label, w[row])));
    }
  } else {
    for (int64_t c = g.lane(); c < s.c; c += g.size())
      dx[base + c * s.d] = FromFloat<T>(loss::NllLossGrad(coef, loss::OneHot(c, label, w[row])));
  }
}
template <bool kSoftmax, typename T>
__global__ void GradBlocks(AnyIn dloss, const T* x, Labels t, const double* w, const double* wsum, T* dx, LossShape s) {
  __shared__ double shd[32];
  __shared__ float shf[32];
  for (int64_t row = blockIdx.x; row < s.n * s.d; row += gridDim.x)
    GradRow<kSoftmax>(BlockRow{shd, shf}, dloss, x, t, w, wsum, dx, s, row);
}
template <bool kSoftmax, typename T>
__global__ void GradThreads(AnyIn dloss, const T* x, Labels t, const double* w, const double* wsum, T* dx, LossShape s) {
  for (int64_t row = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; row < s.n * s.d;
       row += static_cast<int64_t>(blockDim.x) * gridDim.x)
    GradRow<kSoftmax>(ThreadRow{}, dloss, x, t, w, wsum, dx, s, row);
}

StatusOr<Labels> LabelsAt(const KernelContext& ctx, size_t i) {
  const TensorView& v = ctx.input(i);
  if (v.dtype != DType::kInt64 && v.dtype != DType::kInt32) return InvalidArgument("labels must be int64 or int32");
  return Labels{v.ptr, v.dtype == DType::kInt64};
}

template <bool kSoftmax>
struct LossOf {
  // (scores|input, labels[, weights]) -> loss[, log_prob]
  template <typename T>
  class K : public OpKernel {
   public:
    Status Init(const Node& node) {
      ASSIGN_OR_RETURN(s_, ReadLoss(node, node.input(0), node.input(1), node.input(2), node.output(0)));
      return Status::OK();
    }
    Status Compute(KernelContext& ctx) override {
      ASSIGN_OR_RETURN(Resources * r, Res(ctx));
      const int64_t m = s_.n * s_.d, numel = m * s_.c;
      ASSIGN_OR_RETURN(Labels t, LabelsAt(ctx, 1));
      ASSIGN_OR_RETURN(AnyIn weights, InAt(ctx, 2));
      ASSIGN_OR_RETURN(AnyOut loss_out, OutAt(ctx, 0));
      ScratchCarver sc;
      const size_t w_at = sc.Add(m * sizeof(double)), l_at = sc.Add(m * sizeof(double));
      const size_t lp_at = sc.Add(kSoftmax ? numel * sizeof(float) : 0);
      ASSIGN_OR_RETURN(void* scratch, r->Scratch(sc.total()));
      char* base = static_cast<char*>(scratch);
      double* w = reinterpret_cast<double*>(base + w_at);
      double* l = reinterpret_cast<double*>(base + l_at);
      if (m > 0) {
        LabelWeights<<<GridFor(*r, m), kThreads, 0, r->compute>>>(t, weights, w, s_);
        DSC_CUDA_CHECK_LAUNCH();
      }
      AnyIn logp{ctx.input(0).ptr, ctx.input(0).dtype};
      if (kSoftmax && m > 0 && s_.c > 0) {
        float* lp = reinterpret_cast<float*>(base + lp_at);
        ASSIGN_OR_RETURN(AnyOut log_prob, OutAt(ctx, 1));
        const T* x = ctx.input(0).data<T>();
        if (s_.d == 1)
          LogSoftmaxBlocks<T><<<RowGrid(*r, m), RowThreads(s_.c), 0, r->compute>>>(x, lp, log_prob, s_);
        else
          LogSoftmaxThreads<T><<<GridFor(*r, m), kThreads, 0, r->compute>>>(x, lp, log_prob, s_);
        DSC_CUDA_CHECK_LAUNCH();
        logp = AnyIn{lp, DType::kFloat32};
      }
      if (m > 0) {
        ElementLosses<<<GridFor(*r, m), kThreads, 0, r->compute>>>(logp, t, w, l, loss_out, s_);
        DSC_CUDA_CHECK_LAUNCH();
      }
      if (s_.reduction != Reduction::kNone) {
        SumLosses<<<1, 1024, 0, r->compute>>>(l, w, m, loss_out, s_.reduction, nullptr);
        DSC_CUDA_CHECK_LAUNCH();
      }
      return Status::OK();
    }

   private:
    LossShape s_;
  };

  // (dLoss, scores|input, labels[, weights]) -> dX
  template <typename T>
  class Grad : public OpKernel {
   public:
    Status Init(const Node& node) {
      ASSIGN_OR_RETURN(s_, ReadLoss(node, node.input(1), node.input(2), node.input(3), node.input(0)));
      return Status::OK();
    }
    Status Compute(KernelContext& ctx) override {
      ASSIGN_OR_RETURN(Resources * r, Res(ctx));
      const int64_t m = s_.n * s_.d;
      if (m == 0 || s_.c == 0) return Status::OK();
      ASSIGN_OR_RETURN(AnyIn dloss, InAt(ctx, 0));
      ASSIGN_OR_RETURN(Labels t, LabelsAt(ctx, 2));
      ASSIGN_OR_RETURN(AnyIn weights, InAt(ctx, 3));
      ScratchCarver sc;
      const size_t w_at = sc.Add(m * sizeof(double)), s_at = sc.Add(sizeof(double));
      ASSIGN_OR_RETURN(void* scratch, r->Scratch(sc.total()));
      char* base = static_cast<char*>(scratch);
      double* w = reinterpret_cast<double*>(base + w_at);
      double* wsum = reinterpret_cast<double*>(base + s_at);
      LabelWeights<<<GridFor(*r, m), kThreads, 0, r->compute>>>(t, weights, w, s_);
      DSC_CUDA_CHECK_LAUNCH();
      if (s_.reduction == Reduction::kMean) {
        SumLosses<<<1, 1024, 0, r->compute>>>(nullptr, w, m, AnyOut{}, s_.reduction, wsum);
        DSC_CUDA_CHECK_LAUNCH();
      }
      // The kernel is chosen by dLoss (float32 once the loss is widened); the scores keep theirs.
      const DType xt = ctx.input(1).dtype;
      if (ctx.output(0).dtype != xt) return Unimplemented("loss gradient with dX of another dtype than the scores on CUDA");
      if (xt == DType::kFloat32) return Launch<float>(*r, ctx, dloss, t, w, wsum);
      if (xt == DType::kFloat16) return Launch<half>(*r, ctx, dloss, t, w, wsum);
      if (xt == DType::kBFloat16) return Launch<bf16>(*r, ctx, dloss, t, w, wsum);
      return InvalidArgument("scores of dtype ", DTypeName(xt), " are not a float type");
    }

   private:
    template <typename X>
    Status Launch(const Resources& r, const KernelContext& ctx, AnyIn dloss, Labels t, const double* w,
                  const double* wsum) {
      const int64_t m = s_.n * s_.d;
      const X* x = ctx.input(1).data<X>();
      X* dx = ctx.output(0).data<X>();
      if (s_.d == 1)
        GradBlocks<kSoftmax, X><<<RowGrid(r, m), RowThreads(s_.c), 0, r.compute>>>(dloss, x, t, w, wsum, dx, s_);
      else
        GradThreads<kSoftmax, X><<<GridFor(r, m), kThreads, 0, r.compute>>>(dloss, x, t, w, wsum, dx, s_);
      DSC_CUDA_CHECK_LAUNCH();
      return Status::OK();
    }

    LossShape s_;
  };
};

template <typename T> using SceK = LossOf<true>::K<T>;
template <typename T> using NllK = LossOf<false>::K<T>;
template <typename T> using SceGradK = LossOf<true>::Grad<T>;
template <typename T> using NllGradK = LossOf<false>::Grad<T>;

DSC_REGISTER_CUDA_FLOATS("", "SoftmaxCrossEntropyLoss", SceK);
DSC_REGISTER_CUDA_FLOATS("", "NegativeLogLikelihoodLoss", NllK);
DSC_REGISTER_CUDA_FLOATS(kDscDomain, ops::kSoftmaxCrossEntropyLossGrad, SceGradK);
DSC_REGISTER_CUDA_FLOATS(kDscDomain, ops::kNegativeLogLikelihoodLossGrad, NllGradK);

}  // namespace
}  // namespace dsc::cuda
