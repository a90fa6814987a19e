// Transpose's shape reduction, shared by the CPU kernel and its CUDA twin (host code, run at
// Init): size-1 dims are dropped and input dims that stay neighbours under the permutation are
// merged, so the attention perms reduce to small cases: [0,2,1,3] keeps a contiguous last dim and
// [0,2,3,1] becomes a batched 2-D transpose (B, R, C) -> (B, C, R).
//
//   ASSIGN_OR_RETURN(MergedTranspose t, MergeTranspose(x_dims, node.GetInts("perm")));
#pragma once

#include <cstdint>
#include <numeric>
#include <vector>

#include "ir/status.h"

namespace dsc {

struct MergedTranspose {
  std::vector<int64_t> dims;  // the merged input dims (size > 1)
  std::vector<int64_t> perm;  // output dim i is merged input dim perm[i]
  // With 2-D, (B, R, C) -> (B, C, R): batch (1 when the perm is [1, 0]), rows and cols.
  bool batched_2d = false;
  int64_t batch = 1, rows = 1, cols = 1;
};

// perm empty: reverse the dims (ONNX's default). Checks that perm is a permutation of the rank.
inline StatusOr<MergedTranspose> MergeTranspose(const std::vector<int64_t>& x, std::vector<int64_t> perm) {
  const int64_t rank = static_cast<int64_t>(x.size());
  if (perm.empty()) {
    perm.resize(x.size());
    std::iota(perm.rbegin(), perm.rend(), 0);
  }
  if (static_cast<int64_t>(perm.size()) != rank) return InvalidArgument("perm has ", perm.size(), " entries for rank ", rank);
  std::vector<bool> seen(x.size(), false);
  for (int64_t& p : perm) {
    if (p < -rank || p >= rank) return InvalidArgument("axis ", p, " out of range for rank ", rank);
    if (p < 0) p += rank;
    if (seen[static_cast<size_t>(p)]) return InvalidArgument("perm repeats axis ", p);
    seen[static_cast<size_t>(p)] = true;
  }
  MergedTranspose t;
  // Input dims kept (size > 1), as groups of input dims that move together.
  std::vector<int64_t> group_of(x.size(), -1);
  for (size_t d = 0; d < x.size(); ++d) {
    if (x[d] == 1) continue;
    group_of[d] = static_cast<int64_t>(t.dims.size());
    t.dims.push_back(x[d]);
  }
  for (int64_t p : perm)
    if (group_of[static_cast<size_t>(p)] >= 0) t.perm.push_back(group_of[static_cast<size_t>(p)]);
  // Merge input dims g, g+1 that also appear as neighbours in the output.
  for (size_t j = 0; j + 1 < t.perm.size();) {
    if (t.perm[j + 1] == t.perm[j] + 1) {
      const int64_t g = t.perm[j];
      t.dims[static_cast<size_t>(g)] *= t.dims[static_cast<size_t>(g + 1)];
      t.dims.erase(t.dims.begin() + g + 1);
      t.perm.erase(t.perm.begin() + static_cast<int64_t>(j) + 1);
      for (int64_t& c : t.perm)
        if (c > g) --c;
    } else {
      ++j;
    }
  }
  const size_t k = t.perm.size();
  if ((k == 2 && t.perm == std::vector<int64_t>{1, 0}) || (k == 3 && t.perm == std::vector<int64_t>{0, 2, 1})) {
    t.batched_2d = true;
    t.batch = k == 3 ? t.dims[0] : 1;
    t.rows = t.dims[k - 2];
    t.cols = t.dims[k - 1];
  }
  return t;
}

}  // namespace dsc
