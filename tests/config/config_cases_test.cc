// Runs every case of DeepSpeed's own unit tests (shared/deepspeed/cases-public.json) against the
// parser, the LR schedules and the loss scaler. Error cases must fail with DeepSpeed's error kind.
#include <cmath>
#include <fstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "frontend/config/ds_config.h"
#include "frontend/config/elasticity.h"
#include "runtime/loss_scaler.h"
#include "runtime/lr_schedule.h"

namespace dsc {
namespace {

using nlohmann::json;

struct Case {
  std::string name;
  json data;
};

std::vector<Case> LoadCases() {
  std::ifstream in(DSC_CASES_FILE);
  if (!in) return {Case{"cases_file_missing", json()}};
  json all = json::parse(in);
  std::vector<Case> cases;
  for (const json& c : all) {
    std::string name = c["id"].get<std::string>();
    for (char& ch : name) {
      if (!std::isalnum(static_cast<unsigned char>(ch))) ch = '_';
    }
    cases.push_back({name, c});
  }
  return cases;
}

bool Near(double a, double b) { return std::fabs(a - b) <= 1e-12 * std::max(std::fabs(a), std::fabs(b)) + 1e-15; }

bool JsonNear(const json& got, const json& want) {
  if (got.is_number() && want.is_number() && !got.is_boolean() && !want.is_boolean()) {
    return Near(got.get<double>(), want.get<double>());
  }
  if (got.is_object() && want.is_object()) {
    if (got.size() != want.size()) return false;
    for (auto it = want.begin(); it != want.end(); ++it) {
      if (!got.contains(it.key()) || !JsonNear(got[it.key()], it.value())) return false;
    }
    return true;
  }
  if (got.is_array() && want.is_array()) {
    if (got.size() != want.size()) return false;
    for (size_t i = 0; i < got.size(); ++i) if (!JsonNear(got[i], want[i])) return false;
    return true;
  }
  return got == want;
}

std::string ZeroAlias(const std::string& field) {
  for (const auto& [name, alias] : ZeroFieldAliases()) if (name == field) return alias;
  return field;
}

// DeepSpeedConfig attribute path ("zero_config.offload_optimizer.device") → our value.
json Lookup(const DsConfig& cfg, const std::string& path) {
  json resolved = ResolvedConfigJson(cfg);
  std::vector<std::string> parts;
  size_t start = 0;
  for (size_t dot; (dot = path.find('.', start)) != std::string::npos; start = dot + 1) parts.push_back(path.substr(start, dot - start));
  parts.push_back(path.substr(start));
  if (path == "zero_config.offload_optimizer.pipeline") {
    return cfg.zero.offload_optimizer ? json(cfg.zero.offload_optimizer->pipeline()) : json(nullptr);
  }
  json node;
  size_t i = 1;
  if (parts[0] == "zero_config") {
    node = resolved["zero_optimization"];
    parts[1] = ZeroAlias(parts[1]);
  } else if (parts[0] == "float16_config") {
    node = resolved["fp16"];
  } else if (parts[0] == "bfloat16_config") {
    node = resolved["bf16"];
  } else {
    node = resolved;
    i = 0;
  }
  for (; i < parts.size(); ++i) {
    if (!node.is_object() || !node.contains(parts[i])) return json("<missing " + path + ">");
    node = node[parts[i]];
  }
  return node;
}

void ExpectError(const Status& status, const json& expect) {
  ASSERT_FALSE(status.ok()) << "expected " << expect.dump();
  EXPECT_EQ(DeepSpeedErrorKind(status), expect["error"].get<std::string>()) << status.message();
}

void RunDsConfig(const json& c) {
  ConfigOptions options;
  options.world_size = c.value("world_size", 1);
  options.allow_unsupported = true;
  std::vector<std::string> warnings;
  StatusOr<DsConfig> cfg = c["kind"] == "ds_config_text"
                               ? ParseDsConfig(c["config_text"].get<std::string>(), options, &warnings)
                               : ParseDsConfig(c["config"].dump(), options, &warnings);
  const json& expect = c["expect"];
  if (expect.contains("error")) return ExpectError(cfg.status(), expect);
  ASSERT_TRUE(cfg.ok()) << cfg.status().message();
  for (auto it = expect.begin(); it != expect.end(); ++it) {
    json got = Lookup(*cfg, it.key());
    EXPECT_TRUE(JsonNear(got, it.value())) << it.key() << ": got " << got.dump() << ", want " << it.value().dump();
  }
}

void RunOptimizerWrapper(const json& c) {
  ConfigOptions options;
  options.allow_unsupported = true;  // apex AMP rows
  std::vector<std::string> warnings;
  StatusOr<DsConfig> cfg = ParseDsConfig(c["config"].dump(), options, &warnings);
  const json& expect = c["expect"];
  if (expect.contains("error")) return ExpectError(cfg.status(), expect);
  ASSERT_TRUE(cfg.ok()) << cfg.status().message();
  StatusOr<std::string> wrapper = OptimizerWrapper(*cfg);
  ASSERT_TRUE(wrapper.ok()) << wrapper.status().message();
  json want = expect["optimizer_wrapper"];
  EXPECT_EQ(*wrapper, want.is_null() ? "" : want.get<std::string>());
}

void RunScheduler(const json& c) {
  json config = {{"train_batch_size", 1},
                 {"optimizer", {{"type", "Adam"}, {"params", {{"lr", c.value("optimizer_lr", 1e-3)}, {"betas", {0.9, 0.999}}}}}},
                 {"scheduler", {{"type", c["schedule"]}, {"params", c["params"]}}}};
  std::vector<std::string> warnings;
  StatusOr<DsConfig> cfg = ParseDsConfig(config.dump(), {}, &warnings);
  if (c.contains("expect") && c["expect"].contains("error")) {
    if (cfg.ok()) return ExpectError(LrSchedule::Create(*cfg).status(), c["expect"]);
    return ExpectError(cfg.status(), c["expect"]);
  }
  ASSERT_TRUE(cfg.ok()) << cfg.status().message();
  StatusOr<LrSchedule> schedule = LrSchedule::Create(*cfg);
  ASSERT_TRUE(schedule.ok()) << schedule.status().message();
  for (auto it = c["steps"].begin(); it != c["steps"].end(); ++it) {
    int64_t step = std::stoll(it.key());
    EXPECT_TRUE(Near(schedule->LrAt(step), it.value().get<double>()))
        << "lr at last_batch_iteration " << step << ": got " << schedule->LrAt(step) << ", want " << it.value();
  }
  if (c.contains("momentum_beta0")) {
    for (auto it = c["momentum_beta0"].begin(); it != c["momentum_beta0"].end(); ++it) {
      int64_t step = std::stoll(it.key());
      std::optional<double> beta = schedule->Beta1At(step);
      ASSERT_TRUE(beta.has_value());
      EXPECT_TRUE(Near(*beta, it.value().get<double>())) << "beta1 at " << step << ": got " << *beta << ", want " << it.value();
    }
  }
}

void RunLossScaler(const json& c) {
  json config = {{"train_batch_size", 1}, {"fp16", c["params"]}};
  std::vector<std::string> warnings;
  StatusOr<DsConfig> cfg = ParseDsConfig(config.dump(), {}, &warnings);
  ASSERT_TRUE(cfg.ok()) << cfg.status().message();
  LossScalerRules rules = c["scaler"] == "zero_dynamic_loss_scaler" ? LossScalerRules::kZero : LossScalerRules::kNonZeroFp16;
  LossScaler scaler = LossScaler::Create(*cfg, rules);
  EXPECT_EQ(scaler.exact_scale(), c["initial_scale"].get<double>());
  const json& pattern = c["overflow_pattern"];
  for (size_t i = 0; i < pattern.size(); ++i) {
    Status s = scaler.Update(pattern[i].get<bool>());
    if (c.contains("expected_error") && c["expected_error"]["at_index"] == i) {
      return ExpectError(s, c["expected_error"]);
    }
    ASSERT_TRUE(s.ok()) << "step " << i << ": " << s.message();
    EXPECT_EQ(scaler.exact_scale(), c["expected_scales"][i].get<double>()) << "after step " << i;
  }
}

void RunElasticity(const json& c) {
  std::optional<int64_t> env;
  if (c.contains("env") && c["env"].contains("WORLD_SIZE")) env = std::stoll(c["env"]["WORLD_SIZE"].get<std::string>());
  StatusOr<ElasticResult> r = ComputeElasticConfig(c["config"], c["target_deepspeed_version"].get<std::string>(),
                                                   c["world_size"].get<int64_t>(), env);
  const json& expect = c["expect"];
  if (expect.contains("error")) return ExpectError(r.status(), expect);
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_EQ(r->final_batch_size, expect["final_batch_size"].get<int64_t>());
  EXPECT_EQ(json(r->valid_gpus), expect["valid_gpus"]);
  if (expect.contains("micro_batch_size")) {
    ASSERT_TRUE(r->micro_batch_size.has_value());
    EXPECT_EQ(*r->micro_batch_size, expect["micro_batch_size"].get<int64_t>());
  }
}

class DeepSpeedCase : public ::testing::TestWithParam<Case> {};

TEST_P(DeepSpeedCase, MatchesDeepSpeed) {
  const json& c = GetParam().data;
  if (c.is_null()) GTEST_SKIP() << "cases file not found: " << DSC_CASES_FILE;
  const std::string kind = c["kind"];
  if (kind == "ds_config" || kind == "ds_config_text") return RunDsConfig(c);
  if (kind == "optimizer_wrapper") return RunOptimizerWrapper(c);
  if (kind == "scheduler") return RunScheduler(c);
  if (kind == "loss_scaler") return RunLossScaler(c);
  if (kind == "elasticity") return RunElasticity(c);
  FAIL() << "unknown case kind " << kind;
}

INSTANTIATE_TEST_SUITE_P(Cases, DeepSpeedCase, ::testing::ValuesIn(LoadCases()),
                         [](const ::testing::TestParamInfo<Case>& info) { return info.param.name; });

}  // namespace
}  // namespace dsc
