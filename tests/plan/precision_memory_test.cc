// Model-state bytes per rank of fp16/bf16 plans follow the ZeRO paper's mixed-precision formula
// (2Ψ half parameters + 2Ψ half gradients + 12Ψ fp32 master, exp_avg, exp_avg_sq), sharded per
// stage, in dsinspect --json; and dsrun's run-time figures equal the plan's.
#include <cstdint>
#include <fstream>
#include <ostream>
#include <string>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "tests/testutil/test_util.h"

namespace dsc {
namespace {

using testing::RunCommand;
using testing::ShellQuote;
using json = nlohmann::json;

struct Case {
  const char* dtype;  // "fp16" | "bf16"
  int stage;
  int world;
};

void PrintTo(const Case& c, std::ostream* os) { *os << c.dtype << " stage " << c.stage << " world " << c.world; }

std::string Name(const ::testing::TestParamInfo<Case>& info) {
  return std::string(info.param.dtype) + "_stage" + std::to_string(info.param.stage) + "_w" +
         std::to_string(info.param.world);
}

class PrecisionMemory : public ::testing::TestWithParam<Case> {};

TEST_P(PrecisionMemory, ModelStatesFollowTheZeroFormula) {
  const Case c = GetParam();
  testing::TempDir tmp;
  const json cfg = {{"train_batch_size", 16},
                    {"train_micro_batch_size_per_gpu", 4},
                    {"optimizer", {{"type", "AdamW"}, {"params", {{"lr", 1e-3}}}}},
                    {c.dtype, {{"enabled", true}}},
                    {"zero_optimization", {{"stage", c.stage}, {"stage3_param_persistence_threshold", 0}}}};
  testing::WriteFileOrDie(tmp.File("ds.json"), cfg.dump());
  const std::string plan = tmp.File("mlp.dsplan");
  const std::string model = std::string(DSC_SOURCE_DIR) + "/models/mlp/mlp.onnx";
  testing::CommandResult r = RunCommand(ShellQuote(DSCOMPILE_PATH) + " " + ShellQuote(model) + " --config " +
                                        ShellQuote(tmp.File("ds.json")) + " --world-size " + std::to_string(c.world) +
                                        " -q -o " + ShellQuote(plan));
  ASSERT_EQ(r.rc, 0) << r.output;
  r = RunCommand(ShellQuote(DSINSPECT_PATH) + " " + ShellQuote(plan) + " --json", /*with_stderr=*/false);
  ASSERT_EQ(r.rc, 0) << r.output;
  const json s = json::parse(r.output);

  // Ψ per parameter from the state table (the unsharded element count), and the formula with
  // DeepSpeed's per-parameter partitioning: chunks of ceil(n / world) elements.
  int64_t params = 0, grads = 0, master = 0, optim = 0, psi = 0;
  for (const json& st : s["state"]) {
    if (st["kind"] != "parameter") continue;
    const int64_t n = st["shard_of_numel"].get<int64_t>() > 0 ? st["shard_of_numel"].get<int64_t>()
                                                              : st["numel"].get<int64_t>();
    psi += n;
    const int64_t chunk = c.world > 1 && c.stage > 0 ? (n + c.world - 1) / c.world : n;
    params += 2 * (c.stage == 3 ? chunk : n);
    grads += 2 * (c.stage >= 2 ? chunk : n);
    master += 4 * chunk;
    optim += 8 * chunk;
  }
  ASSERT_EQ(psi, 6922) << "the bundled mlp has 6,922 parameters";
  const json& m = s["memory"];
  EXPECT_EQ(m["parameters"].get<int64_t>(), params);
  EXPECT_EQ(m["gradients"].get<int64_t>(), grads);
  EXPECT_EQ(m["master_weights"].get<int64_t>(), master);
  EXPECT_EQ(m["optimizer_states"].get<int64_t>(), optim);
  EXPECT_EQ(m["model_states"].get<int64_t>(), params + grads + master + optim);
  // Up to shard padding, the paper's (2 + 2 + 12)Ψ over the sharded part.
  const double n = c.world;
  const double paper = c.world == 1 || c.stage == 0 ? 16.0 * psi
                       : c.stage == 1               ? 4.0 * psi + 12.0 * psi / n
                       : c.stage == 2               ? 2.0 * psi + 14.0 * psi / n
                                                    : 16.0 * psi / n;
  EXPECT_NEAR(static_cast<double>(m["model_states"].get<int64_t>()), paper, 16.0 * 6 * c.world);
  ASSERT_FALSE(s["precision"].is_null());
  EXPECT_EQ(s["precision"]["regime"]["half"], c.dtype);

  // What dsrun allocates is what the plan says.
  const std::string metrics = tmp.File("m.jsonl");
  r = RunCommand(ShellQuote(DSRUN_PATH) + " " + ShellQuote(plan) + " --data " +
                 ShellQuote(std::string(DSC_SOURCE_DIR) + "/models/mlp/data") + " --steps 1 -q --nproc " +
                 std::to_string(c.world) + " --metrics " + ShellQuote(metrics));
  ASSERT_EQ(r.rc, 0) << r.output;
  std::ifstream in(metrics);
  std::string line;
  ASSERT_TRUE(std::getline(in, line));
  const json run = json::parse(line)["memory"];
  for (const char* k : {"parameters", "gradients", "optimizer_states", "master_weights", "model_states"})
    EXPECT_EQ(run[k], m[k]) << k;
}

INSTANTIATE_TEST_SUITE_P(StagesAndRanks, PrecisionMemory,
                         ::testing::Values(Case{"bf16", 0, 1}, Case{"fp16", 0, 2}, Case{"bf16", 1, 2},
                                           Case{"fp16", 1, 4}, Case{"bf16", 2, 2}, Case{"fp16", 2, 4},
                                           Case{"bf16", 3, 2}, Case{"fp16", 3, 4}),
                         Name);

}  // namespace
}  // namespace dsc
