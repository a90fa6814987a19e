// Optimizer offload as a GPU rank runs it (issue 17): the step program on the host, the states only
// it uses in host memory, the ones both programs use on the device with a host mirror
// (backend/host_step.h). dsrun --debug-host-step makes a CPU rank split the same way, with a second
// CPU device standing for the host: losses and every state tensor bit for bit those of the plain
// run (fp32, fp16 with an overflow skip, bf16; ZeRO 1-3; 1 and 2 ranks; gradient accumulation 2;
// NVMe offload), the step's states allocated by the host device, not the compute device, and the
// bytes copied per step what the plan's report says.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>

#include <nlohmann/json.hpp>

#include "tests/testutil/test_util.h"

namespace dsc {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using testing::CommandResult;
using testing::ShellQuote;

const fs::path kRoot = DSC_SOURCE_DIR;

struct Case {
  const char* name;
  int stage, world;
  json extra;              // merged into the config
  const char* dsrun_args;  // for both runs
};
void PrintTo(const Case& c, std::ostream* os) { *os << c.name; }

// The ZeRO tests' config of `stage` for `world` ranks, 2 samples per micro-batch and 2 of them per
// step, optimizer offloaded to "cpu" unless `extra` says otherwise; the gpt plan's path.
std::string Compile(const Case& c, const testing::TempDir& tmp) {
  const std::string w = std::to_string(c.world);
  json cfg = json::parse(std::ifstream(kRoot / "models" / "zero_configs" /
                                       ("stage" + std::to_string(c.stage) + "_w" + w + ".json")));
  cfg["train_batch_size"] = 4 * c.world;
  cfg["train_micro_batch_size_per_gpu"] = 2;
  cfg["gradient_accumulation_steps"] = 2;
  cfg["zero_optimization"]["offload_optimizer"] = {{"device", "cpu"}};
  cfg.merge_patch(c.extra);
  const std::string cfg_path = tmp.File(std::string(c.name) + ".json"), plan = tmp.File(std::string(c.name) + ".dsplan");
  std::ofstream(cfg_path) << cfg.dump();
  CommandResult r = testing::RunCommand(ShellQuote(DSCOMPILE_PATH) + " " + ShellQuote((kRoot / "models/gpt/gpt.onnx").string()) +
                                        " --config " + ShellQuote(cfg_path) + " --world-size " + w + " -q -o " + ShellQuote(plan));
  EXPECT_EQ(r.rc, 0) << r.output;
  return plan;
}

struct TrainRun {
  std::vector<double> loss;
  std::vector<json> lines;
  std::string output;
};

TrainRun Train(const std::string& plan, int world, const std::string& args, const std::string& metrics) {
  const std::string nproc = world > 1 ? " --nproc " + std::to_string(world) : "";
  CommandResult r = testing::RunCommand(ShellQuote(DSRUN_PATH) + " " + ShellQuote(plan) + nproc + " --data " +
                                        ShellQuote((kRoot / "models/gpt/data").string()) +
                                        " --no-shuffle -q --threads 1 --metrics " + ShellQuote(metrics) + " " + args);
  EXPECT_EQ(r.rc, 0) << r.output;
  TrainRun run;
  run.output = r.output;
  std::ifstream in(metrics);
  for (std::string line; std::getline(in, line);) {
    run.lines.push_back(json::parse(line));
    run.loss.push_back(run.lines.back().at("loss").get<double>());
  }
  return run;
}

json Summary(const std::string& plan) {
  CommandResult j = testing::RunCommand(ShellQuote(DSINSPECT_PATH) + " --json " + ShellQuote(plan), false);
  EXPECT_EQ(j.rc, 0) << j.output;
  return json::parse(j.output);
}

// Every file under `dir` (relative path -> bytes).
std::map<std::string, std::string> Files(const fs::path& dir) {
  std::map<std::string, std::string> out;
  for (const auto& e : fs::recursive_directory_iterator(dir)) {
    if (!e.is_regular_file()) continue;
    std::ifstream in(e.path(), std::ios::binary);
    out[fs::relative(e.path(), dir).string()] = std::string(std::istreambuf_iterator<char>(in), {});
  }
  return out;
}

class HostStep : public ::testing::TestWithParam<Case> {};

TEST_P(HostStep, SameLossesAndStatesWithTheStepOnTheHost) {
  const Case& c = GetParam();
  testing::TempDir tmp;
  const std::string plan = Compile(c, tmp);
  const std::string dump = " --steps 4 --debug-dump-state ";
  const TrainRun plain = Train(plan, c.world, c.dsrun_args + dump + ShellQuote(tmp.File("plain")), tmp.File("plain.jsonl"));
  const TrainRun split = Train(plan, c.world, std::string(c.dsrun_args) + " --debug-host-step" + dump + ShellQuote(tmp.File("split")),
                          tmp.File("split.jsonl"));
  ASSERT_EQ(plain.loss.size(), 4u);
  EXPECT_EQ(split.loss, plain.loss);
  // Every state of every rank after every step, bit for bit.
  const auto want = Files(tmp.File("plain")), got = Files(tmp.File("split"));
  EXPECT_EQ(got.size(), want.size());
  EXPECT_GT(want.size(), 4u * c.world);
  for (const auto& [name, bytes] : want) {
    auto it = got.find(name);
    ASSERT_NE(it, got.end()) << name;
    EXPECT_TRUE(it->second == bytes) << name << " differs";
  }
  const json s = Summary(plan);
  const json& m = s["memory"];
  const json& gpu = m["gpu_rank"];
  const int64_t step_only = m["optimizer_states"].get<int64_t>() + m["master_weights"].get<int64_t>();
  for (size_t i = 0; i < split.lines.size(); ++i) {
    const json& h = split.lines[i].at("host_step");
    // The bytes the runtime copied are the plan's: the gradients down, the updated parameters up.
    EXPECT_EQ(h["device_to_host_bytes"], gpu["moved_per_step"]["device_to_host"]) << "step " << i + 1;
    EXPECT_EQ(h["host_to_device_bytes"], gpu["moved_per_step"]["host_to_device"]) << "step " << i + 1;
    EXPECT_EQ(h["host_state_bytes"].get<int64_t>() + m["arena_bytes_by_program"]["step"].get<int64_t>(),
              gpu["places"]["host"]);
    EXPECT_EQ(h["host_mirror_bytes"], gpu["places"]["host_mirrors"]);
    EXPECT_GE(h["host_peak_allocated_bytes"].get<int64_t>(), step_only);
    EXPECT_FALSE(plain.lines[i].contains("host_step"));
  }
  // Derived from the graphs, these are the accumulated gradients (the micro-steps write them, the
  // step reads them) and the parameters (the step writes them, the micro-steps read them).
  EXPECT_EQ(gpu["moved_per_step"]["device_to_host"], m["gradients"]);
  EXPECT_EQ(gpu["moved_per_step"]["host_to_device"], m["parameters"]);
  // The step's states (and its arena) left the compute device: its peak fell by at least them.
  const int64_t plain_peak = plain.lines.back()["peak_allocated_bytes"], split_peak = split.lines.back()["peak_allocated_bytes"];
  EXPECT_GE(plain_peak - split_peak, step_only) << plain_peak << " vs " << split_peak;
  // A CPU rank keeps it all in one memory; a GPU rank splits it, the mirrors counted twice.
  EXPECT_EQ(m["places"]["host"], 0);
  EXPECT_EQ(gpu["places"]["device"].get<int64_t>() + gpu["places"]["host"].get<int64_t>() -
                gpu["places"]["host_mirrors"].get<int64_t>(),
            m["model_states"].get<int64_t>() + m["buffers"].get<int64_t>() +
                m["arena_bytes_by_program"]["micro_step"].get<int64_t>() + m["arena_bytes_by_program"]["step"].get<int64_t>());
}

const json kBf16 = {{"bf16", {{"enabled", true}}}};
const json kFp16 = {{"fp16", {{"enabled", true}, {"initial_scale_power", 8}}}};

INSTANTIATE_TEST_SUITE_P(
    Configs, HostStep,
    ::testing::Values(Case{"Fp32Stage1_w1", 1, 1, json::object(), ""},
                      Case{"Fp32Stage2_w2", 2, 2, json::object(), ""},
                      Case{"Bf16Stage2_w2", 2, 2, kBf16, ""},
                      // An overflow at step 2: the host step skips the update as the plain run does.
                      Case{"Fp16Stage1OverflowSkip_w2", 1, 2, kFp16, "--debug-inject-overflow 2"},
                      Case{"Bf16Stage3_w2", 3, 2, kBf16, ""},
                      Case{"Fp32Stage3_w1", 3, 1, json::object(), ""}),
    [](const ::testing::TestParamInfo<Case>& i) { return i.param.name; });

// NVMe offload with the step on the host: the swap ops run in the host step program, so a GPU rank
// swaps as a CPU rank does; the states on NVMe need neither host memory nor mirrors.
TEST(HostStepNvme, SameLossesAndStates) {
  testing::TempDir tmp;
  const json nvme = {{"zero_optimization", {{"offload_optimizer", {{"device", "nvme"}, {"nvme_path", tmp.File("nvme")}}}}}};
  json extra = kBf16;
  extra.merge_patch(nvme);
  const Case c{"Bf16Stage2Nvme", 2, 2, extra, ""};
  const std::string plan = Compile(c, tmp);
  const TrainRun plain = Train(plan, 2, "--steps 3 --debug-dump-state " + ShellQuote(tmp.File("plain")), tmp.File("p.jsonl"));
  const TrainRun split = Train(plan, 2, "--steps 3 --debug-host-step --debug-dump-state " + ShellQuote(tmp.File("split")),
                          tmp.File("s.jsonl"));
  ASSERT_EQ(plain.loss.size(), 3u);
  EXPECT_EQ(split.loss, plain.loss);
  EXPECT_TRUE(Files(tmp.File("plain")) == Files(tmp.File("split")));
  const json m = Summary(plan)["memory"];
  EXPECT_EQ(m["optimizer_states"], 0);
  EXPECT_GT(m["places"]["nvme"].get<int64_t>(), 0);
  // Only the mirrors are host state: the optimizer states and masters are in the swap file.
  EXPECT_EQ(split.lines.back()["host_step"]["host_state_bytes"], m["gpu_rank"]["places"]["host_mirrors"]);
  EXPECT_EQ(m["gpu_rank"]["places"]["nvme"], m["places"]["nvme"]);
}

// A checkpoint saved with the step on the host resumes into the same trajectory, with or without it.
TEST(HostStepCheckpoint, SavesAndResumesBitForBit) {
  testing::TempDir tmp;
  const Case c{"Bf16Stage2Ckpt", 2, 2, kBf16, ""};
  const std::string plan = Compile(c, tmp);
  const TrainRun whole = Train(plan, 2, "--steps 4", tmp.File("whole.jsonl"));
  ASSERT_EQ(whole.loss.size(), 4u);
  Train(plan, 2, "--steps 2 --debug-host-step --save-dir " + ShellQuote(tmp.File("ck")) + " --save-at-end",
        tmp.File("first.jsonl"));
  for (const char* mode : {"--debug-host-step", ""}) {
    const TrainRun rest = Train(plan, 2, std::string("--steps 4 --resume ") + ShellQuote(tmp.File("ck")) + " " + mode,
                           tmp.File(std::string("rest") + mode + ".jsonl"));
    ASSERT_EQ(rest.loss.size(), 2u) << mode;
    EXPECT_EQ(rest.loss[0], whole.loss[2]) << mode;
    EXPECT_EQ(rest.loss[1], whole.loss[3]) << mode;
  }
}

// The option is a test aid for plans whose config offloads the optimizer: refused otherwise.
TEST(HostStepOption, RefusedWithoutOptimizerOffload) {
  testing::TempDir tmp;
  const Case c{"NoOffload", 1, 1, {{"zero_optimization", {{"offload_optimizer", {{"device", "none"}}}}}}, ""};
  const std::string plan = Compile(c, tmp);
  CommandResult r = testing::RunCommand(ShellQuote(DSRUN_PATH) + " " + ShellQuote(plan) + " --data " +
                                        ShellQuote((kRoot / "models/gpt/data").string()) + " --steps 1 -q --debug-host-step");
  EXPECT_NE(r.rc, 0);
  EXPECT_NE(r.output.find("--debug-host-step: the plan's config offloads no optimizer states "
                          "(zero_optimization.offload_optimizer.device is \"none\", or ZeRO stage 0)"),
            std::string::npos)
      << r.output;
}

}  // namespace
}  // namespace dsc
