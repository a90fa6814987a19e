// Per-element math of Softmax/LogSoftmax, their gradients and the log-softmax inside
// SoftmaxCrossEntropyLoss, shared by the CPU kernels (softmax.cc, loss.cc) and their CUDA twins.
// A row's max is taken in float, its sum of exp(x - max) in double.
#pragma once

#include <cmath>

#include "kernels/common/hd.h"

namespace dsc::softmax {

// The running max of a row, as std::max(a, x): a NaN x never replaces it (exp then spreads it).
DSC_HD float RowMax(float a, float x) { return a < x ? x : a; }
// The term a row sums: exp(x - max), in double.
DSC_HD double ExpShifted(float x, float mx) { return ::exp(static_cast<double>(x - mx)); }
DSC_HD float SoftmaxOut(double e, double sum) { return static_cast<float>(e / sum); }
DSC_HD float LogSoftmaxOut(float x, float mx, double log_sum) { return static_cast<float>(x - mx - log_sum); }

// Gradients, rows along the axis:  softmax: dX = Y * (dY - s), s = sum(dY * Y);
//                                  log-softmax: dX = dY - exp(Y) * s, s = sum(dY).
template <bool kLog> DSC_HD double GradTerm(float dy, float y) {
  if constexpr (kLog) return dy;
  else return static_cast<double>(dy) * y;
}
template <bool kLog> DSC_HD float GradOut(float dy, float y, double s) {
  if constexpr (kLog) return static_cast<float>(dy - ::exp(static_cast<double>(y)) * s);
  else return static_cast<float>(y * (dy - s));
}

// The log-softmax of a loss's scores: lse = max + log(sum), log p = x - lse.
DSC_HD double LogSumExp(float mx, double sum) { return mx + ::log(sum); }
DSC_HD float LogProb(float x, double lse) { return static_cast<float>(x - lse); }

}  // namespace dsc::softmax
