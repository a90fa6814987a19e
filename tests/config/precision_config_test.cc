// The amp section as apex's amp.initialize reads it (levels O0-O3 and their overrides, from
// apex/amp/frontend.py), and the precision checks DeepSpeed makes at initialize, each with
// DeepSpeed's (or apex's) error kind and the JSON path.
#include <algorithm>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "frontend/config/ds_config.h"

namespace dsc {
namespace {

using nlohmann::json;

StatusOr<DsConfig> Parse(const json& doc, std::vector<std::string>* warnings = nullptr) {
  std::vector<std::string> local;
  return ParseDsConfig(doc.dump(), ConfigOptions{}, warnings ? warnings : &local, "ds.json");
}

json WithAmp(const json& amp) { return {{"train_batch_size", 8}, {"amp", amp}}; }

// The message of the error `doc` must give; empty (with a test failure) if it parses.
std::string ErrorOf(const json& doc) {
  StatusOr<DsConfig> cfg = Parse(doc);
  EXPECT_FALSE(cfg.ok()) << doc.dump();
  return cfg.ok() ? "" : cfg.status().message();
}

void ExpectError(const json& doc, const std::string& kind, const std::string& path) {
  StatusOr<DsConfig> cfg = Parse(doc);
  ASSERT_FALSE(cfg.ok()) << doc.dump();
  const std::string& msg = cfg.status().message();
  EXPECT_EQ(DeepSpeedErrorKind(cfg.status()), kind) << msg;
  EXPECT_EQ(msg.rfind("ds.json: " + path + ":", 0), 0u) << msg;
}

// Accepted by DeepSpeed, not implemented by dscompile: parsed (for --explain-config) with the key
// recorded, and refused when compiling.
void ExpectUnsupported(const json& doc, const std::string& path) {
  StatusOr<DsConfig> recorded = Parse(doc);
  ASSERT_TRUE(recorded.ok()) << recorded.status().message();
  ASSERT_EQ(recorded->unsupported.size(), 1u);
  EXPECT_EQ(recorded->unsupported[0].rfind(path + ":", 0), 0u) << recorded->unsupported[0];
  const Status refused = RefuseUnsupported(*recorded);
  EXPECT_EQ(DeepSpeedErrorKind(refused), "Unsupported") << refused.message();
  EXPECT_NE(refused.message().find("\n  " + path + ":"), std::string::npos) << refused.message();
}

TEST(AmpConfig, LevelsResolveToApexsDefaults) {
  struct Level {
    const char* level;
    json cast_model_type, patch_torch_functions, keep_batchnorm_fp32, master_weights, loss_scale;
  };
  // apex/amp/frontend.py, classes O0-O3 (torch.float16 → "fp16", None → null).
  const Level levels[] = {{"O0", "fp32", false, nullptr, false, 1.0},
                          {"O1", nullptr, true, nullptr, nullptr, "dynamic"},
                          {"O2", "fp16", false, true, true, "dynamic"},
                          {"O3", "fp16", false, false, false, 1.0}};
  for (const Level& l : levels) {
    json amp = {{"enabled", true}};
    if (std::string(l.level) != "O1") amp["opt_level"] = l.level;  // O1 is apex's default level
    StatusOr<DsConfig> cfg = Parse(WithAmp(amp));
    ASSERT_TRUE(cfg.ok()) << l.level << ": " << cfg.status().message();
    const json got = ResolvedConfigJson(*cfg)["amp"];
    EXPECT_EQ(got["opt_level"], l.level);
    EXPECT_EQ(got["cast_model_type"], l.cast_model_type) << l.level;
    EXPECT_EQ(got["patch_torch_functions"], l.patch_torch_functions) << l.level;
    EXPECT_EQ(got["keep_batchnorm_fp32"], l.keep_batchnorm_fp32) << l.level;
    EXPECT_EQ(got["master_weights"], l.master_weights) << l.level;
    EXPECT_EQ(got["loss_scale"], l.loss_scale) << l.level;
    EXPECT_EQ(got["min_loss_scale"], nullptr);
    EXPECT_EQ(got["max_loss_scale"], 16777216.0);  // apex: 2.**24
  }
}

TEST(AmpConfig, OverridesTakeApexsSpellings) {
  StatusOr<DsConfig> cfg = Parse(WithAmp({{"enabled", true}, {"opt_level", "O2"}, {"keep_batchnorm_fp32", "False"},
                                          {"master_weights", false}, {"loss_scale", "128.0"},
                                          {"cast_model_type", "torch.float16"}, {"min_loss_scale", 2},
                                          {"max_loss_scale", 65536}, {"cast_model_outputs", "torch.float32"},
                                          {"num_losses", 2}, {"verbosity", 0}}));
  ASSERT_TRUE(cfg.ok()) << cfg.status().message();
  const AmpConfig& a = cfg->amp;
  EXPECT_EQ(a.keep_batchnorm_fp32, std::optional<bool>(false));
  EXPECT_EQ(a.master_weights, std::optional<bool>(false));
  EXPECT_FALSE(a.dynamic_loss_scale);
  EXPECT_EQ(a.loss_scale, 128.0);
  EXPECT_EQ(a.cast_model_type, std::optional<std::string>("fp16"));
  EXPECT_EQ(a.min_loss_scale, std::optional<double>(2.0));
  EXPECT_EQ(a.max_loss_scale, 65536.0);
  EXPECT_EQ(a.cast_model_outputs, std::optional<std::string>("fp32"));
  EXPECT_EQ(a.num_losses, 2);
  // null means "not overridden" to apex's initialize().
  cfg = Parse(WithAmp({{"enabled", true}, {"opt_level", "O3"}, {"loss_scale", nullptr}, {"master_weights", nullptr}}));
  ASSERT_TRUE(cfg.ok()) << cfg.status().message();
  EXPECT_FALSE(cfg->amp.dynamic_loss_scale);
  EXPECT_EQ(cfg->amp.master_weights, std::optional<bool>(false));
  cfg = Parse(WithAmp({{"enabled", true}, {"opt_level", "O3"}, {"loss_scale", "dynamic"}}));
  ASSERT_TRUE(cfg.ok()) << cfg.status().message();
  EXPECT_TRUE(cfg->amp.dynamic_loss_scale);
}

TEST(AmpConfig, ResolvedJsonParsesBackToTheSameConfig) {
  const json amps[] = {
      {{"enabled", false}},
      {{"enabled", false}, {"opt_level", "O9"}},  // DeepSpeed never calls apex: ignored
      {{"enabled", true}},
      {{"enabled", true}, {"opt_level", "O0"}},
      {{"enabled", true}, {"opt_level", "O2"}, {"keep_batchnorm_fp32", "False"}, {"loss_scale", 512}},
      {{"enabled", true}, {"opt_level", "O3"}, {"master_weights", true}, {"min_loss_scale", 0.25},
       {"max_loss_scale", 1024.0}, {"num_losses", 3}},
  };
  for (const json& amp : amps) {
    StatusOr<DsConfig> first = Parse(WithAmp(amp));
    ASSERT_TRUE(first.ok()) << amp.dump() << ": " << first.status().message();
    const json resolved = ResolvedConfigJson(*first);
    std::vector<std::string> warnings;
    StatusOr<DsConfig> second = Parse(resolved, &warnings);
    ASSERT_TRUE(second.ok()) << resolved["amp"].dump() << ": " << second.status().message();
    EXPECT_EQ(ResolvedConfigJson(*second), resolved) << amp.dump();
    EXPECT_EQ(second->amp.enabled, first->amp.enabled);
    EXPECT_EQ(second->amp.opt_level, first->amp.opt_level);
    EXPECT_EQ(second->amp.master_weights, first->amp.master_weights);
    EXPECT_EQ(second->amp.keep_batchnorm_fp32, first->amp.keep_batchnorm_fp32);
    EXPECT_EQ(second->amp.loss_scale, first->amp.loss_scale);
    EXPECT_EQ(second->amp.min_loss_scale, first->amp.min_loss_scale);
    for (const std::string& w : warnings) EXPECT_EQ(w.find("amp"), std::string::npos) << w;
  }
  // No amp section at all: the resolved config says amp is off, and that parses back.
  StatusOr<DsConfig> none = Parse({{"train_batch_size", 8}});
  ASSERT_TRUE(none.ok());
  EXPECT_EQ(ResolvedConfigJson(*none)["amp"], json({{"enabled", false}}));
}

TEST(AmpConfig, DisabledAmpIgnoresItsOptionsWithAWarning) {
  std::vector<std::string> warnings;
  StatusOr<DsConfig> cfg = Parse(WithAmp({{"enabled", false}, {"opt_level", "O7"}, {"bogus", 1}}), &warnings);
  ASSERT_TRUE(cfg.ok()) << cfg.status().message();
  ASSERT_EQ(warnings.size(), 1u);
  EXPECT_NE(warnings[0].find("ignored"), std::string::npos) << warnings[0];
}

TEST(AmpConfig, ErrorsCarryDeepSpeedsAndApexsKinds) {
  ExpectError(WithAmp({{"opt_level", "O2"}}), "KeyError", "amp.enabled");  // DeepSpeed pops "enabled"
  ExpectError(WithAmp({{"enabled", true}, {"opt_levl", "O2"}}), "TypeError", "amp.opt_levl");
  EXPECT_NE(ErrorOf(WithAmp({{"enabled", true}, {"opt_levl", "O2"}})).find("did you mean \"opt_level\""),
            std::string::npos);
  ExpectError(WithAmp({{"enabled", true}, {"opt_level", "O4"}}), "RuntimeError", "amp.opt_level");
  ExpectError(WithAmp({{"enabled", true}, {"opt_level", "o2"}}), "RuntimeError", "amp.opt_level");
  ExpectError(WithAmp({{"enabled", true}, {"opt_level", nullptr}}), "RuntimeError", "amp.opt_level");
  // apex's Properties.__setattr__ refusals (warn_or_err raises RuntimeError).
  ExpectError(WithAmp({{"enabled", true}, {"cast_model_type", "fp16"}}), "RuntimeError", "amp.cast_model_type");
  ExpectError(WithAmp({{"enabled", true}, {"master_weights", false}}), "RuntimeError", "amp.master_weights");
  ExpectError(WithAmp({{"enabled", true}, {"keep_batchnorm_fp32", true}}), "RuntimeError", "amp.keep_batchnorm_fp32");
  ExpectError(WithAmp({{"enabled", true}, {"opt_level", "O2"}, {"patch_torch_functions", true}}), "RuntimeError",
              "amp.patch_torch_functions");
  ExpectError(WithAmp({{"enabled", true}, {"opt_level", "O2"}, {"keep_batchnorm_fp32", "yes"}}), "AssertionError",
              "amp.keep_batchnorm_fp32");
  // float(value): ValueError for a string it cannot read, TypeError for a list.
  ExpectError(WithAmp({{"enabled", true}, {"loss_scale", "auto"}}), "ValueError", "amp.loss_scale");
  ExpectError(WithAmp({{"enabled", true}, {"loss_scale", json::array()}}), "TypeError", "amp.loss_scale");
  ExpectError(WithAmp({{"enabled", true}, {"max_loss_scale", "big"}}), "TypeError", "amp.max_loss_scale");
  ExpectError(WithAmp({{"enabled", true}, {"min_loss_scale", 64}, {"max_loss_scale", 32}}), "ValueError",
              "amp.min_loss_scale");
  ExpectError(WithAmp({{"enabled", true}, {"num_losses", 0}}), "ValueError", "amp.num_losses");
  ExpectError(WithAmp({{"enabled", true}, {"cast_model_outputs", "float64"}}), "ValueError", "amp.cast_model_outputs");
}

TEST(AmpConfig, OptionsContradictingDscompilesLevelsAreUnsupported) {
  ExpectUnsupported(WithAmp({{"enabled", true}, {"opt_level", "O2"}, {"cast_model_type", "bf16"}}), "amp.cast_model_type");
  ExpectUnsupported(WithAmp({{"enabled", true}, {"opt_level", "O3"}, {"cast_model_type", false}}), "amp.cast_model_type");
  ExpectUnsupported(WithAmp({{"enabled", true}, {"opt_level", "O0"}, {"cast_model_type", "half"}}), "amp.cast_model_type");
  ExpectUnsupported(WithAmp({{"enabled", true}, {"patch_torch_functions", false}}), "amp.patch_torch_functions");
  ExpectUnsupported(WithAmp({{"enabled", true}, {"opt_level", "O0"}, {"loss_scale", "dynamic"}}), "amp.loss_scale");
  ExpectUnsupported(WithAmp({{"enabled", true}, {"loss_scale", 0}}), "amp.loss_scale");
  ExpectUnsupported(WithAmp({{"enabled", true}, {"loss_scale", "inf"}}), "amp.loss_scale");
  ExpectUnsupported(WithAmp({{"enabled", true}, {"cast_model_outputs", "fp16"}}), "amp.cast_model_outputs");
  // What the level does anyway is accepted.
  EXPECT_TRUE(Parse(WithAmp({{"enabled", true}, {"cast_model_type", "torch.float32"}, {"patch_torch_functions", true}})).ok());
  EXPECT_TRUE(Parse(WithAmp({{"enabled", true}, {"opt_level", "O0"}, {"cast_model_type", false}})).ok());
}

TEST(AmpConfig, DeepSpeedsSanityChecksComeBeforeApex) {
  // The engine refuses amp with ZeRO before it calls amp.initialize: a bad level does not matter.
  ExpectError({{"train_batch_size", 8}, {"zero_optimization", {{"stage", 1}}}, {"amp", {{"enabled", true}, {"opt_level", "O9"}}}},
              "AssertionError", "amp.enabled");
  ExpectError({{"train_batch_size", 8}, {"bf16", {{"enabled", true}}}, {"amp", {{"enabled", true}, {"bogus", 1}}}},
              "NotImplementedError", "amp.enabled");
  ExpectError({{"train_batch_size", 8}, {"data_types", {{"grad_accum_dtype", "fp16"}}}, {"amp", {{"enabled", true}}}},
              "NotImplementedError", "data_types.grad_accum_dtype");
}

TEST(PrecisionChecks, MasterWeightOptionsNeedZeroAndOffload) {
  const json adam = {{"type", "Adam"}, {"params", {{"lr", 1e-3}}}};
  // config.py _do_error_check: ZeRO stage 1-3.
  ExpectError({{"train_batch_size", 8}, {"fp16", {{"enabled", true}, {"fp16_master_weights_and_grads", true}}}},
              "AssertionError", "fp16.fp16_master_weights_and_grads");
  ExpectError({{"train_batch_size", 8}, {"bf16", {{"enabled", true}, {"bf16_master_weights_and_grads", true}}}},
              "AssertionError", "bf16.bf16_master_weights_and_grads");
  ExpectError({{"train_batch_size", 8}, {"zero_optimization", {{"stage", 2}}},
               {"bf16", {{"enabled", true}, {"bf16_optimizer_states", true}}}},
              "AssertionError", "bf16.bf16_optimizer_states");
  // The ZeRO optimizers (_configure_master_weights): half master weights with fp32 optimizer
  // states need ZeRO-Offload with DeepSpeedCPUAdam.
  ExpectError({{"train_batch_size", 8}, {"zero_optimization", {{"stage", 2}}}, {"optimizer", adam},
               {"fp16", {{"enabled", true}, {"fp16_master_weights_and_grads", true}}}},
              "AssertionError", "fp16.fp16_master_weights_and_grads");
  ExpectError({{"train_batch_size", 8}, {"zero_optimization", {{"stage", 3}}}, {"optimizer", adam},
               {"bf16", {{"enabled", true}, {"bf16_master_weights_and_grads", true}}}},
              "AssertionError", "bf16.bf16_master_weights_and_grads");
  ExpectError({{"train_batch_size", 8}, {"zero_optimization", {{"stage", 1}}}, {"optimizer", adam},
               {"fp16", {{"enabled", true}, {"fp16_master_weights_and_grads", true}}},
               {"bf16", {{"bf16_master_weights_and_grads", true}}}},
              "AssertionError", "bf16.bf16_master_weights_and_grads");
  // bf16 master weights with bf16 optimizer states stay on the device: accepted without offload.
  StatusOr<DsConfig> on_device =
      Parse({{"train_batch_size", 8}, {"zero_optimization", {{"stage", 2}}}, {"optimizer", adam},
             {"bf16", {{"enabled", true}, {"bf16_master_weights_and_grads", true}, {"bf16_optimizer_states", true}}}});
  EXPECT_TRUE(on_device.ok()) << on_device.status().message();
  // With offload and DeepSpeedCPUAdam, DeepSpeed accepts, and so does dscompile (on CPU ranks).
  StatusOr<DsConfig> offloaded =
      Parse({{"train_batch_size", 8},
             {"zero_optimization", {{"stage", 2}, {"offload_optimizer", {{"device", "cpu"}}}}},
             {"optimizer", adam}, {"fp16", {{"enabled", true}, {"fp16_master_weights_and_grads", true}}}});
  EXPECT_TRUE(offloaded.ok()) << offloaded.status().message();
}

TEST(PrecisionChecks, ReduceScatterNeedsNoPredivisionAtStageThree) {
  ExpectError({{"train_batch_size", 8}, {"zero_optimization", {{"stage", 3}}}, {"gradient_predivide_factor", 2.0}},
              "AssertionError", "gradient_predivide_factor");
  ExpectError({{"train_batch_size", 8}, {"zero_optimization", {{"stage", 3}}}, {"prescale_gradients", true}},
              "AssertionError", "gradient_predivide_factor");
  EXPECT_TRUE(Parse({{"train_batch_size", 8}, {"zero_optimization", {{"stage", 3}, {"reduce_scatter", false}}},
                     {"gradient_predivide_factor", 2.0}}).ok());
}

// Both only move DeepSpeed's division by the world size; the warning says so, and that "sum" drops it.
TEST(PrecisionChecks, PrescaleAndPredivideWarnWhatTheyChange) {
  for (const json& extra : {json{{"prescale_gradients", true}}, json{{"gradient_predivide_factor", 4.0}}}) {
    for (const char* op : {"mean", "sum"}) {
      json doc = {{"train_batch_size", 8}, {"zero_optimization", {{"stage", 1}}}, {"gradient_allreduce_op", op}};
      doc.update(extra);
      std::vector<std::string> warnings;
      ASSERT_TRUE(Parse(doc, &warnings).ok()) << doc.dump();
      const std::string key = extra.begin().key();
      auto it = std::find_if(warnings.begin(), warnings.end(), [&](const std::string& w) { return w.find(key) != std::string::npos; });
      ASSERT_NE(it, warnings.end()) << doc.dump();
      EXPECT_NE(it->find(std::string(op) == "sum" ? "no effect" : "rounds"), std::string::npos) << *it;
    }
  }
  std::vector<std::string> none;
  ASSERT_TRUE(Parse({{"train_batch_size", 8}}, &none).ok());
  for (const std::string& w : none) EXPECT_EQ(w.find("predivide"), std::string::npos) << w;
}

// DeepSpeed sums the 1-bit optimizers' warm-up gradients but averages their compressed momentum:
// not a combination dscompile has been checked against, so it is refused, not guessed.
TEST(PrecisionChecks, SumWithOnebitOptimizersIsRefused) {
  StatusOr<DsConfig> cfg = Parse({{"train_batch_size", 8}, {"gradient_allreduce_op", "sum"},
                                  {"optimizer", {{"type", "OneBitAdam"}, {"params", {{"lr", 1e-3}}}}}});
  ASSERT_TRUE(cfg.ok()) << cfg.status().message();
  ASSERT_EQ(cfg->unsupported.size(), 1u);
  EXPECT_NE(cfg->unsupported[0].find("gradient_allreduce_op"), std::string::npos) << cfg->unsupported[0];
}

}  // namespace
}  // namespace dsc
