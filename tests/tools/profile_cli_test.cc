// dsrun --profile, dscompile --flops, and the config's wall_clock_breakdown and flops_profiler on
// the bundled gpt.
#include <gtest/gtest.h>

#include <fstream>
#include <set>

#include <nlohmann/json.hpp>

#include "backend/flops.h"
#include "backend/plan_file.h"
#include "tests/testutil/test_util.h"

namespace dsc {
namespace {

using testing::CommandResult;
using testing::ShellQuote;

const std::string kModels = DSC_SOURCE_DIR "/models";
const std::string kConfigs = DSC_SOURCE_DIR "/configs";

CommandResult Dscompile(const std::string& args) { return testing::RunCommand(ShellQuote(DSCOMPILE_PATH) + " " + args); }
CommandResult Dsrun(const std::string& args) { return testing::RunCommand(ShellQuote(DSRUN_PATH) + " " + args); }

std::string Gpt(const std::string& config, const std::string& plan) {
  return ShellQuote(kModels + "/gpt/gpt.onnx") + " --config " + ShellQuote(config) + " -o " + ShellQuote(plan) + " -q";
}

std::set<std::string> Keys(const nlohmann::json& j) {
  std::set<std::string> k;
  for (auto it = j.begin(); it != j.end(); ++it) k.insert(it.key());
  return k;
}

int Occurrences(const std::string& text, const std::string& needle) {
  int n = 0;
  for (size_t at = text.find(needle); at != std::string::npos; at = text.find(needle, at + 1)) ++n;
  return n;
}

TEST(DsrunProfile, GptTablesMatchTheStepTimeAndTheStaticFlops) {
  testing::TempDir dir;
  CommandResult c = Dscompile(Gpt(kConfigs + "/gpt.json", dir.File("p")) + " --flops");
  ASSERT_EQ(c.rc, 0) << c.output;
  StatusOr<Plan> plan = ReadPlan(dir.File("p"));
  ASSERT_TRUE(plan.ok()) << plan.status().ToString();
  std::map<std::string, int64_t> static_flops;
  for (const PlanProgram& p : plan->programs)
    for (const auto& n : p.graph->nodes()) static_flops[p.name] += StaticNodeCost(*n).flops;
  ASSERT_GT(static_flops["micro_step"], 0);
  for (const auto& [name, flops] : static_flops)
    EXPECT_NE(c.output.find(StrCat("program ", name, ": ")), std::string::npos) << c.output;
  EXPECT_NE(c.output.find(StrCat("(", static_flops["micro_step"], " FLOP; 4 runs per optimizer step)")), std::string::npos)
      << c.output;

  CommandResult r = Dsrun(ShellQuote(dir.File("p")) + " --data " + ShellQuote(kModels + "/gpt/data") +
                          " --steps 12 --threads 1 -q --profile-json " + ShellQuote(dir.File("prof.json")));
  ASSERT_EQ(r.rc, 0) << r.output;
  for (const char* s : {"program micro_step", "program step", "op kind", "top 20 nodes by time", "MatMul"})
    EXPECT_NE(r.output.find(s), std::string::npos) << s << "\n" << r.output;
  const nlohmann::json j = nlohmann::json::parse(testing::ReadFileOrDie(dir.File("prof.json")));
  EXPECT_EQ(Keys(j), (std::set<std::string>{"schema_version", "timing", "steps", "step_ms", "kernel_ms", "phases_ms",
                                           "programs", "warmup", "only_warmup"}));
  EXPECT_EQ(j["schema_version"].get<int>(), 1);
  EXPECT_EQ(j["steps"].get<int64_t>(), 11);  // step 1 is the warm-up
  EXPECT_EQ(j["warmup"]["step"].get<int64_t>(), 1);
  EXPECT_EQ(Keys(j["phases_ms"]), (std::set<std::string>{"forward", "backward", "step"}));
  ASSERT_EQ(j["programs"].size(), 2u);
  double kinds_ms = 0;
  for (const nlohmann::json& p : j["programs"]) {
    EXPECT_EQ(Keys(p), (std::set<std::string>{"name", "nodes", "runs_per_step", "ms_per_step", "total_ms",
                                             "flops_per_run", "flops_unknown_nodes", "bytes_per_run", "gflops_per_s",
                                             "op_kinds", "top_nodes"}));
    const std::string name = p["name"].get<std::string>();
    EXPECT_EQ(p["runs_per_step"].get<double>(), name == "micro_step" ? 4.0 : 1.0);
    EXPECT_EQ(p["flops_unknown_nodes"].get<int64_t>(), 0) << name;
    int64_t flops = 0;
    for (const nlohmann::json& k : p["op_kinds"]) {
      EXPECT_EQ(Keys(k), (std::set<std::string>{"op", "nodes", "calls", "total_ms", "percent", "flops", "gflops_per_s",
                                               "bytes"}));
      flops += k["flops"].get<int64_t>();
      kinds_ms += k["total_ms"].get<double>();
    }
    EXPECT_EQ(flops, static_flops[name]) << name;
    EXPECT_EQ(p["flops_per_run"].get<int64_t>(), static_flops[name]) << name;
    EXPECT_EQ(p["top_nodes"].size(), std::min<size_t>(20, p["nodes"].get<size_t>()));
    for (const nlohmann::json& n : p["top_nodes"])
      EXPECT_EQ(Keys(n), (std::set<std::string>{"name", "op", "shapes", "phase", "calls", "total_ms", "percent",
                                               "flops", "gflops_per_s", "bytes"}));
  }
  const double step_ms = j["step_ms"].get<double>(), per_step_kinds = kinds_ms / 11;
  EXPECT_NEAR(per_step_kinds, j["kernel_ms"].get<double>(), 1e-6 * step_ms);
  // The kernels are timed inside the step. (How much of the step they take is not checked: on a
  // loaded machine the host's bookkeeping between kernels stretches, and tests do not time things.)
  EXPECT_LE(per_step_kinds, step_ms * (1 + 1e-6)) << r.output;
  const nlohmann::json& ph = j["phases_ms"];
  EXPECT_NEAR(ph["forward"].get<double>() + ph["backward"].get<double>() + ph["step"].get<double>(),
              j["kernel_ms"].get<double>(), 1e-6 * step_ms);
  // Every phase has kernels timed in it. (Their ratio is not checked: one preempted millisecond on
  // a busy machine moves it, and tests do not time things.)
  EXPECT_GT(ph["forward"].get<double>(), 0);
  EXPECT_GT(ph["backward"].get<double>(), 0);
  EXPECT_GT(ph["step"].get<double>(), 0);
}

TEST(DsrunProfile, WallClockBreakdownAndFlopsProfilerFromTheConfig) {
  testing::TempDir dir;
  nlohmann::json cfg = nlohmann::json::parse(testing::ReadFileOrDie(kConfigs + "/gpt.json"));
  cfg["steps_per_print"] = 2;
  cfg["wall_clock_breakdown"] = true;
  cfg["flops_profiler"] = {{"enabled", true}, {"profile_step", 3}, {"top_modules", 3}, {"detailed", true},
                           {"output_file", dir.File("flops.txt")}};
  testing::WriteFileOrDie(dir.File("c.json"), cfg.dump());
  CommandResult c = Dscompile(Gpt(dir.File("c.json"), dir.File("p")));
  ASSERT_EQ(c.rc, 0) << c.output;
  CommandResult r = Dsrun(ShellQuote(dir.File("p")) + " --data " + ShellQuote(kModels + "/gpt/data") + " --steps 5");
  ASSERT_EQ(r.rc, 0) << r.output;
  // With the progress lines of steps 1, 2, 4 and 5 (the last).
  EXPECT_EQ(Occurrences(r.output, "[Rank 0] time (ms) | fwd_microstep: "), 4) << r.output;
  EXPECT_EQ(Occurrences(r.output, "[Rank 0] time (ms) | fwd: "), 4) << r.output;
  EXPECT_NE(r.output.find("| bwd_microstep: "), std::string::npos);
  EXPECT_NE(r.output.find("| step: "), std::string::npos);
  const std::string flops = testing::ReadFileOrDie(dir.File("flops.txt"));
  EXPECT_NE(flops.find("flops profiler: optimizer step 3 (4 micro-steps)"), std::string::npos) << flops;
  EXPECT_NE(flops.find("top 3 nodes by time"), std::string::npos) << flops;
  EXPECT_EQ(Occurrences(flops, "program "), 2) << flops;

  // Without --steps reaching profile_step the run says so.
  r = Dsrun(ShellQuote(dir.File("p")) + " --data " + ShellQuote(kModels + "/gpt/data") + " --steps 2");
  ASSERT_EQ(r.rc, 0) << r.output;
  EXPECT_NE(r.output.find("flops_profiler.profile_step 3 is outside this run's steps 1..2"), std::string::npos)
      << r.output;
}

TEST(DsrunProfile, ValuesThatCannotBeHonouredAreRefusedWithTheirPath) {
  testing::TempDir dir;
  struct Case {
    std::string section, needle;
  } cases[] = {
      {R"({"enabled": true, "module_depth": 2})", "flops_profiler.module_depth: only -1 (the whole model)"},
      {R"({"enabled": true, "recompute_fwd_factor": 0.5})", "flops_profiler.recompute_fwd_factor: only 0"},
      {R"({"enabled": true, "top_modules": 0})", "flops_profiler.top_modules: 0: dsrun lists at least"},
      {R"({"enabled": true, "profile_step": 0})", "flops_profiler.profile_step: 0: dsrun profiles"},
      {R"({"enabled": true, "output_file": 5})", "flops_profiler.output_file: expected null or a file name"},
  };
  for (const Case& c : cases) {
    testing::WriteFileOrDie(dir.File("c.json"), R"({"train_batch_size": 16, "train_micro_batch_size_per_gpu": 4,
        "optimizer": {"type": "Adam"}, "flops_profiler": )" + c.section + "}");
    CommandResult r = Dscompile(Gpt(dir.File("c.json"), dir.File("p")));
    EXPECT_NE(r.rc, 0) << c.section;
    EXPECT_NE(r.output.find(c.needle), std::string::npos) << c.section << "\n" << r.output;
  }
  // DeepSpeed reads the section with dict.get, so a misspelled key is ignored: a warning here, an
  // error with --strict-config.
  testing::WriteFileOrDie(dir.File("c.json"), R"({"train_batch_size": 16, "train_micro_batch_size_per_gpu": 4,
      "optimizer": {"type": "Adam"}, "flops_profiler": {"enabled": true, "modul_depth": -1}})");
  CommandResult typo = Dscompile(Gpt(dir.File("c.json"), dir.File("p")));
  EXPECT_EQ(typo.rc, 0) << typo.output;
  typo = Dscompile("--config " + ShellQuote(dir.File("c.json")) + " --explain-config");
  EXPECT_EQ(typo.rc, 0) << typo.output;
  EXPECT_NE(typo.output.find("flops_profiler.modul_depth: unknown key (did you mean \"module_depth\"?)"), std::string::npos)
      << typo.output;
  typo = Dscompile(Gpt(dir.File("c.json"), dir.File("p")) + " --strict-config");
  EXPECT_NE(typo.rc, 0) << typo.output;
  EXPECT_NE(typo.output.find("flops_profiler.modul_depth"), std::string::npos) << typo.output;
  // A disabled section's values are not read, as in DeepSpeed.
  testing::WriteFileOrDie(dir.File("c.json"), R"({"train_batch_size": 16, "train_micro_batch_size_per_gpu": 4,
      "optimizer": {"type": "Adam"}, "flops_profiler": {"enabled": false, "module_depth": 3}})");
  CommandResult ok = Dscompile(Gpt(dir.File("c.json"), dir.File("p")));
  EXPECT_EQ(ok.rc, 0) << ok.output;
}

}  // namespace
}  // namespace dsc
