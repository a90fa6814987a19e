// FusedMatMul's CPU kernel against the graph the fuse pass replaces: Transpose nodes feeding a
// MatMul, run through their own kernels. sgemm reading an operand transposed may sum in another
// order than sgemm on the transposed copy, so transposed cases compare within 1e-5 relative; with
// no flag set the fused kernel makes the same sgemm calls as MatMul's and must match bit for bit.
#include <cstring>
#include <map>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "ir/dsc_ops.h"
#include "tests/kernels/kernel_test_util.h"

namespace dsc {
namespace {

using testing::StaticShape;

// Deterministic inputs in [-1, 1), stored as `dtype` (rounded when half).
Tensor Filled(DType dtype, std::vector<int64_t> dims, uint32_t seed) {
  Tensor t(dtype, std::move(dims));
  for (int64_t i = 0; i < t.numel(); ++i) {
    seed = seed * 1664525u + 1013904223u;
    t.SetFromDouble(i, static_cast<double>(seed >> 8) / static_cast<double>(1u << 23) - 1.0);
  }
  return t;
}

std::vector<int64_t> SwapLast2(std::vector<int64_t> d) {
  std::swap(d[d.size() - 1], d[d.size() - 2]);
  return d;
}

std::vector<int64_t> SwapLast2Perm(size_t rank) {
  std::vector<int64_t> p;
  for (size_t i = 0; i < rank; ++i) p.push_back(static_cast<int64_t>(i));
  std::swap(p[rank - 1], p[rank - 2]);
  return p;
}

Tensor RunOne(Node* n, const std::vector<Tensor*>& inputs) {
  StatusOr<std::vector<Tensor>> out = testing::RunNodeOnCpu(*n, inputs);
  EXPECT_TRUE(out.ok()) << n->Describe() << ": " << out.status().ToString();
  return out.ok() ? (*out)[0] : Tensor();
}

struct Case {
  std::vector<int64_t> a, b;  // stored shapes (A is (..., K, M) when trans_a)
  bool trans_a, trans_b;
  std::vector<int64_t> y;
};

// Y from FusedMatMul(A, B) and from MatMul(Transpose(A)?, Transpose(B)?).
std::pair<Tensor, Tensor> FusedAndUnfused(const Case& c, DType dtype) {
  Tensor a = Filled(dtype, c.a, 11), b = Filled(dtype, c.b, 12);
  Graph g;
  Value* va = g.AddInput("a", TensorType{dtype, StaticShape(c.a)});
  Value* vb = g.AddInput("b", TensorType{dtype, StaticShape(c.b)});
  Node* fused = g.AddNode(ops::kFusedMatMul, {va, vb}, {"y_fused"}, kDscDomain);
  if (c.trans_a) fused->SetAttr("transA", int64_t{1});
  if (c.trans_b) fused->SetAttr("transB", int64_t{1});
  fused->output(0)->type = TensorType{dtype, StaticShape(c.y)};
  Tensor y_fused = RunOne(fused, {&a, &b});

  Tensor at = a, bt = b;
  Value* ua = va;
  Value* ub = vb;
  if (c.trans_a) {
    Node* t = g.AddNode("Transpose", {va}, {"at"});
    t->SetAttr("perm", SwapLast2Perm(c.a.size()));
    t->output(0)->type = TensorType{dtype, StaticShape(SwapLast2(c.a))};
    at = RunOne(t, {&a});
    ua = t->output(0);
  }
  if (c.trans_b) {
    Node* t = g.AddNode("Transpose", {vb}, {"bt"});
    t->SetAttr("perm", SwapLast2Perm(c.b.size()));
    t->output(0)->type = TensorType{dtype, StaticShape(SwapLast2(c.b))};
    bt = RunOne(t, {&b});
    ub = t->output(0);
  }
  Node* mm = g.AddNode("MatMul", {ua, ub}, {"y"});
  mm->output(0)->type = TensorType{dtype, StaticShape(c.y)};
  return {y_fused, RunOne(mm, {&at, &bt})};
}

std::vector<double> AsDoubles(const Tensor& t) {
  std::vector<double> v(static_cast<size_t>(t.numel()));
  for (int64_t i = 0; i < t.numel(); ++i) v[static_cast<size_t>(i)] = t.GetAsDouble(i);
  return v;
}

const std::vector<Case>& Cases() {
  static const std::vector<Case> cases = {
      {{3, 4}, {5, 4}, false, true, {3, 5}},                       // x @ W^T, 2-D
      {{2, 7, 40}, {50, 40}, false, true, {2, 7, 50}},             // Linear forward: batch folded into M
      {{6, 5}, {6, 4}, true, false, {5, 4}},                       // dY^T @ X
      {{2, 7, 40}, {7, 30}, true, false, {2, 40, 30}},             // transposed 3-D A, shared B: no fold
      {{2, 4, 16, 8}, {2, 4, 16, 8}, false, true, {2, 4, 16, 16}},  // attention's q @ k^T
      {{2, 4, 16, 8}, {2, 4, 16, 16}, true, true, {2, 4, 8, 16}},  // both sides
      {{3, 1, 6, 5}, {4, 7, 6}, true, true, {3, 4, 5, 7}},         // broadcast batch dims
      {{64, 8, 12}, {64, 8, 12}, false, true, {64, 8, 8}},         // many small matrices (OpenMP schedule)
      {{96, 130}, {70, 96}, true, true, {130, 70}},                // odd sizes, both transposed
  };
  return cases;
}

TEST(FusedMatMul, MatchesTransposeThenMatMul) {
  for (const Case& c : Cases()) {
    auto [fused, unfused] = FusedAndUnfused(c, DType::kFloat32);
    ASSERT_EQ(fused.dims(), unfused.dims());
    EXPECT_TRUE(testing::AllClose(fused, AsDoubles(unfused), 1e-5, 1e-6))
        << "A " << c.a.size() << "-D trans_a " << c.trans_a << ", B " << c.b.size() << "-D trans_b " << c.trans_b;
  }
}

// Without flags the fused kernel makes MatMul's sgemm calls: the same bits.
TEST(FusedMatMul, NoFlagsIsBitwiseMatMul) {
  for (Case c : Cases()) {
    if (c.trans_a) c.a = SwapLast2(c.a);
    if (c.trans_b) c.b = SwapLast2(c.b);
    c.trans_a = c.trans_b = false;
    auto [fused, unfused] = FusedAndUnfused(c, DType::kFloat32);
    ASSERT_EQ(fused.nbytes(), unfused.nbytes());
    EXPECT_EQ(std::memcmp(fused.raw(), unfused.raw(), fused.nbytes()), 0) << c.a.size() << "-D A";
  }
}

// Half nodes run the float32 kernel through the half adaptor: widened, multiplied in float,
// rounded once, as MatMul's half kernel does; the two may differ by one rounding step of the
// half result when their float sums differ in the last bit.
TEST(FusedMatMul, HalfMatchesTransposeThenMatMul) {
  for (DType dt : {DType::kFloat16, DType::kBFloat16})
    for (const Case& c : Cases()) {
      auto [fused, unfused] = FusedAndUnfused(c, dt);
      ASSERT_EQ(fused.dtype(), dt);
      EXPECT_TRUE(testing::AllClose(fused, AsDoubles(unfused), dt == DType::kFloat16 ? 1e-3 : 8e-3, 1e-3))
          << DTypeName(dt) << " A " << c.a.size() << "-D B " << c.b.size() << "-D";
    }
}

// The fuse pass turns Transpose(Gemm(A, B)) into Gemm(B, A) with swapped, flipped flags.
TEST(FusedMatMul, TransposedGemmMatchesGemmThenTranspose) {
  Tensor x = Filled(DType::kFloat32, {96, 40}, 21), dy = Filled(DType::kFloat32, {96, 50}, 22);
  Graph g;
  Value* vx = g.AddInput("x", TensorType{DType::kFloat32, StaticShape({96, 40})});
  Value* vdy = g.AddInput("dy", TensorType{DType::kFloat32, StaticShape({96, 50})});
  Node* gemm = g.AddNode("Gemm", {vx, vdy}, {"g"});
  gemm->SetAttr("transA", int64_t{1});
  gemm->output(0)->type = TensorType{DType::kFloat32, StaticShape({40, 50})};
  Tensor gt = RunOne(gemm, {&x, &dy});
  Node* t = g.AddNode("Transpose", {gemm->output(0)}, {"dw"});
  t->SetAttr("perm", std::vector<int64_t>{1, 0});
  t->output(0)->type = TensorType{DType::kFloat32, StaticShape({50, 40})};
  Tensor unfused = RunOne(t, {&gt});
  Node* swapped = g.AddNode("Gemm", {vdy, vx}, {"dw_fused"});
  swapped->SetAttr("transA", int64_t{1});
  swapped->output(0)->type = TensorType{DType::kFloat32, StaticShape({50, 40})};
  Tensor fused = RunOne(swapped, {&dy, &x});
  EXPECT_TRUE(testing::AllClose(fused, AsDoubles(unfused), 1e-5, 1e-6));
}

TEST(FusedMatMul, RefusesMismatchedShapes) {
  Graph g;
  Value* va = g.AddInput("a", TensorType{DType::kFloat32, StaticShape({3, 4})});
  Value* vb = g.AddInput("b", TensorType{DType::kFloat32, StaticShape({4, 5})});
  Node* n = g.AddNode(ops::kFusedMatMul, {va, vb}, {"y"}, kDscDomain);
  n->SetAttr("transB", int64_t{1});  // B^T is (5, 4): inner dims 4 vs 5
  n->output(0)->type = TensorType{DType::kFloat32, StaticShape({3, 4})};
  Tensor a = Filled(DType::kFloat32, {3, 4}, 1), b = Filled(DType::kFloat32, {4, 5}, 2);
  StatusOr<std::vector<Tensor>> out = testing::RunNodeOnCpu(*n, {&a, &b});
  ASSERT_FALSE(out.ok());
  EXPECT_NE(out.status().message().find("inner dims differ"), std::string::npos) << out.status().ToString();
}

}  // namespace
}  // namespace dsc
