// NVMe offload of optimizer states (zero_optimization.offload_optimizer.device "nvme", issue 17):
// on two ranks at ZeRO 1-3 the losses are bit for bit those of the same config without offload,
// the states (and under fp16/bf16 the master weights) live in the swap file instead of memory
// (what the plan says and what the run measures), the file is gone after the run, and checkpoints
// save and resume through it.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <iterator>
#include <tuple>

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
// zero_optimization.offload_optimizer (null: none) and `extra` merged in (a JSON merge patch),
// compiled for the gpt model; returns the plan's path.
std::string Compile(int stage, const json& offload, const testing::TempDir& tmp, const std::string& name,
                    int world = kWorld, const json& extra = json::object()) {
  const std::string w = std::to_string(world);
  json cfg = json::parse(std::ifstream(kRoot / "models" / "zero_configs" / ("stage" + std::to_string(stage) + "_w" + w + ".json")));
  if (!offload.is_null()) cfg["zero_optimization"]["offload_optimizer"] = offload;
  cfg.merge_patch(extra);
  const std::string cfg_path = tmp.File(name + ".json"), plan = tmp.File(name + ".dsplan");
  std::ofstream(cfg_path) << cfg.dump();
  CommandResult c = testing::RunCommand(ShellQuote(DSCOMPILE_PATH) + " " + ShellQuote((kRoot / "models/gpt/gpt.onnx").string()) +
                                        " --config " + ShellQuote(cfg_path) + " --world-size " + w + " -q -o " + ShellQuote(plan));
  EXPECT_EQ(c.rc, 0) << c.output;
  return plan;
}

struct TrainRun {
  std::vector<double> loss;
  json last;           // the last metrics line
  std::string output;  // dsrun's stdout and stderr
};

// `env`: assignments put before dsrun's command ("NAME=value ... ").
TrainRun Train(const std::string& plan, const std::string& args, const testing::TempDir& tmp, const std::string& name,
               int world = kWorld, const std::string& env = "") {
  const std::string metrics = tmp.File(name + ".jsonl");
  const std::string nproc = world > 1 ? " --nproc " + std::to_string(world) : "";  // one rank: no MPI job
  CommandResult r = testing::RunCommand(env + ShellQuote(DSRUN_PATH) + " " + ShellQuote(plan) + nproc + " --data " +
                                        ShellQuote((kRoot / "models/gpt/data").string()) +
                                        " --no-shuffle -q --threads 1 --metrics " + ShellQuote(metrics) + " " + args);
  EXPECT_EQ(r.rc, 0) << r.output;
  TrainRun run;
  run.output = r.output;
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

// The swap files are opened with O_DIRECT where the folder's file system allows it, as DeepSpeed's
// aio opens them (runtime/nvme_swap.h; tests/runtime/nvme_swap_test.cc checks the flag): dsrun is
// silent about it on the local disk. On tmpfs (/dev/shm) they are buffered and every rank says so
// once on stderr, naming its folder; the losses are the same either way.
TEST(NvmeOffloadIo, BufferedOnTmpfsSaysSoOncePerRank) {
  testing::TempDir tmp;
  if (!fs::is_directory("/dev/shm")) GTEST_SKIP() << "no /dev/shm here";
  char shm_template[] = "/dev/shm/dsc_test_XXXXXX";
  ASSERT_NE(mkdtemp(shm_template), nullptr);
  const std::string shm = shm_template;
  const std::string disk_plan = Compile(2, {{"device", "nvme"}, {"nvme_path", tmp.File("nvme")}}, tmp, "disk");
  const std::string shm_plan = Compile(2, {{"device", "nvme"}, {"nvme_path", shm + "/nvme"}}, tmp, "shm");
  const TrainRun disk = Train(disk_plan, "--steps 3", tmp, "disk");
  const TrainRun mem = Train(shm_plan, "--steps 3", tmp, "shm");
  std::error_code ec;
  fs::remove_all(shm, ec);
  EXPECT_EQ(mem.loss, disk.loss);
  const std::string note = "uses buffered I/O, not O_DIRECT";
  EXPECT_EQ(disk.output.find(note), std::string::npos) << disk.output;
  for (int rank = 0; rank < kWorld; ++rank) {
    const std::string line = "dsrun: note: the NVMe swap file of rank " + std::to_string(rank) + " under " + shm +
                             "/nvme (zero_optimization.offload_optimizer.nvme_path) " + note + ": the folder is on tmpfs";
    const size_t at = mem.output.find(line);
    EXPECT_NE(at, std::string::npos) << line << "\nnot in:\n" << mem.output;
    if (at != std::string::npos) {
      EXPECT_EQ(mem.output.find(line, at + 1), std::string::npos) << "said twice";
    }
  }
}

// A file system that refuses O_DIRECT at open (EINVAL; here a preloaded open() that does): the
// swap file falls back to buffered I/O, says why once, and trains as with O_DIRECT.
TEST(NvmeOffloadIo, BufferedWhereOpenRefusesODirect) {
  testing::TempDir tmp;
  const std::string plan = Compile(1, {{"device", "nvme"}, {"nvme_path", tmp.File("nvme")}}, tmp, "refused", 1);
  const TrainRun direct = Train(plan, "--steps 3", tmp, "direct", 1);
  // The sanitizer build's runtime would otherwise insist on coming first in the preload list.
  const TrainRun refused = Train(plan, "--steps 3", tmp, "refused", 1,
                                 "LD_PRELOAD=" + ShellQuote(DSC_REFUSE_ODIRECT_PATH) +
                                     " ASAN_OPTIONS=\"$ASAN_OPTIONS:verify_asan_link_order=0\" ");
  ASSERT_EQ(direct.loss.size(), 3u) << direct.output;
  EXPECT_EQ(refused.loss, direct.loss);
  const std::string note = "uses buffered I/O, not O_DIRECT";
  EXPECT_EQ(direct.output.find(note), std::string::npos) << direct.output;
  const std::string line = "dsrun: note: the NVMe swap file of rank 0 under " + tmp.File("nvme") +
                           " (zero_optimization.offload_optimizer.nvme_path) " + note +
                           ": the file system refuses O_DIRECT (open: Invalid argument)";
  const size_t at = refused.output.find(line);
  EXPECT_NE(at, std::string::npos) << line << "\nnot in:\n" << refused.output;
  if (at != std::string::npos) {
    EXPECT_EQ(refused.output.find(line, at + 1), std::string::npos) << "said twice";
  }
}

std::string ReadFile(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

// "" when every file under `want` (dumped states) has a byte-identical twin under `got`; else
// the first that differs.
std::string SameFiles(const fs::path& want, const fs::path& got) {
  int compared = 0;
  for (const auto& e : fs::recursive_directory_iterator(want)) {
    if (!e.is_regular_file()) continue;
    const fs::path twin = got / fs::relative(e.path(), want);
    if (ReadFile(e.path()) != ReadFile(twin)) return twin.string() + " differs from " + e.path().string();
    ++compared;
  }
  return compared > 0 ? "" : "nothing dumped under " + want.string();
}

// fp16 and bf16: the fp32 master weights swap with the optimizer states (DeepSpeed's optimizer
// swappers carry each fp32 partition with its states). Losses, and every state tensor of every
// rank after the last step, are bit for bit those without offload; neither masters nor states
// stay resident, and the run measured the bytes the plan put on NVMe.
class NvmeOffloadMasters : public ::testing::TestWithParam<std::tuple<int, std::string>> {};

TEST_P(NvmeOffloadMasters, SwapWithTheStates) {
  const auto& [stage, precision] = GetParam();
  testing::TempDir tmp;
  const json extra = {{precision, {{"enabled", true}}}};
  const json off = {{"device", "nvme"}, {"nvme_path", tmp.File("nvme")}, {"buffer_count", 2},
                    {"pipeline_read", true}, {"pipeline_write", true}};
  const std::string base = Compile(stage, nullptr, tmp, "base", kWorld, extra);
  const std::string plan = Compile(stage, off, tmp, "nvme", kWorld, extra);
  const std::string dump = " --debug-dump-steps 6 --debug-dump-state ";
  const TrainRun want = Train(base, "--steps 6" + dump + ShellQuote(tmp.File("base_state")), tmp, "base");
  const TrainRun got = Train(plan, "--steps 6" + dump + ShellQuote(tmp.File("nvme_state")), tmp, "nvme");
  ASSERT_EQ(want.loss.size(), 6u);
  ASSERT_EQ(got.loss, want.loss);
  EXPECT_EQ(SameFiles(tmp.File("base_state"), tmp.File("nvme_state")), "");
  const json s = Summary(plan), b = Summary(base);
  const int64_t masters = b["memory"]["master_weights"], states = b["memory"]["optimizer_states"];
  ASSERT_GT(masters, 0);
  EXPECT_EQ(s["memory"]["master_weights"], 0);
  EXPECT_EQ(s["memory"]["optimizer_states"], 0);
  EXPECT_EQ(s["memory"]["places"]["nvme"], masters + states);
  EXPECT_EQ(s["memory"]["moved_per_step"]["nvme_to_device"], masters + states);
  EXPECT_EQ(s["memory"]["moved_per_step"]["device_to_nvme"], masters + states);
  EXPECT_EQ(got.last["memory"]["master_weights"], 0);
  EXPECT_EQ(got.last["memory"]["master_weights_on_nvme"], masters);
  EXPECT_EQ(got.last["memory"]["optimizer_states_on_nvme"], states);
}

INSTANTIATE_TEST_SUITE_P(StagesAndHalves, NvmeOffloadMasters,
                         ::testing::Combine(::testing::Values(1, 2, 3), ::testing::Values("fp16", "bf16")),
                         [](const ::testing::TestParamInfo<std::tuple<int, std::string>>& i) {
                           return "Stage" + std::to_string(std::get<0>(i.param)) + "_" + std::get<1>(i.param);
                         });

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

// With bf16 at stage 3 the master weights are in the swap file too: a checkpoint reads them from
// it and a resume writes them back into it.
TEST(NvmeOffloadCheckpoint, MasterWeightsSaveAndResumeThroughTheSwapFile) {
  testing::TempDir tmp;
  const json off = {{"device", "nvme"}, {"nvme_path", tmp.File("nvme")}};
  const json bf16 = {{"bf16", {{"enabled", true}}}};
  const std::string plan = Compile(3, off, tmp, "nvme", kWorld, bf16);
  const TrainRun whole = Train(plan, "--steps 6", tmp, "whole");
  ASSERT_EQ(whole.loss.size(), 6u);
  const std::string ckpt = tmp.File("ckpt");
  Train(plan, "--steps 3 --save-dir " + ShellQuote(ckpt) + " --save-at-end", tmp, "first");
  const TrainRun resumed = Train(plan, "--steps 6 --resume " + ShellQuote(ckpt), tmp, "resumed");
  ASSERT_EQ(resumed.loss.size(), 3u);
  for (size_t i = 0; i < 3; ++i) EXPECT_EQ(resumed.loss[i], whole.loss[3 + i]) << "step " << 4 + i;
}

// Parameter offload (zero_optimization.offload_param.device "nvme", ZeRO 3): every parameter
// chunk lives in the swap file (max_in_cpu 0) and is read in before each gather and update; the
// losses and every state tensor of every rank after the last step are bit for bit those without
// offload, alone and with the optimizer states swapped too (to a folder of their own, so each
// rank has two swap files).
struct ParamCase {
  std::string name;
  json extra;             // merged into the stage-3 config of both runs
  int buffer_count;       // offload_param's
  bool optimizer_offload; // offload_optimizer "nvme" too
};

void PrintTo(const ParamCase& c, std::ostream* os) { *os << c.name; }

class NvmeParamOffload : public ::testing::TestWithParam<ParamCase> {};

TEST_P(NvmeParamOffload, SameStatesWithTheParametersOnDisk) {
  const ParamCase& c = GetParam();
  testing::TempDir tmp;
  const std::string nvme = tmp.File("nvme");
  json extra = c.extra;
  const std::string base = Compile(3, nullptr, tmp, "base", kWorld, extra);
  extra["zero_optimization"]["offload_param"] = {{"device", "nvme"}, {"nvme_path", nvme}, {"max_in_cpu", 0},
                                                 {"buffer_count", c.buffer_count}};
  const std::string nvme_opt = tmp.File("nvme_opt");
  const json opt_off = c.optimizer_offload
                           ? json{{"device", "nvme"}, {"nvme_path", nvme_opt}, {"pipeline_read", true}}
                           : json(nullptr);
  const std::string plan = Compile(3, opt_off, tmp, "nvme", kWorld, extra);
  const std::string dump = " --debug-dump-steps 6 --debug-dump-state ";
  const TrainRun want = Train(base, "--steps 6" + dump + ShellQuote(tmp.File("base_state")), tmp, "base");
  const TrainRun got = Train(plan, "--steps 6" + dump + ShellQuote(tmp.File("nvme_state")), tmp, "nvme");
  ASSERT_EQ(want.loss.size(), 6u);
  ASSERT_EQ(got.loss, want.loss);
  EXPECT_EQ(SameFiles(tmp.File("base_state"), tmp.File("nvme_state")), "");
  // Every parameter is chunked (stage3_param_persistence_threshold 0), so none stays resident.
  const json s = Summary(plan), b = Summary(base);
  const int64_t params = b["memory"]["parameters"], states = b["memory"]["optimizer_states"];
  const int64_t masters = b["memory"]["master_weights"];
  ASSERT_GT(params, 0);
  EXPECT_EQ(s["memory"]["parameters"], 0);
  const int64_t on_nvme = params + (c.optimizer_offload ? states + masters : 0);
  EXPECT_EQ(s["memory"]["places"]["nvme"], on_nvme);
  EXPECT_EQ(got.last["memory"]["parameters"], 0);
  EXPECT_EQ(got.last["memory"]["parameters_on_nvme"], params);
  EXPECT_EQ(CountOps(plan, "SwapIn"), CountOps(plan, "SwapInWait"));
  EXPECT_TRUE(fs::is_empty(nvme)) << nvme;
  if (c.optimizer_offload) {
    EXPECT_TRUE(fs::is_empty(nvme_opt)) << nvme_opt;
  }
}

INSTANTIATE_TEST_SUITE_P(
    Precisions, NvmeParamOffload,
    // One parameter per gather bucket, read two ahead; the default buckets (up to 30 parameters);
    // buckets of at most 1000 elements with the optimizer states swapped too.
    ::testing::Values(ParamCase{"fp32", {{"zero_optimization", {{"stage3_prefetch_bucket_size", 1}}}}, 2, false},
                      ParamCase{"bf16", {{"bf16", {{"enabled", true}}}}, 64, false},
                      ParamCase{"fp16_with_optimizer_offload",
                                {{"fp16", {{"enabled", true}}}, {"zero_optimization", {{"stage3_prefetch_bucket_size", 1000}}}},
                                8, true}),
    [](const ::testing::TestParamInfo<ParamCase>& i) { return i.param.name; });

// Stage 3 with parameter offload: a checkpoint reads the chunks from the swap file and a resume
// writes them back into it; 3 + 3 steps equal 6 uninterrupted steps.
TEST(NvmeParamOffloadCheckpoint, SavesAndResumesThroughTheSwapFile) {
  testing::TempDir tmp;
  const json extra = {{"zero_optimization", {{"offload_param", {{"device", "nvme"}, {"nvme_path", tmp.File("nvme")},
                                                                {"max_in_cpu", 0}, {"buffer_count", 64}}}}}};
  const std::string plan = Compile(3, nullptr, tmp, "nvme", kWorld, extra);
  const TrainRun whole = Train(plan, "--steps 6", tmp, "whole");
  ASSERT_EQ(whole.loss.size(), 6u);
  const std::string ckpt = tmp.File("ckpt");
  Train(plan, "--steps 3 --save-dir " + ShellQuote(ckpt) + " --save-at-end", tmp, "first");
  const TrainRun resumed = Train(plan, "--steps 6 --resume " + ShellQuote(ckpt), tmp, "resumed");
  ASSERT_EQ(resumed.loss.size(), 3u);
  for (size_t i = 0; i < 3; ++i) EXPECT_EQ(resumed.loss[i], whole.loss[3 + i]) << "step " << 4 + i;
}

// dsinspect's figures for parameter offload, checked by hand on the mlp (fc1 32->64, fc2 64->64,
// fc3 64->10) at ZeRO 3 on two ranks: chunks of ceil(n/2) elements, fc1.weight 1024, fc1.bias 32,
// fc2.weight 2048, fc2.bias 32, fc3.weight 320, fc3.bias 5: 3461 float32 = 13844 bytes on NVMe.
// Per step (2 micro-steps): each micro-step reads every chunk for the forward gathers and, with
// stage3_max_reuse_distance 0, fc2.weight's again for its backward gather (fc3's gathered copy
// is still alive: it is the last forward and first backward layer; fc1's weight and the biases
// have no backward reader), 3461 + 2048 elements; the step reads and writes every chunk for
// its update: (2 * 5509 + 3461) * 4 = 57916 bytes read, 13844 written.
TEST(NvmeParamOffloadReport, PlacesAndBytesMovedOnTheMlp) {
  testing::TempDir tmp;
  json cfg = {{"train_batch_size", 8}, {"train_micro_batch_size_per_gpu", 2}, {"gradient_accumulation_steps", 2},
              {"optimizer", {{"type", "Adam"}, {"params", {{"lr", 0.01}}}}},
              {"zero_optimization", {{"stage", 3}, {"stage3_param_persistence_threshold", 0},
                                     {"stage3_prefetch_bucket_size", 1}, {"stage3_max_reuse_distance", 0},
                                     {"offload_param", {{"device", "nvme"}, {"nvme_path", tmp.File("nvme")},
                                                        {"max_in_cpu", 0}, {"buffer_count", 2}}}}}};
  auto compile = [&](const json& c, const std::string& name) {
    const std::string cfg_path = tmp.File(name + ".json"), plan = tmp.File(name + ".dsplan");
    std::ofstream(cfg_path) << c.dump();
    return std::make_pair(testing::RunCommand(ShellQuote(DSCOMPILE_PATH) + " " +
                                              ShellQuote((kRoot / "models/mlp/mlp.onnx").string()) + " --config " +
                                              ShellQuote(cfg_path) + " --world-size 2 -q -o " + ShellQuote(plan)),
                          plan);
  };
  auto [c, plan] = compile(cfg, "all");
  ASSERT_EQ(c.rc, 0) << c.output;
  json s = Summary(plan);
  EXPECT_EQ(s["memory"]["places"]["nvme"], 13844);
  EXPECT_EQ(s["memory"]["parameters"], 0);
  EXPECT_EQ(s["memory"]["moved_per_step"]["nvme_to_device"], 57916);
  EXPECT_EQ(s["memory"]["moved_per_step"]["device_to_nvme"], 13844);
  CommandResult text = testing::RunCommand(ShellQuote(DSINSPECT_PATH) + " " + ShellQuote(plan), false);
  ASSERT_EQ(text.rc, 0) << text.output;
  for (const char* row : {"  nvme                             13.5 KiB", "  moved per step, nvme -> device   56.6 KiB",
                          "  moved per step, device -> nvme   13.5 KiB"})
    EXPECT_NE(text.output.find(row), std::string::npos) << row << "\n" << text.output;
  // max_in_cpu 1055: fc1.weight (1024 elements) stays in memory; fc1.bias would pass the limit,
  // and so does every later chunk (DeepSpeed's running offset counts the ones it swaps too).
  cfg["zero_optimization"]["offload_param"]["max_in_cpu"] = 1055;
  std::tie(c, plan) = compile(cfg, "kept");
  ASSERT_EQ(c.rc, 0) << c.output;
  s = Summary(plan);
  EXPECT_EQ(s["memory"]["places"]["nvme"], (3461 - 1024) * 4);
  EXPECT_EQ(s["memory"]["parameters"], 1024 * 4);
  for (const json& st : s["state"]) {
    if (st["kind"] == "parameter") {
      EXPECT_EQ(st["place"], st["name"] == "fc1.weight" ? "device" : "nvme") << st["name"];
    }
  }
  // The default max_in_cpu (1e9) keeps every chunk in memory, as DeepSpeed does.
  cfg["zero_optimization"]["offload_param"].erase("max_in_cpu");
  std::tie(c, plan) = compile(cfg, "default");
  ASSERT_EQ(c.rc, 0) << c.output;
  EXPECT_EQ(Summary(plan)["memory"]["places"]["nvme"], 0);
  // A chunk larger than buffer_size, a bucket of more chunks than buffer_count: refused, named.
  cfg["zero_optimization"]["offload_param"]["max_in_cpu"] = 0;
  cfg["zero_optimization"]["offload_param"]["buffer_size"] = 2047;
  std::tie(c, plan) = compile(cfg, "small");
  EXPECT_NE(c.rc, 0);
  EXPECT_NE(c.output.find("zero_optimization.offload_param.buffer_size: 2047 elements, but the chunk of parameter "
                          "'fc2.weight' ('fc2.weight') has 2048"), std::string::npos) << c.output;
  cfg["zero_optimization"]["offload_param"].erase("buffer_size");
  cfg["zero_optimization"]["offload_param"]["buffer_count"] = 1;
  cfg["zero_optimization"]["stage3_prefetch_bucket_size"] = 100000;
  std::tie(c, plan) = compile(cfg, "few");
  EXPECT_NE(c.rc, 0);
  EXPECT_NE(c.output.find("zero_optimization.offload_param.buffer_count: 1 buffers, but node producing"),
            std::string::npos) << c.output;
  EXPECT_NE(c.output.find("lower zero_optimization.stage3_prefetch_bucket_size"), std::string::npos) << c.output;
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

// Parameter offload on one rank (no MPI job, so the sanitizer run keeps it): no gathers, so every
// node that reads a parameter reads it in (two buffers: a LayerNorm reads weight and bias).
TEST(NvmeParamOffloadOneRank, SameLosses) {
  testing::TempDir tmp;
  const json extra = {{"zero_optimization", {{"offload_param", {{"device", "nvme"}, {"nvme_path", tmp.File("nvme")},
                                                                {"max_in_cpu", 0}, {"buffer_count", 2}}}}}};
  const std::string plan = Compile(3, nullptr, tmp, "nvme", 1, extra), base = Compile(3, nullptr, tmp, "base", 1);
  const TrainRun want = Train(base, "--steps 3", tmp, "base", 1), got = Train(plan, "--steps 3", tmp, "nvme", 1);
  ASSERT_EQ(want.loss.size(), 3u);
  EXPECT_EQ(got.loss, want.loss);
  EXPECT_EQ(got.last["memory"]["parameters"], 0);
  EXPECT_GT(got.last["memory"]["parameters_on_nvme"], 0);
}

// Parameters and optimizer states offloaded to different folders (one rank: no MPI job, so the
// sanitizer run keeps it): each folder gets its own swap file; the losses equal those without
// offload, a checkpoint reads both files and a resume writes both back (2 + 2 steps equal 4); a
// folder that cannot be made is named by the key that gave it.
TEST(NvmeSeparateFolders, ParametersAndOptimizerStatesEachInTheirFolder) {
  testing::TempDir tmp;
  auto extra = [&](const std::string& params, const std::string& states) {
    return json{{"zero_optimization",
                 {{"offload_param", {{"device", "nvme"}, {"nvme_path", params}, {"max_in_cpu", 0}, {"buffer_count", 2}}},
                  {"offload_optimizer", {{"device", "nvme"}, {"nvme_path", states}}}}}};
  };
  const std::string plan = Compile(3, nullptr, tmp, "nvme", 1, extra(tmp.File("params"), tmp.File("states")));
  const std::string base = Compile(3, nullptr, tmp, "base", 1);
  const TrainRun want = Train(base, "--steps 4", tmp, "base", 1), got = Train(plan, "--steps 4", tmp, "nvme", 1);
  ASSERT_EQ(want.loss.size(), 4u);
  EXPECT_EQ(got.loss, want.loss);
  EXPECT_EQ(got.last["memory"]["parameters"], 0);
  EXPECT_GT(got.last["memory"]["parameters_on_nvme"], 0);
  EXPECT_GT(got.last["memory"]["optimizer_states_on_nvme"], 0);
  const std::string ckpt = tmp.File("ckpt");
  Train(plan, "--steps 2 --save-dir " + ShellQuote(ckpt) + " --save-at-end", tmp, "first", 1);
  const TrainRun resumed = Train(plan, "--steps 4 --resume " + ShellQuote(ckpt), tmp, "resumed", 1);
  ASSERT_EQ(resumed.loss.size(), 2u);
  EXPECT_EQ(resumed.loss[0], want.loss[2]);
  EXPECT_EQ(resumed.loss[1], want.loss[3]);
  // A regular file where a folder should be made: each key is named for its own folder.
  const std::string blocker = tmp.File("file");
  std::ofstream(blocker) << "x";
  for (const auto& [params, states, key] :
       {std::tuple{blocker + "/p", tmp.File("states"), "zero_optimization.offload_param.nvme_path: cannot create"},
        std::tuple{tmp.File("params"), blocker + "/s", "zero_optimization.offload_optimizer.nvme_path: cannot create"}}) {
    const std::string bad = Compile(3, nullptr, tmp, "bad", 1, extra(params, states));
    CommandResult r = testing::RunCommand(ShellQuote(DSRUN_PATH) + " " + ShellQuote(bad) + " --data " +
                                          ShellQuote((kRoot / "models/gpt/data").string()) + " --steps 1 -q");
    EXPECT_NE(r.rc, 0);
    EXPECT_NE(r.output.find(key), std::string::npos) << r.output;
  }
}

}  // namespace
}  // namespace dsc
