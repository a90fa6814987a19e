// Selection along one axis (TopK, ArgMax, ArgMin), shared by kernels/cpu/select.cc and its CUDA
// twin kernels/cuda/select.cu: the order of two elements and the walk over one line.
//
// Order: ONNX's (and onnx.reference's, and torch.sort(stable=True)'s): of two equal values the one
// at the lower index comes first, for largest and smallest alike. torch.topk on the CPU picks among
// ties in an order of its selection algorithm (not stable past a few elements), so when values tie
// the indices, and with them which element a gradient reaches, may differ from it; the values do
// not. NaN orders as torch does: above every number (first for largest, last for smallest).
// ArgMax and ArgMin take NaN as torch.argmax/argmin do: the first NaN wins either way.
#pragma once

#include <cstdint>

#include "kernels/common/hd.h"

namespace dsc::select {

template <typename V>
DSC_HD bool IsNan(V v) {
  return v != v;
}

// Whether value a (at a higher index than b) goes before b: strictly greater (largest) or strictly
// smaller (smallest), NaN counting as the greatest value.
template <typename V>
DSC_HD bool Before(V a, V b, bool largest) {
  const bool na = IsNan(a), nb = IsNan(b);
  if (na || nb) return largest ? na && !nb : !na && nb;
  return largest ? a > b : a < b;
}

// TopK of one line of `len` values: the positions of the k first values in the order above,
// kept sorted by insertion (k * len compares at worst; lines are short in the models that use
// TopK: experts of a router, a sequence for torch.sort). load(i) -> value at position i;
// get(j) / set(j, i) read and write slot j of the output indices, which serve as the work list.
template <typename Load, typename Get, typename Set>
DSC_HD void TopKLine(int64_t len, int64_t k, bool largest, Load&& load, Get&& get, Set&& set) {
  int64_t n = 0;  // slots filled
  for (int64_t i = 0; i < len; ++i) {
    const auto v = load(i);
    if (n == k && (k == 0 || !Before(v, load(get(k - 1)), largest))) continue;
    int64_t j = n < k ? n++ : k - 1;  // a full list drops its last element
    while (j > 0 && Before(v, load(get(j - 1)), largest)) {
      set(j, get(j - 1));
      --j;
    }
    set(j, i);
  }
}

// ArgMax (largest) or ArgMin of one line: the first extreme position, or the last with
// `select_last`. A NaN is the extreme for both (torch.argmax/argmin), the first NaN with or
// without `select_last`.
template <typename Load>
DSC_HD int64_t ArgLine(int64_t len, bool largest, bool select_last, Load&& load) {
  if (len <= 0) return 0;
  int64_t best = 0;
  auto bv = load(0);
  for (int64_t i = 1; i < len && !IsNan(bv); ++i) {
    const auto v = load(i);
    if (IsNan(v) || (largest ? v > bv : v < bv) || (select_last && v == bv)) {
      best = i;
      bv = v;
    }
  }
  return best;
}

}  // namespace dsc::select
