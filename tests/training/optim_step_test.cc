// Kernel tests of OptimStep, the element-wise optimizers (ir/optim_algorithms.h): each algorithm
// against torch.optim (DeepSpeed's FusedLion kernel for Lion) for a few steps, whole and sharded
// over three ranks (Lion, Adamax, RAdam and NAdam also with a beta1 changing every step, as
// OneCycle writes it: NAdam then keeps torch's mu_product in its mu_product input), NAdam's
// mu_product cache, and the checks on the node.
// Reference numbers: data/optim_step_cases.json from gen_optim_step_cases.py (torch >= 2).
#include <gtest/gtest.h>

#include <fstream>

#include <nlohmann/json.hpp>

#include "ir/dsc_ops.h"
#include "ir/node_checks.h"
#include "ir/optim_algorithms.h"
#include "kernels/common/optimizer_math.h"
#include "tests/kernels/kernel_test_util.h"
#include "tests/training/group_position.h"
#include "tests/training/reference_cases.h"

namespace dsc {
namespace {

using ::dsc::testing::AllClose;
using ::dsc::testing::Doubles;
using ::dsc::testing::F32;
using ::dsc::testing::Floats;
using ::dsc::testing::GroupPosition;
using ::dsc::testing::RunNodeOnCpu;
using nlohmann::json;

const json& Cases() { return ::dsc::testing::ReferenceCases(DSC_OPTIM_STEP_CASES); }

// Whether the case's node takes the mu_product input (NAdam with a cycled beta1).
bool TakesMuProduct(const json& c) { return c["algorithm"] == "nadam" && !c["beta1_schedule"].empty(); }

// The lr, step, scale inputs of step k (0-based), then the case's skip (none) and beta1 of step k,
// then for NAdam no param_copy and `mu_product`, the state carried from step to step.
void AddScalarArgs(const json& c, size_t k, Tensor* lr, Tensor* step, Tensor* scale, Tensor* beta1,
                   Tensor* mu_product, std::vector<Tensor*>* args) {
  args->insert(args->end(), {lr, step, scale});
  if (c["beta1_schedule"].empty()) return;
  *beta1 = Tensor::Scalar(DType::kFloat32, c["beta1_schedule"][k].get<double>());
  args->insert(args->end(), {nullptr, beta1});
  if (TakesMuProduct(c)) args->insert(args->end(), {nullptr, mu_product});
}

// torch's initial mu_product.
Tensor MuProductOne() { return Tensor::Scalar(DType::kFloat32, 1.0); }

std::vector<double> Slice(const std::vector<double>& v, int64_t from, int64_t len) {
  return std::vector<double>(v.begin() + from, v.begin() + from + len);
}

// Optimizer-step tolerances: a few float roundings of difference in how the update is grouped.
constexpr double kRtol = 2e-6, kAtol = 1e-7;

// OptimStep(p, g, states..., lr, step, scale[, skip = none, beta1][, param_copy = none, mu_product])
// for a case: param and states of `state_elems` elements (a shard's when `world` > 0, then with
// shard = 1 and world); beta1 when the case has a beta1_schedule, and mu_product for NAdam then.
struct CaseNode {
  Graph g;
  Node* node = nullptr;
};
std::unique_ptr<CaseNode> MakeNode(const json& c, int64_t param_elems, int64_t state_elems, int64_t world) {
  auto cn = std::make_unique<CaseNode>();
  Graph& g = cn->g;
  std::vector<Value*> in = {g.AddInput("p", F32({param_elems})), g.AddInput("g", F32({state_elems}))};
  for (const json& s : c["states"]) in.push_back(g.AddInput(s.get<std::string>(), F32({state_elems})));
  in.push_back(g.AddInput("lr", F32({})));
  in.push_back(g.AddInput("step", TensorType{DType::kInt64, Shape{}}));
  in.push_back(g.AddInput("scale", F32({})));
  // OneCycle's cycled beta1: the beta1_override input after an absent skip.
  if (!c["beta1_schedule"].empty()) in.insert(in.end(), {nullptr, g.AddInput("beta1", F32({}))});
  if (TakesMuProduct(c)) in.insert(in.end(), {nullptr, g.AddInput("mu_product", F32({}))});
  cn->node = g.AddNode(ops::kOptimStep, in, {}, kDscDomain, c["name"].get<std::string>());
  cn->node->SetAttr("algorithm", c["algorithm"].get<std::string>());
  for (const auto& [k, v] : c["attrs"].items()) {
    if (k == "centered" || k == "decoupled_weight_decay") cn->node->SetAttr(k, v.get<int64_t>());
    else cn->node->SetAttr(k, v.get<float>());
  }
  if (world > 0) {
    cn->node->SetAttr("shard", int64_t{1});
    cn->node->SetAttr("world", world);
  }
  return cn;
}

TEST(OptimStep, EveryAlgorithmHasCases) {
  for (const OptimAlgorithmInfo& a : OptimAlgorithms()) {
    int count = 0;
    for (const json& c : Cases()) count += c["algorithm"] == a.name;
    EXPECT_GE(count, 2) << a.name << ": a case without and one with weight decay";
  }
}

TEST(OptimStep, MatchesReference) {
  for (const json& c : Cases()) {
    SCOPED_TRACE(c["name"].get<std::string>());
    const int64_t n = static_cast<int64_t>(c["param"].size());
    auto cn = MakeNode(c, n, n, 0);
    ASSERT_EQ(OptimStateSuffixesOf(*cn->node).size(), c["states"].size());
    Tensor p = Floats(Doubles(c["param"]));
    std::vector<Tensor> states;
    for (size_t j = 0; j < c["states"].size(); ++j) states.emplace_back(DType::kFloat32, std::vector<int64_t>{n});
    Tensor lr = Tensor::Scalar(DType::kFloat32, c["lr"].get<double>());
    Tensor scale = Tensor::Scalar(DType::kFloat32, c["grad_scale"].get<double>());
    Tensor mu_product = MuProductOne();
    for (size_t k = 0; k < c["grads"].size(); ++k) {
      SCOPED_TRACE("step " + std::to_string(k + 1));
      Tensor grad = Floats(Doubles(c["grads"][k]));
      Tensor step = Tensor::FromVector<int64_t>(DType::kInt64, {}, {static_cast<int64_t>(k) + 1});
      std::vector<Tensor*> args = {&p, &grad};
      for (Tensor& s : states) args.push_back(&s);
      Tensor beta1;
      AddScalarArgs(c, k, &lr, &step, &scale, &beta1, &mu_product, &args);
      ASSERT_TRUE(RunNodeOnCpu(*cn->node, args).ok());
      const json& e = c["expected"][k];
      EXPECT_TRUE(AllClose(p, Doubles(e["param"]), kRtol, kAtol));
      for (size_t j = 0; j < states.size(); ++j)
        EXPECT_TRUE(AllClose(states[j], Doubles(e["states"][j]), kRtol, kAtol)) << c["states"][j];
      // torch's float32 mu_product *= mu, bit for bit.
      if (TakesMuProduct(c)) EXPECT_EQ(mu_product.data<float>()[0], e["mu_product"].get<float>());
    }
  }
}

// ZeRO 1-2: three ranks each update their chunk of the 7-element param from chunks of the gradient
// and the states (ceil(7/3) = 3 elements, the last rank's padded); the chunks follow the
// reference. Padding gradients are NaN: nothing of them may reach the parameter.
TEST(OptimStep, ShardedRanksFollowTheReference) {
  const int64_t world = 3;
  for (const json& c : Cases()) {
    SCOPED_TRACE(c["name"].get<std::string>());
    const int64_t n = static_cast<int64_t>(c["param"].size());
    const int64_t chunk = ops::ChunkSize(n, world);
    auto cn = MakeNode(c, n, chunk, world);
    for (int rank = 0; rank < world; ++rank) {
      SCOPED_TRACE("rank " + std::to_string(rank));
      const int64_t begin = std::min(n, rank * chunk), len = std::min(n, (rank + 1) * chunk) - begin;
      GroupPosition group(rank, static_cast<int>(world));
      Tensor p = Floats(Doubles(c["param"]));
      std::vector<Tensor> states;
      for (size_t j = 0; j < c["states"].size(); ++j) states.emplace_back(DType::kFloat32, std::vector<int64_t>{chunk});
      Tensor lr = Tensor::Scalar(DType::kFloat32, c["lr"].get<double>());
      Tensor scale = Tensor::Scalar(DType::kFloat32, c["grad_scale"].get<double>());
      Tensor mu_product = MuProductOne();  // whole on every rank
      for (size_t k = 0; k < c["grads"].size(); ++k) {
        std::vector<double> g = Slice(Doubles(c["grads"][k]), begin, len);
        g.resize(static_cast<size_t>(chunk), std::nan(""));
        Tensor grad = Floats(g);
        Tensor step = Tensor::FromVector<int64_t>(DType::kInt64, {}, {static_cast<int64_t>(k) + 1});
        std::vector<Tensor*> args = {&p, &grad};
        for (Tensor& s : states) args.push_back(&s);
        Tensor beta1;
        AddScalarArgs(c, k, &lr, &step, &scale, &beta1, &mu_product, &args);
        ASSERT_TRUE(RunNodeOnCpu(*cn->node, args, 0, 1, &group).ok());
      }
      const json& e = c["expected"].back();
      if (TakesMuProduct(c)) EXPECT_EQ(mu_product.data<float>()[0], e["mu_product"].get<float>());
      const std::vector<double> want_p = Doubles(e["param"]), p0 = Doubles(c["param"]);
      for (int64_t i = 0; i < n; ++i) {
        const bool mine = i >= begin && i < begin + len;
        const double want = mine ? want_p[static_cast<size_t>(i)] : p0[static_cast<size_t>(i)];
        EXPECT_NEAR(p.GetAsDouble(i), want, kAtol + kRtol * std::fabs(want)) << "element " << i << (mine ? "" : " (not this rank's)");
      }
      for (size_t j = 0; j < states.size(); ++j)
        for (int64_t i = 0; i < len; ++i) {
          const double want = Doubles(e["states"][j])[static_cast<size_t>(begin + i)];
          EXPECT_NEAR(states[j].GetAsDouble(i), want, kAtol + kRtol * std::fabs(want)) << c["states"][j] << " " << i;
        }
    }
  }
}

// The cache of NAdam's mu_product (kernels keep it between steps): advancing one step at a time,
// jumping ahead and going back (a resumed run) all give the product computed from step 1.
TEST(OptimStep, NadamMuProductCacheEqualsAFreshProduct) {
  auto fresh = [](int64_t step) {
    int64_t at = 0;
    float product = 1.0f;
    return optim::NadamMuProduct(0.9, 4e-3, step, &at, &product);
  };
  float expect = 1.0f;
  for (int64_t t = 1; t <= 5; ++t) expect = expect * static_cast<float>(0.9 * (1.0 - 0.5 * std::pow(0.96, t * 4e-3)));
  EXPECT_EQ(fresh(5), expect);
  int64_t at = 0;
  float product = 1.0f;
  for (int64_t step : {1, 2, 3, 7, 8, 4, 30, 2, 100})
    EXPECT_EQ(optim::NadamMuProduct(0.9, 4e-3, step, &at, &product), fresh(step)) << "step " << step;
}

// A skipped step (an fp16 overflow: torch's step() is never called) leaves NAdam's mu_product as it
// was; the next applied step advances it as the reference's first step does.
TEST(OptimStep, SkippedStepLeavesMuProduct) {
  for (const json& c : Cases()) {
    if (!TakesMuProduct(c)) continue;
    SCOPED_TRACE(c["name"].get<std::string>());
    const int64_t n = static_cast<int64_t>(c["param"].size());
    auto cn = MakeNode(c, n, n, 0);
    const size_t skip_index = c["states"].size() + 5;
    cn->node->SetInput(skip_index, cn->g.AddInput("skip", TensorType{DType::kBool, Shape{}}));
    Tensor p = Floats(Doubles(c["param"])), grad = Floats(Doubles(c["grads"][0]));
    std::vector<Tensor> states;
    for (size_t j = 0; j < c["states"].size(); ++j) states.emplace_back(DType::kFloat32, std::vector<int64_t>{n});
    Tensor lr = Tensor::Scalar(DType::kFloat32, c["lr"].get<double>());
    Tensor scale = Tensor::Scalar(DType::kFloat32, c["grad_scale"].get<double>());
    Tensor step = Tensor::FromVector<int64_t>(DType::kInt64, {}, {1});
    Tensor mu_product = MuProductOne(), beta1;
    for (bool skipped : {true, false}) {
      Tensor skip = Tensor::FromVector<uint8_t>(DType::kBool, {}, {static_cast<uint8_t>(skipped ? 1 : 0)});
      std::vector<Tensor*> args = {&p, &grad};
      for (Tensor& st : states) args.push_back(&st);
      AddScalarArgs(c, 0, &lr, &step, &scale, &beta1, &mu_product, &args);
      args[skip_index] = &skip;
      ASSERT_TRUE(RunNodeOnCpu(*cn->node, args).ok());
      EXPECT_EQ(mu_product.data<float>()[0], skipped ? 1.0f : c["expected"][0]["mu_product"].get<float>())
          << (skipped ? "skipped" : "applied");
    }
    EXPECT_TRUE(AllClose(p, Doubles(c["expected"][0]["param"]), kRtol, kAtol));
  }
}

TEST(OptimStep, NodeChecksNameTheProblem) {
  const json& c = Cases()[0];  // lion: one state
  auto cn = MakeNode(c, 4, 4, 0);
  EXPECT_TRUE(CheckNode(*cn->node, 17, NodeCheckStage::kShapes).ok());
  cn->node->SetAttr("algorithm", std::string("lamb"));
  Status s = CheckNode(*cn->node, 17, NodeCheckStage::kShapes);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("'algorithm' is 'lamb', must be one of 'lion'"), std::string::npos) << s.message();
  auto k = KernelRegistry::Global().Create(*cn->node, DeviceKind::kCpu);
  ASSERT_FALSE(k.ok());
  EXPECT_NE(k.status().message().find("unknown algorithm 'lamb'"), std::string::npos) << k.status().message();
  // Adadelta takes two states: the one-state node has one input too few.
  cn->node->SetAttr("algorithm", std::string("adadelta"));
  s = CheckNode(*cn->node, 17, NodeCheckStage::kShapes);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("algorithm 'adadelta' with these attributes takes 7"), std::string::npos) << s.message();
  cn->node->SetAttr("algorithm", std::string("lion"));
  cn->node->SetAttr("shard", int64_t{2});
  s = CheckNode(*cn->node, 17, NodeCheckStage::kShapes);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("'shard' is 2"), std::string::npos) << s.message();
}

// beta1_override (OneCycle's cycled momentum) is taken by Lion, Adamax, RAdam and NAdam (with its
// mu_product input, and only then), not by those without a beta1.
TEST(OptimStep, Beta1OverrideOnlyWhereBeta1IsReadEachStep) {
  for (const json& c : Cases()) {
    if (c["beta1_schedule"].empty()) continue;
    auto cn = MakeNode(c, 7, 7, 0);
    EXPECT_TRUE(CheckNode(*cn->node, 17, NodeCheckStage::kShapes).ok()) << c["name"];
    EXPECT_TRUE(KernelRegistry::Global().Create(*cn->node, DeviceKind::kCpu).ok()) << c["name"];
  }
  json c = Cases()[0];  // lion: one state
  c["beta1_schedule"] = {0.9};
  auto cn = MakeNode(c, 4, 4, 0);
  cn->node->SetAttr("algorithm", std::string("adagrad"));
  Status s = CheckNode(*cn->node, 17, NodeCheckStage::kShapes);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("input 7 (beta1_override) is not taken by algorithm 'adagrad'"), std::string::npos)
      << s.message();
  auto k = KernelRegistry::Global().Create(*cn->node, DeviceKind::kCpu);
  ASSERT_FALSE(k.ok());
  EXPECT_NE(k.status().message().find("takes no beta1_override"), std::string::npos) << k.status().message();
  // Lion's wrong-typed beta1: a float scalar is required.
  cn->node->SetAttr("algorithm", std::string("lion"));
  cn->node->SetInput(7, cn->g.AddInput("beta1_int", TensorType{DType::kInt64, Shape{}}));
  k = KernelRegistry::Global().Create(*cn->node, DeviceKind::kCpu);
  ASSERT_FALSE(k.ok());
  EXPECT_NE(k.status().message().find("input 7 must be a float scalar"), std::string::npos) << k.status().message();
  // Lion takes no mu_product; NAdam with beta1_override needs one.
  cn->node->SetInput(7, cn->g.FindValue("beta1"));
  cn->node->AddInput(nullptr);
  cn->node->AddInput(cn->g.AddInput("mu_product", F32({})));
  s = CheckNode(*cn->node, 17, NodeCheckStage::kShapes);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("input 9 (mu_product) is given, but algorithm 'lion' takes it only with beta1_override"),
            std::string::npos) << s.message();
  k = KernelRegistry::Global().Create(*cn->node, DeviceKind::kCpu);
  ASSERT_FALSE(k.ok());
  EXPECT_NE(k.status().message().find("algorithm 'lion' takes no mu_product (input 9)"), std::string::npos)
      << k.status().message();
  for (const json& n : Cases()) {
    if (!TakesMuProduct(n)) continue;
    auto nadam = MakeNode(n, 7, 7, 0);
    nadam->node->SetInput(OptimStateSuffixesOf(*nadam->node).size() + 8, nullptr);
    s = CheckNode(*nadam->node, 17, NodeCheckStage::kShapes);
    ASSERT_FALSE(s.ok());
    EXPECT_NE(s.message().find("input 10 (mu_product) is required by 'nadam' with beta1_override"), std::string::npos)
        << s.message();
    k = KernelRegistry::Global().Create(*nadam->node, DeviceKind::kCpu);
    ASSERT_FALSE(k.ok());
    EXPECT_NE(k.status().message().find("algorithm 'nadam' needs a mu_product (input 10) with beta1_override"),
              std::string::npos) << k.status().message();
    break;
  }
}

TEST(OptimStep, StepZeroAndSizeMismatchAreErrors) {
  const json& c = Cases()[0];
  auto cn = MakeNode(c, 4, 4, 0);
  Tensor p(DType::kFloat32, {4}), grad(DType::kFloat32, {4}), m(DType::kFloat32, {4});
  Tensor lr = Tensor::Scalar(DType::kFloat32, 0.1), scale = Tensor::Scalar(DType::kFloat32, 1.0);
  Tensor zero = Tensor::FromVector<int64_t>(DType::kInt64, {}, {0});
  auto r = RunNodeOnCpu(*cn->node, {&p, &grad, &m, &lr, &zero, &scale});
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("step must be >= 1"), std::string::npos) << r.status().message();
  Tensor one = Tensor::FromVector<int64_t>(DType::kInt64, {}, {1}), small(DType::kFloat32, {3});
  r = RunNodeOnCpu(*cn->node, {&p, &grad, &small, &lr, &one, &scale});
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("4 elements updated from 3"), std::string::npos) << r.status().message();
}

}  // namespace
}  // namespace dsc
