// The "dscompile" section's parameter groups: reading (good input, errors naming the JSON path),
// the resolved form and its round trip, and which group each parameter lands in.
#include <string>
#include <utility>
#include <vector>

#include <gtest/gtest.h>

#include "frontend/config/ds_config.h"
#include "frontend/config/parameter_groups.h"

namespace dsc {
namespace {

using nlohmann::json;
using Params = std::vector<std::pair<std::string, std::vector<int64_t>>>;

StatusOr<DsConfig> Parse(const std::string& section, std::vector<std::string>* warnings = nullptr) {
  std::vector<std::string> w;
  return ParseDsConfig(R"({"train_batch_size": 8, "optimizer": {"type": "AdamW", "params": {"weight_decay": 0.1}},
                           "dscompile": )" + section + "}",
                       {}, warnings ? warnings : &w, "ds.json");
}

std::string ErrorOf(const std::string& section) {
  StatusOr<DsConfig> cfg = Parse(section);
  EXPECT_FALSE(cfg.ok()) << section;
  return cfg.ok() ? "" : cfg.status().message();
}

TEST(ParameterGroupsConfig, ReadsGroupsAndThePreset) {
  std::vector<std::string> warnings;
  StatusOr<DsConfig> cfg = Parse(R"({"no_decay_bias_norm": true, "parameter_groups": [
      {"params": ["*.bias", "lm_head.*"], "weight_decay": 0, "lr_scale": 0.5}, {"params": ["wte.*"]}]})", &warnings);
  ASSERT_TRUE(cfg.ok()) << cfg.status().message();
  // DeepSpeed ignores an unknown top-level key; ours is known, so it draws no warning.
  EXPECT_TRUE(warnings.empty()) << warnings[0];
  const DscompileConfig& d = cfg->dscompile;
  EXPECT_TRUE(d.no_decay_bias_norm);
  ASSERT_EQ(d.parameter_groups.size(), 2u);
  EXPECT_EQ(d.parameter_groups[0].params, (std::vector<std::string>{"*.bias", "lm_head.*"}));
  EXPECT_EQ(d.parameter_groups[0].weight_decay, 0.0);
  EXPECT_EQ(d.parameter_groups[0].lr_scale, 0.5);
  EXPECT_FALSE(d.parameter_groups[1].weight_decay.has_value());
  EXPECT_EQ(d.parameter_groups[1].lr_scale, 1.0);
  // Resolved: lr_scale filled in, an omitted weight_decay left to the optimizer's; it parses back to itself.
  const json resolved = ResolvedConfigJson(*cfg);
  EXPECT_EQ(resolved["dscompile"], json::parse(R"({"no_decay_bias_norm": true, "parameter_groups": [
      {"params": ["*.bias", "lm_head.*"], "weight_decay": 0.0, "lr_scale": 0.5},
      {"params": ["wte.*"], "lr_scale": 1.0}], "recognize_attention": true})"));
  EXPECT_EQ(DescribeParameterGroups(cfg->dscompile, cfg->optimizer),
            "parameter_groups[0]: params [\"*.bias\",\"lm_head.*\"], weight_decay 0, lr_scale 0.5\n"
            "parameter_groups[1]: params [\"wte.*\"], weight_decay 0.1, lr_scale 1\n"
            "no_decay_bias_norm: the other parameters with fewer than 2 dimensions, weight_decay 0, lr_scale 1\n"
            "default: the rest, weight_decay 0.1 (the optimizer section's), lr_scale 1\n");
  StatusOr<DsConfig> again = ParseDsConfigJson(resolved, {}, &warnings);
  ASSERT_TRUE(again.ok()) << again.status().message();
  EXPECT_EQ(ResolvedConfigJson(*again), resolved);
}

TEST(ParameterGroupsConfig, AbsentIsNoGroups) {
  std::vector<std::string> warnings;
  StatusOr<DsConfig> cfg = ParseDsConfig(R"({"train_batch_size": 8})", {}, &warnings);
  ASSERT_TRUE(cfg.ok());
  EXPECT_FALSE(cfg->dscompile.has_groups());
  EXPECT_EQ(ResolvedConfigJson(*cfg)["dscompile"], json::parse(R"({"no_decay_bias_norm": false, "parameter_groups": [], "recognize_attention": true})"));
  ASSERT_TRUE(Parse("null").ok());
  EXPECT_TRUE(Parse("{}")->dscompile.recognize_attention);
  EXPECT_FALSE(Parse(R"({"recognize_attention": false})")->dscompile.recognize_attention);
  EXPECT_FALSE(Parse("{}")->dscompile.has_groups());
}

TEST(ParameterGroupsConfig, ErrorsNameTheJsonPath) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {R"([])", "ds.json: dscompile: expected an object, got []"},
      {R"({"no_decay_bias_norms": true})",
       "dscompile.no_decay_bias_norms: unknown key (did you mean \"no_decay_bias_norm\"?) in section \"dscompile\""},
      {R"({"no_decay_bias_norm": "yes"})", "dscompile.no_decay_bias_norm: expected true or false, got \"yes\""},
      {R"({"recognize_attention": 0})", "dscompile.recognize_attention: expected true or false, got 0"},
      {R"({"parameter_groups": {"params": ["a"]}})", "dscompile.parameter_groups: expected a list of groups"},
      {R"({"parameter_groups": ["a"]})", "dscompile.parameter_groups[0]: expected an object, got \"a\""},
      {R"({"parameter_groups": [{"weight_decay": 0}]})", "dscompile.parameter_groups[0].params: is required"},
      {R"({"parameter_groups": [{"params": "*.bias"}]})",
       "dscompile.parameter_groups[0].params: expected a non-empty list of name patterns, got \"*.bias\""},
      {R"({"parameter_groups": [{"params": []}]})", "dscompile.parameter_groups[0].params: expected a non-empty list"},
      {R"({"parameter_groups": [{"params": ["a"]}, {"params": ["b", ""]}]})",
       "dscompile.parameter_groups[1].params[1]: expected a non-empty name pattern, got \"\""},
      {R"({"parameter_groups": [{"params": ["a"], "weight_decay": -0.1}]})",
       "dscompile.parameter_groups[0].weight_decay: must be a number >= 0 that fits in a float32, got -0.1"},
      {R"({"parameter_groups": [{"params": ["a"], "lr_scale": 1e39}]})",
       "dscompile.parameter_groups[0].lr_scale: must be a number >= 0 that fits in a float32, got 1e+39"},
      {R"({"parameter_groups": [{"params": ["a"], "lr_scale": "0.5"}]})",
       "dscompile.parameter_groups[0].lr_scale: expected a number, got \"0.5\""},
      {R"({"parameter_groups": [{"params": ["a"], "lr": 0.5}]})",
       "dscompile.parameter_groups[0].lr: a group takes lr_scale (a multiple of the scheduled learning rate), not an "
       "absolute lr"},
      {R"({"parameter_groups": [{"params": ["a"], "lr_scael": 0.5}]})",
       "dscompile.parameter_groups[0].lr_scael: unknown key (did you mean \"lr_scale\"?)"},
  };
  for (const auto& [section, want] : cases) {
    const std::string got = ErrorOf(section);
    EXPECT_NE(got.find(want), std::string::npos) << section << "\n got: " << got;
    EXPECT_NE(got.find("[ValidationError]"), std::string::npos) << got;
  }
}

ParameterGroupAssignment Assign(const std::string& section, const Params& params) {
  StatusOr<DsConfig> cfg = Parse(section);
  EXPECT_TRUE(cfg.ok()) << cfg.status().message();
  StatusOr<ParameterGroupAssignment> a = AssignParameterGroups(cfg->dscompile, cfg->optimizer, cfg->source, params);
  EXPECT_TRUE(a.ok()) << a.status().message();
  return a.ok() ? *a : ParameterGroupAssignment{};
}

std::vector<std::string> GroupNames(const ParameterGroupAssignment& a) {
  std::vector<std::string> out;
  for (int g : a.group_of) out.push_back(a.groups[static_cast<size_t>(g)].name);
  return out;
}

const Params kGpt = {{"wte.weight", {64, 32}}, {"h.0.ln_1.weight", {32}}, {"h.0.ln_1.bias", {32}},
                     {"h.0.attn.c_attn.weight", {96, 32}}, {"h.0.attn.c_attn.bias", {96}},
                     {"lm_head.weight", {64, 32}}, {"scale", {}}};

TEST(ParameterGroupsAssign, NoneConfiguredIsOneDefaultGroup) {
  ParameterGroupAssignment a = Assign("{}", kGpt);
  ASSERT_EQ(a.groups.size(), 1u);
  EXPECT_EQ(a.groups[0].name, "default");
  EXPECT_EQ(a.groups[0].weight_decay, 0.1);
  EXPECT_EQ(a.groups[0].lr_scale, 1.0);
  EXPECT_EQ(a.group_of, std::vector<int>(kGpt.size(), 0));
}

// The preset is structural: fewer than 2 dimensions (biases, norm scales, scalars) do not decay;
// embeddings and matrices do.
TEST(ParameterGroupsAssign, PresetTakesParametersOfRankBelowTwo) {
  ParameterGroupAssignment a = Assign(R"({"no_decay_bias_norm": true})", kGpt);
  EXPECT_EQ(GroupNames(a), (std::vector<std::string>{"default", "no_decay_bias_norm", "no_decay_bias_norm", "default",
                                                     "no_decay_bias_norm", "default", "no_decay_bias_norm"}));
  ASSERT_EQ(a.groups.size(), 2u);
  EXPECT_EQ(a.groups[0].name, "no_decay_bias_norm");
  EXPECT_EQ(a.groups[0].weight_decay, 0.0);
  EXPECT_EQ(a.groups[1].weight_decay, 0.1);
}

// Explicit groups come first (first match wins), then the preset, then the default; a group
// without weight_decay keeps the optimizer's even for a parameter the preset would take.
TEST(ParameterGroupsAssign, FirstMatchWinsBeforeThePreset) {
  ParameterGroupAssignment a = Assign(R"({"no_decay_bias_norm": true, "parameter_groups": [
      {"params": ["lm_head.*", "h.?.ln_1.bias"], "lr_scale": 0.1}, {"params": ["*.bias"], "weight_decay": 0.01},
      {"params": ["h.0.ln_1.*"], "weight_decay": 0.2}]})", kGpt);
  EXPECT_EQ(GroupNames(a), (std::vector<std::string>{"default", "parameter_groups[2]", "parameter_groups[0]", "default",
                                                     "parameter_groups[1]", "parameter_groups[0]", "no_decay_bias_norm"}));
  ASSERT_EQ(a.groups.size(), 5u);
  EXPECT_EQ(a.groups[0].weight_decay, 0.1);  // parameter_groups[0] inherits the optimizer's
  EXPECT_EQ(a.groups[0].lr_scale, 0.1);
  EXPECT_EQ(a.groups[1].weight_decay, 0.01);
  EXPECT_EQ(a.groups[2].weight_decay, 0.2);
}

TEST(ParameterGroupsAssign, APatternThatMatchesNothingIsAnError) {
  StatusOr<DsConfig> cfg = Parse(R"({"parameter_groups": [{"params": ["*.bias", "lm_haed.*"]}]})");
  ASSERT_TRUE(cfg.ok());
  StatusOr<ParameterGroupAssignment> a = AssignParameterGroups(cfg->dscompile, cfg->optimizer, cfg->source, kGpt);
  ASSERT_FALSE(a.ok());
  EXPECT_NE(a.status().message().find("ds.json: dscompile.parameter_groups[0].params[1]: pattern \"lm_haed.*\" matches "
                                      "no trainable parameter (fnmatch on the names: wte.weight, h.0.ln_1.weight"),
            std::string::npos)
      << a.status().message();
}

TEST(ParameterGroupsAssign, RecordsEveryGroupsParameters) {
  ParameterGroupAssignment a = Assign(R"({"no_decay_bias_norm": true, "parameter_groups": [{"params": ["lm_head.*"], "lr_scale": 2}]})", kGpt);
  const json j = ParameterGroupsJson(a, kGpt);
  ASSERT_EQ(j.size(), 3u);
  EXPECT_EQ(j[0], json::parse(R"({"name": "parameter_groups[0]", "weight_decay": 0.1, "lr_scale": 2.0,
                                  "parameters": ["lm_head.weight"]})"));
  EXPECT_EQ(j[1]["parameters"], json::parse(R"(["h.0.ln_1.weight", "h.0.ln_1.bias", "h.0.attn.c_attn.bias", "scale"])"));
  EXPECT_EQ(j[2]["name"], "default");
}

}  // namespace
}  // namespace dsc
