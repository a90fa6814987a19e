// LR schedules as the runtime sees them: which LR each optimizer step uses, skipped steps, errors.
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "frontend/config/ds_config.h"
#include "runtime/lr_schedule.h"

namespace dsc {
namespace {

DsConfig MustParse(const std::string& text) {
  std::vector<std::string> warnings;
  StatusOr<DsConfig> cfg = ParseDsConfig(text, {}, &warnings);
  EXPECT_TRUE(cfg.ok()) << cfg.status().message();
  return cfg.ok() ? *cfg : DsConfig();
}

TEST(LrSchedule, FirstTwoStepsUseTheConstructorAndIterationZeroLr) {
  DsConfig cfg = MustParse(R"({"train_batch_size": 1, "optimizer": {"type": "Adam", "params": {"lr": 0.1}},
      "scheduler": {"type": "WarmupLR", "params": {"warmup_min_lr": 0.01, "warmup_num_steps": 10, "warmup_type": "linear"}}})");
  StatusOr<LrSchedule> s = LrSchedule::Create(cfg);
  ASSERT_TRUE(s.ok());
  EXPECT_DOUBLE_EQ(s->LrForStep(1), 0.01);  // constructor
  EXPECT_DOUBLE_EQ(s->LrForStep(2), 0.01);  // it = 0
  EXPECT_DOUBLE_EQ(s->LrForStep(3), 0.01 + 0.09 * 0.1);
  EXPECT_DOUBLE_EQ(s->LrForStep(100), 0.1);  // warmup_max_lr defaults to the optimizer's lr
}

TEST(LrSchedule, SkippedStepsDoNotAdvance) {
  DsConfig cfg = MustParse(R"({"train_batch_size": 1, "optimizer": {"type": "Adam", "params": {"lr": 0.1}},
      "scheduler": {"type": "LRRangeTest", "params": {"lr_range_test_min_lr": 1.0, "lr_range_test_step_size": 1}}})");
  StatusOr<LrSchedule> s = LrSchedule::Create(cfg);
  ASSERT_TRUE(s.ok());
  EXPECT_DOUBLE_EQ(s->lr(), 1.0);
  s->Step(/*skipped=*/true);
  EXPECT_DOUBLE_EQ(s->lr(), 1.0);
  s->Step(false);
  EXPECT_DOUBLE_EQ(s->lr(), 2.0);
  s->Step(true);
  s->Step(false);
  EXPECT_DOUBLE_EQ(s->lr(), 3.0);
}

TEST(LrSchedule, WarmupCosineStartsAtZero) {
  DsConfig cfg = MustParse(R"({"train_batch_size": 1, "optimizer": {"type": "Adam", "params": {"lr": 0.1}},
      "scheduler": {"type": "WarmupCosineLR", "params": {"total_num_steps": 100, "warmup_num_steps": 10, "warmup_min_ratio": 0.5}}})");
  StatusOr<LrSchedule> s = LrSchedule::Create(cfg);
  ASSERT_TRUE(s.ok());
  EXPECT_EQ(s->LrForStep(1), 0.0);
  EXPECT_DOUBLE_EQ(s->LrForStep(2), 0.05);
}

TEST(LrSchedule, OneCycleCyclesBeta1AndSetsBeta2) {
  DsConfig cfg = MustParse(R"({"train_batch_size": 1, "optimizer": {"type": "Adam", "params": {"lr": 0.1}},
      "scheduler": {"type": "OneCycle", "params": {"cycle_min_lr": 0.1, "cycle_max_lr": 1.0, "cycle_first_step_size": 10}}})");
  StatusOr<LrSchedule> s = LrSchedule::Create(cfg);
  ASSERT_TRUE(s.ok());
  EXPECT_DOUBLE_EQ(*s->beta1(), 0.8);
  EXPECT_DOUBLE_EQ(*s->beta2(), 0.99);
  EXPECT_DOUBLE_EQ(*s->Beta1At(9), 0.8);
  EXPECT_DOUBLE_EQ(s->LrAt(9), 1.0);
  DsConfig sgd = MustParse(R"({"train_batch_size": 1, "optimizer": {"type": "SGD", "params": {"lr": 0.1}},
      "scheduler": {"type": "OneCycle", "params": {"cycle_min_lr": 0.1, "cycle_max_lr": 1.0}}})");
  EXPECT_FALSE(LrSchedule::Create(sgd)->beta1().has_value());
}

// The lr and beta1 of every step of the PyTorch reference trajectories under OneCycle
// (models/reference_trajectories.py's one_cycle(), DeepSpeed's OneCycle transcribed, which writes
// "beta1" only for an optimizer with betas in its defaults: not Muon) are the runtime's.
TEST(LrSchedule, OneCycleFollowsTheReferenceTrajectories) {
  namespace fs = std::filesystem;
  int files = 0;
  for (const auto& e : fs::directory_iterator(fs::path(DSC_SOURCE_DIR) / "models" / "mlp" / "reference" / "trajectories")) {
    const std::string stem = e.path().stem().string();
    if (stem.find("_onecycle") == std::string::npos) continue;
    ++files;
    std::ifstream in(e.path());
    const nlohmann::json ref = nlohmann::json::parse(in);
    DsConfig cfg = MustParse(ref.at("config").dump());
    StatusOr<LrSchedule> s = LrSchedule::Create(cfg);
    ASSERT_TRUE(s.ok()) << stem;
    const auto lrs = ref.at("lr").get<std::vector<double>>();
    const bool cycled = ref.contains("beta1");
    for (size_t i = 0; i < lrs.size(); ++i) {
      EXPECT_NEAR(s->lr(), lrs[i], 1e-15 * lrs[i]) << stem << " step " << i + 1;
      ASSERT_EQ(s->beta1().has_value(), cycled) << stem;
      if (cycled) {
        EXPECT_NEAR(*s->beta1(), ref.at("beta1")[i].get<double>(), 1e-15) << stem << " step " << i + 1;
        EXPECT_EQ(*s->beta2(), 0.99) << stem;
      }
      s->Step(/*skipped=*/false);
    }
  }
  EXPECT_GE(files, 6);
}

TEST(LrSchedule, NoSchedulerIsTheOptimizersLr) {
  DsConfig cfg = MustParse(R"({"train_batch_size": 1, "optimizer": {"type": "SGD", "params": {"lr": 0.25}}})");
  StatusOr<std::string> lines = FormatLrSchedule(cfg, 3);
  ASSERT_TRUE(lines.ok());
  EXPECT_EQ(*lines, "1 0.25\n2 0.25\n3 0.25\n");
}

TEST(LrSchedule, FormatMatchesDeepSpeedStepOrder) {
  DsConfig cfg = MustParse(R"({"train_batch_size": 1, "optimizer": {"type": "Adam", "params": {"lr": 0.1}},
      "scheduler": {"type": "WarmupDecayLR", "params": {"total_num_steps": 4, "warmup_num_steps": 2, "warmup_max_lr": 0.1, "warmup_type": "linear"}}})");
  StatusOr<std::string> lines = FormatLrSchedule(cfg, 6);
  ASSERT_TRUE(lines.ok());
  EXPECT_EQ(*lines, "1 0.0\n2 0.0\n3 0.05\n4 0.1\n5 0.05\n6 0.0\n");
}

TEST(LrSchedule, NeedsAnOptimizerForItsBaseLr) {
  DsConfig cfg = MustParse(R"({"train_batch_size": 1, "scheduler": {"type": "WarmupLR"}})");
  StatusOr<LrSchedule> s = LrSchedule::Create(cfg);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.status().message().find("optimizer"), std::string::npos);
}

TEST(LrSchedule, ParameterErrors) {
  std::vector<std::string> warnings;
  // From a file DeepSpeed (hjson) reads 10.0 as 10, and takes true as Python's int 1: both accepted.
  for (const char* params : {R"({"warmup_num_steps": 10.5})", R"({"warmup_num_steps": false})", R"({"warmup_num_step": 10})",
                             R"({"warmup_min_lr": "x"})", R"({"warmup_min_lr": [0.1, 0.2]})"}) {
    std::string text = std::string(R"({"train_batch_size": 1, "optimizer": {"type": "Adam"}, "scheduler": {"type": "WarmupLR", "params": )") + params + "}}";
    StatusOr<DsConfig> cfg = ParseDsConfig(text, {}, &warnings);
    ASSERT_FALSE(cfg.ok()) << params;
    EXPECT_NE(cfg.status().message().find("scheduler.params."), std::string::npos) << cfg.status().message();
  }
  StatusOr<DsConfig> cfg = ParseDsConfig(R"({"train_batch_size": 1, "scheduler": {"type": "WarmupDecayLR", "params": {}}})", {}, &warnings);
  ASSERT_FALSE(cfg.ok());
  EXPECT_NE(cfg.status().message().find("total_num_steps"), std::string::npos);
  cfg = ParseDsConfig(R"({"train_batch_size": 1, "scheduler": {"type": "CosineLR"}})", {}, &warnings);
  ASSERT_FALSE(cfg.ok());
  EXPECT_EQ(DeepSpeedErrorKind(cfg.status()), "AssertionError");
}

}  // namespace
}  // namespace dsc
