// The running sum of one CumSum line, shared by kernels/cpu/cumsum.cc and kernels/cuda/cumsum.cu.
#pragma once

#include <cstdint>

#include "kernels/common/hd.h"

namespace dsc::cumsum {

// Walks positions 0..len-1 (reversed with `reverse`): load(i) gives x[i] as Acc, store(i, acc)
// writes y[i]; exclusive sums stop before the element.
template <typename Acc, typename Load, typename Store>
DSC_HD void Line(int64_t len, bool exclusive, bool reverse, Load&& load, Store&& store) {
  Acc acc = Acc(0);
  for (int64_t s = 0; s < len; ++s) {
    const int64_t i = reverse ? len - 1 - s : s;
    if (exclusive) {
      store(i, acc);
      acc += load(i);
    } else {
      acc += load(i);
      store(i, acc);
    }
  }
}

}  // namespace dsc::cumsum
