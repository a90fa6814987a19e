// The accumulate + optimizer programs run end to end: a linear regression with a hand-written
// backward, 3 optimizer steps of 2 micro-steps each, against torch (AdamW, gradient clipping).
#include <gtest/gtest.h>

#include <fstream>

#include <nlohmann/json.hpp>

#include "frontend/config/ds_config.h"
#include "ir/shape_inference.h"
#include "ir/text.h"
#include "passes/pass_manager.h"
#include "runtime/executor.h"
#include "tests/kernels/kernel_test_util.h"

namespace dsc {
namespace {

using ::dsc::testing::AllClose;
using nlohmann::json;

std::string Floats(const json& values) {
  std::string s;
  for (const json& v : values) s += (s.empty() ? "" : ", ") + std::to_string(v.get<double>());
  return "{" + s + "}";
}

// y = x w^T + b; loss = mean((y - t)^2); the backward of loss/gas written out: d(pred) = diff * 2/(N*gas).
std::unique_ptr<Graph> LinearRegression(const json& c) {
  const double seed = 2.0 / (c["micro_batch"].get<double>() * c["gas"].get<double>());
  std::string text = R"(<ir_version: 8, opset_import: ["" : 17]>
train (float[4,3] x, float[4,1] y) => (float[] loss)
<float[1,3] w = W, float[1] b = B, float[] c = {SEED}, int64[1] ax0 = {0}, int64[1] ax1 = {1}>
{
  xw = Mul(x, w)
  s = ReduceSum <keepdims = 1> (xw, ax1)
  pred = Add(s, b)
  diff = Sub(pred, y)
  sq = Mul(diff, diff)
  loss = ReduceMean <keepdims = 0> (sq)
  dpred = Mul(diff, c)
  dxw = Mul(dpred, x)
  dw = ReduceSum <keepdims = 1> (dxw, ax0)
  db = ReduceSum <keepdims = 0> (dpred, ax0)
}
)";
  text.replace(text.find("W,"), 1, Floats(c["w"]));
  text.replace(text.find("B,"), 1, Floats(c["b"]));
  text.replace(text.find("SEED"), 4, std::to_string(seed));
  auto g = ParseGraph(text);
  EXPECT_TRUE(g.ok()) << g.status().ToString();
  EXPECT_TRUE(InferShapes(**g).ok());
  (*g)->training.loss = "loss";
  (*g)->training.parameters = {"w", "b"};
  (*g)->training.gradients = {"dw", "db"};
  return std::move(*g);
}

Tensor Data(const json& values, std::vector<int64_t> dims) {
  return Tensor::FromVector(DType::kFloat32, std::move(dims), values.get<std::vector<double>>());
}

TEST(TrainStep, LinearRegressionMatchesTorchAdamW) {
  std::ifstream in(DSC_TRAINING_CASES);
  const json c = json::parse(in)["linreg"];
  json config = {{"train_batch_size", 8},
                 {"train_micro_batch_size_per_gpu", 4},
                 {"gradient_clipping", c["gradient_clipping"]},
                 {"optimizer", {{"type", "AdamW"}, {"params", {{"lr", c["lr"]}, {"weight_decay", c["weight_decay"]}}}}}};
  std::vector<std::string> warnings;
  auto cfg = ParseDsConfig(config.dump(), ConfigOptions{}, &warnings);
  ASSERT_TRUE(cfg.ok()) << cfg.status().ToString();
  ASSERT_EQ(cfg->gradient_accumulation_steps, c["gas"].get<int64_t>());

  Module m;
  m.programs.push_back(PlanProgram{"train", LinearRegression(c)});
  PassContext ctx;
  ctx.config = &*cfg;
  auto ran = RunPipeline(m, {PassId::kAccumulate, PassId::kOptimizer}, ctx, PipelineOptions{});
  ASSERT_TRUE(ran.ok()) << ran.status().ToString();
  const Graph& micro = *m.FindProgram("micro_step")->graph;
  const Graph& step = *m.FindProgram("step")->graph;

  // One host tensor per state tensor, bound by name in both programs, as the runtime does.
  std::map<std::string, Tensor> state;
  for (const StateInfo& s : m.state) {
    Tensor t(s.dtype, s.dims);
    if (!s.zero_init) {
      const Tensor& init = m.initial_state->FindValue(s.name)->initializer();
      std::memcpy(t.raw(), init.raw(), init.nbytes());
    }
    state.emplace(s.name, std::move(t));
  }
  ASSERT_EQ(state.size(), 8u);  // w and b, each with ::grad, ::exp_avg and ::exp_avg_sq
  auto bind = [&state](const Graph& g, std::map<std::string, Tensor*> bound) {
    for (const Value* v : g.inputs())
      if (state.count(v->name())) bound[v->name()] = &state.at(v->name());
    return bound;
  };

  const int64_t gas = c["gas"].get<int64_t>();
  Tensor lr = Tensor::Scalar(DType::kFloat32, c["lr"].get<double>());
  for (size_t k = 0; k < c["trajectory"].size(); ++k) {
    SCOPED_TRACE("optimizer step " + std::to_string(k + 1));
    for (int64_t i = 0; i < gas; ++i) {
      const size_t micro_index = k * gas + i;
      Tensor x = Data(c["x"][micro_index], {4, 3}), y = Data(c["y"][micro_index], {4, 1});
      auto out = RunGraphOnCpu(micro, bind(micro, {{"x", &x}, {"y", &y}}));
      ASSERT_TRUE(out.ok()) << out.status().ToString();
      EXPECT_TRUE(AllClose(out->at("loss"), {c["losses"][micro_index].get<double>()}));
    }
    Tensor step_no = Tensor::FromVector<int64_t>(DType::kInt64, {}, {static_cast<int64_t>(k) + 1});
    auto out = RunGraphOnCpu(step, bind(step, {{"dsc::lr", &lr}, {"dsc::step", &step_no}}));
    ASSERT_TRUE(out.ok()) << out.status().ToString();
    EXPECT_TRUE(AllClose(out->at("dsc::grad_norm"), {c["grad_norms"][k].get<double>()}));
    EXPECT_TRUE(AllClose(state.at("w"), c["trajectory"][k]["w"].get<std::vector<double>>(), 1e-5, 1e-6));
    EXPECT_TRUE(AllClose(state.at("b"), c["trajectory"][k]["b"].get<std::vector<double>>(), 1e-5, 1e-6));
    EXPECT_TRUE(AllClose(state.at("w::grad"), {0, 0, 0}, 0, 0)) << "the step must clear the accumulators";
  }
}

}  // namespace
}  // namespace dsc
