// CanEvaluate, the memory guard, int64 overflow in sizes and malformed nodes: errors, never crashes.
#include <limits>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "ir/dsc_ops.h"
#include "ir/graph.h"
#include "passes/const_eval.h"

namespace dsc {
namespace {

Tensor Ints(std::vector<int64_t> v) {
  Tensor t(DType::kInt64, {static_cast<int64_t>(v.size())});
  for (size_t i = 0; i < v.size(); ++i) t.SetFromInt(static_cast<int64_t>(i), v[i]);
  return t;
}

// A node over placeholder graph inputs; the evaluator only reads the tensors passed to it.
Node* MakeNode(Graph& g, const std::string& op, size_t num_inputs, size_t num_outputs = 1,
               const std::string& domain = "") {
  std::vector<Value*> ins;
  for (size_t i = 0; i < num_inputs; ++i) ins.push_back(g.AddInput(g.UniqueName("x"), TensorType{DType::kInt64, {}}));
  std::vector<std::string> outs;
  for (size_t i = 0; i < num_outputs; ++i) outs.push_back(g.UniqueName("y"));
  return g.AddNode(op, ins, outs, domain, "the_node");
}

void ExpectError(const StatusOr<std::vector<Tensor>>& r, StatusCode code) {
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), code) << r.status().ToString();
  EXPECT_NE(r.status().message().find("'the_node'"), std::string::npos) << r.status().ToString();
}

TEST(ConstEvalApi, CanEvaluateKnowsOpsAndDomains) {
  Graph g;
  EXPECT_TRUE(CanEvaluate(*MakeNode(g, "Reshape", 2)));
  EXPECT_TRUE(CanEvaluate(*MakeNode(g, "ConstantOfShape", 1)));
  EXPECT_FALSE(CanEvaluate(*MakeNode(g, "MatMul", 2)));
  EXPECT_FALSE(CanEvaluate(*MakeNode(g, "Softmax", 1)));
  EXPECT_FALSE(CanEvaluate(*MakeNode(g, "Reshape", 2, 1, kDscDomain)));
  // PyTorch's detach() of a constant is the constant (ir/dsc_ops.h)
  EXPECT_TRUE(CanEvaluate(*MakeNode(g, ops::kStopGradient, 1, 1, kDscDomain)));
  EXPECT_FALSE(CanEvaluate(*MakeNode(g, ops::kStopGradient, 1)));
}

TEST(ConstEvalApi, StopGradientEvaluatesAsIdentity) {
  Graph g;
  Tensor x = Ints({4, -7, int64_t{1} << 40});
  auto out = EvaluateNode(*MakeNode(g, ops::kStopGradient, 1, 1, kDscDomain), {&x});
  ASSERT_TRUE(out.ok()) << out.status().ToString();
  ASSERT_EQ(out->size(), 1u);
  EXPECT_EQ((*out)[0].ToInt64Vector(), (std::vector<int64_t>{4, -7, int64_t{1} << 40}));
  EXPECT_EQ((*out)[0].dims(), x.dims());
}

TEST(ConstEvalApi, UnknownOpAndForeignDomainAreUnimplemented) {
  Graph g;
  Tensor x = Ints({1});
  ExpectError(EvaluateNode(*MakeNode(g, "MatMul", 2), {&x, &x}), StatusCode::kUnimplemented);
  ExpectError(EvaluateNode(*MakeNode(g, "Identity", 1, 1, kDscDomain), {&x}), StatusCode::kUnimplemented);
}

TEST(ConstEvalApi, RefusesOutputsOverTheElementLimit) {
  Graph g;
  Tensor shape = Ints({kMaxConstEvalElements + 1});
  ExpectError(EvaluateNode(*MakeNode(g, "ConstantOfShape", 1), {&shape}), StatusCode::kOutOfRange);
  Tensor at_limit_shape = Ints({1024, 1024});  // well under the limit: materialises
  auto ok = EvaluateNode(*MakeNode(g, "ConstantOfShape", 1), {&at_limit_shape});
  ASSERT_TRUE(ok.ok()) << ok.status().ToString();
  EXPECT_EQ((*ok)[0].numel(), 1024 * 1024);

  Tensor one = Ints({1});
  Tensor big = Ints({int64_t{1} << 30});
  ExpectError(EvaluateNode(*MakeNode(g, "Expand", 2), {&one, &big}), StatusCode::kOutOfRange);
  ExpectError(EvaluateNode(*MakeNode(g, "Tile", 2), {&one, &big}), StatusCode::kOutOfRange);
  Tensor zero = Tensor::Scalar(DType::kInt64, 0), limit = Tensor::Scalar(DType::kInt64, 1e12),
         step = Tensor::Scalar(DType::kInt64, 1);
  ExpectError(EvaluateNode(*MakeNode(g, "Range", 3), {&zero, &limit, &step}), StatusCode::kOutOfRange);
  Tensor fzero = Tensor::Scalar(DType::kFloat32, 0), flimit = Tensor::Scalar(DType::kFloat32, 1),
         fstep = Tensor::Scalar(DType::kFloat32, 1e-12f);
  ExpectError(EvaluateNode(*MakeNode(g, "Range", 3), {&fzero, &flimit, &fstep}), StatusCode::kOutOfRange);
}

TEST(ConstEvalApi, SizeOverflowIsAnErrorNotUb) {
  Graph g;
  Tensor shape = Ints({int64_t{1} << 40, int64_t{1} << 40});
  ExpectError(EvaluateNode(*MakeNode(g, "ConstantOfShape", 1), {&shape}), StatusCode::kOutOfRange);
  Tensor x(DType::kFloat32, {2, 3});
  Tensor repeats = Ints({std::numeric_limits<int64_t>::max(), 2});
  ExpectError(EvaluateNode(*MakeNode(g, "Tile", 2), {&x, &repeats}), StatusCode::kOutOfRange);
  Tensor reshape = Ints({std::numeric_limits<int64_t>::max(), 4, -1});
  ExpectError(EvaluateNode(*MakeNode(g, "Reshape", 2), {&x, &reshape}), StatusCode::kInvalidArgument);
  Tensor row(DType::kFloat32, {1, 3});
  Tensor expand = Ints({std::numeric_limits<int64_t>::max(), 3});
  ExpectError(EvaluateNode(*MakeNode(g, "Expand", 2), {&row, &expand}), StatusCode::kOutOfRange);
}

TEST(ConstEvalApi, MissingRequiredInputIsAnError) {
  Graph g;
  Tensor x = Ints({1, 2});
  ExpectError(EvaluateNode(*MakeNode(g, "Add", 2), {&x, nullptr}), StatusCode::kInvalidArgument);
  ExpectError(EvaluateNode(*MakeNode(g, "Reshape", 2), {&x}), StatusCode::kInvalidArgument);
  ExpectError(EvaluateNode(*MakeNode(g, "Concat", 2), {&x, nullptr}), StatusCode::kInvalidArgument);
}

TEST(ConstEvalApi, OmittedOptionalInputsAreDefaults) {
  Graph g;
  Tensor x = Ints({10, 11, 12, 13});
  Tensor starts = Ints({1}), ends = Ints({3});
  auto r = EvaluateNode(*MakeNode(g, "Slice", 5), {&x, &starts, &ends, nullptr, nullptr});
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ((*r)[0].ToInt64Vector(), (std::vector<int64_t>{11, 12}));
}

TEST(ConstEvalApi, OutputCountMustMatchTheOp) {
  Graph g;
  Tensor x = Ints({1});
  ExpectError(EvaluateNode(*MakeNode(g, "Add", 2, 2), {&x, &x}), StatusCode::kInvalidArgument);
}

TEST(ConstEvalApi, ConstantNeedsAValue) {
  Graph g;
  ExpectError(EvaluateNode(*MakeNode(g, "Constant", 0), {}), StatusCode::kInvalidArgument);
  Node* n = MakeNode(g, "Constant", 0);
  n->SetAttr("value_string", std::string("hi"));
  ExpectError(EvaluateNode(*n, {}), StatusCode::kUnimplemented);
}

// The chain PyTorch emits for x.view(x.size(0), -1, 64): Shape -> Gather -> Unsqueeze -> Concat.
TEST(ConstEvalApi, TorchShapeChain) {
  Graph g;
  Tensor x(DType::kFloat32, {4, 8, 128});
  Node* shape = MakeNode(g, "Shape", 1);
  auto s = EvaluateNode(*shape, {&x});
  ASSERT_TRUE(s.ok());
  Node* gather = MakeNode(g, "Gather", 2);
  gather->SetAttr("axis", int64_t{0});
  Tensor zero = Tensor::Scalar(DType::kInt64, 0);
  auto d0 = EvaluateNode(*gather, {&(*s)[0], &zero});
  ASSERT_TRUE(d0.ok());
  EXPECT_EQ((*d0)[0].rank(), 0);
  Node* unsq = MakeNode(g, "Unsqueeze", 2);
  Tensor axes = Ints({0});
  auto u = EvaluateNode(*unsq, {&(*d0)[0], &axes});
  ASSERT_TRUE(u.ok());
  Node* concat = MakeNode(g, "Concat", 3);
  concat->SetAttr("axis", int64_t{0});
  Tensor minus1 = Ints({-1}), c64 = Ints({64});
  auto c = EvaluateNode(*concat, {&(*u)[0], &minus1, &c64});
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_EQ((*c)[0].ToInt64Vector(), (std::vector<int64_t>{4, -1, 64}));
  Node* reshape = MakeNode(g, "Reshape", 2);
  auto r = EvaluateNode(*reshape, {&x, &(*c)[0]});
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ((*r)[0].dims(), (std::vector<int64_t>{4, 16, 64}));
}

}  // namespace
}  // namespace dsc
