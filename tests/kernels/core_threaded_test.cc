// The threaded (OpenMP) paths of the core kernels, on tensors too big for the JSON table, must
// equal the same kernel run piece by piece on sizes that stay on one thread (which the JSON
// table checks against numpy).
#include <cmath>
#include <cstring>
#include <map>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "tests/kernels/kernel_test_util.h"

namespace dsc {
namespace {

using testing::StaticShape;

Tensor Filled(DType dtype, std::vector<int64_t> dims, uint32_t seed) {
  Tensor t(dtype, std::move(dims));
  for (int64_t i = 0; i < t.numel(); ++i) {
    seed = seed * 1664525u + 1013904223u;
    t.SetFromDouble(i, static_cast<double>(seed >> 8) / (1u << 22) - 2.0);
  }
  return t;
}

// Runs one node; `consts` are attached as int64 initializers after the tensor inputs.
Tensor RunOp(const std::string& op, std::vector<Tensor*> ins, DType out_dtype, const std::vector<int64_t>& out_dims,
           const std::map<std::string, AttrValue>& attrs = {}, const std::vector<std::vector<int64_t>>& consts = {}) {
  Graph g;
  std::vector<Value*> values;
  for (size_t i = 0; i < ins.size(); ++i)
    values.push_back(g.AddInput(StrCat("in", i), TensorType{ins[i]->dtype(), StaticShape(ins[i]->dims())}));
  std::vector<Tensor> const_tensors;
  const_tensors.reserve(consts.size());
  for (size_t i = 0; i < consts.size(); ++i) {
    const_tensors.push_back(Tensor::FromVector<int64_t>(DType::kInt64, {static_cast<int64_t>(consts[i].size())}, consts[i]));
    values.push_back(g.AddInitializer(StrCat("c", i), const_tensors.back()));
    ins.push_back(&const_tensors.back());
  }
  Node* n = g.AddNode(op, values, {"y"});
  for (const auto& [k, v] : attrs) n->SetAttr(k, v);
  n->output(0)->type = TensorType{out_dtype, StaticShape(out_dims)};
  StatusOr<std::vector<Tensor>> out = testing::RunNodeOnCpu(*n, ins);
  EXPECT_TRUE(out.ok()) << out.status().ToString();
  return out.ok() ? (*out)[0] : Tensor(out_dtype, out_dims);
}

// t[i] along the first axis, as its own tensor.
Tensor Row(const Tensor& t, int64_t i) {
  std::vector<int64_t> dims(t.dims().begin() + 1, t.dims().end());
  Tensor r(t.dtype(), dims);
  std::memcpy(r.raw(), t.raw() + static_cast<size_t>(i) * r.nbytes(), r.nbytes());
  return r;
}

void ExpectRowEq(const Tensor& whole, int64_t i, const Tensor& piece) {
  ASSERT_EQ(std::memcmp(whole.raw() + static_cast<size_t>(i) * piece.nbytes(), piece.raw(), piece.nbytes()), 0)
      << "row " << i;
}

TEST(CoreThreaded, BroadcastMul) {
  Tensor a = Filled(DType::kFloat32, {64, 33, 40}, 1), b = Filled(DType::kFloat32, {33, 1}, 2);
  Tensor y = RunOp("Mul", {&a, &b}, DType::kFloat32, {64, 33, 40});
  for (int64_t i = 0; i < 64; ++i) {
    Tensor ai = Row(a, i);
    ExpectRowEq(y, i, RunOp("Mul", {&ai, &b}, DType::kFloat32, {33, 40}));
  }
}

TEST(CoreThreaded, SameShapeAddAndRelu) {
  Tensor a = Filled(DType::kFloat32, {40, 1000}, 3), b = Filled(DType::kFloat32, {40, 1000}, 4);
  Tensor y = RunOp("Add", {&a, &b}, DType::kFloat32, {40, 1000});
  Tensor r = RunOp("Relu", {&y}, DType::kFloat32, {40, 1000});
  for (int64_t i = 0; i < 40; ++i) {
    Tensor ai = Row(a, i), bi = Row(b, i);
    Tensor yi = RunOp("Add", {&ai, &bi}, DType::kFloat32, {1000});
    ExpectRowEq(y, i, yi);
    ExpectRowEq(r, i, RunOp("Relu", {&yi}, DType::kFloat32, {1000}));
  }
}

TEST(CoreThreaded, AttentionTransposes) {
  Tensor x = Filled(DType::kFloat32, {8, 40, 33, 4}, 5);
  Tensor y = RunOp("Transpose", {&x}, DType::kFloat32, {8, 33, 4, 40}, {{"perm", std::vector<int64_t>{0, 2, 3, 1}}});
  Tensor z = RunOp("Transpose", {&x}, DType::kFloat32, {8, 33, 40, 4}, {{"perm", std::vector<int64_t>{0, 2, 1, 3}}});
  for (int64_t i = 0; i < 8; ++i) {
    Tensor xi = Row(x, i);
    ExpectRowEq(y, i, RunOp("Transpose", {&xi}, DType::kFloat32, {33, 4, 40}, {{"perm", std::vector<int64_t>{1, 2, 0}}}));
    ExpectRowEq(z, i, RunOp("Transpose", {&xi}, DType::kFloat32, {33, 40, 4}, {{"perm", std::vector<int64_t>{1, 0, 2}}}));
  }
}

TEST(CoreThreaded, Reductions) {
  Tensor x = Filled(DType::kFloat32, {40, 50, 30}, 6);
  Tensor mx = RunOp("ReduceMax", {&x}, DType::kFloat32, {40, 30}, {{"axes", std::vector<int64_t>{1}}, {"keepdims", int64_t{0}}});
  Tensor sum = RunOp("ReduceSum", {&x}, DType::kFloat32, {40, 1, 1}, {}, {{1, 2}});
  Tensor gen = RunOp("ReduceMean", {&x}, DType::kFloat32, {50}, {{"axes", std::vector<int64_t>{0, 2}}, {"keepdims", int64_t{0}}});
  Tensor gen_ref(DType::kFloat32, {50});
  for (int64_t i = 0; i < 40; ++i) {
    Tensor xi = Row(x, i);
    ExpectRowEq(mx, i, RunOp("ReduceMax", {&xi}, DType::kFloat32, {30}, {{"axes", std::vector<int64_t>{0}}, {"keepdims", int64_t{0}}}));
    Tensor si = RunOp("ReduceSum", {&xi}, DType::kFloat32, {1, 1}, {}, {{0, 1}});
    EXPECT_NEAR(sum.data<float>()[i], si.data<float>()[0], 1e-4) << i;
    Tensor mi = RunOp("ReduceMean", {&xi}, DType::kFloat32, {50}, {{"axes", std::vector<int64_t>{1}}, {"keepdims", int64_t{0}}});
    for (int64_t j = 0; j < 50; ++j) gen_ref.data<float>()[j] += mi.data<float>()[j] / 40;
  }
  for (int64_t j = 0; j < 50; ++j) EXPECT_NEAR(gen.data<float>()[j], gen_ref.data<float>()[j], 1e-5) << j;
}

TEST(CoreThreaded, CastAndGather) {
  Tensor x = Filled(DType::kFloat32, {40, 1000}, 7);
  Tensor h = RunOp("Cast", {&x}, DType::kFloat16, {40, 1000}, {{"to", int64_t{10}}});
  Tensor table = Filled(DType::kFloat32, {1000, 64}, 8);
  Tensor idx(DType::kInt64, {600});
  for (int64_t i = 0; i < 600; ++i) idx.data<int64_t>()[i] = (i * 37) % 1000 - 500;
  Tensor g = RunOp("Gather", {&table, &idx}, DType::kFloat32, {600, 64});
  for (int64_t i = 0; i < 40; ++i) {
    Tensor xi = Row(x, i);
    ExpectRowEq(h, i, RunOp("Cast", {&xi}, DType::kFloat16, {1000}, {{"to", int64_t{10}}}));
  }
  for (int64_t i = 0; i < 600; ++i) {
    Tensor one = Tensor::FromVector<int64_t>(DType::kInt64, {1}, {idx.data<int64_t>()[i]});
    ExpectRowEq(g, i, RunOp("Gather", {&table, &one}, DType::kFloat32, {1, 64}));
  }
}

// Einsum's sgemm path and its direct loop (forced by a third, all-ones operand) on sizes that
// thread, against MatMul (which the JSON table checks against numpy).
TEST(CoreThreaded, EinsumPathsAgreeWithMatMul) {
  Tensor a = Filled(DType::kFloat32, {8, 64, 48}, 7), b = Filled(DType::kFloat32, {8, 48, 64}, 8);
  Tensor ones(DType::kFloat32, {48});
  for (int64_t i = 0; i < 48; ++i) ones.data<float>()[i] = 1.0f;
  Tensor ref = RunOp("MatMul", {&a, &b}, DType::kFloat32, {8, 64, 64});
  Tensor gemm = RunOp("Einsum", {&a, &b}, DType::kFloat32, {8, 64, 64}, {{"equation", std::string("bij,bjk->bik")}});
  Tensor loop = RunOp("Einsum", {&a, &b, &ones}, DType::kFloat32, {8, 64, 64},
                      {{"equation", std::string("bij,bjk,j->bik")}});
  for (int64_t i = 0; i < ref.numel(); ++i) {
    const float want = ref.data<float>()[i];
    ASSERT_NEAR(gemm.data<float>()[i], want, 1e-4f * (1.0f + std::fabs(want))) << i;
    ASSERT_NEAR(loop.data<float>()[i], want, 1e-4f * (1.0f + std::fabs(want))) << i;
  }
}

// GatherND with one-element tuples reads whole rows: the threaded copy equals Gather's.
TEST(CoreThreaded, GatherNDRowsEqualGather) {
  Tensor x = Filled(DType::kFloat32, {64, 600}, 9);
  std::vector<int64_t> rows;
  for (int64_t i = 0; i < 300; ++i) rows.push_back((i * 37) % 128 - 64);
  Tensor idx_nd = Tensor::FromVector<int64_t>(DType::kInt64, {300, 1}, rows);
  Tensor idx = Tensor::FromVector<int64_t>(DType::kInt64, {300}, rows);
  Tensor nd = RunOp("GatherND", {&x, &idx_nd}, DType::kFloat32, {300, 600});
  Tensor ref = RunOp("Gather", {&x, &idx}, DType::kFloat32, {300, 600});
  ASSERT_EQ(std::memcmp(nd.raw(), ref.raw(), ref.nbytes()), 0);
}

}  // namespace
}  // namespace dsc
