// Numpy multidirectional broadcasting: output dims, and iteration plans precomputed in Init.
//
// A plan collapses the output into as few dims as possible (size-1 dims dropped, neighbours that
// every input walks contiguously merged), so [B,T,C] + [C] becomes rows of C and Compute only
// unravels one row index per row:
//   ASSIGN_OR_RETURN(plan_, MakeBroadcastPlan(out_dims, {a_dims, b_dims}));
//   ForEachRow(plan_, [&](int64_t out_offset, const int64_t* in_offsets) { ... plan_.inner() ... });
#pragma once

#include <algorithm>
#include <cstdint>
#include <vector>

#include "kernels/cpu/core_util.h"

namespace dsc::cpu {

inline constexpr size_t kMaxBroadcastInputs = 4;

// The broadcast of several shapes (right-aligned; each dim equal or 1).
inline StatusOr<std::vector<int64_t>> BroadcastDims(const std::vector<std::vector<int64_t>>& shapes) {
  size_t rank = 0;
  for (const auto& s : shapes) rank = std::max(rank, s.size());
  std::vector<int64_t> out(rank, 1);
  for (const auto& s : shapes) {
    for (size_t i = 0; i < s.size(); ++i) {
      int64_t& o = out[rank - s.size() + i];
      if (s[i] == o || s[i] == 1) continue;
      if (o != 1) return InvalidArgument("cannot broadcast dim ", s[i], " against ", o);
      o = s[i];
    }
  }
  return out;
}

struct BroadcastPlan {
  std::vector<int64_t> dims;                  // collapsed output dims, rank >= 1
  std::vector<std::vector<int64_t>> strides;  // per input, per collapsed dim; 0 where broadcast
  int64_t numel = 0;
  bool same_shape = false;  // every input has the output's elements in order: one flat index

  int64_t inner() const { return dims.back(); }
  // Stride of input k along the innermost dim: 1 (walks) or 0 (repeats one element).
  int64_t inner_stride(size_t k) const { return strides[k].back(); }
};

// Plan for reading inputs `ins` broadcast to `out` (each input must broadcast to exactly `out`).
inline StatusOr<BroadcastPlan> MakeBroadcastPlan(const std::vector<int64_t>& out,
                                                 const std::vector<std::vector<int64_t>>& ins) {
  if (ins.size() > kMaxBroadcastInputs) return Internal("too many broadcast inputs");
  BroadcastPlan p;
  p.numel = Product(out);
  p.same_shape = true;
  const size_t rank = out.size();
  // Full-rank strides per input; 0 on broadcast dims.
  std::vector<std::vector<int64_t>> full(ins.size(), std::vector<int64_t>(rank, 0));
  for (size_t k = 0; k < ins.size(); ++k) {
    const auto& in = ins[k];
    if (in.size() > rank) return InvalidArgument("input of rank ", in.size(), " cannot broadcast to rank ", rank);
    std::vector<int64_t> s = ContiguousStrides(in);
    for (size_t i = 0; i < in.size(); ++i) {
      size_t o = rank - in.size() + i;
      if (in[i] == out[o]) full[k][o] = out[o] == 1 ? 0 : s[i];
      else if (in[i] != 1)
        return InvalidArgument("dim ", in[i], " cannot broadcast to ", out[o]);
    }
    if (Product(in) != p.numel) p.same_shape = false;
  }
  p.strides.assign(ins.size(), {});
  for (size_t d = 0; d < rank; ++d) {
    if (out[d] == 1) continue;
    bool merge = !p.dims.empty();
    for (size_t k = 0; k < ins.size() && merge; ++k) merge = p.strides[k].back() == full[k][d] * out[d];
    if (merge) {
      p.dims.back() *= out[d];
      for (size_t k = 0; k < ins.size(); ++k) p.strides[k].back() = full[k][d];
    } else {
      p.dims.push_back(out[d]);
      for (size_t k = 0; k < ins.size(); ++k) p.strides[k].push_back(full[k][d]);
    }
  }
  if (p.dims.empty()) {  // a scalar (or all-ones) output
    p.dims.push_back(1);
    for (auto& s : p.strides) s.push_back(0);
  }
  return p;
}

// A plan over explicit dims and per-tensor strides (no broadcasting rules, no collapsing): for
// walking a sub-box or a permutation with ForEachRow.
inline BroadcastPlan StridedPlan(std::vector<int64_t> dims, std::vector<std::vector<int64_t>> strides) {
  BroadcastPlan p;
  p.numel = Product(dims);
  if (dims.empty()) {
    dims.push_back(1);
    for (auto& s : strides) s.push_back(0);
  }
  p.dims = std::move(dims);
  p.strides = std::move(strides);
  return p;
}

// Calls fn(out_offset, in_offsets) once per innermost row of the plan, rows spread over threads.
template <typename Fn>
void ForEachRow(const BroadcastPlan& p, Fn&& fn) {
  if (p.numel == 0) return;
  const int64_t inner = p.inner(), rows = p.numel / inner;
  const size_t n_in = p.strides.size(), outer_rank = p.dims.size() - 1;
#if defined(_OPENMP)  // the CUDA kernels include this header for its plans, compiled without OpenMP
#pragma omp parallel for if (p.numel >= kParallelMin) schedule(static)
#endif
  for (int64_t r = 0; r < rows; ++r) {
    int64_t offsets[kMaxBroadcastInputs] = {0, 0, 0, 0};
    int64_t rest = r;
    for (size_t d = outer_rank; d-- > 0;) {
      const int64_t i = rest % p.dims[d];
      rest /= p.dims[d];
      for (size_t k = 0; k < n_in; ++k) offsets[k] += i * p.strides[k][d];
    }
    fn(r * inner, offsets);
  }
}

// y = x broadcast to the plan's output (plan made for one input); W is an element-sized word.
template <typename W>
void BroadcastCopy(const BroadcastPlan& p, const W* x, W* y) {
  ForEachRow(p, [&](int64_t o, const int64_t* off) {
    const W* px = x + off[0];
    W* py = y + o;
    if (p.inner_stride(0)) std::copy(px, px + p.inner(), py);
    else std::fill(py, py + p.inner(), *px);
  });
}

}  // namespace dsc::cpu
