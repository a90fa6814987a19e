// Parameter groups on the command line: --no-decay-bias-norm, --explain-config's list of groups,
// the plan's update nodes and config, dsinspect's group column and JSON, and a pattern that
// matches nothing.
#include <gtest/gtest.h>

#include <fstream>
#include <map>

#include <nlohmann/json.hpp>

#include "backend/plan_file.h"
#include "ir/dsc_ops.h"
#include "tests/testutil/test_util.h"

namespace dsc {
namespace {

using nlohmann::json;
using testing::CommandResult;
using testing::ShellQuote;

const std::string kModels = DSC_SOURCE_DIR "/models";

CommandResult Tool(const std::string& tool, const std::string& args, bool merge_stderr = true) {
  return testing::RunCommand(ShellQuote(tool) + " " + args, merge_stderr);
}

std::string WriteConfig(const testing::TempDir& dir, const json& dscompile) {
  json cfg = {{"train_batch_size", 16},
              {"optimizer", {{"type", "AdamW"}, {"params", {{"lr", 0.001}, {"weight_decay", 0.1}}}}}};
  if (!dscompile.is_null()) cfg["dscompile"] = dscompile;
  const std::string path = dir.File("ds.json");
  std::ofstream(path) << cfg.dump();
  return path;
}

TEST(ParameterGroupsCli, FlagIsThePresetAndExplainConfigListsGroups) {
  testing::TempDir dir;
  const std::string config = WriteConfig(dir, json::parse(R"({"parameter_groups": [{"params": ["fc3.*"], "lr_scale": 0.5}]})"));
  CommandResult r = Tool(DSCOMPILE_PATH, "--config " + ShellQuote(config) + " --explain-config --no-decay-bias-norm", false);
  ASSERT_EQ(r.rc, 0) << r.output;
  const json resolved = json::parse(r.output);
  EXPECT_EQ(resolved["dscompile"]["no_decay_bias_norm"], true);
  EXPECT_EQ(resolved["dscompile"]["parameter_groups"][0]["lr_scale"], 0.5);
  r = Tool(DSCOMPILE_PATH, "--config " + ShellQuote(config) + " --explain-config --no-decay-bias-norm");  // stderr too
  EXPECT_NE(r.output.find("  parameter_groups[0]: params [\"fc3.*\"], weight_decay 0.1, lr_scale 0.5\n"
                          "  no_decay_bias_norm: the other parameters with fewer than 2 dimensions, weight_decay 0, lr_scale 1\n"
                          "  default: the rest, weight_decay 0.1 (the optimizer section's), lr_scale 1\n"),
            std::string::npos)
      << r.output;
}

// The mlp with the flag: biases (1-D) without decay, except fc3's, which its group gives half
// the learning rate and the optimizer's decay; the plan records the flag in its config.
TEST(ParameterGroupsCli, PlanAndDsinspectShowEachParametersGroup) {
  testing::TempDir dir;
  const std::string config = WriteConfig(dir, json::parse(R"({"parameter_groups": [{"params": ["fc3.*"], "lr_scale": 0.5}]})"));
  const std::string plan = dir.File("mlp.dsplan");
  CommandResult r = Tool(DSCOMPILE_PATH, ShellQuote(kModels + "/mlp/mlp.onnx") + " --config " + ShellQuote(config) +
                                            " --no-decay-bias-norm -q -o " + ShellQuote(plan));
  ASSERT_EQ(r.rc, 0) << r.output;

  StatusOr<Plan> p = ReadPlan(plan);
  ASSERT_TRUE(p.ok()) << p.status().ToString();
  EXPECT_EQ(p->config["dscompile"]["no_decay_bias_norm"], true);
  std::map<std::string, std::pair<float, std::string>> update;  // parameter -> (weight_decay, lr input)
  for (const auto& n : p->FindProgram("step")->graph->nodes())
    if (n->op_type() == ops::kAdamStep) update[n->input(0)->name()] = {n->GetFloat("weight_decay", -1), n->input(4)->name()};
  ASSERT_EQ(update.size(), 6u);
  for (const char* w : {"fc1.weight", "fc2.weight"}) EXPECT_EQ(update[w], std::make_pair(0.1f, std::string("dsc::lr"))) << w;
  for (const char* b : {"fc1.bias", "fc2.bias"}) EXPECT_EQ(update[b], std::make_pair(0.0f, std::string("dsc::lr"))) << b;
  for (const char* w : {"fc3.weight", "fc3.bias"}) {
    EXPECT_EQ(update[w].first, 0.1f) << w;
    EXPECT_NE(update[w].second, "dsc::lr") << w;  // the group's Mul(dsc::lr, 0.5)
  }

  r = Tool(DSINSPECT_PATH, "--json " + ShellQuote(plan), false);
  ASSERT_EQ(r.rc, 0) << r.output;
  const json s = json::parse(r.output);
  std::map<std::string, std::string> group;
  for (const json& row : s["state"])
    if (row["kind"] == "parameter") group[row["name"]] = row.value("group", "");
  EXPECT_EQ(group, (std::map<std::string, std::string>{{"fc1.weight", "default"},
                                                       {"fc1.bias", "no_decay_bias_norm"},
                                                       {"fc2.weight", "default"},
                                                       {"fc2.bias", "no_decay_bias_norm"},
                                                       {"fc3.weight", "parameter_groups[0]"},
                                                       {"fc3.bias", "parameter_groups[0]"}}));
  ASSERT_EQ(s["parameter_groups"].size(), 3u);
  EXPECT_EQ(s["parameter_groups"][0]["lr_scale"], 0.5);
  EXPECT_EQ(s["parameter_groups"][1]["weight_decay"], 0.0);
  EXPECT_EQ(s["parameter_groups"][2]["parameters"], json::parse(R"(["fc1.weight", "fc2.weight"])"));

  r = Tool(DSINSPECT_PATH, ShellQuote(plan), false);
  ASSERT_EQ(r.rc, 0) << r.output;
  EXPECT_NE(r.output.find("  fc1.bias    float  [64]        64     256  no_decay_bias_norm\n"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("  no_decay_bias_norm            0.0       1.0        2\n"), std::string::npos) << r.output;
}

// Without groups the plan is as before, and dsinspect puts every parameter in "default".
TEST(ParameterGroupsCli, NoGroupsIsOneDefaultGroup) {
  testing::TempDir dir;
  const std::string plan = dir.File("mlp.dsplan");
  CommandResult r = Tool(DSCOMPILE_PATH, ShellQuote(kModels + "/mlp/mlp.onnx") + " --config " +
                                            ShellQuote(WriteConfig(dir, nullptr)) + " -q -o " + ShellQuote(plan));
  ASSERT_EQ(r.rc, 0) << r.output;
  r = Tool(DSINSPECT_PATH, "--json " + ShellQuote(plan), false);
  ASSERT_EQ(r.rc, 0) << r.output;
  const json s = json::parse(r.output);
  ASSERT_EQ(s["parameter_groups"].size(), 1u);
  EXPECT_EQ(s["parameter_groups"][0]["name"], "default");
  EXPECT_EQ(s["parameter_groups"][0]["weight_decay"], 0.1);
  EXPECT_EQ(s["parameter_groups"][0]["parameters"].size(), 6u);
  r = Tool(DSINSPECT_PATH, ShellQuote(plan), false);
  EXPECT_EQ(r.output.find("parameter groups"), std::string::npos) << r.output;
}

TEST(ParameterGroupsCli, APatternThatMatchesNothingFailsTheCompile) {
  testing::TempDir dir;
  const std::string config = WriteConfig(dir, json::parse(R"({"parameter_groups": [{"params": ["fc3.*", "head.*"]}]})"));
  CommandResult r = Tool(DSCOMPILE_PATH, ShellQuote(kModels + "/mlp/mlp.onnx") + " --config " + ShellQuote(config) +
                                            " -q -o " + ShellQuote(dir.File("p")));
  EXPECT_EQ(r.rc, 1) << r.output;
  EXPECT_NE(r.output.find("dscompile.parameter_groups[0].params[1]: pattern \"head.*\" matches no trainable parameter"),
            std::string::npos)
      << r.output;
}

}  // namespace
}  // namespace dsc
