// MatMul/Gemm checks too big for the JSON table: a 256^3 Gemm against a naive loop, and batched
// MatMuls against one 2-D MatMul per matrix.
#include <cmath>
#include <cstring>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "tests/kernels/kernel_test_util.h"

namespace dsc {
namespace {

using testing::StaticShape;

// Deterministic inputs in [-1, 1).
Tensor Filled(std::vector<int64_t> dims, uint32_t seed) {
  Tensor t(DType::kFloat32, std::move(dims));
  float* p = t.data<float>();
  for (int64_t i = 0; i < t.numel(); ++i) {
    seed = seed * 1664525u + 1013904223u;
    p[i] = static_cast<float>(seed >> 8) / static_cast<float>(1u << 23) - 1.0f;
  }
  return t;
}

Tensor RunBinary(const std::string& op, Tensor& a, Tensor& b, const std::vector<int64_t>& out_dims,
                 const std::map<std::string, AttrValue>& attrs = {}) {
  Graph g;
  Value* va = g.AddInput("a", TensorType{DType::kFloat32, StaticShape(a.dims())});
  Value* vb = g.AddInput("b", TensorType{DType::kFloat32, StaticShape(b.dims())});
  Node* n = g.AddNode(op, {va, vb}, {"y"});
  for (const auto& [k, v] : attrs) n->SetAttr(k, v);
  n->output(0)->type = TensorType{DType::kFloat32, StaticShape(out_dims)};
  StatusOr<std::vector<Tensor>> out = testing::RunNodeOnCpu(*n, {&a, &b});
  EXPECT_TRUE(out.ok()) << out.status().ToString();
  return out.ok() ? (*out)[0] : Tensor();
}

TEST(CoreMatMul, Gemm256MatchesNaiveLoop) {
  constexpr int64_t M = 256, K = 256, N = 256;
  Tensor a = Filled({M, K}, 1), b = Filled({N, K}, 2);  // B transposed: exercises transB
  Tensor y = RunBinary("Gemm", a, b, {M, N}, {{"transB", int64_t{1}}});
  ASSERT_EQ(y.numel(), M * N);
  const float* pa = a.data<float>();
  const float* pb = b.data<float>();
  for (int64_t i = 0; i < M; ++i) {
    for (int64_t j = 0; j < N; ++j) {
      double ref = 0;
      for (int64_t k = 0; k < K; ++k) ref += static_cast<double>(pa[i * K + k]) * pb[j * K + k];
      const double got = y.data<float>()[i * N + j];
      ASSERT_LE(std::fabs(got - ref), 1e-4 * std::max(1.0, std::fabs(ref))) << "(" << i << ", " << j << ")";
    }
  }
}

// A batch of small matrices (one sgemm each): every one must equal its own 2-D MatMul.
TEST(CoreMatMul, SmallBatchMatchesPerMatrix) {
  constexpr int64_t B = 64, M = 8, K = 12, N = 8;
  Tensor a = Filled({B, M, K}, 3), b = Filled({B, K, N}, 4);
  Tensor y = RunBinary("MatMul", a, b, {B, M, N});
  for (int64_t i = 0; i < B; ++i) {
    Tensor ai(DType::kFloat32, {M, K}), bi(DType::kFloat32, {K, N});
    std::memcpy(ai.raw(), a.data<float>() + i * M * K, ai.nbytes());
    std::memcpy(bi.raw(), b.data<float>() + i * K * N, bi.nbytes());
    Tensor yi = RunBinary("MatMul", ai, bi, {M, N});
    for (int64_t j = 0; j < M * N; ++j) ASSERT_EQ(y.data<float>()[i * M * N + j], yi.data<float>()[j]) << i << "," << j;
  }
}

// A weight shared by every batch folds the batch into M; the result must match per-batch rows.
TEST(CoreMatMul, SharedWeightFoldsBatch) {
  constexpr int64_t B = 3, T = 70, C = 40, N = 50;
  Tensor x = Filled({B, T, C}, 5), w = Filled({C, N}, 6);
  Tensor y = RunBinary("MatMul", x, w, {B, T, N});
  for (int64_t i = 0; i < B; ++i) {
    Tensor xi(DType::kFloat32, {T, C});
    std::memcpy(xi.raw(), x.data<float>() + i * T * C, xi.nbytes());
    Tensor yi = RunBinary("MatMul", xi, w, {T, N});
    for (int64_t j = 0; j < T * N; ++j)
      ASSERT_NEAR(y.data<float>()[i * T * N + j], yi.data<float>()[j], 1e-5) << i << "," << j;
  }
}

}  // namespace
}  // namespace dsc
