// Kernel tests of Lamb's two ops, LambMoments and LambApply (DeepSpeed's FusedLamb): whole tensors
// against the reference for a few steps (weight decay, eps_inside_sqrt, no bias correction, both
// clamps of the trust ratio, a zero norm), sharded over three ranks as ZeRO 1-2 and as a stage-3
// chunk (sums added over ranks as the all-reduce does; padding never counts), skip, node checks.
// Reference numbers: data/lamb_cases.json from gen_lamb_cases.py.
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>

#include <nlohmann/json.hpp>

#include "ir/dsc_ops.h"
#include "ir/node_checks.h"
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

const json& Cases() { return ::dsc::testing::ReferenceCases(DSC_LAMB_CASES); }

Tensor Step(int64_t k) { return Tensor::FromVector<int64_t>(DType::kInt64, {}, {k}); }

// A few float roundings: the sums are taken in double by both, the update grouped alike.
constexpr double kRtol = 2e-6, kAtol = 1e-7;

// LambMoments and LambApply of one case: param of `param_elems`, grad/moments of `state_elems`;
// LambApply reads its sums at `slot` of a [2 * (slot + 1)] input.
struct LambNodes {
  Graph g;
  Node* moments = nullptr;
  Node* apply = nullptr;
};
std::unique_ptr<LambNodes> MakeNodes(const json& c, int64_t param_elems, int64_t state_elems, int64_t slot = 0,
                                     bool skip = false) {
  auto ln = std::make_unique<LambNodes>();
  Graph& g = ln->g;
  Value* p = g.AddInput("p", F32({param_elems}));
  Value* m = g.AddInput("m", F32({state_elems}));
  Value* v = g.AddInput("v", F32({state_elems}));
  Value* skip_in = skip ? g.AddInput("skip", TensorType{DType::kBool, Shape{}}) : nullptr;
  std::vector<Value*> in = {p, g.AddInput("g", F32({state_elems})), m, v, g.AddInput("scale", F32({}))};
  // OneCycle's cycled beta1: the beta1_override input after skip (absent or not).
  Value* beta1_in = c["beta1_schedule"].empty() ? nullptr : g.AddInput("beta1", F32({}));
  if (skip_in || beta1_in) in.push_back(skip_in);
  if (beta1_in) in.push_back(beta1_in);
  ln->moments = g.AddNode(ops::kLambMoments, in, {"sums"}, kDscDomain, "moments");
  ln->moments->output(0)->type = F32({2});
  in = {p, g.AddInput("all_sums", F32({2 * (slot + 1)})), m, v, g.AddInput("lr", F32({})),
        g.AddInput("step", TensorType{DType::kInt64, Shape{}})};
  if (skip_in || beta1_in) in.push_back(skip_in);
  if (beta1_in) in.push_back(beta1_in);
  ln->apply = g.AddNode(ops::kLambApply, in, {}, kDscDomain, "apply");
  for (Node* n : {ln->moments, ln->apply})
    for (const char* a : {"beta1", "beta2", "epsilon", "weight_decay"}) n->SetAttr(a, c["attrs"][a].get<float>());
  for (Node* n : {ln->moments, ln->apply}) n->SetAttr("eps_inside_sqrt", c["attrs"]["eps_inside_sqrt"].get<int64_t>());
  ln->apply->SetAttr("bias_correction", c["attrs"]["bias_correction"].get<int64_t>());
  ln->apply->SetAttr("max_coeff", c["attrs"]["max_coeff"].get<float>());
  ln->apply->SetAttr("min_coeff", c["attrs"]["min_coeff"].get<float>());
  ln->apply->SetAttr("slot", slot);
  return ln;
}

// Step k's (0-based) beta1 of a case with a beta1_schedule; an empty tensor otherwise.
Tensor Beta1(const json& c, size_t k) {
  if (c["beta1_schedule"].empty()) return Tensor();
  return Tensor::Scalar(DType::kFloat32, c["beta1_schedule"][k].get<double>());
}

TEST(Lamb, MatchesReference) {
  for (const json& c : Cases()) {
    SCOPED_TRACE(c["name"].get<std::string>());
    const int64_t n = static_cast<int64_t>(c["param"].size());
    auto ln = MakeNodes(c, n, n, /*slot=*/1);
    Tensor p = Floats(Doubles(c["param"]));
    Tensor m(DType::kFloat32, {n}), v(DType::kFloat32, {n});
    Tensor lr = Tensor::Scalar(DType::kFloat32, c["lr"].get<double>());
    Tensor scale = Tensor::Scalar(DType::kFloat32, c["grad_scale"].get<double>());
    for (size_t k = 0; k < c["grads"].size(); ++k) {
      SCOPED_TRACE("step " + std::to_string(k + 1));
      const json& e = c["expected"][k];
      Tensor grad = Floats(Doubles(c["grads"][k]));
      Tensor beta1 = Beta1(c, k);
      Tensor* b1 = c["beta1_schedule"].empty() ? nullptr : &beta1;
      auto sums = RunNodeOnCpu(*ln->moments, {&p, &grad, &m, &v, &scale, nullptr, b1});
      ASSERT_TRUE(sums.ok()) << sums.status().message();
      EXPECT_TRUE(AllClose((*sums)[0], Doubles(e["sums"]), kRtol, 0.0));
      // Slot 1 of the sums: a NaN pair at slot 0 would poison the step if it were read.
      Tensor all = Floats({std::nan(""), std::nan(""), (*sums)[0].GetAsDouble(0), (*sums)[0].GetAsDouble(1)});
      Tensor step = Step(static_cast<int64_t>(k) + 1);
      ASSERT_TRUE(RunNodeOnCpu(*ln->apply, {&p, &all, &m, &v, &lr, &step, nullptr, b1}).ok());
      EXPECT_TRUE(AllClose(p, Doubles(e["param"]), kRtol, kAtol));
      EXPECT_TRUE(AllClose(m, Doubles(e["exp_avg"]), kRtol, kAtol));
      EXPECT_TRUE(AllClose(v, Doubles(e["exp_avg_sq"]), kRtol, kAtol));
    }
  }
}

// One step of every rank: moments on each rank's part, the partial sums added (the all-reduce),
// then each rank applies. `chunks[r]` are rank r's grad/moment tensors; `params[r]` its param
// (the whole tensor with shard = 1, its chunk with chunk_of).
void StepAllRanks(const LambNodes& ln, std::vector<Tensor>& params, std::vector<Tensor>& grads, std::vector<Tensor>& ms,
                  std::vector<Tensor>& vs, Tensor& lr, Tensor& scale, Tensor* beta1, int64_t step_no,
                  std::vector<double>* total) {
  const int world = static_cast<int>(params.size());
  Tensor sums = Floats({0.0, 0.0});
  for (int r = 0; r < world; ++r) {
    GroupPosition group(r, world);
    auto out = RunNodeOnCpu(*ln.moments, {&params[r], &grads[r], &ms[r], &vs[r], &scale, nullptr, beta1}, 0, 1, &group);
    ASSERT_TRUE(out.ok()) << out.status().message();
    sums = Floats({sums.GetAsDouble(0) + (*out)[0].GetAsDouble(0), sums.GetAsDouble(1) + (*out)[0].GetAsDouble(1)});
  }
  *total = {sums.GetAsDouble(0), sums.GetAsDouble(1)};
  Tensor step = Step(step_no);
  for (int r = 0; r < world; ++r) {
    GroupPosition group(r, world);
    auto out = RunNodeOnCpu(*ln.apply, {&params[r], &sums, &ms[r], &vs[r], &lr, &step, nullptr, beta1}, 0, 1, &group);
    ASSERT_TRUE(out.ok()) << out.status().message();
  }
}

// ZeRO 1-2 (shard = 1): each of three ranks updates its chunk of the 7-element param from chunks
// of the gradient and moments (the last one padded with NaN gradients); ZeRO 3 (chunk_of = 7):
// the param is a chunk too, its padding 3.0, which must not count in ||p||. Either way the
// trust ratio is the whole tensor's once the sums are added.
TEST(Lamb, ShardedRanksFollowTheReference) {
  const int64_t world = 3;
  for (bool stage3 : {false, true}) {
    for (const json& c : Cases()) {
      SCOPED_TRACE(c["name"].get<std::string>() + (stage3 ? " (chunk_of)" : " (shard)"));
      const int64_t n = static_cast<int64_t>(c["param"].size());
      const int64_t chunk = ops::ChunkSize(n, world);
      auto ln = MakeNodes(c, stage3 ? chunk : n, chunk);
      for (Node* node : {ln->moments, ln->apply}) {
        if (!stage3) node->SetAttr("shard", int64_t{1});
        node->SetAttr("world", world);
      }
      if (stage3) ln->moments->SetAttr("chunk_of", n);
      const std::vector<double> p0 = Doubles(c["param"]);
      std::vector<Tensor> params, grads, ms, vs;
      for (int r = 0; r < world; ++r) {
        if (stage3) {
          std::vector<double> part(static_cast<size_t>(chunk), 3.0);
          for (int64_t i = 0; i < chunk && r * chunk + i < n; ++i) part[static_cast<size_t>(i)] = p0[static_cast<size_t>(r * chunk + i)];
          params.push_back(Floats(part));
        } else {
          params.push_back(Floats(p0));
        }
        ms.emplace_back(DType::kFloat32, std::vector<int64_t>{chunk});
        vs.emplace_back(DType::kFloat32, std::vector<int64_t>{chunk});
        grads.emplace_back(DType::kFloat32, std::vector<int64_t>{chunk});
      }
      Tensor lr = Tensor::Scalar(DType::kFloat32, c["lr"].get<double>());
      Tensor scale = Tensor::Scalar(DType::kFloat32, c["grad_scale"].get<double>());
      for (size_t k = 0; k < c["grads"].size(); ++k) {
        SCOPED_TRACE("step " + std::to_string(k + 1));
        const std::vector<double> g = Doubles(c["grads"][k]);
        for (int r = 0; r < world; ++r) {
          std::vector<double> part(static_cast<size_t>(chunk), stage3 ? 0.0 : std::nan(""));
          for (int64_t i = 0; i < chunk && r * chunk + i < n; ++i) part[static_cast<size_t>(i)] = g[static_cast<size_t>(r * chunk + i)];
          grads[r] = Floats(part);
        }
        std::vector<double> total;
        Tensor beta1 = Beta1(c, k);
        StepAllRanks(*ln, params, grads, ms, vs, lr, scale, c["beta1_schedule"].empty() ? nullptr : &beta1,
                     static_cast<int64_t>(k) + 1, &total);
        const std::vector<double> want = Doubles(c["expected"][k]["sums"]);
        for (int j = 0; j < 2; ++j) EXPECT_NEAR(total[j], want[j], 1e-5 * std::fabs(want[j])) << "sum " << j;
      }
      const std::vector<double> want_p = Doubles(c["expected"].back()["param"]);
      for (int r = 0; r < world; ++r)
        for (int64_t i = 0; i < n; ++i) {
          const bool mine = i >= r * chunk && i < (r + 1) * chunk;
          if (stage3 && !mine) continue;
          const double want = mine ? want_p[static_cast<size_t>(i)] : p0[static_cast<size_t>(i)];
          const double got = params[r].GetAsDouble(stage3 ? i - r * chunk : i);
          EXPECT_NEAR(got, want, 1e-6 + 1e-5 * std::fabs(want)) << "rank " << r << " element " << i;
        }
    }
  }
}

// The skip input (an overflowed step): the moments and the param stay, the sums are 0.
TEST(Lamb, SkipChangesNothing) {
  const json& c = Cases()[1];
  const int64_t n = static_cast<int64_t>(c["param"].size());
  auto ln = MakeNodes(c, n, n, 0, /*skip=*/true);
  Tensor p = Floats(Doubles(c["param"])), grad = Floats(Doubles(c["grads"][0]));
  Tensor m = Floats(std::vector<double>(static_cast<size_t>(n), 0.5)), v = Floats(std::vector<double>(static_cast<size_t>(n), 0.25));
  Tensor lr = Tensor::Scalar(DType::kFloat32, 0.1), scale = Tensor::Scalar(DType::kFloat32, 1.0), step = Step(3);
  Tensor yes = Tensor::FromVector<uint8_t>(DType::kBool, {}, {1});
  auto sums = RunNodeOnCpu(*ln->moments, {&p, &grad, &m, &v, &scale, &yes});
  ASSERT_TRUE(sums.ok()) << sums.status().message();
  EXPECT_TRUE(AllClose((*sums)[0], {0.0, 0.0}));
  Tensor all = Floats({4.0, 1.0});
  ASSERT_TRUE(RunNodeOnCpu(*ln->apply, {&p, &all, &m, &v, &lr, &step, &yes}).ok());
  EXPECT_TRUE(AllClose(p, Doubles(c["param"]), 0.0, 0.0));
  EXPECT_TRUE(AllClose(m, std::vector<double>(static_cast<size_t>(n), 0.5), 0.0, 0.0));
  EXPECT_TRUE(AllClose(v, std::vector<double>(static_cast<size_t>(n), 0.25), 0.0, 0.0));
}

TEST(Lamb, NodeChecksAndKernelErrorsNameTheProblem) {
  const json& c = Cases()[0];
  auto ln = MakeNodes(c, 4, 4, /*slot=*/0);
  EXPECT_TRUE(CheckNode(*ln->moments, 17, NodeCheckStage::kShapes).ok());
  EXPECT_TRUE(CheckNode(*ln->apply, 17, NodeCheckStage::kShapes).ok());
  ln->apply->SetAttr("slot", int64_t{-1});
  Status s = CheckNode(*ln->apply, 17, NodeCheckStage::kShapes);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("'slot' is -1"), std::string::npos) << s.message();
  ln->moments->SetAttr("eps_inside_sqrt", int64_t{2});
  s = CheckNode(*ln->moments, 17, NodeCheckStage::kShapes);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("'eps_inside_sqrt' is 2"), std::string::npos) << s.message();
  // A slot beyond the sums, and step 0, are kernel errors.
  ln->apply->SetAttr("slot", int64_t{1});
  Tensor p(DType::kFloat32, {4}), m(DType::kFloat32, {4}), v(DType::kFloat32, {4}), sums = Floats({1.0, 1.0});
  Tensor lr = Tensor::Scalar(DType::kFloat32, 0.1), step = Step(1), zero = Step(0);
  auto r = RunNodeOnCpu(*ln->apply, {&p, &sums, &m, &v, &lr, &step});
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("slot 1 needs 4 sums, got 2"), std::string::npos) << r.status().message();
  ln->apply->SetAttr("slot", int64_t{0});
  r = RunNodeOnCpu(*ln->apply, {&p, &sums, &m, &v, &lr, &zero});
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("step must be >= 1"), std::string::npos) << r.status().message();
  // A chunk that is not ceil(n / world) elements.
  ln->moments->SetAttr("eps_inside_sqrt", int64_t{0});
  ln->moments->SetAttr("chunk_of", int64_t{9});
  ln->moments->SetAttr("world", int64_t{2});
  Tensor grad(DType::kFloat32, {4}), scale = Tensor::Scalar(DType::kFloat32, 1.0);
  GroupPosition group(0, 2);
  r = RunNodeOnCpu(*ln->moments, {&p, &grad, &m, &v, &scale}, 0, 1, &group);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("chunk of 5 elements (ceil(9 / 2)) expected, got 4"), std::string::npos)
      << r.status().message();
}

}  // namespace
}  // namespace dsc
