// How a reduction walks X, from its dims and reduced axes (host code, shared by kernels/cpu/reduce.cc
// and kernels/cuda/reduce.cu). Neighbouring dims of one kind (kept or reduced) are grouped: with one
// reduced group X is (outer, R, inner); any other pattern takes a generic path over the dims.
#pragma once

#include <algorithm>
#include <cstdint>
#include <vector>

#include "kernels/cpu/core_util.h"

namespace dsc::reduce {

// How X is walked, derived from its dims and the reduced axes.
struct ReducePlan {
  bool copy = false;  // noop_with_empty_axes and no axes: Y = X
  int64_t count = 1;  // elements reduced into each output
  // Fast path, X:(outer, R, inner) with R = count.
  bool simple = false;
  int64_t outer = 1, inner = 1;
  // Generic path: kept dims/strides (output order) and reduced dims/strides, in X's elements.
  std::vector<int64_t> kept_dims, kept_strides, red_dims, red_strides;
};

inline StatusOr<ReducePlan> MakeReducePlan(const std::vector<int64_t>& x, std::vector<int64_t> axes, bool noop_empty) {
  ReducePlan p;
  const int64_t rank = static_cast<int64_t>(x.size());
  if (axes.empty() && noop_empty) {
    p.copy = true;
    return p;
  }
  std::vector<bool> reduced(x.size(), axes.empty());
  for (int64_t a : axes) {
    ASSIGN_OR_RETURN(int64_t axis, cpu::NormalizeAxis(a, rank));
    reduced[static_cast<size_t>(axis)] = true;
  }
  // Groups of neighbouring dims of one kind; size-1 dims fold into any group.
  std::vector<int64_t> sizes;
  std::vector<bool> kinds;
  for (size_t d = 0; d < x.size(); ++d) {
    if (reduced[d]) p.count *= x[d];
    if (x[d] == 1) continue;
    if (!kinds.empty() && kinds.back() == reduced[d]) sizes.back() *= x[d];
    else sizes.push_back(x[d]), kinds.push_back(reduced[d]);
  }
  int n_reduced = static_cast<int>(std::count(kinds.begin(), kinds.end(), true));
  if (n_reduced <= 1) {
    p.simple = true;
    bool seen = false;
    for (size_t g = 0; g < sizes.size(); ++g) {
      if (kinds[g]) seen = true;
      else (seen ? p.inner : p.outer) *= sizes[g];
    }
    return p;
  }
  std::vector<int64_t> strides = cpu::ContiguousStrides(x);
  for (size_t d = 0; d < x.size(); ++d) {
    (reduced[d] ? p.red_dims : p.kept_dims).push_back(x[d]);
    (reduced[d] ? p.red_strides : p.kept_strides).push_back(strides[d]);
  }
  return p;
}

}  // namespace dsc::reduce
