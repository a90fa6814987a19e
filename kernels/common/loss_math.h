// Per-element math of SoftmaxCrossEntropyLoss / NegativeLogLikelihoodLoss and their gradients,
// shared by kernels/cpu/loss.cc and kernels/cuda/loss.cu (see loss.cc for the shapes).
#pragma once

#include <cmath>
#include <cstdint>

#include "kernels/common/hd.h"

namespace dsc::loss {

enum class Reduction { kNone, kSum, kMean };

// An element's loss: -w[t] * logp[t], 0 for an ignored element (w = 0).
DSC_HD double ElementLoss(double w, float logp) { return w == 0 ? 0.0 : -w * logp; }
// The reduced loss from the sum of element losses and of their weights (mean: NaN when all are ignored).
DSC_HD float ReducedLoss(Reduction r, double total, double weight_sum) {
  return static_cast<float>(r == Reduction::kMean ? total / weight_sum : total);
}
// The gradient's per-element coefficient: w * dLoss (dLoss[i] for none, dLoss[0] otherwise), / sum(w) for mean.
DSC_HD double GradCoef(Reduction r, double w, float dloss, double weight_sum) {
  double coef = w * dloss;
  if (r == Reduction::kMean) coef /= weight_sum;
  return coef;
}
// 1 at the label of a counted element, else 0.
DSC_HD double OneHot(int64_t c, int64_t label, double w) { return c == label && w != 0 ? 1.0 : 0.0; }
// dScores = coef * (softmax - onehot) from log p;  dInput (NLL) = -coef * onehot.
DSC_HD float SoftmaxLossGrad(double coef, float logp, double onehot) {
  return static_cast<float>(coef * (::exp(static_cast<double>(logp)) - onehot));
}
DSC_HD float NllLossGrad(double coef, double onehot) { return static_cast<float>(-coef * onehot); }

}  // namespace dsc::loss
