// End-to-end: training the bundled models with the memory plan's aliasing (views, in-place
// outputs) gives bit-for-bit the losses and gradient norms of the plan compiled with
// --no-memory-aliasing, and dsinspect reports both arenas.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include <nlohmann/json.hpp>

#include "tests/e2e/e2e_util.h"
#include "tests/testutil/test_util.h"

namespace dsc {
namespace {

namespace fs = std::filesystem;
using testing::CommandResult;
using testing::ShellQuote;

struct Training {
  std::vector<double> loss, grad_norm;
  nlohmann::json summary;  // dsinspect --json
};

Training CompileAndTrain(const std::string& model, const std::string& config, bool aliasing, int steps,
                    const testing::TempDir& tmp) {
  const fs::path root = DSC_SOURCE_DIR;
  const fs::path dir = root / "models" / model;
  const std::string plan = tmp.File(model + (aliasing ? "_aliased" : "_flat") + ".dsplan");
  CommandResult c = testing::RunCommand(ShellQuote(DSCOMPILE_PATH) + " " + ShellQuote((dir / (model + ".onnx")).string()) +
                                        " --config " + ShellQuote((root / "models" / "reference_configs" / (config + ".json")).string()) +
                                        (aliasing ? "" : " --no-memory-aliasing") + " -q -o " + ShellQuote(plan));
  EXPECT_EQ(c.rc, 0) << c.output;
  Training run;
  if (c.rc != 0) return run;
  const std::string metrics = tmp.File(model + (aliasing ? "_aliased" : "_flat") + ".jsonl");
  CommandResult r = testing::RunCommand(ShellQuote(DSRUN_PATH) + " " + ShellQuote(plan) + " --data " +
                                        ShellQuote((dir / "data").string()) + " --steps " + std::to_string(steps) +
                                        " --no-shuffle -q --metrics " + ShellQuote(metrics));
  EXPECT_EQ(r.rc, 0) << r.output;
  std::ifstream in(metrics);
  for (std::string line; std::getline(in, line);) {
    nlohmann::json m = nlohmann::json::parse(line);
    run.loss.push_back(m.at("loss").get<double>());
    run.grad_norm.push_back(m.at("grad_norm").get<double>());
  }
  CommandResult s = testing::RunCommand(ShellQuote(DSINSPECT_PATH) + " " + ShellQuote(plan) + " --json");
  EXPECT_EQ(s.rc, 0) << s.output;
  if (s.rc == 0) run.summary = nlohmann::json::parse(s.output);
  return run;
}

struct Case {
  std::string model, config;
};
void PrintTo(const Case& c, std::ostream* os) { *os << c.model << "/" << c.config; }

class AliasingTrajectory : public ::testing::TestWithParam<Case> {};

TEST_P(AliasingTrajectory, BitIdenticalWithoutAliasing) {
  const Case& c = GetParam();
  testing::TempDir tmp;
  constexpr int kSteps = 8;
  const Training aliased = CompileAndTrain(c.model, c.config, true, kSteps, tmp);
  const Training flat = CompileAndTrain(c.model, c.config, false, kSteps, tmp);
  ASSERT_EQ(aliased.loss.size(), size_t{kSteps});
  ASSERT_EQ(flat.loss.size(), size_t{kSteps});
  for (int i = 0; i < kSteps; ++i) {
    EXPECT_EQ(aliased.loss[i], flat.loss[i]) << "step " << i + 1;
    EXPECT_EQ(aliased.grad_norm[i], flat.grad_norm[i]) << "step " << i + 1;
  }
  // Both plans report the arena without aliasing; only the aliased one shares bytes.
  int64_t views = 0, in_place = 0;
  for (size_t p = 0; p < aliased.summary.at("programs").size(); ++p) {
    const nlohmann::json& a = aliased.summary["programs"][p]["memory"];
    const nlohmann::json& f = flat.summary["programs"][p]["memory"];
    EXPECT_EQ(a.at("unaliased_arena_bytes"), f.at("arena_bytes"));
    EXPECT_LE(a.at("arena_bytes").get<int64_t>(), f.at("arena_bytes").get<int64_t>());
    EXPECT_TRUE(f.at("aliases").empty());
    for (const auto& [op, n] : a.at("views").items()) views += n.get<int64_t>();
    for (const auto& [op, n] : a.at("in_place").items()) in_place += n.get<int64_t>();
  }
  EXPECT_GT(views + in_place, 0) << "the aliased plan aliases nothing, so this test compares nothing";
}

INSTANTIATE_TEST_SUITE_P(Models, AliasingTrajectory,
                         ::testing::Values(Case{"gpt", "accum4"}, Case{"gpt", "adamw_wd"}, Case{"cnn", "accum4"},
                                           Case{"cnn", "sgd_momentum"}),
                         [](const ::testing::TestParamInfo<Case>& info) { return info.param.model + "_" + info.param.config; });

}  // namespace
}  // namespace dsc
