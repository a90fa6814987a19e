// NN forward kernels (Softmax, norms, Conv, pools, losses) against torch/numpy, Dropout's mask properties, errors.
#include <gtest/gtest.h>

#include <map>
#include <string>
#include <vector>

#include "tests/kernels/nn_cases.h"

namespace dsc {
namespace {

using testing::RunNodeOnCpu;

class NnForwardCase : public ::testing::TestWithParam<std::string> {};
TEST_P(NnForwardCase, MatchesReference) { testing::RunNnCase(GetParam()); }
INSTANTIATE_TEST_SUITE_P(Table, NnForwardCase, ::testing::ValuesIn(testing::NnCaseNames("")), testing::NnCaseParamName);

TensorType Type(DType t, const std::vector<int64_t>& dims) {
  Shape s;
  for (int64_t d : dims) s.push_back(Dim::Static(d));
  return TensorType{t, s};
}

// A training-mode Dropout over n elements; returns (output, mask).
struct DropoutRun {
  Tensor y, mask;
};
DropoutRun RunDropout(int64_t n, float ratio, bool training, uint64_t seed, int64_t step,
                      const std::string& out_name = "y") {
  Graph g;
  Value* x = g.AddInput("x", Type(DType::kFloat32, {n}));
  Value* r = g.AddInput("ratio", Type(DType::kFloat32, {}));
  Value* tm = g.AddInput("training_mode", Type(DType::kBool, {}));
  Node* node = g.AddNode("Dropout", {x, r, tm}, {out_name, "mask"});
  node->output(0)->type = x->type;
  node->output(1)->type = Type(DType::kBool, {n});
  std::vector<float> ones(n);
  for (int64_t i = 0; i < n; ++i) ones[i] = 1.0f + static_cast<float>(i % 7);
  Tensor xt = Tensor::FromVector(DType::kFloat32, {n}, ones);
  Tensor rt = Tensor::Scalar(DType::kFloat32, ratio);
  Tensor tt = Tensor::FromVector<int64_t>(DType::kBool, {}, {training ? 1 : 0});
  StatusOr<std::vector<Tensor>> out = RunNodeOnCpu(*node, {&xt, &rt, &tt}, seed, step);
  EXPECT_TRUE(out.ok()) << out.status().ToString();
  if (!out.ok()) return {};
  // Kept elements are scaled by 1 / (1 - ratio) in training, dropped ones are 0.
  const double scale = training ? 1.0 / (1.0 - ratio) : 1.0;
  for (int64_t i = 0; i < n; ++i) {
    const double expect = (*out)[1].GetAsInt(i) ? ones[i] * scale : 0.0;
    EXPECT_NEAR((*out)[0].GetAsDouble(i), expect, 1e-5 * expect) << "element " << i;
    if (::testing::Test::HasFailure()) break;
  }
  return {(*out)[0], (*out)[1]};
}

TEST(NnDropout, SameSeedAndStepGiveSameMask) {
  DropoutRun a = RunDropout(1000, 0.5f, true, 42, 3), b = RunDropout(1000, 0.5f, true, 42, 3);
  EXPECT_TRUE(a.mask.SameContents(b.mask));
  EXPECT_TRUE(a.y.SameContents(b.y));
}

TEST(NnDropout, StepSeedAndNodeChangeTheMask) {
  DropoutRun a = RunDropout(1000, 0.5f, true, 42, 3);
  EXPECT_FALSE(a.mask.SameContents(RunDropout(1000, 0.5f, true, 42, 4).mask));
  EXPECT_FALSE(a.mask.SameContents(RunDropout(1000, 0.5f, true, 43, 3).mask));
  EXPECT_FALSE(a.mask.SameContents(RunDropout(1000, 0.5f, true, 42, 3, "other_node").mask));
}

TEST(NnDropout, KeptFractionIsOneMinusRatio) {
  const int64_t n = 100000;
  for (float ratio : {0.1f, 0.3f, 0.75f}) {
    DropoutRun r = RunDropout(n, ratio, true, 7, 1);
    int64_t kept = 0;
    for (int64_t i = 0; i < n; ++i) kept += r.mask.GetAsInt(i);
    // 1 - ratio within 0.01: more than 6 standard deviations at n = 100k.
    EXPECT_NEAR(static_cast<double>(kept) / n, 1.0 - ratio, 0.01) << "ratio " << ratio;
  }
}

TEST(NnDropout, InferenceAndRatioZeroAreIdentity) {
  for (auto [ratio, training] : {std::pair{0.5f, false}, std::pair{0.0f, true}}) {
    DropoutRun r = RunDropout(64, ratio, training, 1, 1);
    for (int64_t i = 0; i < 64; ++i) {
      EXPECT_EQ(r.mask.GetAsInt(i), 1);
      EXPECT_EQ(r.y.GetAsDouble(i), 1.0 + static_cast<double>(i % 7));
    }
  }
}

TEST(NnDropout, DefaultsAreInferenceMode) {
  Graph g;
  Value* x = g.AddInput("x", Type(DType::kFloat32, {3}));
  Node* node = g.AddNode("Dropout", {x}, {"y"});
  node->output(0)->type = x->type;
  Tensor xt = Tensor::FromVector<float>(DType::kFloat32, {3}, {1, 2, 3});
  StatusOr<std::vector<Tensor>> out = RunNodeOnCpu(*node, {&xt}, 5, 5);
  ASSERT_TRUE(out.ok()) << out.status().ToString();
  EXPECT_TRUE(testing::AllClose((*out)[0], {1, 2, 3}));
}

TEST(NnErrors, LabelOutOfRangeNamesTheNode) {
  Graph g;
  Value* s = g.AddInput("scores", Type(DType::kFloat32, {2, 3}));
  Value* l = g.AddInput("labels", Type(DType::kInt64, {2}));
  Node* node = g.AddNode("SoftmaxCrossEntropyLoss", {s, l}, {"loss"}, "", "ce");
  node->output(0)->type = Type(DType::kFloat32, {});
  Tensor st(DType::kFloat32, {2, 3});
  Tensor lt = Tensor::FromVector<int64_t>(DType::kInt64, {2}, {0, 3});
  StatusOr<std::vector<Tensor>> out = RunNodeOnCpu(*node, {&st, &lt});
  ASSERT_FALSE(out.ok());
  EXPECT_NE(out.status().message().find("'ce'"), std::string::npos) << out.status().ToString();
  EXPECT_NE(out.status().message().find("label 3"), std::string::npos) << out.status().ToString();
}

// 1-D, 2-D and 3-D convolutions and pools run (as 3-D windows with leading axes of size 1); 4-D ones
// are refused by name.
TEST(NnErrors, Conv4DIsUnimplemented) {
  Graph g;
  Value* x = g.AddInput("x", Type(DType::kFloat32, {1, 1, 4, 4, 4, 4}));
  Value* w = g.AddInput("w", Type(DType::kFloat32, {1, 1, 3, 3, 3, 3}));
  Node* node = g.AddNode("Conv", {x, w}, {"y"}, "", "conv4d");
  node->output(0)->type = Type(DType::kFloat32, {1, 1, 2, 2, 2, 2});
  StatusOr<std::unique_ptr<OpKernel>> k = KernelRegistry::Global().Create(*node, DeviceKind::kCpu);
  ASSERT_FALSE(k.ok());
  EXPECT_EQ(k.status().code(), StatusCode::kUnimplemented);
  EXPECT_NE(k.status().message().find("conv4d"), std::string::npos) << k.status().ToString();
  EXPECT_NE(k.status().message().find("1-D, 2-D and 3-D Conv"), std::string::npos) << k.status().ToString();
}

TEST(NnErrors, Pool4DIsUnimplemented) {
  Graph g;
  Value* x = g.AddInput("x", Type(DType::kFloat32, {1, 1, 4, 4, 4, 4}));
  Node* node = g.AddNode("AveragePool", {x}, {"y"}, "", "pool4d");
  node->SetAttr("kernel_shape", std::vector<int64_t>{2, 2, 2, 2});
  node->output(0)->type = Type(DType::kFloat32, {1, 1, 3, 3, 3, 3});
  StatusOr<std::unique_ptr<OpKernel>> k = KernelRegistry::Global().Create(*node, DeviceKind::kCpu);
  ASSERT_FALSE(k.ok());
  EXPECT_EQ(k.status().code(), StatusCode::kUnimplemented);
  EXPECT_NE(k.status().message().find("pool4d"), std::string::npos) << k.status().ToString();
  EXPECT_NE(k.status().message().find("only 1-D, 2-D and 3-D windows"), std::string::npos) << k.status().ToString();
}

TEST(NnErrors, PoolOutputShapeMismatch) {
  Graph g;
  Value* x = g.AddInput("x", Type(DType::kFloat32, {1, 1, 5, 5}));
  Node* node = g.AddNode("MaxPool", {x}, {"y"}, "", "pool");
  node->SetAttr("kernel_shape", std::vector<int64_t>{2, 2});
  node->output(0)->type = Type(DType::kFloat32, {1, 1, 3, 3});  // floor mode gives 4x4
  StatusOr<std::unique_ptr<OpKernel>> k = KernelRegistry::Global().Create(*node, DeviceKind::kCpu);
  ASSERT_FALSE(k.ok());
  EXPECT_EQ(k.status().code(), StatusCode::kInvalidArgument);
}

// Shapes above the OpenMP threshold: one thread and several must agree bit for bit.
TEST(NnParallel, ForwardKernelsMatchAcrossThreadCounts) {
  using testing::NnRandom;
  using testing::NnStatic;
  struct Run {
    const char* op;
    std::vector<std::vector<int64_t>> ins;
    std::vector<std::vector<int64_t>> outs;
    std::map<std::string, AttrValue> attrs;
  };
  const std::vector<int64_t> k3{3, 3}, s2{2, 2}, p1{1, 1, 1, 1};
  std::vector<Run> runs = {
      {"Softmax", {{8, 512, 16}}, {{8, 512, 16}}, {{"axis", int64_t{1}}}},
      {"LogSoftmax", {{64, 1024}}, {{64, 1024}}, {}},
      {"LayerNormalization", {{64, 4, 256}, {256}, {256}}, {{64, 4, 256}, {64, 4, 1}, {64, 4, 1}}, {}},
      {"BatchNormalization",
       {{8, 16, 16, 17}, {16}, {16}, {16}, {16}},
       {{8, 16, 16, 17}, {16}, {16}},
       {{"training_mode", int64_t{1}}}},
      {"Conv", {{2, 8, 40, 40}, {16, 4, 3, 3}, {16}}, {{2, 16, 40, 40}}, {{"pads", p1}, {"group", int64_t{2}}}},
      {"MaxPool", {{4, 16, 32, 32}}, {{4, 16, 16, 16}}, {{"kernel_shape", k3}, {"strides", s2}, {"pads", p1}}},
      {"AveragePool", {{4, 16, 32, 32}}, {{4, 16, 16, 16}}, {{"kernel_shape", k3}, {"strides", s2}, {"pads", p1}}},
      {"GlobalAveragePool", {{4, 16, 32, 32}}, {{4, 16, 1, 1}}, {}},
  };
  for (const Run& r : runs) {
    SCOPED_TRACE(r.op);
    Graph g;
    std::vector<Value*> ins;
    std::vector<Tensor> ts;
    for (size_t i = 0; i < r.ins.size(); ++i) {
      ins.push_back(g.AddInput("in" + std::to_string(i), NnStatic(DType::kFloat32, r.ins[i])));
      ts.push_back(NnRandom(r.ins[i], static_cast<uint32_t>(i + 1)));
    }
    if (std::string(r.op) == "BatchNormalization") {  // a positive input variance
      for (int64_t c = 0; c < 16; ++c) ts[4].data<float>()[c] += 3.0f;
    }
    std::vector<std::string> names;
    for (size_t i = 0; i < r.outs.size(); ++i) names.push_back("out" + std::to_string(i));
    Node* n = g.AddNode(r.op, ins, names);
    for (size_t i = 0; i < r.outs.size(); ++i) n->output(i)->type = NnStatic(DType::kFloat32, r.outs[i]);
    for (const auto& [k, v] : r.attrs) n->SetAttr(k, v);
    std::vector<Tensor*> args;
    for (Tensor& t : ts) args.push_back(&t);
    testing::ExpectSameAcrossThreadCounts(*n, args);
  }
  // SoftmaxCrossEntropyLoss with [N,C,d1] scores and a log_prob output.
  Graph g;
  Value* s = g.AddInput("s", NnStatic(DType::kFloat32, {64, 100, 8}));
  Value* l = g.AddInput("l", NnStatic(DType::kInt64, {64, 8}));
  Node* n = g.AddNode("SoftmaxCrossEntropyLoss", {s, l}, {"loss", "log_prob"});
  n->output(0)->type = NnStatic(DType::kFloat32, {});
  n->output(1)->type = s->type;
  Tensor st = NnRandom({64, 100, 8}, 9), lt(DType::kInt64, {64, 8});
  for (int64_t i = 0; i < lt.numel(); ++i) lt.data<int64_t>()[i] = (i * 37) % 100;
  testing::ExpectSameAcrossThreadCounts(*n, {&st, &lt});
}

}  // namespace
}  // namespace dsc
