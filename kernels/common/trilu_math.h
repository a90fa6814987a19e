// Trilu's keep rule, shared by the CPU kernel and its CUDA twin: row i of a (rows, cols) matrix
// keeps the columns j in [lo, hi), those with j - i >= k (upper) or j - i <= k (lower).
//
//   int64_t lo, hi;  TriluRowRange(upper, k, i, cols, &lo, &hi);
#pragma once

#include <cstdint>

#include "kernels/common/hd.h"

namespace dsc {

// Computed by comparisons so that a huge |k| cannot overflow.
DSC_HD void TriluRowRange(bool upper, int64_t k, int64_t i, int64_t cols, int64_t* lo, int64_t* hi) {
  if (upper) {
    *lo = k <= -i ? 0 : k >= cols - i ? cols : i + k;
    *hi = cols;
  } else {
    *lo = 0;
    *hi = k >= cols - 1 - i ? cols : k < -i ? 0 : i + k + 1;
  }
}

}  // namespace dsc
