// The "onebitadam" optimizer section (DeepSpeed's OnebitAdam): its constructor's defaults, the last
// uncompressed step, DeepSpeed's refusals (ZeRO, amsgrad, an unknown backend), the backends
// dscompile refuses, and the keys DeepSpeed accepts and never reads.
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "frontend/config/ds_config.h"
#include "tests/config/optimizer_parse_util.h"

namespace dsc {
namespace {

StatusOr<DsConfig> Parse(const std::string& params, const std::string& extra = "",
                         std::vector<std::string>* warnings = nullptr) {
  return config_test::ParseOptimizer("OneBitAdam", params, extra, warnings);
}

// deepspeed/runtime/fp16/onebit/adam.py's constructor.
TEST(OnebitConfig, DefaultsAreOnebitAdams) {
  StatusOr<DsConfig> cfg = Parse("{}");
  ASSERT_TRUE(cfg.ok()) << cfg.status().message();
  const OptimizerConfig& o = cfg->optimizer;
  EXPECT_EQ(o.type, "onebitadam");
  EXPECT_EQ(o.implementation, "OnebitAdam");
  EXPECT_EQ(o.lr, 1e-3);
  EXPECT_EQ(o.freeze_step, 100000);
  EXPECT_EQ(o.betas[0], 0.9);
  EXPECT_EQ(o.betas[1], 0.999);
  EXPECT_EQ(o.eps, 1e-8);
  EXPECT_EQ(o.weight_decay, 0.0);
  EXPECT_EQ(o.comm_backend_name, "nccl");
  EXPECT_TRUE(cfg->unsupported.empty());
}

// The first step() returns before the freeze check: the earliest last uncompressed step is 2, and
// a fractional freeze_step freezes after the first step at or past it.
TEST(OnebitConfig, LastUncompressedStep) {
  for (const auto& [given, last] : std::vector<std::pair<const char*, int64_t>>{
           {"0", 2}, {"1", 2}, {"2", 2}, {"3", 3}, {"2.5", 3}, {"100", 100}}) {
    StatusOr<DsConfig> cfg = Parse(std::string(R"({"freeze_step": )") + given + "}");
    ASSERT_TRUE(cfg.ok()) << cfg.status().message();
    EXPECT_EQ(cfg->optimizer.onebit_last_uncompressed_step(), last) << given;
  }
}

TEST(OnebitConfig, DeepSpeedsRefusalsAndOurs) {
  // engine.py asserts it before building the optimizer.
  StatusOr<DsConfig> cfg = Parse("{}", R"(, "zero_optimization": {"stage": 1})");
  ASSERT_FALSE(cfg.ok());
  EXPECT_NE(cfg.status().message().find("1bit-Adam is not compatible with ZeRO"), std::string::npos)
      << cfg.status().message();
  EXPECT_NE(cfg.status().message().find("optimizer.type"), std::string::npos) << cfg.status().message();
  cfg = Parse(R"({"amsgrad": true})");
  ASSERT_FALSE(cfg.ok());
  EXPECT_NE(cfg.status().message().find("AMSGrad"), std::string::npos) << cfg.status().message();
  cfg = Parse(R"({"comm_backend_name": "gloo"})");
  ASSERT_FALSE(cfg.ok());
  EXPECT_NE(cfg.status().message().find("optimizer.params.comm_backend_name"), std::string::npos)
      << cfg.status().message();
  cfg = Parse(R"({"comm_backend_name": 3})");
  EXPECT_FALSE(cfg.ok());
  cfg = Parse(R"({"freeze_stpe": 3})");
  ASSERT_FALSE(cfg.ok());
  EXPECT_NE(cfg.status().message().find("freeze_step"), std::string::npos) << cfg.status().message();
  // Accepted by DeepSpeed, not run here: recorded, so compiling refuses them by path.
  for (const char* backend : {"hccl", "compressed"}) {
    cfg = Parse(std::string(R"({"comm_backend_name": ")") + backend + "\"}");
    ASSERT_TRUE(cfg.ok()) << cfg.status().message();
    ASSERT_EQ(cfg->unsupported.size(), 1u) << backend;
    EXPECT_NE(cfg->unsupported[0].find("optimizer.params.comm_backend_name"), std::string::npos) << cfg->unsupported[0];
  }
  cfg = Parse(R"({"comm_backend_name": "mpi"})");
  ASSERT_TRUE(cfg.ok()) << cfg.status().message();
  EXPECT_TRUE(cfg->unsupported.empty());
}

// bias_correction, eps_inside_sqrt and cuda_aware are accepted and never read by OnebitAdam's
// arithmetic: set to other than their defaults, each is named in a warning.
TEST(OnebitConfig, KeysDeepSpeedNeverReadsWarn) {
  config_test::ExpectOnebitUnreadKeysWarn("OneBitAdam", "OnebitAdam");
  std::vector<std::string> warnings;
  StatusOr<DsConfig> cfg = Parse(R"({"bias_correction": true})", "", &warnings);
  ASSERT_TRUE(cfg.ok());
  for (const std::string& w : warnings) EXPECT_EQ(w.find("bias_correction"), std::string::npos) << w;
}

}  // namespace
}  // namespace dsc
