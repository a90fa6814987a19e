// Runs every case of DeepSpeed's own unit tests (shared/deepspeed/cases-public.json) against the
// parser, the LR schedules and the loss scaler. Error cases must fail with DeepSpeed's error kind.
// The config cases also run through `dscompile --explain-config` itself: every config DeepSpeed
// accepts is explained (exit 0, the printed resolution holds the case's values), every config it
// rejects fails with its error kind.
#include <cmath>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "frontend/config/ds_config.h"
#include "frontend/config/elasticity.h"
#include "passes/pass_manager.h"
#include "runtime/loss_scaler.h"
#include "runtime/lr_schedule.h"
#include "tests/testutil/test_util.h"

namespace dsc {
namespace {

using nlohmann::json;

struct Case {
  std::string name;
  json data;
};
void PrintTo(const Case& c, std::ostream* os) { *os << c.name; }

// DeepSpeed's own test cases, then the ones generate_deepspeed_cases.py computed with DeepSpeed's
// code on generated inputs ("gen_" names), then any file DSC_EXTRA_CASES names (a fresh generation).
std::vector<Case> LoadCases() {
  std::vector<std::pair<std::string, std::string>> files = {{DSC_CASES_FILE, ""}, {DSC_GENERATED_CASES_FILE, "gen_"}};
  if (const char* extra = std::getenv("DSC_EXTRA_CASES")) files.push_back({extra, "extra_"});
  std::vector<Case> cases;
  for (const auto& [file, prefix] : files) {
    std::ifstream in(file);
    if (!in) {
      // shared/ beside the checkout may be absent: its cases skip, the repository's still run.
      if (prefix.empty()) cases.push_back({"cases_file_missing", json()});
      else cases.push_back({prefix + "cases_file_missing", json(file)});  // fails: this file is the repository's
      continue;
    }
    json all = json::parse(in);
    for (const json& c : all) {
      std::string name = prefix + c["id"].get<std::string>();
      for (char& ch : name) {
        if (!std::isalnum(static_cast<unsigned char>(ch))) ch = '_';
      }
      cases.push_back({name, c});
    }
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
  // DeepSpeed keeps the communication dtypes as torch dtypes; the cases hold their str().
  if ((path == "communication_data_type" || path == "seq_parallel_communication_data_type") && node.is_string()) {
    const std::string d = node.get<std::string>();
    return json(d == "fp32" ? "torch.float32" : d == "fp16" ? "torch.float16" : d == "bf16" ? "torch.bfloat16" : d);
  }
  return node;
}

void ExpectError(const Status& status, const json& expect) {
  ASSERT_FALSE(status.ok()) << "expected " << expect.dump();
  EXPECT_EQ(DeepSpeedErrorKind(status), expect["error"].get<std::string>()) << status.message();
}

bool IsConfigCase(const json& c) {
  return c.is_object() && (c["kind"] == "ds_config" || c["kind"] == "ds_config_text" || c["kind"] == "optimizer_wrapper");
}

std::string ConfigText(const json& c) {
  return c["kind"] == "ds_config_text" ? c["config_text"].get<std::string>() : c["config"].dump();
}

// What --explain-config does before printing: LoadDsConfig parses the file's text like this.
StatusOr<DsConfig> ParseCase(const json& c) {
  ConfigOptions options;
  options.world_size = c.value("world_size", 1);
  std::vector<std::string> warnings;
  return ParseDsConfig(ConfigText(c), options, &warnings);
}

// The case's expected values (or optimizer wrapper) hold in `cfg`.
void ExpectResolution(const json& c, const DsConfig& cfg) {
  const json& expect = c["expect"];
  if (c["kind"] == "optimizer_wrapper") {
    StatusOr<std::string> wrapper = OptimizerWrapper(cfg);
    ASSERT_TRUE(wrapper.ok()) << wrapper.status().message();
    json want = expect["optimizer_wrapper"];
    EXPECT_EQ(*wrapper, want.is_null() ? "" : want.get<std::string>());
    return;
  }
  for (auto it = expect.begin(); it != expect.end(); ++it) {
    json got = Lookup(cfg, it.key());
    EXPECT_TRUE(JsonNear(got, it.value())) << it.key() << ": got " << got.dump() << ", want " << it.value().dump();
  }
}

// A config DeepSpeed accepts parses; what a compile would refuse is listed, each entry under a key
// the config gives (or "optimizer" when it has none), never an error at parse time.
void RunConfigCase(const json& c) {
  StatusOr<DsConfig> cfg = ParseCase(c);
  if (c["expect"].contains("error")) return ExpectError(cfg.status(), c["expect"]);
  ASSERT_TRUE(cfg.ok()) << cfg.status().message();
  ExpectResolution(c, *cfg);
  const json given = c.value("config", json::object());
  for (const std::string& refusal : CompileTimeRefusals(*cfg)) {
    const std::string top = refusal.substr(0, refusal.find_first_of(".:"));
    EXPECT_TRUE(given.contains(top) || (top == "optimizer" && !cfg->optimizer.present())) << refusal;
  }
  EXPECT_EQ(RefuseUnsupported(*cfg).ok(), cfg->unsupported.empty());
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
  EXPECT_EQ(r->valid_gpus ? json(*r->valid_gpus) : json(nullptr), expect["valid_gpus"]);
  if (expect.contains("micro_batch_size")) {
    ASSERT_TRUE(r->micro_batch_size.has_value());
    EXPECT_EQ(*r->micro_batch_size, expect["micro_batch_size"].get<int64_t>());
  }
}

class DeepSpeedCase : public ::testing::TestWithParam<Case> {};

TEST_P(DeepSpeedCase, MatchesDeepSpeed) {
  const json& c = GetParam().data;
  if (c.is_null()) GTEST_SKIP() << "cases file not found: " << DSC_CASES_FILE;
  if (c.is_string()) FAIL() << "cases file not found: " << c.get<std::string>();
  const std::string kind = c["kind"];
  if (IsConfigCase(c)) return RunConfigCase(c);
  if (kind == "scheduler") return RunScheduler(c);
  if (kind == "loss_scaler") return RunLossScaler(c);
  if (kind == "elasticity") return RunElasticity(c);
  FAIL() << "unknown case kind " << kind;
}

INSTANTIATE_TEST_SUITE_P(Cases, DeepSpeedCase, ::testing::ValuesIn(LoadCases()),
                         [](const ::testing::TestParamInfo<Case>& info) { return info.param.name; });

std::vector<Case> ConfigCases() {
  std::vector<Case> cases;
  for (const Case& c : LoadCases())
    if (c.data.is_null() || IsConfigCase(c.data)) cases.push_back(c);
  return cases;
}

// `dscompile --config CASE.json --world-size N --explain-config`: exit 0 and a resolution that
// parses back to the case's values, with one warning per compile-time refusal; or exit 1 with
// DeepSpeed's error kind.
class ExplainConfigCase : public ::testing::TestWithParam<Case> {};

TEST_P(ExplainConfigCase, DscompileExplainsWhatDeepSpeedAccepts) {
  const json& c = GetParam().data;
  if (c.is_null()) GTEST_SKIP() << "cases file not found: " << DSC_CASES_FILE;
  if (c.is_string()) FAIL() << "cases file not found: " << c.get<std::string>();
  testing::TempDir dir;
  testing::WriteFileOrDie(dir.File("ds.json"), ConfigText(c));
  const int world = c.value("world_size", 1);
  testing::CommandResult r = testing::RunCommand(
      StrCat("{ ", testing::ShellQuote(DSCOMPILE_PATH), " --config ", testing::ShellQuote(dir.File("ds.json")),
             " --world-size ", world, " --explain-config 2>", testing::ShellQuote(dir.File("stderr")), "; }"),
      /*with_stderr=*/false);
  const std::string err = testing::ReadFileOrDie(dir.File("stderr"));
  const json& expect = c["expect"];
  if (expect.contains("error")) {
    EXPECT_EQ(r.rc, 1) << r.output << err;
    EXPECT_NE(err.find(StrCat("[", expect["error"].get<std::string>(), "]")), std::string::npos) << err;
    return;
  }
  ASSERT_EQ(r.rc, 0) << err;
  json printed = json::parse(r.output, nullptr, /*allow_exceptions=*/false);
  ASSERT_FALSE(printed.is_discarded()) << r.output;
  std::vector<std::string> warnings;
  StatusOr<DsConfig> again = ParseDsConfigJson(printed, ConfigOptions{.world_size = world}, &warnings);
  ASSERT_TRUE(again.ok()) << again.status().message();
  ExpectResolution(c, *again);

  StatusOr<DsConfig> cfg = ParseCase(c);
  ASSERT_TRUE(cfg.ok()) << cfg.status().message();
  std::vector<std::string> listed;
  std::istringstream lines(err);
  const std::string marker = "dscompile: warning: will be refused at compile time: ";
  for (std::string line; std::getline(lines, line);)
    if (line.rfind(marker, 0) == 0) listed.push_back(line.substr(marker.size()));
  EXPECT_EQ(listed, CompileTimeRefusals(*cfg)) << err;
}

INSTANTIATE_TEST_SUITE_P(Cases, ExplainConfigCase, ::testing::ValuesIn(ConfigCases()),
                         [](const ::testing::TestParamInfo<Case>& info) { return info.param.name; });

}  // namespace
}  // namespace dsc
