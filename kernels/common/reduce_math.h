// The steps of ReduceSum/Mean/Prod/Max/Min, shared by kernels/cpu/reduce.cc and kernels/cuda/reduce.cu:
// each reduction is an accumulator, its start value (also the identity of Combine), one step, the
// combination of two partial accumulators (CUDA's tree), and the final value from the count.
#pragma once

#include <cstdint>
#include <limits>
#include <type_traits>

#include "kernels/common/hd.h"

namespace dsc::reduce {

// Floating sums accumulate in double, integer sums in their own type.
template <typename T>
using SumAcc = std::conditional_t<std::is_floating_point_v<T>, double, T>;

template <typename T> DSC_HD bool IsNan(T v) {
  if constexpr (std::is_floating_point_v<T>) return v != v;
  else return false;
}

template <typename T>
struct SumReduce {
  using Acc = SumAcc<T>;
  static DSC_HD Acc Start() { return Acc(0); }
  static DSC_HD Acc Step(Acc a, T x) { return a + x; }
  static DSC_HD Acc Combine(Acc a, Acc b) { return a + b; }
  static DSC_HD T Finish(Acc a, int64_t) { return static_cast<T>(a); }
};
template <typename T>
struct MeanReduce : SumReduce<T> {
  // 0 / 0 is NaN for an empty reduction, as in numpy.mean.
  static DSC_HD T Finish(SumAcc<T> a, int64_t n) { return static_cast<T>(a / static_cast<SumAcc<T>>(n)); }
};
// Products accumulate as sums do (double for floats, as torch.prod's CPU accumulator).
template <typename T>
struct ProdReduce {
  using Acc = SumAcc<T>;
  static DSC_HD Acc Start() { return Acc(1); }
  static DSC_HD Acc Step(Acc a, T x) { return a * x; }
  static DSC_HD Acc Combine(Acc a, Acc b) { return a * b; }
  static DSC_HD T Finish(Acc a, int64_t) { return static_cast<T>(a); }
};
// Max and Min keep the first NaN they meet (a NaN accumulator never changes).
template <typename T>
struct MaxReduce {
  using Acc = T;
  static DSC_HD T Start() {
    if constexpr (std::is_floating_point_v<T>) return -std::numeric_limits<T>::infinity();
    else return std::numeric_limits<T>::lowest();
  }
  static DSC_HD T Step(T a, T x) { return (IsNan(a) || a >= x) ? a : x; }
  static DSC_HD T Combine(T a, T b) { return Step(a, b); }
  static DSC_HD T Finish(T a, int64_t) { return a; }
};
template <typename T>
struct MinReduce {
  using Acc = T;
  static DSC_HD T Start() {
    if constexpr (std::is_floating_point_v<T>) return std::numeric_limits<T>::infinity();
    else return std::numeric_limits<T>::max();
  }
  static DSC_HD T Step(T a, T x) { return (IsNan(a) || a <= x) ? a : x; }
  static DSC_HD T Combine(T a, T b) { return Step(a, b); }
  static DSC_HD T Finish(T a, int64_t) { return a; }
};

}  // namespace dsc::reduce
