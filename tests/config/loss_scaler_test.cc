// The loss scaler: the rules DeepSpeed's engine picks per optimizer wrapper (LossScaler::ForTraining),
// replayed on DeepSpeed's own scaler test cases, and apex.amp's rules written out from
// apex/amp/scaler.py (init min(max, 2**16), window 2000, halve on overflow floored at
// min_loss_scale, double after 2000 clean steps capped at max_loss_scale).
#include <fstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "frontend/config/ds_config.h"
#include "runtime/loss_scaler.h"

namespace dsc {
namespace {

using nlohmann::json;

DsConfig Parse(const json& config) {
  std::vector<std::string> warnings;
  StatusOr<DsConfig> cfg = ParseDsConfig(config.dump(), {}, &warnings);
  EXPECT_TRUE(cfg.ok()) << cfg.status().message();
  return cfg.ok() ? *cfg : DsConfig{};
}

// fp16 at a ZeRO stage (0: DeepSpeed's FP16_Optimizer, 1-3: the ZeRO optimizers).
LossScaler ForFp16(const json& fp16, int stage) {
  StatusOr<LossScaler> s = LossScaler::ForTraining(
      Parse({{"train_batch_size", 1}, {"zero_optimization", {{"stage", stage}}}, {"fp16", fp16}}));
  EXPECT_TRUE(s.ok()) << s.status().message();
  return s.ok() ? *s : LossScaler::Static(0);
}

std::vector<double> Scales(LossScaler s, const std::vector<bool>& overflows) {
  std::vector<double> out;
  for (size_t i = 0; i < overflows.size(); ++i) {
    Status st = s.Update(overflows[i], static_cast<int64_t>(i) + 1);
    EXPECT_TRUE(st.ok()) << "step " << i + 1 << ": " << st.message();
    out.push_back(s.exact_scale());
  }
  return out;
}

TEST(LossScaler, EachWrapperGetsItsRules) {
  const json dyn = {{"enabled", true}};
  EXPECT_EQ(ForFp16(dyn, 0).rules(), LossScalerRules::kNonZeroFp16);
  for (int stage : {1, 2, 3}) {
    LossScaler s = ForFp16(dyn, stage);
    EXPECT_TRUE(s.dynamic());
    EXPECT_EQ(s.rules(), LossScalerRules::kZero) << stage;
    EXPECT_EQ(s.exact_scale(), 65536.0);
  }
  for (int stage : {0, 2}) {
    LossScaler s = ForFp16({{"enabled", true}, {"loss_scale", 128}}, stage);
    EXPECT_FALSE(s.dynamic());
    EXPECT_EQ(s.exact_scale(), 128.0);
  }
  // bf16 (BF16_Optimizer, ddp_bf16, ZeRO) and fp32: no scale at all.
  for (const json& c : {json{{"train_batch_size", 1}, {"bf16", {{"enabled", true}}}},
                        json{{"train_batch_size", 1}, {"bf16", {{"enabled", true}}}, {"zero_optimization", {{"stage", 1}}},
                             {"data_types", {{"grad_accum_dtype", "fp32"}}}},
                        json{{"train_batch_size", 1}, {"bf16", {{"enabled", true}}}, {"zero_optimization", {{"stage", 3}}}},
                        json{{"train_batch_size", 1}, {"zero_optimization", {{"stage", 2}}}}}) {
    StatusOr<LossScaler> s = LossScaler::ForTraining(Parse(c));
    ASSERT_TRUE(s.ok()) << s.status().message();
    EXPECT_FALSE(s->dynamic()) << c;
    EXPECT_EQ(s->exact_scale(), 1.0) << c;
    EXPECT_EQ(s->Describe(), "none");
  }
  StatusOr<LossScaler> amp = LossScaler::ForTraining(Parse({{"train_batch_size", 1}, {"amp", {{"enabled", true}}}}));
  ASSERT_TRUE(amp.ok()) << amp.status().message();
  EXPECT_EQ(amp->rules(), LossScalerRules::kApex);
  EXPECT_EQ(amp->exact_scale(), 65536.0);
}

// DeepSpeed's test_dynamic_loss_scale.py / test_zero_optim_overflow.py cases, each through the
// wrapper DeepSpeed's test used: non-ZeRO fp16 (FusedAdam or Lamb) or ZeRO.
TEST(LossScaler, DeepSpeedCasesThroughTheirWrapper) {
  std::ifstream in(DSC_CASES_FILE);
  if (!in) GTEST_SKIP() << "cases file not found: " << DSC_CASES_FILE;
  int replayed = 0;
  for (const json& c : json::parse(in)) {
    if (c["kind"] != "loss_scaler") continue;
    const bool zero = c["scaler"] == "zero_dynamic_loss_scaler";
    for (int stage : zero ? std::vector<int>{1, 2, 3} : std::vector<int>{0}) {
      LossScaler s = ForFp16(c["params"], stage);
      EXPECT_EQ(s.rules(), zero ? LossScalerRules::kZero : LossScalerRules::kNonZeroFp16) << c["id"];
      EXPECT_EQ(s.exact_scale(), c["initial_scale"].get<double>()) << c["id"];
      const json& pattern = c["overflow_pattern"];
      for (size_t i = 0; i < pattern.size(); ++i) {
        Status st = s.Update(pattern[i].get<bool>(), static_cast<int64_t>(i) + 1);
        if (c.contains("expected_error") && c["expected_error"]["at_index"] == i) {
          ASSERT_FALSE(st.ok()) << c["id"];
          EXPECT_NE(st.message().find(c["expected_error"]["error_message_contains"].get<std::string>()), std::string::npos)
              << st.message();
          break;
        }
        ASSERT_TRUE(st.ok()) << c["id"] << " step " << i << ": " << st.message();
        EXPECT_EQ(s.exact_scale(), c["expected_scales"][i].get<double>()) << c["id"] << " after step " << i;
      }
      ++replayed;
    }
  }
  EXPECT_GE(replayed, 9);
}

TEST(LossScaler, StaticAndDisabled) {
  LossScaler s = ForFp16({{"enabled", true}, {"loss_scale", 128}}, 1);
  EXPECT_TRUE(s.Update(true).ok());
  EXPECT_EQ(s.scale(), 128.0f);
  EXPECT_EQ(s.Describe(), "static 128");
  EXPECT_EQ(ForFp16({{"enabled", false}}, 1).scale(), 1.0f);
}

TEST(LossScaler, HysteresisAbsorbsOneOverflowUntilAWindowPasses) {
  for (int stage : {1, 2, 3}) {
    // 1st overflow absorbed; 2nd halves; hysteresis stays used up, so the 3rd halves too; then a
    // full window of 3 clean steps after the last overflow doubles and refills.
    EXPECT_EQ(Scales(ForFp16({{"enabled", true}, {"initial_scale_power", 4}, {"loss_scale_window", 3}, {"hysteresis", 2}}, stage),
                     {true, true, false, true, false, false, false, false}),
              (std::vector<double>{16, 8, 8, 4, 4, 4, 4, 8}))
        << "stage " << stage;
  }
  // FP16_Optimizer (stage 0) ignores hysteresis: every overflow halves.
  EXPECT_EQ(Scales(ForFp16({{"enabled", true}, {"initial_scale_power", 4}, {"loss_scale_window", 3}, {"hysteresis", 2}}, 0),
                   {true, true, false, true, false, false, false, false}),
            (std::vector<double>{8, 4, 4, 2, 2, 2, 2, 4}));
}

TEST(LossScaler, ConsecutiveHysteresisRefillsOnEveryCleanStep) {
  const json fp16 = {{"enabled", true}, {"initial_scale_power", 4}, {"loss_scale_window", 100}, {"hysteresis", 2},
                     {"consecutive_hysteresis", true}};
  EXPECT_EQ(Scales(ForFp16(fp16, 2), {true, false, true, false, true, true}),
            (std::vector<double>{16, 16, 16, 16, 16, 8}));
}

TEST(LossScaler, OverflowAtTheMinimumEndsTheRunWithDeepSpeedsMessage) {
  LossScaler s = ForFp16({{"enabled", true}, {"initial_scale_power", 2}, {"hysteresis", 1}, {"min_loss_scale", 1}}, 1);
  ASSERT_TRUE(s.Update(true, 1).ok());  // 4 -> 2
  ASSERT_TRUE(s.Update(true, 2).ok());  // 2 -> 1
  Status st = s.Update(true, 3);        // at the minimum
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(DeepSpeedErrorKind(st), "Exception");
  EXPECT_NE(st.message().find("fp16.min_loss_scale"), std::string::npos);
  EXPECT_NE(st.message().find("step 3: Current loss scale already at minimum - cannot decrease scale anymore"),
            std::string::npos)
      << st.message();
  // With hysteresis 2 the first overflow at the minimum is still absorbed.
  LossScaler h = ForFp16({{"enabled", true}, {"initial_scale_power", 0}, {"hysteresis", 2}, {"min_loss_scale", 1}}, 3);
  EXPECT_TRUE(h.Update(true, 1).ok());
  EXPECT_FALSE(h.Update(true, 2).ok());
  // FP16_Optimizer floors instead.
  EXPECT_EQ(Scales(ForFp16({{"enabled", true}, {"initial_scale_power", 1}}, 0), {true, true, true, true, true}),
            (std::vector<double>{1, 1, 1, 1, 1}));
}

LossScaler Amp(const json& amp) {
  json section = amp;
  section["enabled"] = true;
  StatusOr<LossScaler> s = LossScaler::ForTraining(Parse({{"train_batch_size", 1}, {"amp", section}}));
  EXPECT_TRUE(s.ok()) << s.status().message();
  return s.ok() ? *s : LossScaler::Static(0);
}

TEST(LossScaler, ApexRules) {
  // A window of 2000 clean steps doubles; an overflow halves and restarts the count.
  LossScaler s = Amp({{"opt_level", "O2"}});
  EXPECT_TRUE(s.dynamic());
  EXPECT_EQ(s.exact_scale(), 65536.0);
  ASSERT_TRUE(s.Update(true).ok());
  EXPECT_EQ(s.exact_scale(), 32768.0);
  for (int i = 0; i < 1999; ++i) ASSERT_TRUE(s.Update(false).ok());
  EXPECT_EQ(s.exact_scale(), 32768.0);
  ASSERT_TRUE(s.Update(false).ok());
  EXPECT_EQ(s.exact_scale(), 65536.0);
  for (int i = 0; i < 1000; ++i) ASSERT_TRUE(s.Update(false).ok());
  ASSERT_TRUE(s.Update(true).ok());  // resets the count: 1000 clean steps are forgotten
  for (int i = 0; i < 1999; ++i) ASSERT_TRUE(s.Update(false).ok());
  EXPECT_EQ(s.exact_scale(), 32768.0);
  ASSERT_TRUE(s.Update(false).ok());
  EXPECT_EQ(s.exact_scale(), 65536.0);

  // max_loss_scale caps both the initial scale and every raise; min_loss_scale floors the halving
  // and, unlike DeepSpeed's ZeRO scaler, never ends the run.
  LossScaler capped = Amp({{"opt_level", "O1"}, {"max_loss_scale", 1024}, {"min_loss_scale", 256}});
  EXPECT_EQ(capped.exact_scale(), 1024.0);
  for (int i = 0; i < 2000; ++i) ASSERT_TRUE(capped.Update(false).ok());
  EXPECT_EQ(capped.exact_scale(), 1024.0);
  for (int i = 0; i < 5; ++i) ASSERT_TRUE(capped.Update(true).ok());
  EXPECT_EQ(capped.exact_scale(), 256.0);
  // Without a floor the halving goes on.
  LossScaler free = Amp({{"opt_level", "O2"}});
  for (int i = 0; i < 20; ++i) ASSERT_TRUE(free.Update(true).ok());
  EXPECT_EQ(free.exact_scale(), 65536.0 / (1 << 20));

  // A static amp loss_scale never moves.
  LossScaler fixed = Amp({{"opt_level", "O2"}, {"loss_scale", 128.0}});
  EXPECT_FALSE(fixed.dynamic());
  ASSERT_TRUE(fixed.Update(true).ok());
  EXPECT_EQ(fixed.exact_scale(), 128.0);
}

}  // namespace
}  // namespace dsc
