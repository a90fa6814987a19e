// Classification losses (opset 13): SoftmaxCrossEntropyLoss, NegativeLogLikelihoodLoss, and their gradients.
//
// Shapes: scores/log-probs X:(N,C,d1..dk) viewed as (N,C,D); labels:(N,d1..dk) as (N,D); weights:(C).
// Per element l[n,d] = -w[t] * logp[n,t,d] with t = labels[n,d] (w = 1 without weights); an element
// whose label is ignore_index contributes 0 and has weight 0. reduction: none -> l:(N,d1..dk),
// sum -> sum(l), mean -> sum(l) / sum(w[t]) (ONNX's weighted mean; NaN when every label is ignored).
#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "ir/dsc_ops.h"
#include "kernels/common/loss_math.h"
#include "kernels/common/loss_node.h"
#include "kernels/common/softmax_math.h"
#include "kernels/cpu/nn_util.h"
#include "kernels/cpu/simd_math.h"
#include "kernels/kernel.h"

namespace dsc {
namespace {

using cpu::Isa;
using cpu::RunOnIsa;
using loss::Reduction;

// The shared shape (kernels/common/loss_node.h) and the node, for errors found at run time.
struct LossShape : loss::LossShape {
  std::string desc;
};

StatusOr<LossShape> ReadLoss(const Node& node, const Value* x, const Value* labels, const Value* weights,
                             const Value* loss) {
  ASSIGN_OR_RETURN(const loss::LossShape s, loss::ReadLoss(node, x, labels, weights, loss));
  return LossShape{s, node.Describe()};
}

// Reads the labels as int64, checks them, and gives each element its weight (0 when ignored).
Status LabelsAndWeights(const LossShape& s, const KernelContext& ctx, size_t labels_i, size_t weights_i,
                        std::vector<int64_t>* t, std::vector<double>* w, double* weight_sum) {
  const TensorView& lv = ctx.input(labels_i);
  const float* weights = ctx.has_input(weights_i) ? ctx.input(weights_i).data<float>() : nullptr;
  const int64_t m = s.n * s.d;
  t->resize(m);
  w->resize(m);
  *weight_sum = 0;
  for (int64_t i = 0; i < m; ++i) {
    const int64_t label = lv.dtype == DType::kInt64 ? lv.data<int64_t>()[i] : lv.data<int32_t>()[i];
    (*t)[i] = label;
    if (s.has_ignore && label == s.ignore_index) {
      (*w)[i] = 0;
      continue;
    }
    if (label < 0 || label >= s.c)
      return InvalidArgument(s.desc, ": label ", label, " at index ", i, " is outside [0, ", s.c, ")");
    (*w)[i] = weights ? weights[label] : 1.0;
    *weight_sum += (*w)[i];
  }
  return Status::OK();
}

// Writes log_softmax of x:(N,C,D) along C into logp. A strided row (D > 1) is gathered into a
// buffer first, so it is computed exactly as a contiguous one.
void LogSoftmaxAlongC(Isa isa, const float* x, const LossShape& s, float* logp) {
  const int64_t C = s.c, D = s.d;
#pragma omp parallel if (s.n * C * D > nn::kParallelThreshold)
  {
    // exp(x - max), and the gathered row and its result when strided
    std::vector<float> buf(static_cast<size_t>(D == 1 ? C : 3 * C));
    float* e = buf.data();
#pragma omp for collapse(2)
    for (int64_t n = 0; n < s.n; ++n)
      for (int64_t d = 0; d < D; ++d) {
        const float* xr = x + n * C * D + d;
        float* out = logp + n * C * D + d;
        if (D > 1) {
          float* xg = e + C;
          for (int64_t c = 0; c < C; ++c) xg[c] = xr[c * D];
          xr = xg;
          out = e + 2 * C;
        }
        float mx = 0;
        RunOnIsa(isa, [&] {
          mx = cpu::RowMaxOf(xr, C);
          for (int64_t c = 0; c < C; ++c) e[c] = xr[c] - mx;
        });
        cpu::VecExp(isa, e, e, C);
        RunOnIsa(isa, [&] {
          const double lse = softmax::LogSumExp(mx, cpu::SumToDouble(e, C));
          for (int64_t c = 0; c < C; ++c) out[c] = softmax::LogProb(xr[c], lse);
        });
        if (D > 1)
          for (int64_t c = 0; c < C; ++c) logp[n * C * D + c * D + d] = out[c];
      }
  }
}

// SoftmaxCrossEntropyLoss: (scores, labels[, weights]) -> loss[, log_prob]
// NegativeLogLikelihoodLoss: (input, target[, weight]) -> loss, with input already log-probabilities.
template <bool kSoftmax>
class LossKernel : public OpKernel {
 public:
  Status Init(const Node& node) {
    ASSIGN_OR_RETURN(s_, ReadLoss(node, node.input(0), node.input(1), node.input(2), node.output(0)));
    ASSIGN_OR_RETURN(isa_, cpu::SelectedIsa());
    return Status::OK();
  }
  Status Compute(KernelContext& ctx) override {
    std::vector<int64_t> t;
    std::vector<double> w;
    double weight_sum = 0;
    RETURN_IF_ERROR(LabelsAndWeights(s_, ctx, 1, 2, &t, &w, &weight_sum));
    const float* logp = ctx.input(0).data<float>();
    std::vector<float> scratch;
    if (kSoftmax) {
      float* out = ctx.has_output(1) ? ctx.output(1).data<float>() : nullptr;
      if (!out) {
        scratch.resize(static_cast<size_t>(s_.n * s_.c * s_.d));
        out = scratch.data();
      }
      LogSoftmaxAlongC(isa_, logp, s_, out);
      logp = out;
    }
    float* loss = ctx.output(0).data<float>();
    double total = 0;
    for (int64_t n = 0; n < s_.n; ++n)
      for (int64_t d = 0; d < s_.d; ++d) {
        const int64_t i = n * s_.d + d;
        const double l = w[i] == 0 ? 0.0 : loss::ElementLoss(w[i], logp[(n * s_.c + t[i]) * s_.d + d]);
        if (s_.reduction == Reduction::kNone) loss[i] = static_cast<float>(l);
        total += l;
      }
    if (s_.reduction != Reduction::kNone) loss[0] = loss::ReducedLoss(s_.reduction, total, weight_sum);
    return Status::OK();
  }

 private:
  LossShape s_;
  Isa isa_ = Isa::kBaseline;
};

// (dLoss, scores|input, labels[, weights]) -> dX. With coef[n,d] = w[t] * (dLoss[n,d] for none,
// dLoss for sum, dLoss / sum(w[t]) for mean):
//   SoftmaxCrossEntropyLossGrad:   dScores[n,c,d] = coef * (softmax(scores)[n,c,d] - (c == t))
//   NegativeLogLikelihoodLossGrad: dInput[n,c,d] = -coef * (c == t)
template <bool kSoftmax>
class LossGradKernel : public OpKernel {
 public:
  Status Init(const Node& node) {
    ASSIGN_OR_RETURN(s_, ReadLoss(node, node.input(1), node.input(2), node.input(3), node.input(0)));
    ASSIGN_OR_RETURN(isa_, cpu::SelectedIsa());
    return Status::OK();
  }
  Status Compute(KernelContext& ctx) override {
    std::vector<int64_t> t;
    std::vector<double> w;
    double weight_sum = 0;
    RETURN_IF_ERROR(LabelsAndWeights(s_, ctx, 2, 3, &t, &w, &weight_sum));
    const float* dloss = ctx.input(0).data<float>();
    const float* x = ctx.input(1).data<float>();
    float* dx = ctx.output(0).data<float>();
    const int64_t C = s_.c, D = s_.d;
    const Isa isa = isa_;
    if (kSoftmax) {
      // dx = softmax(scores) = exp(log_softmax(scores)), elementwise in place
      LogSoftmaxAlongC(isa, x, s_, dx);
      const int64_t m = s_.n * C * D;
#pragma omp parallel for if (m > nn::kParallelThreshold)
      for (int64_t b = 0; b < m; b += cpu::kSimdChunk) cpu::VecExp(isa, dx + b, dx + b, std::min(cpu::kSimdChunk, m - b));
    }
#pragma omp parallel for collapse(2) if (s_.n * C * D > nn::kParallelThreshold)
    for (int64_t n = 0; n < s_.n; ++n)
      for (int64_t d = 0; d < D; ++d) {
        const int64_t i = n * D + d;
        const double coef =
            loss::GradCoef(s_.reduction, w[i], s_.reduction == Reduction::kNone ? dloss[i] : dloss[0], weight_sum);
        const int64_t t_i = t[i];
        const double w_i = w[i];
        float* g = dx + n * C * D + d;
        RunOnIsa(isa, [&] {
          for (int64_t c = 0; c < C; ++c) {
            const double onehot = loss::OneHot(c, t_i, w_i);
            g[c * D] = kSoftmax ? static_cast<float>(coef * (static_cast<double>(g[c * D]) - onehot))
                                : loss::NllLossGrad(coef, onehot);
          }
        });
      }
    return Status::OK();
  }

 private:
  LossShape s_;
  Isa isa_ = Isa::kBaseline;
};

DSC_REGISTER_KERNEL("", "SoftmaxCrossEntropyLoss", kCpu, kFloat32, MakeFactory<LossKernel<true>>());
DSC_REGISTER_KERNEL("", "NegativeLogLikelihoodLoss", kCpu, kFloat32, MakeFactory<LossKernel<false>>());
DSC_REGISTER_KERNEL(kDscDomain, ops::kSoftmaxCrossEntropyLossGrad, kCpu, kFloat32, MakeFactory<LossGradKernel<true>>());
DSC_REGISTER_KERNEL(kDscDomain, ops::kNegativeLogLikelihoodLossGrad, kCpu, kFloat32,
                    MakeFactory<LossGradKernel<false>>());

}  // namespace
}  // namespace dsc
