// NVMe offload of optimizer states (zero_optimization.offload_optimizer.device "nvme", issue 17):
// on two ranks at ZeRO 1-3 the losses are bit for bit those of the same config without offload,
// the states live in the swap file instead of memory (what the plan says and what the run
// measures), the file is gone after the run, and checkpoints save and resume through it.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include <nlohmann/json.hpp>

#include "tests/testutil/test_util.h"

namespace dsc {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using testing::CommandResult;
using testing::ShellQuote;

const fs::path kRoot = DSC_SOURCE_DIR;
constexpr int kWorld = 2;

// The stage's config of the ZeRO tests for `world` ranks, with `offload` as
// zero_optimization.offload_optimizer (null: none), compiled for the gpt model; returns the plan's path.
std::string Compile(int stage, const json& offload, const testing::TempDir& tmp, const std::string& name,
                    int world = kWorld) {
  const std::string w = std::to_string(world);
  json cfg = json::parse(std::ifstream(kRoot / "models" / "zero_configs" / ("stage" + std::to_string(stage) + "_w" + w + ".json")));
  if (!offload.is_null()) cfg["zero_optimization"]["offload_optimizer"] = offload;
  const std::string cfg_path = tmp.File(name + ".json"), plan = tmp.File(name + ".dsplan");
  std::ofstream(cfg_path) << cfg.dump();
  CommandResult c = testing::RunCommand(ShellQuote(DSCOMPILE_PATH) + " " + ShellQuote((kRoot / "models/gpt/gpt.onnx").string()) +
                                        " --config " + ShellQuote(cfg_path) + " --world-size " + w + " -q -o " + ShellQuote(plan));
  EXPECT_EQ(c.rc, 0) << c.output;
  return plan;
}

struct TrainRun {
  std::vector<double> loss;
  json last;  // the last metrics line
};

TrainRun Train(const std::string& plan, const std::string& args, const testing::TempDir& tmp, const std::string& name,
               int world = kWorld) {
  const std::string metrics = tmp.File(name + ".jsonl");
  const std::string nproc = world > 1 ? " --nproc " + std::to_string(world) : "";  // one rank: no MPI job
  CommandResult r = testing::RunCommand(ShellQuote(DSRUN_PATH) + " " + ShellQuote(plan) + nproc + " --data " +
                                        ShellQuote((kRoot / "models/gpt/data").string()) +
                                        " --no-shuffle -q --threads 1 --metrics " + ShellQuote(metrics) + " " + args);
  EXPECT_EQ(r.rc, 0) << r.output;
  TrainRun run;
  std::ifstream in(metrics);
  for (std::string line; std::getline(in, line);) {
    run.last = json::parse(line);
    run.loss.push_back(run.last.at("loss").get<double>());
  }
  return run;
}

json Summary(const std::string& plan) {
  CommandResult j = testing::RunCommand(ShellQuote(DSINSPECT_PATH) + " --json " + ShellQuote(plan), false);
  EXPECT_EQ(j.rc, 0) << j.output;
  return json::parse(j.output);
}

int CountOps(const std::string& plan, const std::string& op) {
  CommandResult g = testing::RunCommand(ShellQuote(DSINSPECT_PATH) + " --graph --program step " + ShellQuote(plan), false);
  EXPECT_EQ(g.rc, 0) << g.output;
  const std::string needle = "ai.dscompile." + op + " <";  // the op and its attributes
  int n = 0;
  for (size_t at = g.output.find(needle); at != std::string::npos; at = g.output.find(needle, at + 1)) ++n;
  return n;
}

class NvmeOffload : public ::testing::TestWithParam<int> {};

TEST_P(NvmeOffload, SameLossesWithTheStatesOnDisk) {
  const int stage = GetParam();
  testing::TempDir tmp;
  const std::string nvme = tmp.File("nvme");
  const std::string base = Compile(stage, nullptr, tmp, "base");
  // Pipelined, with a window of 2 updates; and DeepSpeed's defaults (no pipelining, 4 buffers).
  const std::string piped = Compile(stage, {{"device", "nvme"}, {"nvme_path", nvme}, {"buffer_count", 2},
                                            {"pipeline_read", true}, {"pipeline_write", true}}, tmp, "piped");
  const std::string plain = Compile(stage, {{"device", "nvme"}, {"nvme_path", nvme}}, tmp, "plain");
  const TrainRun want = Train(base, "--steps 8", tmp, "base");
  ASSERT_EQ(want.loss.size(), 8u);
  for (const std::string& plan : {piped, plain}) {
    const TrainRun got = Train(plan, "--steps 8", tmp, fs::path(plan).stem().string());
    ASSERT_EQ(got.loss.size(), want.loss.size()) << plan;
    for (size_t i = 0; i < want.loss.size(); ++i) EXPECT_EQ(got.loss[i], want.loss[i]) << plan << " step " << i + 1;
    // No optimizer state is resident; the run measured the bytes the plan put on NVMe.
    const json s = Summary(plan), b = Summary(base);
    EXPECT_EQ(s["memory"]["optimizer_states"], 0) << plan;
    EXPECT_EQ(s["memory"]["places"]["nvme"], b["memory"]["optimizer_states"]) << plan;
    EXPECT_EQ(got.last["memory"]["optimizer_states"], 0) << plan;
    EXPECT_EQ(got.last["memory"]["optimizer_states_on_nvme"], b["memory"]["optimizer_states"]) << plan;
    // Every state moves in and out once per step (Adam: two per parameter).
    EXPECT_EQ(s["memory"]["moved_per_step"]["nvme_to_device"], b["memory"]["optimizer_states"]) << plan;
    EXPECT_EQ(s["memory"]["moved_per_step"]["device_to_nvme"], b["memory"]["optimizer_states"]) << plan;
    EXPECT_EQ(CountOps(plan, "SwapIn"), CountOps(plan, "SwapOutWait")) << plan;
    EXPECT_GT(CountOps(plan, "SwapIn"), 0) << plan;
  }
  // The swap files are unnamed: nothing is left under nvme_path.
  EXPECT_TRUE(fs::is_empty(nvme)) << nvme;
}

INSTANTIATE_TEST_SUITE_P(Stages, NvmeOffload, ::testing::Values(1, 2, 3),
                         [](const ::testing::TestParamInfo<int>& i) { return "Stage" + std::to_string(i.param); });

// 4 steps, a checkpoint, 4 more steps from it equal 8 uninterrupted steps; a checkpoint of the run
// without offload resumes with offload too (a checkpoint does not depend on where states live).
TEST(NvmeOffloadCheckpoint, SavesAndResumesThroughTheSwapFile) {
  testing::TempDir tmp;
  const json off = {{"device", "nvme"}, {"nvme_path", tmp.File("nvme")}, {"pipeline_read", true}};
  const std::string plan = Compile(2, off, tmp, "nvme"), base = Compile(2, nullptr, tmp, "base");
  const TrainRun whole = Train(plan, "--steps 8", tmp, "whole");
  ASSERT_EQ(whole.loss.size(), 8u);
  const std::string ckpt = tmp.File("ckpt"), base_ckpt = tmp.File("base_ckpt");
  Train(plan, "--steps 4 --save-dir " + ShellQuote(ckpt) + " --save-at-end", tmp, "first");
  const TrainRun resumed = Train(plan, "--steps 8 --resume " + ShellQuote(ckpt), tmp, "resumed");
  ASSERT_EQ(resumed.loss.size(), 4u);
  for (size_t i = 0; i < 4; ++i) EXPECT_EQ(resumed.loss[i], whole.loss[4 + i]) << "step " << 5 + i;
  Train(base, "--steps 4 --save-dir " + ShellQuote(base_ckpt) + " --save-at-end", tmp, "base_first");
  const TrainRun crossed = Train(plan, "--steps 8 --resume " + ShellQuote(base_ckpt), tmp, "crossed");
  ASSERT_EQ(crossed.loss.size(), 4u);
  for (size_t i = 0; i < 4; ++i) EXPECT_EQ(crossed.loss[i], whole.loss[4 + i]) << "step " << 5 + i;
}

// One rank (no MPI job, so the sanitizer run keeps it), unpipelined with one buffer: each update
// reads, runs, writes and waits in turn. dsinspect's text report shows the places.
TEST(NvmeOffloadOneRank, SameLossesAndTheReportShowsThePlaces) {
  testing::TempDir tmp;
  const json off = {{"device", "nvme"}, {"nvme_path", tmp.File("nvme")}, {"buffer_count", 1}};
  const std::string plan = Compile(1, off, tmp, "nvme", 1), base = Compile(1, nullptr, tmp, "base", 1);
  const TrainRun want = Train(base, "--steps 4", tmp, "base", 1), got = Train(plan, "--steps 4", tmp, "nvme", 1);
  ASSERT_EQ(want.loss.size(), 4u);
  EXPECT_EQ(got.loss, want.loss);
  CommandResult text = testing::RunCommand(ShellQuote(DSINSPECT_PATH) + " " + ShellQuote(plan), false);
  ASSERT_EQ(text.rc, 0) << text.output;
  const json b = Summary(base);
  const std::string states = std::to_string(b["memory"]["optimizer_states"].get<int64_t>());
  EXPECT_NE(text.output.find("places per rank (device: where the rank computes, host memory on a CPU rank):"),
            std::string::npos) << text.output;
  for (const char* row : {"  nvme ", "  moved per step, nvme -> device ", "  moved per step, device -> nvme "}) {
    const size_t at = text.output.find(row);
    ASSERT_NE(at, std::string::npos) << row << "\n" << text.output;
    EXPECT_NE(text.output.substr(at, text.output.find('\n', at) - at).find("KiB"), std::string::npos) << row;
  }
  EXPECT_EQ(Summary(plan)["memory"]["places"]["nvme"].get<int64_t>(), std::stoll(states));
}

}  // namespace
}  // namespace dsc
