// Dropout keeps the DESIGN.md invariant: a model with three dropouts (batch by name at dim 0, at
// dim 1, and flattened into dim 0) trains the same 30-step trajectory at 1, 2 and 4 ranks and at
// micro 16 x 1, 4 x 4 and 1 x 16 (fp32, within 1e-6), because a sample's mask is keyed by its
// index in the global batch. PyTorch is no reference here: its masks come from its own generator.
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "tests/testutil/test_util.h"

namespace dsc {
namespace {

namespace fs = std::filesystem;
using testing::CommandResult;
using testing::ShellQuote;

constexpr int kSteps = 30;

struct Split {
  int world, micro, gas, stage;
};

const fs::path kModel = fs::path(DSC_SOURCE_DIR) / "models" / "dropout";
const fs::path kDropPath = fs::path(DSC_SOURCE_DIR) / "models" / "droppath";

std::string Compile(const Split& s, const testing::TempDir& tmp, const std::string& extra = "",
                    const fs::path& model = kModel) {
  // (std::string on the left: GCC 12 warns falsely on "literal" + std::string&&.)
  const std::string tag = model.filename().string() + "_w" + std::to_string(s.world) + "_m" + std::to_string(s.micro);
  const nlohmann::json cfg = {
      {"train_batch_size", 16},
      {"train_micro_batch_size_per_gpu", s.micro},
      {"gradient_accumulation_steps", s.gas},
      {"gradient_clipping", 1.0},
      {"optimizer", {{"type", "AdamW"}, {"params", {{"lr", 0.01}, {"weight_decay", 0.01}}}}},
      {"zero_optimization", {{"stage", s.stage}}}};
  testing::WriteFileOrDie(tmp.File(tag + ".json"), cfg.dump());
  const std::string plan = tmp.File(tag + ".dsplan");
  CommandResult c = testing::RunCommand(ShellQuote(DSCOMPILE_PATH) + " " + ShellQuote((model / (model.filename().string() + ".onnx")).string()) +
                                        " --config " + ShellQuote(tmp.File(tag + ".json")) + " --world-size " +
                                        std::to_string(s.world) + " -q -o " + ShellQuote(plan) + extra);
  EXPECT_EQ(c.rc, 0) << c.output;
  return c.rc == 0 ? (extra.empty() ? plan : c.output) : "";
}

std::vector<double> Train(const Split& s, const testing::TempDir& tmp, const fs::path& model = kModel,
                          const std::string& args = "") {
  const std::string plan = Compile(s, tmp, "", model);
  if (plan.empty()) return {};
  const std::string metrics = plan + ".jsonl";
  CommandResult r = testing::RunCommand(ShellQuote(DSRUN_PATH) + " " + ShellQuote(plan) + " --nproc " +
                                        std::to_string(s.world) + " --data " + ShellQuote((model / "data").string()) +
                                        " --steps " + std::to_string(kSteps) + " -q --threads 1 --metrics " +
                                        ShellQuote(metrics) + args);
  EXPECT_EQ(r.rc, 0) << r.output;
  std::vector<double> loss;
  std::ifstream in(metrics);
  for (std::string line; std::getline(in, line);) loss.push_back(nlohmann::json::parse(line).at("loss").get<double>());
  return loss;
}

TEST(DropoutInvariant, EverySplitTrainsTheSameTrajectory) {
  testing::TempDir tmp;
  const std::vector<double> base = Train({1, 16, 1, 0}, tmp);
  ASSERT_EQ(base.size(), static_cast<size_t>(kSteps));
  for (const Split& s : {Split{1, 4, 4, 0}, Split{1, 1, 16, 0}, Split{2, 8, 1, 1}, Split{4, 4, 1, 2},
                         Split{4, 1, 4, 3}}) {
    const std::vector<double> run = Train(s, tmp);
    ASSERT_EQ(run.size(), base.size()) << "world " << s.world << " micro " << s.micro;
    for (size_t i = 0; i < base.size(); ++i)
      ASSERT_NEAR(run[i], base[i], 1e-6 * std::fabs(base[i]))
          << "world " << s.world << " micro " << s.micro << " x " << s.gas << " (ZeRO " << s.stage << ") step " << i + 1;
  }
}

// The three dropouts are per-sample ones with the layouts the test above relies on, so it cannot
// pass by dropping nothing.
TEST(DropoutInvariant, EveryDropoutIsKeyedBySample) {
  testing::TempDir tmp;
  const std::string ir = Compile({1, 4, 4, 0}, tmp, " --print-ir-after=sample-dropout");
  for (const char* layout : {"SampleDropout <batch_axis = 0, sample_rows = 1>", "SampleDropout <batch_axis = 1, sample_rows = 1>",
                             "SampleDropout <batch_axis = 0, sample_rows = 6>"})
    EXPECT_NE(ir.find(layout), std::string::npos) << layout << "\n" << ir;
}

TEST(DropoutInvariant, RandomOpsTrainTheSameTrajectoryAtEverySplit) {
  testing::TempDir tmp;
  const std::vector<double> base = Train({1, 16, 1, 0}, tmp, kDropPath);
  ASSERT_EQ(base.size(), static_cast<size_t>(kSteps));
  for (const Split& s : {Split{1, 4, 4, 0}, Split{1, 1, 16, 0}, Split{2, 8, 1, 1}, Split{4, 4, 1, 3}}) {
    const std::vector<double> run = Train(s, tmp, kDropPath);
    ASSERT_EQ(run.size(), base.size()) << "world " << s.world << " micro " << s.micro;
    for (size_t i = 0; i < base.size(); ++i)
      ASSERT_NEAR(run[i], base[i], 1e-6 * std::fabs(base[i]))
          << "world " << s.world << " micro " << s.micro << " x " << s.gas << " (ZeRO " << s.stage << ") step " << i + 1;
  }
}

// The three draws are keyed by sample, and they matter: another seed changes the first loss
// (computed before any update), so the test above cannot pass by drawing constants.
TEST(DropoutInvariant, RandomOpsAreKeyedBySampleAndChangeTheLoss) {
  testing::TempDir tmp;
  const std::string ir = Compile({1, 4, 4, 0}, tmp, " --print-ir-after=sample-dropout", kDropPath);
  for (const char* draw : {"SampleRandom <batch_axis = 0, distribution = \"uniform\", high = 1.0, low = 0.0, sample_rows = 1>",
                           "SampleRandom <batch_axis = 0, distribution = \"normal\", mean = 0.0, sample_rows = 1, scale = 1.0>"})
    EXPECT_NE(ir.find(draw), std::string::npos) << draw << "\n" << ir;
  EXPECT_EQ(ir.find("RandomUniformLike"), std::string::npos) << ir;
  const std::vector<double> a = Train({1, 16, 1, 0}, tmp, kDropPath, " --seed 1 --no-shuffle");
  const std::vector<double> b = Train({1, 16, 1, 0}, tmp, kDropPath, " --seed 2 --no-shuffle");
  ASSERT_FALSE(a.empty());
  ASSERT_FALSE(b.empty());
  EXPECT_GT(std::fabs(a[0] - b[0]), 1e-3 * std::fabs(a[0]));
}

}  // namespace
}  // namespace dsc
