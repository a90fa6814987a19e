// dscompile --activation-budget: sizes, the choice of segment count on arenas given by a formula,
// and compiles of the 12-layer GPT-2 whose plans must fit the budget.
#include <gtest/gtest.h>

#include <limits>

#include <fstream>
#include <map>

#include <nlohmann/json.hpp>

#include "backend/plan_file.h"
#include "backend/plan_summary.h"
#include "tests/testutil/test_util.h"
#include "tools/activation_budget.h"

namespace dsc {
namespace {

using nlohmann::json;
using testing::CommandResult;
using testing::ShellQuote;

TEST(ActivationBudget, ParsesSizesWithUnits) {
  EXPECT_EQ(*ParseByteSize("1500000", "x"), 1500000);
  EXPECT_EQ(*ParseByteSize("512KiB", "x"), 512 * 1024);
  EXPECT_EQ(*ParseByteSize("1.5 GiB", "x"), 1610612736);
  EXPECT_EQ(*ParseByteSize("2GB", "x"), 2000000000);
  EXPECT_EQ(*ParseByteSize("3mb", "x"), 3000000);
  EXPECT_EQ(*ParseByteSize("64B", "x"), 64);
  for (const char* bad : {"", "MiB", "-1MiB", "1.5XB", "0.1", "inf", "1e30TiB"}) {
    StatusOr<int64_t> v = ParseByteSize(bad, "--activation-budget");
    EXPECT_FALSE(v.ok()) << bad;
    if (!v.ok()) {
      EXPECT_NE(v.status().message().find("--activation-budget"), std::string::npos) << v.status().message();
    }
  }
  // The largest size is one HumanBytes prints exactly, so every size it prints parses back (below
  // a limit of 9.2e18 bytes, 9199999999999990000 printed as "8367351.3 TiB", which was too large).
  constexpr int64_t kLargest = std::numeric_limits<int64_t>::max() - (int64_t{1} << 40) + 1;  // 2^63 - 2^40
  EXPECT_EQ(*ParseByteSize("8388607 TiB", "x"), kLargest);
  EXPECT_FALSE(ParseByteSize("8388607.1 TiB", "x").ok());
  EXPECT_FALSE(ParseByteSize("9223372036854775807", "x").ok());
  for (int64_t b : {int64_t{9199999999999990000}, kLargest - 1}) {
    StatusOr<int64_t> again = ParseByteSize(HumanBytes(b), "x");
    ASSERT_TRUE(again.ok()) << HumanBytes(b) << ": " << again.status().message();
    EXPECT_NEAR(static_cast<double>(*again), static_cast<double>(b), 0.05 * 1099511627776.0) << HumanBytes(b);
  }
  // What follows a NUL is part of the text (it was cut there, and "5\0KiB" read as 5 bytes).
  EXPECT_FALSE(ParseByteSize(std::string("5\0KiB", 5), "x").ok());
}

// Arenas that fall as 1/k then rise as checkpoints pile up: a(k) = 1200/k + 10k, least at k = 11
// (219); without checkpointing 1000.
StatusOr<BudgetTrial> Formula(int64_t k, std::vector<int64_t>* tried, int64_t room = 1000) {
  tried->push_back(k);
  if (k == 0) return BudgetTrial{1000, 0};
  return BudgetTrial{1200 / k + 10 * k, std::min(k, room)};
}

TEST(ActivationBudget, ChoosesTheFewestSegmentsThatFit) {
  std::vector<int64_t> tried;
  auto trial = [&](int64_t k) { return Formula(k, &tried); };
  StatusOr<std::optional<int64_t>> k = ChooseCheckpointsForBudget(1000, trial, nullptr);
  ASSERT_TRUE(k.ok());
  EXPECT_FALSE(k->has_value());  // fits without checkpointing
  EXPECT_EQ(tried, std::vector<int64_t>{0});

  tried.clear();
  k = ChooseCheckpointsForBudget(300, trial, nullptr);  // a(4) = 340, a(5) = 290
  ASSERT_TRUE(k.ok() && k->has_value());
  EXPECT_EQ(**k, 5);
  EXPECT_EQ(tried, (std::vector<int64_t>{0, 2, 3, 4, 5}));

  tried.clear();
  k = ChooseCheckpointsForBudget(200, trial, nullptr);  // never: the least is 219 at 11
  ASSERT_FALSE(k.ok());
  EXPECT_NE(k.status().message().find("smallest activation arena is 219 B (11 checkpointing segments)"),
            std::string::npos)
      << k.status().message();
  // It stops kGiveUpAfterGrowth counts after the arena starts to grow past its least.
  EXPECT_EQ(tried.back(), 11 + kGiveUpAfterGrowth);

  tried.clear();
  auto short_forward = [&](int64_t k) { return Formula(k, &tried, /*room=*/3); };
  k = ChooseCheckpointsForBudget(100, short_forward, nullptr);
  ASSERT_FALSE(k.ok());
  EXPECT_EQ(tried.back(), 4);  // the pass made only 3 segments: no more to try
}

const std::string kModels = DSC_SOURCE_DIR "/models";

CommandResult Dscompile(const std::string& args) {
  return testing::RunCommand(ShellQuote(DSCOMPILE_PATH) + " " + args);
}

TEST(ActivationBudget, CompiledPlanFitsTheBudgetAndRecordsItsChoice) {
  testing::TempDir dir;
  const std::string config = dir.File("ds.json"), plan = dir.File("l12.dsplan");
  std::ofstream(config) << R"({"train_batch_size": 4, "optimizer": {"type": "AdamW", "params": {"lr": 1e-3}}})";
  const std::string compile = ShellQuote(kModels + "/gpt2_sized/l12/gpt2.onnx") + " --config " + ShellQuote(config) +
                              " -o " + ShellQuote(plan);
  CommandResult r = Dscompile(compile);
  ASSERT_EQ(r.rc, 0) << r.output;
  StatusOr<Plan> p = ReadPlan(plan);
  ASSERT_TRUE(p.ok()) << p.status().ToString();
  const int64_t without = SummarizePlan(*p)["memory"]["activations_peak"].get<int64_t>();

  // Half of it: checkpointing with the first segment count that fits.
  r = Dscompile(compile + " --activation-budget " + std::to_string(without / 2));
  ASSERT_EQ(r.rc, 0) << r.output;
  EXPECT_NE(r.output.find("--activation-budget: activation checkpointing with "), std::string::npos) << r.output;
  p = ReadPlan(plan);
  ASSERT_TRUE(p.ok()) << p.status().ToString();
  EXPECT_LE(SummarizePlan(*p)["memory"]["activations_peak"].get<int64_t>(), without / 2);
  const json& ac = p->config["activation_checkpointing"];
  ASSERT_TRUE(ac.is_object()) << p->config.dump();
  const int64_t chosen = ac["number_checkpoints"].get<int64_t>();
  EXPECT_GE(chosen, 2);
  // One fewer segment does not fit (the choice recomputes least), as its trial line says.
  if (chosen > 2) {
    const std::string line = "dscompile:   " + std::to_string(chosen - 1) + " segments: ";
    ASSERT_NE(r.output.find(line), std::string::npos) << r.output;
  }

  // Enough for the plan without checkpointing: none.
  r = Dscompile(compile + " --activation-budget " + std::to_string(without));
  ASSERT_EQ(r.rc, 0) << r.output;
  EXPECT_NE(r.output.find("no activation checkpointing needed"), std::string::npos) << r.output;
  p = ReadPlan(plan);
  ASSERT_TRUE(p.ok());
  EXPECT_TRUE(p->config.value("activation_checkpointing", json()).is_null()) << p->config.dump();

  // Too little: the smallest arena is named, nothing written.
  std::filesystem::remove(plan);
  r = Dscompile(compile + " --activation-budget 1KiB");
  EXPECT_EQ(r.rc, 1) << r.output;
  EXPECT_NE(r.output.find("--activation-budget 1.0 KiB cannot be met: the smallest activation arena is"),
            std::string::npos)
      << r.output;
  EXPECT_FALSE(std::filesystem::exists(plan));

  // The config's own segment count conflicts.
  std::ofstream(config) << R"({"train_batch_size": 4, "optimizer": {"type": "AdamW", "params": {"lr": 1e-3}},
                              "activation_checkpointing": {"number_checkpoints": 4}})";
  r = Dscompile(compile + " --activation-budget 1MiB");
  EXPECT_EQ(r.rc, 1) << r.output;
  EXPECT_NE(r.output.find("which the config sets to 4: give one or the other"), std::string::npos) << r.output;
}

// With cpu_checkpointing the checkpoints wait in host memory: the budget is for the device arena,
// so a budget the 6-segment plan meets only with its checkpoints on the host is met with at most 6
// segments there, and needs more segments (or fails) with them on the device.
TEST(ActivationBudget, CpuCheckpointingBudgetsTheDeviceArena) {
  testing::TempDir dir;
  const std::string config = dir.File("ds.json"), plan = dir.File("l12.dsplan");
  const std::string compile = ShellQuote(kModels + "/gpt2_sized/l12/gpt2.onnx") + " --config " + ShellQuote(config) +
                              " -o " + ShellQuote(plan);
  const std::string base = R"({"train_batch_size": 4, "optimizer": {"type": "AdamW", "params": {"lr": 1e-3}})";
  std::ofstream(config) << base << R"(, "activation_checkpointing": {"number_checkpoints": 6, "cpu_checkpointing": true}})";
  CommandResult r = Dscompile(compile);
  ASSERT_EQ(r.rc, 0) << r.output;
  StatusOr<Plan> p = ReadPlan(plan);
  ASSERT_TRUE(p.ok()) << p.status().ToString();
  const json six = SummarizePlan(*p)["memory"];
  const int64_t budget = six["activations_peak"].get<int64_t>();
  ASSERT_GT(six.value("activations_host", int64_t{0}), 0) << six.dump();

  std::ofstream(config) << base << R"(, "activation_checkpointing": {"cpu_checkpointing": true}})";
  r = Dscompile(compile + " --activation-budget " + std::to_string(budget));
  ASSERT_EQ(r.rc, 0) << r.output;
  p = ReadPlan(plan);
  ASSERT_TRUE(p.ok()) << p.status().ToString();
  const int64_t chosen = p->config["activation_checkpointing"]["number_checkpoints"].get<int64_t>();
  EXPECT_LE(chosen, 6);
  EXPECT_EQ(p->config["activation_checkpointing"]["cpu_checkpointing"], true);
  EXPECT_LE(SummarizePlan(*p)["memory"]["activations_peak"].get<int64_t>(), budget);

  std::ofstream(config) << base << "}";
  r = Dscompile(compile + " --activation-budget " + std::to_string(budget));
  if (r.rc == 0) {
    p = ReadPlan(plan);
    ASSERT_TRUE(p.ok()) << p.status().ToString();
    EXPECT_GT(p->config["activation_checkpointing"]["number_checkpoints"].get<int64_t>(), chosen) << r.output;
  } else {
    EXPECT_NE(r.output.find("cannot be met"), std::string::npos) << r.output;
  }
}

}  // namespace
}  // namespace dsc
