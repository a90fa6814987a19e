// FusedMatMul's shapes, read once at Init by the CPU kernel (kernels/cpu/fused_matmul.cc) and its
// CUDA twin (kernels/cuda/fused_matmul.cu): the GEMM sizes, the transpose flags and, per output
// matrix, where its A and B matrices start; plus the batch helpers the CUDA MatMul shares.
//   ASSIGN_OR_RETURN(matmul::FusedShape s, matmul::ResolveFused(node));
#pragma once

#include <algorithm>
#include <vector>

#include "ir/dsc_ops.h"
#include "kernels/cpu/nn_util.h"

namespace dsc::matmul {

// Y:(batch..., M, N) = op(A) @ op(B). A is (a_batch..., M, K), or (a_batch..., K, M) stored when
// trans_a; B is (b_batch..., K, N), or (b_batch..., N, K) when trans_b; the batch dims broadcast
// as numpy's. When B is one matrix shared by every output matrix and A is not transposed, A's
// batch is folded into M (a Linear layer: one GEMM of batch * M rows) and the offsets are {0}.
struct FusedShape {
  bool trans_a = false, trans_b = false;
  int64_t m = 0, n = 0, k = 0;
  std::vector<int64_t> a_offsets, b_offsets;  // in elements, one per output matrix (row-major over the batch)
  int64_t lda() const { return trans_a ? m : k; }
  int64_t ldb() const { return trans_b ? k : n; }
  int64_t batch() const { return static_cast<int64_t>(a_offsets.size()); }
};

// numpy broadcast of two batch shapes (right-aligned; 1 stretches).
inline StatusOr<std::vector<int64_t>> BroadcastBatch(const std::vector<int64_t>& a, const std::vector<int64_t>& b) {
  const size_t r = std::max(a.size(), b.size());
  std::vector<int64_t> out(r, 1);
  for (size_t i = 0; i < r; ++i) {
    const int64_t x = i < r - a.size() ? 1 : a[i - (r - a.size())], y = i < r - b.size() ? 1 : b[i - (r - b.size())];
    if (x != y && x != 1 && y != 1) return InvalidArgument("batch dims ", x, " and ", y, " do not broadcast");
    out[i] = x == 1 ? y : x;
  }
  return out;
}

// Whether offsets[i] == i * stride for one stride (returned), so a strided batch (cuBLASLt's)
// covers them.
inline bool Arithmetic(const std::vector<int64_t>& offsets, int64_t* stride) {
  *stride = offsets.size() > 1 ? offsets[1] - offsets[0] : 0;
  if (offsets.empty() || offsets[0] != 0 || *stride < 0) return false;
  for (size_t i = 0; i < offsets.size(); ++i)
    if (offsets[i] != static_cast<int64_t>(i) * *stride) return false;
  return true;
}

// Per output batch index (row-major over `batch`), the index of the operand's matrix; the operand's
// batch dims are right-aligned against `batch` and a dim of 1 repeats.
inline std::vector<int64_t> BatchIndex(const std::vector<int64_t>& batch, const std::vector<int64_t>& op) {
  const int64_t n = nn::Product(batch);
  std::vector<int64_t> out(static_cast<size_t>(n));
  const size_t r = batch.size(), off = r - op.size();
  for (int64_t i = 0; i < n; ++i) {
    int64_t rest = i, idx = 0, stride = 1;
    for (size_t d = r; d-- > 0;) {
      const int64_t c = rest % batch[d];
      rest /= batch[d];
      if (d >= off) {
        const int64_t od = op[d - off];
        if (od != 1) idx += c * stride;
        stride *= od;
      }
    }
    out[static_cast<size_t>(i)] = idx;
  }
  return out;
}

inline StatusOr<FusedShape> ResolveFused(const Node& node) {
  ASSIGN_OR_RETURN(std::vector<int64_t> a, nn::StaticDims(node.input(0), "A"));
  ASSIGN_OR_RETURN(std::vector<int64_t> b, nn::StaticDims(node.input(1), "B"));
  ASSIGN_OR_RETURN(std::vector<int64_t> y, nn::StaticDims(node.output(0), "Y"));
  if (a.size() < 2 || b.size() < 2) return InvalidArgument("FusedMatMul takes A and B of rank >= 2");
  FusedShape s;
  s.trans_a = node.GetInt("transA", 0) != 0;
  s.trans_b = node.GetInt("transB", 0) != 0;
  const int64_t a_rows = a[a.size() - 2], a_cols = a.back(), b_rows = b[b.size() - 2], b_cols = b.back();
  s.m = s.trans_a ? a_cols : a_rows;
  s.k = s.trans_a ? a_rows : a_cols;
  s.n = s.trans_b ? b_rows : b_cols;
  const int64_t bk = s.trans_b ? b_cols : b_rows;
  if (bk != s.k) return InvalidArgument("inner dims differ: ", s.k, " vs ", bk);
  const std::vector<int64_t> a_batch(a.begin(), a.end() - 2), b_batch(b.begin(), b.end() - 2);
  ASSIGN_OR_RETURN(const std::vector<int64_t> batch, BroadcastBatch(a_batch, b_batch));
  std::vector<int64_t> want = batch;
  want.push_back(s.m);
  want.push_back(s.n);
  if (y != want) return InvalidArgument("Y's shape is not the broadcast batch dims followed by (", s.m, ", ", s.n, ")");
  const int64_t nb = nn::Product(batch);
  if (nn::Product(b_batch) == 1 && nn::Product(a_batch) == nb && !s.trans_a) {
    s.m *= nb;
    s.a_offsets = s.b_offsets = {0};
    return s;
  }
  s.a_offsets = BatchIndex(batch, a_batch);
  s.b_offsets = BatchIndex(batch, b_batch);
  for (int64_t& o : s.a_offsets) o *= s.m * s.k;
  for (int64_t& o : s.b_offsets) o *= s.k * s.n;
  return s;
}

}  // namespace dsc::matmul
