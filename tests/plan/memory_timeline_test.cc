// dsinspect --memory-timeline and --plot-metrics: the timeline's bytes by kind on a graph worked by
// hand, its agreement with the memory plan on compiled plans, and the pictures through a real SVG
// renderer (rsvg-convert, Debian's librsvg2-bin).
#include <gtest/gtest.h>

#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "backend/memory_timeline.h"
#include "backend/metrics_plot.h"
#include "backend/plan_file.h"
#include "backend/plan_summary.h"
#include "backend/svg_chart.h"
#include "ir/text.h"
#include "passes/memory_plan.h"
#include "tests/plan/test_plans.h"

namespace dsc {
namespace {

using json = nlohmann::json;
using testing::CommandResult;
using testing::ShellQuote;

std::unique_ptr<Graph> ParseOrDie(const std::string& text) {
  StatusOr<std::unique_ptr<Graph>> g = ParseGraph(text);
  EXPECT_TRUE(g.ok()) << g.status().ToString();
  return g.ok() ? std::move(*g) : std::make_unique<Graph>();
}

std::vector<int64_t> Series(const json& program, const char* kind) {
  if (!program["live"].contains(kind)) return std::vector<int64_t>(program["num_nodes"].get<size_t>(), 0);
  return program["live"][kind].get<std::vector<int64_t>>();
}

// testing::kBucketedMicroStep with its memory plan. Every value is at most 64 bytes except y and r
// (float[4,6] = 96 B, 128 in the arena). Aliases the planner makes: r over y (Relu in place, y dies
// there), a3 over B1 and p3 over B3 (one-output Waits over buffers of their size). Lifetimes, node
// by node: B0 0-3, y/r 1-13, s1 s2 3-13, B1/a3 4-13 (a gradient from 5), B2 6-8, B3/p3 7-13 (gathered
// from 11), p1 p2 8-10, u 9-13, v 12-13.
TEST(MemoryTimeline, BytesByKindOnABucketedProgramWorkedByHand) {
  Plan plan;
  plan.world_size = 2;
  plan.programs.push_back(PlanProgram{"micro_step", ParseOrDie(testing::kBucketedMicroStep)});
  StatusOr<MemoryPlan> mp = ComputeMemoryPlan(*plan.programs[0].graph);
  ASSERT_TRUE(mp.ok()) << mp.status().ToString();
  plan.programs[0].graph->metadata[kMemoryPlanKey] = MemoryPlanToJson(*mp);

  StatusOr<json> t = MemoryTimeline(plan);
  ASSERT_TRUE(t.ok()) << t.status().ToString();
  const json& p = (*t)["programs"][0];
  ASSERT_EQ(p["num_nodes"], 14);
  EXPECT_EQ(Series(p, "activations"),
            (std::vector<int64_t>{0, 128, 128, 128, 128, 128, 128, 128, 128, 192, 192, 192, 256, 256}));
  EXPECT_EQ(Series(p, "gradients"),
            (std::vector<int64_t>{0, 0, 0, 128, 128, 192, 192, 192, 192, 192, 192, 192, 192, 192}));
  EXPECT_EQ(Series(p, "communication buffers"),
            (std::vector<int64_t>{64, 64, 64, 64, 64, 0, 64, 128, 128, 64, 64, 0, 0, 0}));
  EXPECT_EQ(Series(p, "gathered parameters"),
            (std::vector<int64_t>{0, 0, 0, 0, 0, 0, 0, 0, 128, 128, 128, 64, 64, 64}));
  // 576 bytes first at node 8 (the Wait of p1, p2).
  EXPECT_EQ(p["peak"]["index"], 8);
  EXPECT_EQ(p["peak"]["live_bytes"], 576);
  EXPECT_EQ(p["peak"]["op"], "CollectiveWait");
  EXPECT_EQ(p["peak"]["top"][0]["value"], "r");  // the largest, named by its current member
  EXPECT_EQ(p["peak"]["top"][0]["bytes"], 128);
  EXPECT_EQ(p["arena_bytes"], mp->arena_bytes);
}

// Compiles the bundled gpt with `config` for `world` ranks; returns the plan's path.
std::string CompileGpt(const testing::TempDir& dir, const std::string& name, const std::string& config,
                       int world) {
  const std::string cfg = dir.File(name + ".json"), out = dir.File(name + ".dsplan");
  std::ofstream(cfg) << config;
  CommandResult r = testing::RunCommand(std::string("'") + DSCOMPILE_PATH + "' " +
                                        ShellQuote(std::string(DSC_SOURCE_DIR) + "/models/gpt/gpt.onnx") +
                                        " --config " + ShellQuote(cfg) + " --world-size " + std::to_string(world) +
                                        " -o " + ShellQuote(out));
  EXPECT_EQ(r.rc, 0) << r.output;
  return out;
}

// The timeline agrees with the memory plan on compiled plans: the arena's extent peaks at the
// plan's arena (dsinspect's activation peak), and at every node the live values fit under the
// extent (they do not overlap, as the planner promises).
TEST(MemoryTimeline, AgreesWithTheMemoryPlanOnCompiledGpt) {
  testing::TempDir dir;
  struct Case {
    const char* name;
    const char* config;
    int world;
    std::vector<const char*> kinds;  // arena kinds micro_step must show
  };
  const std::vector<Case> cases = {
      {"z0", R"({"train_batch_size": 4, "optimizer": {"type": "Adam", "params": {"lr": 1e-3}}})", 1,
       {"activations", "gradients"}},
      {"z3", R"({"train_batch_size": 8, "gradient_accumulation_steps": 2, "bf16": {"enabled": true},
                 "optimizer": {"type": "Adam", "params": {"lr": 1e-3}},
                 "zero_optimization": {"stage": 3, "stage3_param_persistence_threshold": 0}})",
       2, {"activations", "gradients", "gathered parameters", "communication buffers"}},
      {"remat", R"({"train_batch_size": 4, "optimizer": {"type": "Adam", "params": {"lr": 1e-3}},
                    "activation_checkpointing": {}})", 1, {"activations", "gradients"}},
      // The checkpoints in the host arena are not in the timeline's (device) arena.
      {"remat_cpu", R"({"train_batch_size": 8, "optimizer": {"type": "Adam", "params": {"lr": 1e-3}},
                        "activation_checkpointing": {"cpu_checkpointing": true}})", 1, {"activations", "gradients"}},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    StatusOr<Plan> plan = ReadPlan(CompileGpt(dir, c.name, c.config, c.world));
    ASSERT_TRUE(plan.ok()) << plan.status().ToString();
    StatusOr<json> t = MemoryTimeline(*plan);
    ASSERT_TRUE(t.ok()) << t.status().ToString();
    const json summary = SummarizePlan(*plan);
    EXPECT_EQ((*t)["state"]["optimizer_states"], summary["memory"]["optimizer_states"]);
    int64_t largest_arena = 0;
    for (const json& p : (*t)["programs"]) {
      SCOPED_TRACE(p["name"].get<std::string>());
      const std::vector<int64_t> extent = p["arena_extent"].get<std::vector<int64_t>>();
      ASSERT_EQ(extent.size(), p["num_nodes"].get<size_t>());
      EXPECT_EQ(*std::max_element(extent.begin(), extent.end()), p["arena_bytes"].get<int64_t>());
      EXPECT_EQ(p["arena_peak"]["arena_extent"], p["arena_bytes"]);
      int64_t most = 0;
      for (size_t i = 0; i < extent.size(); ++i) {
        int64_t live = 0;
        for (const auto& [kind, series] : p["live"].items()) live += series[i].get<int64_t>();
        EXPECT_LE(live, extent[i]) << "node " << i << " " << p["nodes"][i];
        most = std::max(most, live);
      }
      EXPECT_EQ(p["peak"]["live_bytes"], most);
      EXPECT_GT(most, 0);
      largest_arena = std::max(largest_arena, p["arena_bytes"].get<int64_t>());
      if (p["name"] == "micro_step") {
        for (const char* kind : c.kinds) EXPECT_TRUE(p["live"].contains(kind)) << kind << ": " << p["live"].dump();
      }
    }
    EXPECT_EQ(largest_arena, summary["memory"]["activations_peak"].get<int64_t>());
  }
}

// Renders `svg_path` with rsvg-convert; fails the test with the renderer's message.
void ExpectRenders(const std::string& svg_path) {
  CommandResult which = testing::RunCommand("command -v rsvg-convert");
  ASSERT_EQ(which.rc, 0) << "rsvg-convert is not installed: scripts/install-deps.sh installs Debian's librsvg2-bin";
  const std::string png = svg_path + ".png";
  CommandResult r = testing::RunCommand("rsvg-convert " + ShellQuote(svg_path) + " -o " + ShellQuote(png));
  EXPECT_EQ(r.rc, 0) << r.output;
  EXPECT_TRUE(r.output.empty()) << "renderer warnings: " << r.output;
  std::ifstream in(png, std::ios::binary);
  char magic[8] = {};
  in.read(magic, 8);
  EXPECT_EQ(std::string(magic + 1, 3), "PNG");
}

CommandResult Dsinspect(const std::string& args) {
  return testing::RunCommand(std::string("'") + DSINSPECT_PATH + "' " + args);
}

TEST(MemoryTimeline, DsinspectWritesSvgAndJsonThatRender) {
  testing::TempDir dir;
  const std::string plan = CompileGpt(dir, "z3", R"({"train_batch_size": 8, "gradient_accumulation_steps": 2,
      "optimizer": {"type": "Adam", "params": {"lr": 1e-3}}, "zero_optimization": {"stage": 3}})", 2);
  const std::string svg = dir.File("t.svg"), js = dir.File("t.json");
  CommandResult r = Dsinspect(ShellQuote(plan) + " --memory-timeline " + ShellQuote(svg));
  ASSERT_EQ(r.rc, 0) << r.output;
  EXPECT_NE(r.output.find("wrote " + svg), std::string::npos) << r.output;
  ExpectRenders(svg);
  std::ifstream in(svg);
  const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  EXPECT_NE(text.find("program micro_step"), std::string::npos);
  EXPECT_NE(text.find("largest values alive at the peak"), std::string::npos);

  r = Dsinspect(ShellQuote(plan) + " --memory-timeline " + ShellQuote(js) + " --program step");
  ASSERT_EQ(r.rc, 0) << r.output;
  json t = json::parse(std::ifstream(js), nullptr, false);
  ASSERT_FALSE(t.is_discarded());
  ASSERT_EQ(t["programs"].size(), 1u);
  EXPECT_EQ(t["programs"][0]["name"], "step");

  r = Dsinspect(ShellQuote(plan) + " --memory-timeline " + ShellQuote(dir.File("t.png")));
  EXPECT_EQ(r.rc, 2);
  EXPECT_NE(r.output.find("writes .svg or .json"), std::string::npos) << r.output;
  r = Dsinspect(ShellQuote(plan) + " --memory-timeline " + ShellQuote(svg) + " --json");
  EXPECT_EQ(r.rc, 2) << r.output;
}

TEST(PlotMetrics, DrawsEverySeriesAndMarksSkippedSteps) {
  testing::TempDir dir;
  const std::string m = dir.File("m.jsonl"), svg = dir.File("m.svg");
  {
    std::ofstream out(m);
    for (int s = 1; s <= 12; ++s)
      out << json{{"step", s}, {"loss", 4.0 / s}, {"lr", 1e-3 * s},
                  {"grad_norm", s == 5 ? json(nullptr) : json(1.0 + s)},
                  {"loss_scale", s < 5 ? 65536.0 : 32768.0}, {"skipped", s == 5}}
                 .dump()
          << "\n";
  }
  CommandResult r = Dsinspect("--plot-metrics " + ShellQuote(m) + " " + ShellQuote(svg));
  ASSERT_EQ(r.rc, 0) << r.output;
  ExpectRenders(svg);
  std::ifstream in(svg);
  const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  for (const char* title : {"loss: first 4", "learning rate", "gradient norm", "loss scale", "1 skipped"})
    EXPECT_NE(text.find(title), std::string::npos) << title;
}

TEST(PlotMetrics, BadFilesNameTheFileAndLine) {
  testing::TempDir dir;
  const std::string m = dir.File("bad.jsonl");
  std::ofstream(m) << R"({"step": 1, "loss": 2.0})" << "\n" << "not json\n";
  StatusOr<std::string> svg = PlotMetricsSvg(m);
  ASSERT_FALSE(svg.ok());
  EXPECT_NE(svg.status().message().find(m + ":2: not a JSON object"), std::string::npos) << svg.status().message();

  std::ofstream(m) << R"({"step": 2, "loss": 2.0})" << "\n" << R"({"step": 1, "loss": 1.0})" << "\n";
  svg = PlotMetricsSvg(m);
  ASSERT_FALSE(svg.ok());
  EXPECT_NE(svg.status().message().find(":2: step 1 does not follow step 2"), std::string::npos)
      << svg.status().message();
  EXPECT_FALSE(PlotMetricsSvg(dir.File("missing.jsonl")).ok());

  // fuzz_metrics_plot found: a "skipped" that is not a boolean threw nlohmann's type_error.
  for (const char* skipped : {"1", "\"yes\"", "[]"}) {
    std::istringstream in(std::string(R"({"step": 1, "loss": 2.0, "skipped": )") + skipped + "}\n");
    svg = PlotMetricsSvg(in, "s.jsonl");
    ASSERT_FALSE(svg.ok()) << skipped;
    EXPECT_NE(svg.status().message().find("s.jsonl:1: \"skipped\" is " + std::string(skipped) + ", not true or false"),
              std::string::npos) << svg.status().message();
  }
  std::istringstream null_skipped(R"({"step": 1, "loss": 2.0, "skipped": null})");
  EXPECT_TRUE(PlotMetricsSvg(null_skipped, "s.jsonl").ok());

  CommandResult r = Dsinspect("--plot-metrics " + ShellQuote(m) + " " + ShellQuote(dir.File("o.svg")));
  EXPECT_EQ(r.rc, 1) << r.output;
  r = Dsinspect("--plot-metrics " + ShellQuote(m));
  EXPECT_EQ(r.rc, 2) << r.output;
}

// Numbers at the edges of what doubles hold. Steps (or values) whose round tick step is below the
// spacing of doubles near them (1e17 and 1e17 + 16: a tick every 2) made NiceTicks' t += step stand
// still and fill memory; a range that is empty or wider than a double wrote NaN coordinates.
TEST(PlotMetrics, ExtremeNumbersDrawOrFailWithTheFile) {
  std::istringstream close(R"({"step": 1e17, "loss": 1e17})" "\n" R"({"step": 100000000000000016, "loss": 100000000000000016})");
  StatusOr<std::string> svg = PlotMetricsSvg(close, "close.jsonl");
  ASSERT_TRUE(svg.ok()) << svg.status().ToString();
  EXPECT_EQ(svg->find("nan"), std::string::npos);

  // One step at 1e17: the x range [step, step + 1] was empty there, and every x NaN.
  std::istringstream one(R"({"step": 1e17, "loss": 3})");
  svg = PlotMetricsSvg(one, "one.jsonl");
  ASSERT_TRUE(svg.ok()) << svg.status().ToString();
  EXPECT_EQ(svg->find("nan"), std::string::npos);

  std::istringstream wide(R"({"step": 1, "loss": -1e308})" "\n" R"({"step": 2, "loss": 1e308})");
  svg = PlotMetricsSvg(wide, "wide.jsonl");
  ASSERT_FALSE(svg.ok());
  EXPECT_NE(svg.status().message().find("wide.jsonl: loss runs from -1e+308 to 1e+308, too wide a range to plot"),
            std::string::npos) << svg.status().message();
  std::istringstream wide_steps(R"({"step": -1e308, "loss": 1})" "\n" R"({"step": 1e308, "loss": 1})");
  svg = PlotMetricsSvg(wide_steps, "steps.jsonl");
  ASSERT_FALSE(svg.ok());
  EXPECT_NE(svg.status().message().find("steps.jsonl: steps run from -1e+308 to 1e+308"), std::string::npos)
      << svg.status().message();
}

TEST(SvgChart, NiceTicksAreRoundAndFewEvenBelowTheSpacingOfDoubles) {
  EXPECT_EQ(NiceTicks(0, 10, 5), (std::vector<double>{0, 2, 4, 6, 8, 10}));
  EXPECT_EQ(NiceTicks(-1, 1, 4), (std::vector<double>{-1, -0.5, 0, 0.5, 1}));
  const double lo = 1e17, hi = 1e17 + 16;
  const std::vector<double> ticks = NiceTicks(lo, hi, 8);
  ASSERT_FALSE(ticks.empty());
  EXPECT_LE(ticks.size(), 18u);
  for (size_t i = 0; i < ticks.size(); ++i) {
    EXPECT_GE(ticks[i], lo);
    EXPECT_LE(ticks[i], hi);
    if (i) {
      EXPECT_LT(ticks[i - 1], ticks[i]);
    }
  }
}

}  // namespace
}  // namespace dsc
