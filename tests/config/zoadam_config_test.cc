// The "zerooneadam" optimizer section (DeepSpeed's ZeroOneAdam, 0/1 Adam): its constructor's
// defaults, the last step before the variance freeze, DeepSpeed's refusals (ZeRO, amsgrad, an
// unknown backend, a misspelt key), the step counts dscompile refuses, and the keys DeepSpeed
// accepts and never reads.
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "frontend/config/ds_config.h"
#include "tests/config/optimizer_parse_util.h"

namespace dsc {
namespace {

StatusOr<DsConfig> Parse(const std::string& params, const std::string& extra = "",
                         std::vector<std::string>* warnings = nullptr) {
  return config_test::ParseOptimizer("ZeroOneAdam", params, extra, warnings);
}

// deepspeed/runtime/fp16/onebit/zoadam.py's constructor.
TEST(ZoadamConfig, DefaultsAreZeroOneAdams) {
  StatusOr<DsConfig> cfg = Parse("{}");
  ASSERT_TRUE(cfg.ok()) << cfg.status().message();
  const OptimizerConfig& o = cfg->optimizer;
  EXPECT_EQ(o.type, "zerooneadam");
  EXPECT_EQ(o.implementation, "ZeroOneAdam");
  EXPECT_EQ(o.lr, 1e-3);
  EXPECT_EQ(o.betas[0], 0.9);
  EXPECT_EQ(o.betas[1], 0.999);
  EXPECT_EQ(o.eps, 1e-8);
  EXPECT_EQ(o.weight_decay, 0.0);
  EXPECT_EQ(o.var_freeze_step, 100000);
  EXPECT_EQ(o.var_update_scaler, 16);
  EXPECT_EQ(o.local_step_scaler, 32678);
  EXPECT_EQ(o.local_step_clipper, 16);
  EXPECT_EQ(o.comm_backend_name, "nccl");
  EXPECT_EQ(o.zoadam_last_variance_step(), 100001);
  EXPECT_TRUE(cfg->unsupported.empty());
  // The resolved section names every constructor argument, as DeepSpeed's would.
  for (const char* key : {"var_freeze_step", "var_update_scaler", "local_step_scaler", "local_step_clipper",
                          "bias_correction", "eps_inside_sqrt", "cuda_aware", "comm_backend_name", "amsgrad"})
    EXPECT_TRUE(o.params.contains(key)) << key;
}

// The freeze comes after the first step s > var_freeze_step, never after step 1 (which only
// initialises and returns before the check): the last variance-phase step is max(2, floor+1).
TEST(ZoadamConfig, LastVarianceStep) {
  for (const auto& [given, last] : std::vector<std::pair<const char*, int64_t>>{
           {"0", 2}, {"1", 2}, {"1.5", 2}, {"2", 3}, {"2.5", 3}, {"12", 13}, {"100", 101}}) {
    StatusOr<DsConfig> cfg = Parse(std::string(R"({"var_freeze_step": )") + given + "}");
    ASSERT_TRUE(cfg.ok()) << cfg.status().message();
    EXPECT_EQ(cfg->optimizer.zoadam_last_variance_step(), last) << given;
  }
}

TEST(ZoadamConfig, DeepSpeedsRefusalsAndOurs) {
  // engine.py asserts it before building the optimizer.
  StatusOr<DsConfig> cfg = Parse("{}", R"(, "zero_optimization": {"stage": 2})");
  ASSERT_FALSE(cfg.ok());
  EXPECT_NE(cfg.status().message().find("0/1 Adam is not compatible with ZeRO"), std::string::npos)
      << cfg.status().message();
  EXPECT_NE(cfg.status().message().find("optimizer.type"), std::string::npos) << cfg.status().message();
  cfg = Parse(R"({"amsgrad": true})");
  ASSERT_FALSE(cfg.ok());
  EXPECT_NE(cfg.status().message().find("0/1 Adam does not support the AMSGrad variant"), std::string::npos)
      << cfg.status().message();
  cfg = Parse(R"({"comm_backend_name": "gloo"})");
  ASSERT_FALSE(cfg.ok());
  EXPECT_NE(cfg.status().message().find("optimizer.params.comm_backend_name"), std::string::npos)
      << cfg.status().message();
  cfg = Parse(R"({"var_freeze_stpe": 3})");
  ASSERT_FALSE(cfg.ok());
  EXPECT_NE(cfg.status().message().find("var_freeze_step"), std::string::npos) << cfg.status().message();
  cfg = Parse(R"({"freeze_step": 3})");  // OneBitAdam's key is not ZeroOneAdam's
  ASSERT_FALSE(cfg.ok());
  EXPECT_NE(cfg.status().message().find("optimizer.params.freeze_step"), std::string::npos) << cfg.status().message();
  cfg = Parse(R"({"max_grad_norm": 1.0})");
  ASSERT_FALSE(cfg.ok());
  // Accepted by DeepSpeed, not run here: recorded, so compiling refuses them by path.
  for (const char* backend : {"hccl", "compressed"}) {
    cfg = Parse(std::string(R"({"comm_backend_name": ")") + backend + "\"}");
    ASSERT_TRUE(cfg.ok()) << cfg.status().message();
    ASSERT_EQ(cfg->unsupported.size(), 1u) << backend;
    EXPECT_NE(cfg->unsupported[0].find("optimizer.params.comm_backend_name"), std::string::npos) << cfg->unsupported[0];
  }
  // Counts DeepSpeed compares with ==, doubles and takes steps modulo: a fraction or a value below
  // 1 would make an interval that never doubles, a fractional one or a modulo by zero.
  for (const char* key : {"var_update_scaler", "local_step_scaler", "local_step_clipper"})
    for (const char* value : {"0", "-2", "2.5"}) {
      cfg = Parse(std::string("{\"") + key + "\": " + value + "}");
      ASSERT_TRUE(cfg.ok()) << cfg.status().message();
      ASSERT_EQ(cfg->unsupported.size(), 1u) << key << " " << value;
      EXPECT_NE(cfg->unsupported[0].find(std::string("optimizer.params.") + key), std::string::npos)
          << cfg->unsupported[0];
    }
  cfg = Parse(R"({"var_update_scaler": 3.0, "local_step_scaler": 1, "local_step_clipper": 1, "comm_backend_name": "mpi"})");
  ASSERT_TRUE(cfg.ok()) << cfg.status().message();
  EXPECT_TRUE(cfg->unsupported.empty());
  EXPECT_EQ(cfg->optimizer.var_update_scaler, 3);
}

// bias_correction, eps_inside_sqrt and cuda_aware are accepted and never read by ZeroOneAdam's
// arithmetic: set to other than their defaults, each is named in a warning.
TEST(ZoadamConfig, KeysDeepSpeedNeverReadsWarn) {
  config_test::ExpectOnebitUnreadKeysWarn("ZeroOneAdam", "ZeroOneAdam");
}

}  // namespace
}  // namespace dsc
