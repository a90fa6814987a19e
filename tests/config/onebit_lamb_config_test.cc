// The "onebitlamb" optimizer section (DeepSpeed's OnebitLamb): its constructor's defaults,
// DeepSpeed's refusals (ZeRO, amsgrad, a static loss scale, an unknown backend), the backends
// dscompile refuses, and the keys DeepSpeed accepts and never reads; the optimizer pass's
// refusals are tested end to end (tests/e2e/onebit_lamb_test.cc).
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "frontend/config/ds_config.h"
#include "tests/config/optimizer_parse_util.h"

namespace dsc {
namespace {

StatusOr<DsConfig> Parse(const std::string& params, const std::string& extra = "",
                         std::vector<std::string>* warnings = nullptr) {
  return config_test::ParseOptimizer("OneBitLamb", params, extra, warnings);
}

// deepspeed/runtime/fp16/onebit/lamb.py:62-81.
TEST(OnebitLambConfig, DefaultsAreOnebitLambs) {
  StatusOr<DsConfig> cfg = Parse("{}");
  ASSERT_TRUE(cfg.ok()) << cfg.status().message();
  const OptimizerConfig& o = cfg->optimizer;
  EXPECT_EQ(o.type, "onebitlamb");
  EXPECT_EQ(o.implementation, "OnebitLamb");
  EXPECT_EQ(o.lr, 1e-3);
  EXPECT_EQ(o.freeze_step, 100000);
  EXPECT_EQ(o.betas[0], 0.9);
  EXPECT_EQ(o.betas[1], 0.999);
  EXPECT_EQ(o.eps, 1e-8);
  EXPECT_EQ(o.weight_decay, 0.0);
  EXPECT_EQ(o.max_coeff, 10.0);
  EXPECT_EQ(o.min_coeff, 0.01);
  EXPECT_EQ(o.coeff_beta, 0.9);
  EXPECT_EQ(o.factor_max, 4.0);
  EXPECT_EQ(o.factor_min, 0.5);
  EXPECT_EQ(o.factor_threshold, 0.1);
  EXPECT_EQ(o.comm_backend_name, "nccl");
  EXPECT_EQ(o.onebit_last_uncompressed_step(), 100000);
  EXPECT_TRUE(cfg->unsupported.empty());

  cfg = Parse(R"({"coeff_beta": 0.8, "factor_max": 3, "factor_min": 0.6, "factor_threshold": 0.2, "max_coeff": 5,
                  "min_coeff": 0.05, "freeze_step": 1})");
  ASSERT_TRUE(cfg.ok()) << cfg.status().message();
  EXPECT_EQ(cfg->optimizer.coeff_beta, 0.8);
  EXPECT_EQ(cfg->optimizer.factor_max, 3.0);
  EXPECT_EQ(cfg->optimizer.factor_min, 0.6);
  EXPECT_EQ(cfg->optimizer.factor_threshold, 0.2);
  EXPECT_EQ(cfg->optimizer.max_coeff, 5.0);
  EXPECT_EQ(cfg->optimizer.min_coeff, 0.05);
  EXPECT_EQ(cfg->optimizer.onebit_last_uncompressed_step(), 2);  // step 1 returns before the freeze check
}

TEST(OnebitLambConfig, DeepSpeedsRefusalsAndOurs) {
  // engine.py asserts it before building the optimizer.
  StatusOr<DsConfig> cfg = Parse("{}", R"(, "zero_optimization": {"stage": 1})");
  ASSERT_FALSE(cfg.ok());
  EXPECT_NE(cfg.status().message().find("1bit-Lamb is not compatible with ZeRO"), std::string::npos)
      << cfg.status().message();
  EXPECT_NE(cfg.status().message().find("optimizer.type"), std::string::npos) << cfg.status().message();
  // engine.py: "DeepSpeed OneBitLamb optimizer requires dynamic loss scaling" (Lamb's assertion).
  cfg = Parse("{}", R"(, "fp16": {"enabled": false, "loss_scale": 128})");
  ASSERT_FALSE(cfg.ok());
  EXPECT_NE(cfg.status().message().find("fp16.loss_scale"), std::string::npos) << cfg.status().message();
  cfg = Parse(R"({"amsgrad": true})");
  ASSERT_FALSE(cfg.ok());
  EXPECT_NE(cfg.status().message().find("1-bit Lamb does not support the AMSGrad variant"), std::string::npos)
      << cfg.status().message();
  cfg = Parse(R"({"comm_backend_name": "gloo"})");
  ASSERT_FALSE(cfg.ok());
  EXPECT_NE(cfg.status().message().find("optimizer.params.comm_backend_name"), std::string::npos)
      << cfg.status().message();
  cfg = Parse(R"({"factor_max": "big"})");
  EXPECT_FALSE(cfg.ok());
  cfg = Parse(R"({"coeff_betta": 0.9})");
  ASSERT_FALSE(cfg.ok());
  EXPECT_NE(cfg.status().message().find("coeff_beta"), std::string::npos) << cfg.status().message();
  for (const char* backend : {"hccl", "compressed"}) {
    cfg = Parse(std::string(R"({"comm_backend_name": ")") + backend + "\"}");
    ASSERT_TRUE(cfg.ok()) << cfg.status().message();
    ASSERT_EQ(cfg->unsupported.size(), 1u) << backend;
    EXPECT_NE(cfg->unsupported[0].find("optimizer.params.comm_backend_name"), std::string::npos) << cfg->unsupported[0];
    EXPECT_NE(cfg->unsupported[0].find("1-bit Lamb"), std::string::npos) << cfg->unsupported[0];
  }
}

// bias_correction, eps_inside_sqrt and cuda_aware are accepted and never read by OnebitLamb's
// arithmetic: set to other than their defaults, each is named in a warning.
TEST(OnebitLambConfig, KeysDeepSpeedNeverReadsWarn) {
  config_test::ExpectOnebitUnreadKeysWarn("OneBitLamb", "OnebitLamb");
}

}  // namespace
}  // namespace dsc
