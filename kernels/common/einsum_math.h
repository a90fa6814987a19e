// Einsum's direct loop shared by the CPU kernel (kernels/cpu/einsum.cc) and its CUDA twin
// (kernels/cuda/einsum.cu): one output element as a double sum, over every combination of the
// summed labels, of the product of the operands' elements; and the tables it walks, built once
// per node (EinsumTables).
#pragma once

#include <algorithm>
#include <cstdint>
#include <initializer_list>
#include <vector>

#include "ir/einsum_equation.h"
#include "kernels/common/hd.h"

namespace dsc::einsum {

// The ONNX spec allows any number of operands; per-element offsets live in fixed arrays of this size.
inline constexpr int kMaxOperands = 8;

// Output element `o`: its coordinates (rank dims `out_dims`) move operand k by out_strides[k *
// rank + d]; sum_offsets[c * nops + k] is operand k's offset for combination c of the summed
// labels. Accumulates in double like the CPU always has.
template <typename T, typename Load>
DSC_HD double Element(int64_t o, int64_t rank, const int64_t* out_dims, const int64_t* out_strides, int nops,
                      const T* const* x, const int64_t* sum_offsets, int64_t combos, Load load) {
  int64_t base[kMaxOperands] = {};
  int64_t rest = o;
  for (int64_t d = rank - 1; d >= 0; --d) {
    const int64_t i = rest % out_dims[d];
    rest /= out_dims[d];
    for (int k = 0; k < nops; ++k) base[k] += i * out_strides[k * rank + d];
  }
  double acc = 0;
  const int64_t* row = sum_offsets;
  for (int64_t c = 0; c < combos; ++c, row += nops) {
    double p = 1;
    for (int k = 0; k < nops; ++k) p *= load(x[k][base[k] + row[k]]);
    acc += p;
  }
  return acc;
}

// Host side: the per-label strides of each operand and the tables Element walks.
struct EinsumTables {
  std::vector<std::vector<int64_t>> strides;  // [operand][label]
  std::vector<int> out_labels, summed;
  std::vector<int64_t> out_dims;
  std::vector<int64_t> out_strides;  // [operand * rank + d]
  std::vector<int64_t> sum_offsets;  // [combo * operands + operand]
  int64_t combos = 1;
};

// Per operand, the element stride each label moves: the sum over the dims it labels (a repeated
// label walks the diagonal), 0 on a broadcast ellipsis dim of size 1. `with_sums` also builds the
// summed-combination table (which can be large; the GEMM path does not need it).
inline EinsumTables MakeTables(const EinsumEquation& eq, const std::vector<std::vector<int64_t>>& shapes,
                               bool with_sums) {
  EinsumTables t;
  const size_t nl = eq.label_size.size();
  t.strides.assign(shapes.size(), std::vector<int64_t>(nl, 0));
  for (size_t k = 0; k < shapes.size(); ++k) {
    int64_t cs = 1;
    for (size_t d = shapes[k].size(); d-- > 0;) {
      const size_t l = static_cast<size_t>(eq.inputs[k][d]);
      if (!(shapes[k][d] == 1 && eq.label_size[l] != 1)) t.strides[k][l] += cs;
      cs *= shapes[k][d];
    }
  }
  t.out_labels = eq.output;
  for (int l : t.out_labels) t.out_dims.push_back(eq.label_size[static_cast<size_t>(l)]);
  for (size_t l = 0; l < nl; ++l)
    if (eq.label_count[l] > 0 &&
        std::find(t.out_labels.begin(), t.out_labels.end(), static_cast<int>(l)) == t.out_labels.end())
      t.summed.push_back(static_cast<int>(l));
  for (size_t k = 0; k < shapes.size(); ++k)
    for (int l : t.out_labels) t.out_strides.push_back(t.strides[k][static_cast<size_t>(l)]);
  if (!with_sums) return t;
  // One row of operand offsets per combination of the summed labels.
  const size_t nops = shapes.size();
  for (int l : t.summed) t.combos *= eq.label_size[static_cast<size_t>(l)];
  t.sum_offsets.assign(static_cast<size_t>(t.combos) * nops, 0);
  std::vector<int64_t> coord(t.summed.size(), 0);
  for (int64_t c = 0; c < t.combos; ++c) {
    for (size_t k = 0; k < nops; ++k) {
      int64_t off = 0;
      for (size_t s = 0; s < t.summed.size(); ++s) off += coord[s] * t.strides[k][static_cast<size_t>(t.summed[s])];
      t.sum_offsets[static_cast<size_t>(c) * nops + k] = off;
    }
    for (size_t s = t.summed.size(); s-- > 0;) {
      if (++coord[s] < eq.label_size[static_cast<size_t>(t.summed[s])]) break;
      coord[s] = 0;
    }
  }
  return t;
}

// A two-operand contraction without diagonals, broadcasts, empty dims or labels summed within
// one operand, as one batched GEMM: A gathered to (batch, m, k), B to (batch, k, n), the result
// (batch, m, n) read back in the output's label order. Each gather is (dims, source strides).
struct GemmLowering {
  int64_t batch = 1, m = 1, n = 1, k = 1;
  std::vector<int64_t> a_dims, a_strides, b_dims, b_strides, y_dims, y_strides;
};

// Labels by role: batch (A, B, Y), m (A, Y), n (B, Y), k (A, B). False when the contraction is
// not a GEMM.
inline bool LowerToGemm(const EinsumEquation& eq, const std::vector<std::vector<int64_t>>& shapes,
                        const EinsumTables& t, GemmLowering* g) {
  if (shapes.size() != 2) return false;
  for (size_t k = 0; k < 2; ++k)
    for (size_t d = 0; d < shapes[k].size(); ++d) {
      const int l = eq.inputs[k][d];
      if (shapes[k][d] != eq.label_size[static_cast<size_t>(l)] || shapes[k][d] == 0)
        return false;                                                                 // broadcast / empty
      if (std::count(eq.inputs[k].begin(), eq.inputs[k].end(), l) > 1) return false;  // diagonal
    }
  auto in = [&](size_t k, int l) { return std::count(eq.inputs[k].begin(), eq.inputs[k].end(), l) > 0; };
  std::vector<int> batch, m, n, kk;
  for (size_t l = 0; l < eq.label_size.size(); ++l) {
    if (eq.label_count[l] == 0) continue;
    const int li = static_cast<int>(l);
    const bool a = in(0, li), b = in(1, li);
    const bool y = std::find(t.out_labels.begin(), t.out_labels.end(), li) != t.out_labels.end();
    if (a && b && y)
      batch.push_back(li);
    else if (a && y)
      m.push_back(li);
    else if (b && y)
      n.push_back(li);
    else if (a && b)
      kk.push_back(li);
    else
      return false;  // summed within one operand
  }
  auto sizes = [&](std::initializer_list<const std::vector<int>*> groups) {
    std::vector<int64_t> dims;
    for (const auto* gr : groups)
      for (int l : *gr) dims.push_back(eq.label_size[static_cast<size_t>(l)]);
    return dims;
  };
  auto strides_of = [&](size_t k, std::initializer_list<const std::vector<int>*> groups) {
    std::vector<int64_t> st;
    for (const auto* gr : groups)
      for (int l : *gr) st.push_back(t.strides[k][static_cast<size_t>(l)]);
    return st;
  };
  auto product = [](const std::vector<int64_t>& d) {
    int64_t p = 1;
    for (int64_t v : d) p *= v;
    return p;
  };
  g->batch = product(sizes({&batch}));
  g->m = product(sizes({&m}));
  g->n = product(sizes({&n}));
  g->k = product(sizes({&kk}));
  g->a_dims = sizes({&batch, &m, &kk});
  g->a_strides = strides_of(0, {&batch, &m, &kk});
  g->b_dims = sizes({&batch, &kk, &n});
  g->b_strides = strides_of(1, {&batch, &kk, &n});
  // The GEMM result is laid out (batch, m, n); the output reads it in its own label order.
  std::vector<int> tmp_labels = batch;
  tmp_labels.insert(tmp_labels.end(), m.begin(), m.end());
  tmp_labels.insert(tmp_labels.end(), n.begin(), n.end());
  const std::vector<int64_t> tmp_dims = sizes({&tmp_labels});
  std::vector<int64_t> tmp_strides(tmp_dims.size(), 1);
  for (size_t d = tmp_dims.size(); d-- > 1;) tmp_strides[d - 1] = tmp_strides[d] * tmp_dims[d];
  g->y_dims = t.out_dims;
  g->y_strides.clear();
  for (int l : t.out_labels)
    g->y_strides.push_back(
        tmp_strides[static_cast<size_t>(std::find(tmp_labels.begin(), tmp_labels.end(), l) - tmp_labels.begin())]);
  return true;
}

}  // namespace dsc::einsum
