// The "muon" optimizer section (DeepSpeed's MuonWithAuxAdam): each group's defaults, muon_lr and
// adam_lr over lr, ns_method's assertion, the keys the engine never reads, DeepSpeed's ZeRO
// refusals, and the use_muon rule with a parameter group's override.
#include <string>
#include <utility>
#include <vector>

#include <gtest/gtest.h>

#include "frontend/config/ds_config.h"
#include "tests/config/optimizer_parse_util.h"
#include "frontend/config/parameter_groups.h"

namespace dsc {
namespace {

StatusOr<DsConfig> Parse(const std::string& params, const std::string& extra = "",
                         std::vector<std::string>* warnings = nullptr) {
  return config_test::ParseOptimizer("Muon", params, extra, warnings);
}

std::string ErrorOf(const std::string& params, const std::string& extra = "") {
  StatusOr<DsConfig> cfg = Parse(params, extra);
  EXPECT_FALSE(cfg.ok()) << params << extra;
  return cfg.ok() ? "" : cfg.status().message();
}

// original_muon.py:303-325's defaults.
TEST(MuonConfig, DefaultsAreMuonWithAuxAdams) {
  StatusOr<DsConfig> cfg = Parse("{}");
  ASSERT_TRUE(cfg.ok()) << cfg.status().message();
  const OptimizerConfig& o = cfg->optimizer;
  EXPECT_EQ(o.type, "muon");
  EXPECT_EQ(o.implementation, "MuonWithAuxAdam");
  EXPECT_EQ(o.muon_lr, 0.02);
  EXPECT_EQ(o.lr, 0.02);  // the scheduled lr is the Muon group's
  EXPECT_EQ(o.adam_lr, 3e-4);
  EXPECT_EQ(o.momentum, 0.95);
  EXPECT_EQ(o.ns_method, "gram");
  EXPECT_EQ(o.betas[0], 0.9);
  EXPECT_EQ(o.betas[1], 0.95);
  EXPECT_EQ(o.eps, 1e-10);
  EXPECT_EQ(o.weight_decay, 0.0);
  EXPECT_TRUE(o.zero_supported());
  // The resolved config names every value and parses back to the same.
  const nlohmann::json resolved = ResolvedConfigJson(*cfg);
  EXPECT_EQ(resolved["optimizer"]["params"]["adam_lr"], 3e-4);
  std::vector<std::string> warnings;
  StatusOr<DsConfig> again = ParseDsConfig(resolved.dump(), {}, &warnings, "resolved.json");
  ASSERT_TRUE(again.ok()) << again.status().message();
  EXPECT_EQ(again->optimizer.muon_lr, 0.02);
  EXPECT_EQ(again->optimizer.adam_lr, 3e-4);
  EXPECT_EQ(again->optimizer.ns_method, "gram");
}

// engine.py:2213-2231: lr goes to both groups, muon_lr/adam_lr override it for theirs.
TEST(MuonConfig, MuonLrAndAdamLrOverrideLr) {
  StatusOr<DsConfig> cfg = Parse(R"({"lr": 0.01})");
  ASSERT_TRUE(cfg.ok());
  EXPECT_EQ(cfg->optimizer.muon_lr, 0.01);
  EXPECT_EQ(cfg->optimizer.adam_lr, 0.01);
  cfg = Parse(R"({"lr": 0.01, "muon_lr": 0.05, "adam_lr": 0.001, "momentum": 0.9, "ns_method": "standard",
                  "betas": [0.8, 0.99], "eps": 1e-8, "weight_decay": 0.1})");
  ASSERT_TRUE(cfg.ok()) << cfg.status().message();
  EXPECT_EQ(cfg->optimizer.muon_lr, 0.05);
  EXPECT_EQ(cfg->optimizer.lr, 0.05);
  EXPECT_EQ(cfg->optimizer.adam_lr, 0.001);
  EXPECT_EQ(cfg->optimizer.momentum, 0.9);
  EXPECT_EQ(cfg->optimizer.ns_method, "standard");
  EXPECT_EQ(cfg->optimizer.betas[0], 0.8);
  EXPECT_EQ(cfg->optimizer.eps, 1e-8);
  EXPECT_EQ(cfg->optimizer.weight_decay, 0.1);
}

TEST(MuonConfig, NsMethodIsStandardOrGram) {
  std::string msg = ErrorOf(R"({"ns_method": "polar"})");
  EXPECT_NE(msg.find("optimizer.params.ns_method"), std::string::npos) << msg;
  EXPECT_NE(msg.find("must be one of {'standard', 'gram'}"), std::string::npos) << msg;
  EXPECT_NE(msg.find("[AssertionError]"), std::string::npos) << msg;
  msg = ErrorOf(R"({"momentum": "high"})");
  EXPECT_NE(msg.find("optimizer.params.momentum"), std::string::npos) << msg;
  msg = ErrorOf(R"({"betas": [0.9]})");
  EXPECT_NE(msg.find("optimizer.params.betas"), std::string::npos) << msg;
}

// The engine passes only its listed keys to MuonWithAuxAdam: others are ignored there, with a
// warning here.
TEST(MuonConfig, KeysTheEngineNeverReadsWarn) {
  std::vector<std::string> warnings;
  StatusOr<DsConfig> cfg = Parse(R"({"nesterov": false, "muon_lr": 0.01})", "", &warnings);
  ASSERT_TRUE(cfg.ok()) << cfg.status().message();
  bool warned = false;
  for (const std::string& w : warnings) warned = warned || w.find("optimizer.params.nesterov") != std::string::npos;
  EXPECT_TRUE(warned);
  EXPECT_FALSE(ResolvedConfigJson(*cfg)["optimizer"]["params"].contains("nesterov"));
}

// stage3.py:351 and stage_1_and_2.py:230.
TEST(MuonConfig, DeepSpeedsZeroRefusals) {
  std::string msg = ErrorOf("{}", R"(, "zero_optimization": {"stage": 3})");
  EXPECT_NE(msg.find("zero_optimization.reduce_scatter"), std::string::npos) << msg;
  EXPECT_NE(msg.find("Muon and reduce scatter cannot be used together"), std::string::npos) << msg;
  EXPECT_NE(msg.find("[ValueError]"), std::string::npos) << msg;
  EXPECT_TRUE(Parse("{}", R"(, "zero_optimization": {"stage": 3, "reduce_scatter": false})").ok());
  // DeepSpeed's stage 3 keeps the momentum in memory with this flag; NVMe offload here swaps it.
  StatusOr<DsConfig> kept = Parse("{}", R"(, "zero_optimization": {"stage": 3, "reduce_scatter": false,
      "save_muon_momentum_buffer_in_memory": true, "offload_optimizer": {"device": "nvme", "nvme_path": "/tmp"}})");
  ASSERT_TRUE(kept.ok()) << kept.status().message();
  ASSERT_EQ(kept->unsupported.size(), 1u);
  EXPECT_EQ(kept->unsupported[0].rfind("zero_optimization.save_muon_momentum_buffer_in_memory: ", 0), 0u)
      << kept->unsupported[0];
  // Stages 1 and 2 (MuonWithAuxAdam is in ZeRO's tested list) take it.
  for (const char* stage : {"1", "2"})
    EXPECT_TRUE(Parse("{}", std::string(R"(, "zero_optimization": {"stage": )") + stage + "}").ok()) << stage;
}

using Params = std::vector<std::pair<std::string, std::vector<int64_t>>>;

// deepspeed/__init__.py set_optimizer_flags.
TEST(MuonConfig, UseMuonRuleIsDeepSpeeds) {
  EXPECT_TRUE(UsesMuonByDefault("h.0.attn.c_attn.weight", {96, 32}));
  EXPECT_TRUE(UsesMuonByDefault("conv.weight", {8, 3, 3, 3}));
  EXPECT_TRUE(UsesMuonByDefault("transformer.wte.weight", {64, 32}));  // "wte" is not "embed"
  EXPECT_FALSE(UsesMuonByDefault("h.0.attn.c_attn.bias", {96}));
  EXPECT_FALSE(UsesMuonByDefault("model.Embed_tokens.weight", {64, 32}));
  EXPECT_FALSE(UsesMuonByDefault("LM_HEAD.weight", {64, 32}));
}

TEST(MuonConfig, AGroupsUseMuonOverridesTheRule) {
  StatusOr<DsConfig> cfg = Parse("{}", R"(, "dscompile": {"parameter_groups": [
      {"params": ["lm_head.weight"], "use_muon": true}, {"params": ["h.*"], "use_muon": false}]})");
  ASSERT_TRUE(cfg.ok()) << cfg.status().message();
  const Params params = {{"h.0.weight", {32, 32}}, {"lm_head.weight", {64, 32}}, {"wte.weight", {64, 32}}};
  StatusOr<ParameterGroupAssignment> a = AssignParameterGroups(cfg->dscompile, cfg->optimizer, "ds.json", params);
  ASSERT_TRUE(a.ok()) << a.status().message();
  ASSERT_EQ(a->groups.size(), 3u);
  EXPECT_EQ(a->groups[a->group_of[0]].use_muon, std::optional<bool>(false));
  EXPECT_EQ(a->groups[a->group_of[1]].use_muon, std::optional<bool>(true));
  EXPECT_EQ(a->groups[a->group_of[2]].use_muon, std::nullopt);  // the rule
  // The resolved section keeps the overrides.
  EXPECT_EQ(ResolvedConfigJson(*cfg)["dscompile"]["parameter_groups"][0]["use_muon"], true);
  // Only with the muon optimizer; a flag, not a string.
  std::vector<std::string> w;
  StatusOr<DsConfig> adam = ParseDsConfig(R"({"train_batch_size": 8, "optimizer": {"type": "AdamW"},
      "dscompile": {"parameter_groups": [{"params": ["*"], "use_muon": true}]}})", {}, &w, "ds.json");
  ASSERT_TRUE(adam.ok());
  a = AssignParameterGroups(adam->dscompile, adam->optimizer, "ds.json", params);
  ASSERT_FALSE(a.ok());
  EXPECT_NE(a.status().message().find("dscompile.parameter_groups[0].use_muon"), std::string::npos) << a.status().message();
  std::string msg = ErrorOf("{}", R"(, "dscompile": {"parameter_groups": [{"params": ["*"], "use_muon": "yes"}]})");
  EXPECT_NE(msg.find("dscompile.parameter_groups[0].use_muon"), std::string::npos) << msg;
}

}  // namespace
}  // namespace dsc
