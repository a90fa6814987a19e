// Every precision case of DeepSpeed's own config tests (shared/deepspeed/cases-public.json: the
// cases whose config has fp16, bf16, bfloat16, amp, data_types or communication_data_type, and
// the loss-scaler cases) compiled by dscompile on the bundled mlp: a config DeepSpeed accepts
// gives a plan, unless it also switches on something dscompile refuses for a reason that has
// nothing to do with precision (then that refusal, and no precision one); a config DeepSpeed
// refuses is refused with DeepSpeed's error kind.
//
// How a case becomes a compile:
// - The config is the case's, at the case's world size. Where it has no "optimizer" section an
//   Adam (lr 1e-3) is added: DeepSpeed's tests pass a client optimizer there (or build no engine
//   at all), and a compiled plan cannot take a client optimizer. The batch keys are kept (the
//   mlp takes any micro-batch; the cases use 1 to 4).
// - A loss-scaler case carries only its fp16 section; its config is the one that makes DeepSpeed
//   build that scaler: FusedAdam for FP16_Optimizer ("fused"), torch's AdamW (torch_adam) for
//   FP16_UnfusedOptimizer, ZeRO stage 2 for ZeRO's DynamicLossScaler.
#include <gtest/gtest.h>

#include <cctype>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "frontend/config/ds_config.h"
#include "tests/testutil/test_util.h"

namespace dsc {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using testing::CommandResult;
using testing::ShellQuote;

const char* const kPrecisionKeys[] = {"fp16", "bf16", "bfloat16", "amp", "data_types", "communication_data_type"};

struct PrecisionCase {
  std::string name;
  std::string id;
  json config;
  int world_size = 1;
  std::string deepspeed_error;  // DeepSpeed's exception kind, or "" when DeepSpeed accepts
  std::string how;              // what the config is, for failure messages
};
void PrintTo(const PrecisionCase& c, std::ostream* os) { *os << c.id; }

const json kAdam = {{"type", "Adam"}, {"params", {{"lr", 1e-3}}}};

// The config DeepSpeed's loss-scaler test exercises: the wrapper that owns that scaler.
json LossScalerConfig(const json& c) {
  json config = {{"train_batch_size", 1}, {"fp16", c.at("params")}, {"optimizer", kAdam}};
  const std::string scaler = c.at("scaler");
  if (scaler == "fp16_optimizer_unfused") config["optimizer"]["params"]["torch_adam"] = true;
  if (scaler == "zero_dynamic_loss_scaler") config["zero_optimization"] = {{"stage", 2}};
  return config;
}

std::vector<PrecisionCase> LoadPrecisionCases() {
  std::ifstream in(DSC_CASES_FILE);
  if (!in) return {};
  std::vector<PrecisionCase> cases;
  for (const json& c : json::parse(in)) {
    const std::string kind = c.at("kind");
    PrecisionCase p;
    p.id = c.at("id");
    if (kind == "loss_scaler") {
      p.config = LossScalerConfig(c);
      p.how = "loss-scaler case as a config";
    } else if (kind == "ds_config" || kind == "optimizer_wrapper") {
      p.config = c.at("config");
      bool precision = false;
      for (const char* key : kPrecisionKeys) precision = precision || p.config.contains(key);
      if (!precision) continue;
      p.world_size = c.value("world_size", 1);
      if (c.at("expect").contains("error")) p.deepspeed_error = c["expect"]["error"];
      p.how = "case config";
      if (!p.config.contains("optimizer")) {
        p.config["optimizer"] = kAdam;
        p.how += " + Adam";
      }
    } else {
      continue;
    }
    p.name = p.id;
    for (char& ch : p.name)
      if (!std::isalnum(static_cast<unsigned char>(ch))) ch = '_';
    cases.push_back(std::move(p));
  }
  return cases;
}

bool MentionsPrecision(const std::string& text) {
  for (const char* key : kPrecisionKeys)
    if (text.find(std::string(key) + ".") != std::string::npos || text.find(std::string(key) + ":") != std::string::npos)
      return true;
  return text.find("mixed precision") != std::string::npos;
}

// What dscompile refuses in `config` for reasons other than precision: the settings the config
// records as unsupported (offload among them) outside the precision sections. Empty when nothing
// is refused.
std::vector<std::string> NonPrecisionRefusals(const PrecisionCase& c) {
  ConfigOptions options;
  options.world_size = c.world_size;
  std::vector<std::string> warnings, refusals;
  StatusOr<DsConfig> cfg = ParseDsConfig(c.config.dump(), options, &warnings);
  if (!cfg.ok()) return refusals;
  for (const std::string& u : cfg->unsupported)
    if (!MentionsPrecision(u.substr(0, u.find(':') + 1))) refusals.push_back(u.substr(0, u.find(':')));
  return refusals;
}

// The mlp's trainable tensors: fc1-fc3, weight and bias each.
constexpr int kMlpParameters = 6;

struct Expected {
  std::string parameter, gradient;  // dtype names as dsinspect prints them
  bool master = false;
};

std::string DTypeNameOf(const std::string& canonical) {
  return canonical == "fp16" ? "float16" : canonical == "bf16" ? "bfloat16" : "float";
}

// DeepSpeed's engine: the model is cast with model.half()/bfloat16() (fp16, bf16; apex's O2/O3
// cast it to fp16), gradients accumulate in data_types.grad_accum_dtype (default: the model
// dtype, engine.get_data_types), and a half model's optimizer updates fp32 masters.
Expected ExpectedState(const DsConfig& c) {
  Expected e;
  std::string model = c.model_dtype();
  if (c.amp.enabled && (c.amp.opt_level == "O2" || c.amp.opt_level == "O3")) model = "fp16";
  e.parameter = DTypeNameOf(model);
  e.gradient = DTypeNameOf(c.amp.enabled ? model : c.grad_accum_dtype());
  e.master = model != "fp32" && !(c.amp.enabled && !c.amp.master_weights.value_or(false));
  return e;
}

class PrecisionConfig : public ::testing::TestWithParam<PrecisionCase> {};

TEST_P(PrecisionConfig, CompilesTheMlpAsDeepSpeedDecides) {
  const PrecisionCase& c = GetParam();
  testing::TempDir tmp;
  const std::string config = tmp.File("ds.json"), plan = tmp.File("mlp.dsplan");
  testing::WriteFileOrDie(config, c.config.dump(2));
  const fs::path model = fs::path(DSC_SOURCE_DIR) / "models" / "mlp" / "mlp.onnx";
  const CommandResult r = testing::RunCommand(ShellQuote(DSCOMPILE_PATH) + " " + ShellQuote(model.string()) +
                                              " --config " + ShellQuote(config) + " --world-size " +
                                              std::to_string(c.world_size) + " -q -o " + ShellQuote(plan));
  const std::string what = c.how + " " + c.config.dump();
  if (!c.deepspeed_error.empty()) {
    EXPECT_NE(r.rc, 0) << what << "\nDeepSpeed raises " << c.deepspeed_error;
    EXPECT_NE(r.output.find("[" + c.deepspeed_error + "]"), std::string::npos)
        << what << "\nwant DeepSpeed's " << c.deepspeed_error << ", got: " << r.output;
    EXPECT_FALSE(fs::exists(plan));
    return;
  }
  const std::vector<std::string> refusals = NonPrecisionRefusals(c);
  if (!refusals.empty()) {
    EXPECT_NE(r.rc, 0) << what;
    EXPECT_NE(r.output.find(refusals.front()), std::string::npos) << what << "\nwant a refusal of " << refusals.front()
                                                                   << ", got: " << r.output;
    EXPECT_FALSE(MentionsPrecision(r.output.substr(r.output.find("error:")))) << what << "\n" << r.output;
    return;
  }
  ASSERT_EQ(r.rc, 0) << what << "\nDeepSpeed accepts this config; dscompile said:\n" << r.output;
  const CommandResult j = testing::RunCommand(ShellQuote(DSINSPECT_PATH) + " --json " + ShellQuote(plan), false);
  ASSERT_EQ(j.rc, 0) << j.output;
  const json summary = json::parse(j.output, nullptr, false);
  ASSERT_FALSE(summary.is_discarded()) << j.output;
  // The state holds what DeepSpeed's engine would: parameters in the model dtype, gradient
  // accumulators in grad_accum_dtype, an fp32 master per parameter of a half model.
  ConfigOptions options;
  options.world_size = c.world_size;
  std::vector<std::string> warnings;
  StatusOr<DsConfig> cfg = ParseDsConfig(c.config.dump(), options, &warnings);
  ASSERT_TRUE(cfg.ok()) << cfg.status().message();
  const Expected want = ExpectedState(*cfg);
  int params = 0, grads = 0, masters = 0;
  for (const json& st : summary.at("state")) {
    const std::string kind = st.at("kind"), name = st.at("name"), dtype = st.at("dtype");
    if (kind == "parameter") {
      ++params;
      EXPECT_EQ(dtype, want.parameter) << name << "\n" << what;
    } else if (kind == "gradient") {
      ++grads;
      EXPECT_EQ(dtype, want.gradient) << name << "\n" << what;
    } else if (kind == "master") {
      ++masters;
      EXPECT_EQ(dtype, "float") << name << "\n" << what;
    }
  }
  EXPECT_EQ(params, kMlpParameters) << what;
  EXPECT_EQ(grads, kMlpParameters) << what;
  EXPECT_EQ(masters, want.master ? kMlpParameters : 0) << what;
}

INSTANTIATE_TEST_SUITE_P(DeepSpeedCases, PrecisionConfig, ::testing::ValuesIn(LoadPrecisionCases()),
                         [](const ::testing::TestParamInfo<PrecisionCase>& info) { return info.param.name; });
// A checkout without ../shared has no cases; the count test below says so as a skip.
GTEST_ALLOW_UNINSTANTIATED_PARAMETERIZED_TEST(PrecisionConfig);

TEST(PrecisionConfigCases, CasesFileHasThePrecisionCases) {
  if (!std::ifstream(DSC_CASES_FILE)) GTEST_SKIP() << "cases file not found: " << DSC_CASES_FILE;
  // 41 ds_config + 60 optimizer_wrapper cases touch the precision keys, plus 9 loss-scaler cases.
  EXPECT_EQ(LoadPrecisionCases().size(), 110u) << DSC_CASES_FILE;
}

}  // namespace
}  // namespace dsc
