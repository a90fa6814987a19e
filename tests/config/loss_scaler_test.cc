// The loss scaler's ZeRO rules (hysteresis, windows, error at the minimum) at every stage.
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "frontend/config/ds_config.h"
#include "runtime/loss_scaler.h"

namespace dsc {
namespace {

LossScaler Make(const std::string& fp16, int stage = 0) {
  std::vector<std::string> warnings;
  std::string text = R"({"train_batch_size": 1, "zero_optimization": {"stage": )" + std::to_string(stage) +
                     R"(}, "fp16": )" + fp16 + "}";
  StatusOr<DsConfig> cfg = ParseDsConfig(text, {}, &warnings);
  EXPECT_TRUE(cfg.ok()) << cfg.status().message();
  return LossScaler::Create(*cfg);
}

TEST(LossScaler, StaticAndDisabled) {
  LossScaler s = Make(R"({"enabled": true, "loss_scale": 128})");
  EXPECT_FALSE(s.dynamic());
  EXPECT_TRUE(s.Update(true).ok());
  EXPECT_EQ(s.scale(), 128.0f);
  EXPECT_EQ(Make(R"({"enabled": false})").scale(), 1.0f);
}

TEST(LossScaler, HysteresisAbsorbsOneOverflowUntilAWindowPasses) {
  for (int stage : {0, 1, 2, 3}) {
    LossScaler s = Make(R"({"enabled": true, "initial_scale_power": 4, "loss_scale_window": 3, "hysteresis": 2})", stage);
    std::vector<float> scales;
    for (bool overflow : {true, true, false, true, false, false, false, false}) {
      ASSERT_TRUE(s.Update(overflow).ok());
      scales.push_back(s.scale());
    }
    // 1st overflow absorbed; 2nd halves; hysteresis stays used up, so the 3rd halves too; then a
    // full window of 3 clean steps after the last overflow doubles and refills.
    EXPECT_EQ(scales, (std::vector<float>{16, 8, 8, 4, 4, 4, 4, 8})) << "stage " << stage;
  }
}

TEST(LossScaler, ConsecutiveHysteresisRefillsOnEveryCleanStep) {
  LossScaler s = Make(R"({"enabled": true, "initial_scale_power": 4, "loss_scale_window": 100, "hysteresis": 2,
                          "consecutive_hysteresis": true})");
  for (bool overflow : {true, false, true, false, true}) ASSERT_TRUE(s.Update(overflow).ok());
  EXPECT_EQ(s.scale(), 16.0f);
}

TEST(LossScaler, OverflowAtTheMinimumIsAnError) {
  LossScaler s = Make(R"({"enabled": true, "initial_scale_power": 2, "hysteresis": 1, "min_loss_scale": 1})");
  ASSERT_TRUE(s.Update(true).ok());   // 4 -> 2
  ASSERT_TRUE(s.Update(true).ok());   // 2 -> 1
  Status st = s.Update(true);         // at the minimum
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(DeepSpeedErrorKind(st), "Exception");
  EXPECT_NE(st.message().find("fp16.min_loss_scale"), std::string::npos);
}

TEST(LossScaler, NonZeroRulesFloorInstead) {
  std::vector<std::string> warnings;
  StatusOr<DsConfig> cfg = ParseDsConfig(R"({"train_batch_size": 1, "fp16": {"enabled": true, "initial_scale_power": 1}})", {}, &warnings);
  ASSERT_TRUE(cfg.ok());
  LossScaler s = LossScaler::Create(*cfg, LossScalerRules::kNonZeroFp16);
  for (int i = 0; i < 5; ++i) ASSERT_TRUE(s.Update(true).ok());
  EXPECT_EQ(s.scale(), 1.0f);
}

}  // namespace
}  // namespace dsc
