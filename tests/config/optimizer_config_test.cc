// The optimizer section for the element-wise optimizers (Lion, Adagrad, torch.optim's RMSprop,
// Adamax, NAdam, RAdam, Adadelta): the class DeepSpeed builds, its constructor's defaults as the
// resolved config shows them, torch's argument checks, and the keywords a class does not take.
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "frontend/config/ds_config.h"

namespace dsc {
namespace {

StatusOr<DsConfig> Parse(const std::string& optimizer, const std::string& extra = "") {
  std::vector<std::string> warnings;
  return ParseDsConfig(R"({"train_batch_size": 8, "optimizer": )" + optimizer + extra + "}", {}, &warnings, "ds.json");
}

nlohmann::json ResolvedParams(const std::string& optimizer) {
  StatusOr<DsConfig> cfg = Parse(optimizer);
  EXPECT_TRUE(cfg.ok()) << optimizer << ": " << cfg.status().message();
  if (!cfg.ok()) return nullptr;
  return ResolvedConfigJson(*cfg)["optimizer"]["params"];
}

std::string ErrorOf(const std::string& optimizer, const std::string& extra = "") {
  StatusOr<DsConfig> cfg = Parse(optimizer, extra);
  EXPECT_FALSE(cfg.ok()) << optimizer;
  return cfg.ok() ? "" : cfg.status().message();
}

TEST(OptimizerConfig, ClassesDeepSpeedBuilds) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {R"({"type": "Lion"})", "FusedLion"},           {R"({"type": "lion"})", "FusedLion"},
      {R"({"type": "Adagrad"})", "torch.optim.Adagrad"}, {R"({"type": "RMSprop"})", "torch.optim.RMSprop"},
      {R"({"type": "Adamax"})", "torch.optim.Adamax"},   {R"({"type": "NAdam"})", "torch.optim.NAdam"},
      {R"({"type": "RAdam"})", "torch.optim.RAdam"},     {R"({"type": "Adadelta"})", "torch.optim.Adadelta"}};
  for (const auto& [text, impl] : cases) {
    StatusOr<DsConfig> cfg = Parse(text);
    ASSERT_TRUE(cfg.ok()) << text << ": " << cfg.status().message();
    EXPECT_EQ(cfg->optimizer.implementation, impl) << text;
  }
}

// The constructors' defaults (DeepSpeed 0.19.6's FusedLion, torch 2.x's classes).
TEST(OptimizerConfig, DefaultsAreTheConstructors) {
  EXPECT_EQ(ResolvedParams(R"({"type": "Lion"})"),
            nlohmann::json::parse(R"({"lr": 0.001, "betas": [0.9, 0.999], "weight_decay": 0.0, "set_grad_none": true})"));
  nlohmann::json p = ResolvedParams(R"({"type": "RMSprop"})");
  EXPECT_EQ(p["lr"], 0.01);
  EXPECT_EQ(p["alpha"], 0.99);
  EXPECT_EQ(p["eps"], 1e-8);
  EXPECT_EQ(p["momentum"], 0.0);
  EXPECT_EQ(p["centered"], false);
  EXPECT_TRUE(p.contains("capturable"));
  p = ResolvedParams(R"({"type": "NAdam"})");
  EXPECT_EQ(p["lr"], 0.002);
  EXPECT_EQ(p["momentum_decay"], 0.004);
  EXPECT_EQ(p["decoupled_weight_decay"], false);
  EXPECT_EQ(ResolvedParams(R"({"type": "RAdam"})")["lr"], 0.001);
  EXPECT_EQ(ResolvedParams(R"({"type": "Adamax"})")["lr"], 0.002);
  p = ResolvedParams(R"({"type": "Adadelta"})");
  EXPECT_EQ(p["lr"], 1.0);
  EXPECT_EQ(p["rho"], 0.9);
  EXPECT_EQ(p["eps"], 1e-6);
  p = ResolvedParams(R"({"type": "Adagrad"})");
  EXPECT_EQ(p["eps"], 1e-10);
  EXPECT_FALSE(p.contains("capturable")) << "torch.optim.Adagrad has no capturable";
}

TEST(OptimizerConfig, ValuesReachTheConfig) {
  StatusOr<DsConfig> cfg = Parse(R"({"type": "RMSprop", "params": {"alpha": 0.9, "momentum": 0.5, "centered": true}})");
  ASSERT_TRUE(cfg.ok()) << cfg.status().message();
  EXPECT_EQ(cfg->optimizer.alpha, 0.9);
  EXPECT_EQ(cfg->optimizer.momentum, 0.5);
  EXPECT_TRUE(cfg->optimizer.centered);
  cfg = Parse(R"({"type": "NAdam", "params": {"momentum_decay": 0.01, "decoupled_weight_decay": true}})");
  ASSERT_TRUE(cfg.ok()) << cfg.status().message();
  EXPECT_EQ(cfg->optimizer.momentum_decay, 0.01);
  EXPECT_TRUE(cfg->optimizer.decoupled_weight_decay);
  cfg = Parse(R"({"type": "Adadelta", "params": {"rho": 0.95}})");
  ASSERT_TRUE(cfg.ok()) << cfg.status().message();
  EXPECT_EQ(cfg->optimizer.rho, 0.95);
}

TEST(OptimizerConfig, TorchChecksAndUnknownKeywordsNameThePath) {
  std::string msg = ErrorOf(R"({"type": "Adadelta", "params": {"rho": 1.5}})");
  EXPECT_NE(msg.find("optimizer.params.rho"), std::string::npos) << msg;
  msg = ErrorOf(R"({"type": "RMSprop", "params": {"alpha": -0.1}})");
  EXPECT_NE(msg.find("optimizer.params.alpha"), std::string::npos) << msg;
  msg = ErrorOf(R"({"type": "NAdam", "params": {"momentum_decay": -1}})");
  EXPECT_NE(msg.find("optimizer.params.momentum_decay"), std::string::npos) << msg;
  msg = ErrorOf(R"({"type": "Adagrad", "params": {"lr_decay": -1}})");
  EXPECT_NE(msg.find("optimizer.params.lr_decay"), std::string::npos) << msg;
  msg = ErrorOf(R"({"type": "Lion", "params": {"eps": 1e-8}})");
  EXPECT_NE(msg.find("optimizer.params.eps"), std::string::npos) << msg;
  EXPECT_NE(msg.find("is not a parameter of FusedLion"), std::string::npos) << msg;
  msg = ErrorOf(R"({"type": "Adagrad", "params": {"capturable": true}})");
  EXPECT_NE(msg.find("optimizer.params.capturable"), std::string::npos) << msg;
  // maximize: torch accepts it, dscompile does not implement it; recorded, refused at compile time.
  StatusOr<DsConfig> maximize = Parse(R"({"type": "RMSprop", "params": {"maximize": true}})");
  ASSERT_TRUE(maximize.ok()) << maximize.status().message();
  ASSERT_EQ(maximize->unsupported.size(), 1u);
  EXPECT_EQ(maximize->unsupported[0].rfind("optimizer.params.maximize: ", 0), 0u) << maximize->unsupported[0];
  EXPECT_FALSE(RefuseUnsupported(*maximize).ok());
}

// DeepSpeed's ZERO_SUPPORTED_OPTIMIZERS has Lion and Adagrad; the torch classes need
// zero_allow_untested_optimizer.
TEST(OptimizerConfig, ZeroNeedsAllowUntestedForTorchClasses) {
  EXPECT_TRUE(Parse(R"({"type": "Lion"})", R"(, "zero_optimization": {"stage": 3})").ok());
  EXPECT_TRUE(Parse(R"({"type": "Adagrad"})", R"(, "zero_optimization": {"stage": 2})").ok());
  std::string msg = ErrorOf(R"({"type": "RAdam"})", R"(, "zero_optimization": {"stage": 3})");
  EXPECT_NE(msg.find("zero_allow_untested_optimizer"), std::string::npos) << msg;
  EXPECT_TRUE(Parse(R"({"type": "RAdam"})", R"(, "zero_optimization": {"stage": 3}, "zero_allow_untested_optimizer": true)").ok());
}

}  // namespace
}  // namespace dsc
