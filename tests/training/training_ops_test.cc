// Kernel tests of the training ops (ir/dsc_ops.h): AdamStep and SGDStep against torch.optim run for
// a few steps, ClipScale against clip_grad_norm_, SumSquares, and the in-place helpers.
#include <gtest/gtest.h>

#include <fstream>

#include <nlohmann/json.hpp>

#include "ir/dsc_ops.h"
#include "tests/kernels/kernel_test_util.h"

namespace dsc {
namespace {

using ::dsc::testing::AllClose;
using ::dsc::testing::F32;
using ::dsc::testing::RunNodeOnCpu;
using nlohmann::json;

const json& Cases() {
  static const json* cases = [] {
    std::ifstream in(DSC_TRAINING_CASES);
    return new json(json::parse(in));
  }();
  return *cases;
}


Tensor Floats(const json& values, std::vector<int64_t> dims = {}) {
  std::vector<double> v = values.get<std::vector<double>>();
  if (dims.empty()) dims = {static_cast<int64_t>(v.size())};
  return Tensor::FromVector(DType::kFloat32, dims, v);
}

Tensor Scalar(double v) { return Tensor::Scalar(DType::kFloat32, v); }
Tensor Step(int64_t k) { return Tensor::FromVector<int64_t>(DType::kInt64, {}, {k}); }

std::vector<double> Doubles(const json& values) { return values.get<std::vector<double>>(); }

// Optimizer-step tolerances: a few float roundings of difference in how the update is grouped.
constexpr double kRtol = 2e-6, kAtol = 1e-7;

TEST(AdamStep, MatchesTorch) {
  for (const json& c : Cases()["adam"]) {
    SCOPED_TRACE(c["name"].get<std::string>());
    const int64_t n = static_cast<int64_t>(c["param"].size());
    const bool override_beta1 = !c["beta1_schedule"].empty();
    Graph g;
    std::vector<Value*> in;
    for (const char* name : {"p", "g", "m", "v"}) in.push_back(g.AddInput(name, F32({n})));
    in.push_back(g.AddInput("lr", F32({})));
    in.push_back(g.AddInput("step", TensorType{DType::kInt64, Shape{}}));
    in.push_back(g.AddInput("scale", F32({})));
    if (override_beta1) in.push_back(g.AddInput("beta1", F32({})));
    Node* node = g.AddNode(ops::kAdamStep, in, {}, kDscDomain);
    const json& a = c["attrs"];
    for (const char* k : {"beta1", "beta2", "epsilon", "weight_decay"}) node->SetAttr(k, a[k].get<float>());
    for (const char* k : {"adam_w_mode", "bias_correction"}) node->SetAttr(k, a[k].get<int64_t>());

    Tensor p = Floats(c["param"]), m(DType::kFloat32, {n}), v(DType::kFloat32, {n});
    Tensor lr = Scalar(c["lr"].get<double>()), scale = Scalar(c["grad_scale"].get<double>());
    for (size_t k = 0; k < c["grads"].size(); ++k) {
      SCOPED_TRACE("step " + std::to_string(k + 1));
      Tensor grad = Floats(c["grads"][k]), step = Step(static_cast<int64_t>(k) + 1);
      Tensor beta1 = override_beta1 ? Scalar(c["beta1_schedule"][k].get<double>()) : Tensor();
      std::vector<Tensor*> args = {&p, &grad, &m, &v, &lr, &step, &scale};
      if (override_beta1) args.push_back(&beta1);
      ASSERT_TRUE(RunNodeOnCpu(*node, args).ok());
      const json& e = c["expected"][k];
      EXPECT_TRUE(AllClose(m, Doubles(e["exp_avg"]), kRtol, kAtol));
      EXPECT_TRUE(AllClose(v, Doubles(e["exp_avg_sq"]), kRtol, 1e-9));
      EXPECT_TRUE(AllClose(p, Doubles(e["param"]), kRtol, kAtol));
    }
  }
}

TEST(SGDStep, MatchesTorch) {
  for (const json& c : Cases()["sgd"]) {
    SCOPED_TRACE(c["name"].get<std::string>());
    const int64_t n = static_cast<int64_t>(c["param"].size());
    const json& a = c["attrs"];
    const bool momentum = a["momentum"].get<double>() != 0;
    Graph g;
    Value* p_in = g.AddInput("p", F32({n}));
    Value* g_in = g.AddInput("g", F32({n}));
    Value* buf_in = momentum ? g.AddInput("buf", F32({n})) : nullptr;
    std::vector<Value*> in = {p_in, g_in, buf_in, g.AddInput("lr", F32({})),
                              g.AddInput("step", TensorType{DType::kInt64, Shape{}}), g.AddInput("scale", F32({}))};
    Node* node = g.AddNode(ops::kSGDStep, in, {}, kDscDomain);
    for (const char* k : {"momentum", "dampening", "weight_decay"}) node->SetAttr(k, a[k].get<float>());
    node->SetAttr("nesterov", a["nesterov"].get<int64_t>());

    Tensor p = Floats(c["param"]), buf(DType::kFloat32, {n});
    Tensor lr = Scalar(c["lr"].get<double>()), scale = Scalar(c["grad_scale"].get<double>());
    for (size_t k = 0; k < c["grads"].size(); ++k) {
      SCOPED_TRACE("step " + std::to_string(k + 1));
      Tensor grad = Floats(c["grads"][k]), step = Step(static_cast<int64_t>(k) + 1);
      ASSERT_TRUE(RunNodeOnCpu(*node, {&p, &grad, momentum ? &buf : nullptr, &lr, &step, &scale}).ok());
      const json& e = c["expected"][k];
      EXPECT_TRUE(AllClose(p, Doubles(e["param"]), kRtol, kAtol));
      if (momentum) {
        EXPECT_TRUE(AllClose(buf, Doubles(e["momentum_buffer"]), kRtol, kAtol));
      }
    }
  }
}

TEST(SGDStep, MomentumWithoutBufferIsAnError) {
  Graph g;
  std::vector<Value*> in = {g.AddInput("p", F32({2})), g.AddInput("g", F32({2})), nullptr, g.AddInput("lr", F32({})),
                            g.AddInput("step", TensorType{DType::kInt64, Shape{}}), g.AddInput("scale", F32({}))};
  Node* node = g.AddNode(ops::kSGDStep, in, {}, kDscDomain);
  node->SetAttr("momentum", 0.9f);
  auto k = KernelRegistry::Global().Create(*node, DeviceKind::kCpu);
  ASSERT_FALSE(k.ok());
  EXPECT_NE(k.status().message().find("momentum_buffer"), std::string::npos) << k.status().message();
}

TEST(ClipScale, MatchesClipGradNorm) {
  for (const json& c : Cases()["clip"]) {
    SCOPED_TRACE(c.dump());
    Graph g;
    Node* node = g.AddNode(ops::kClipScale, {g.AddInput("norm", F32({}))}, {"scale"}, kDscDomain);
    node->SetAttr("max_norm", c["max_norm"].get<float>());
    node->output(0)->type = F32({});
    Tensor norm = Scalar(c["norm"].get<double>());
    auto out = RunNodeOnCpu(*node, {&norm});
    ASSERT_TRUE(out.ok()) << out.status().ToString();
    EXPECT_TRUE(AllClose((*out)[0], {c["scale"].get<double>()}, 1e-7, 0));
  }
}

TEST(SumSquares, AllInputsInDouble) {
  const json& c = Cases()["sum_squares"];
  Graph g;
  std::vector<Value*> in;
  std::vector<Tensor> tensors;
  for (const json& t : c["inputs"]) {
    std::vector<int64_t> dims = t["dims"].get<std::vector<int64_t>>();
    in.push_back(g.AddInput(StrCat("x", in.size()), F32(dims)));
    tensors.push_back(Floats(t["data"], dims));
  }
  Node* node = g.AddNode(ops::kSumSquares, in, {"s"}, kDscDomain);
  node->output(0)->type = F32({});
  std::vector<Tensor*> args;
  for (Tensor& t : tensors) args.push_back(&t);
  auto out = RunNodeOnCpu(*node, args);
  ASSERT_TRUE(out.ok()) << out.status().ToString();
  EXPECT_TRUE(AllClose((*out)[0], {c["sum"].get<double>()}, 1e-7, 0));
}

TEST(SumSquares, LargeInputUsesThreadsAndStaysExact) {
  // 1M values of 1e-3: a float running sum drifts visibly, the double one does not.
  const int64_t n = 1 << 20;
  Graph g;
  Node* node = g.AddNode(ops::kSumSquares, {g.AddInput("x", F32({n}))}, {"s"}, kDscDomain);
  node->output(0)->type = F32({});
  Tensor x(DType::kFloat32, {n});
  for (int64_t i = 0; i < n; ++i) x.data<float>()[i] = 1e-3f;
  auto out = RunNodeOnCpu(*node, {&x});
  ASSERT_TRUE(out.ok());
  const double v = static_cast<double>(1e-3f);
  EXPECT_TRUE(AllClose((*out)[0], {v * v * n}, 1e-7, 0));
}

TEST(InPlaceOps, AccumulateAssignZeroFill) {
  Graph g;
  Value* acc = g.AddInput("acc", F32({2, 3}));
  Value* x = g.AddInput("x", F32({2, 3}));
  Node* accumulate = g.AddNode(ops::kAccumulate, {acc, x}, {}, kDscDomain);
  Node* assign = g.AddNode(ops::kAssign, {acc, x}, {}, kDscDomain);
  Node* zero = g.AddNode(ops::kZeroFill, {acc}, {}, kDscDomain);
  Tensor a = Floats(json{1, 2, 3, 4, 5, 6}, {2, 3}), b = Floats(json{0.5, -1, 0, 2, 0.25, -6}, {2, 3});
  ASSERT_TRUE(RunNodeOnCpu(*accumulate, {&a, &b}).ok());
  EXPECT_TRUE(AllClose(a, {1.5, 1, 3, 6, 5.25, 0}));
  ASSERT_TRUE(RunNodeOnCpu(*accumulate, {&a, &b}).ok());
  EXPECT_TRUE(AllClose(a, {2, 0, 3, 8, 5.5, -6}));
  ASSERT_TRUE(RunNodeOnCpu(*assign, {&a, &b}).ok());
  EXPECT_TRUE(AllClose(a, {0.5, -1, 0, 2, 0.25, -6}));
  ASSERT_TRUE(RunNodeOnCpu(*zero, {&a}).ok());
  EXPECT_TRUE(AllClose(a, {0, 0, 0, 0, 0, 0}, 0, 0));
}

TEST(InPlaceOps, SizeMismatchIsAnError) {
  Graph g;
  Node* n = g.AddNode(ops::kAccumulate, {g.AddInput("acc", F32({2})), g.AddInput("x", F32({3}))}, {}, kDscDomain);
  Tensor a(DType::kFloat32, {2}), b(DType::kFloat32, {3});
  EXPECT_FALSE(RunNodeOnCpu(*n, {&a, &b}).ok());
}

}  // namespace
}  // namespace dsc
