// dsrun --save-dir / --resume (issue 12): 30 steps uninterrupted equal 15 steps + save + new
// processes + resume + 15 steps bit for bit (every step's metrics line but its timings, and every
// state tensor of every rank after step 30), at every ZeRO stage on 1, 2 and 4 ranks, with
// gradient accumulation, shuffling across epoch boundaries, dropout, and fp16 dynamic loss scaling
// saved in the middle of a hysteresis window. A checkpoint saved at ZeRO-3 on 4 ranks resumes at
// stage 1 on 2 ranks and at stage 0 on 1 rank on the single-rank trajectory (1e-4 relative), and
// bad resumes fail with messages that say why.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "ir/status.h"
#include "runtime/checkpoint_format.h"
#include "runtime/npy.h"
#include "tests/testutil/test_util.h"

namespace dsc {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;
using testing::CommandResult;
using testing::ShellQuote;

const fs::path kModels = fs::path(DSC_SOURCE_DIR) / "models";

json ReadJsonFile(const fs::path& p) {
  std::ifstream in(p);
  return json::parse(in);
}

std::string Compile(const testing::TempDir& tmp, const std::string& name, const fs::path& model, const json& cfg,
                    int world) {
  testing::WriteFileOrDie(tmp.File(name + ".json"), cfg.dump());
  const std::string plan = tmp.File(name + ".dsplan");
  CommandResult c = testing::RunCommand(ShellQuote(DSCOMPILE_PATH) + " " + ShellQuote(model.string()) + " --config " +
                                        ShellQuote(tmp.File(name + ".json")) + " --world-size " +
                                        std::to_string(world) + " -q -o " + ShellQuote(plan));
  EXPECT_EQ(c.rc, 0) << c.output;
  return plan;
}

struct DsrunResult {
  CommandResult result;
  std::vector<json> metrics;  // without the timing fields and the resident memory
};

DsrunResult Dsrun(const std::string& plan, int world, const fs::path& data, const std::string& args,
          const std::string& metrics) {
  DsrunResult run;
  run.result = testing::RunCommand(ShellQuote(DSRUN_PATH) + " " + ShellQuote(plan) + " --nproc " +
                                   std::to_string(world) + " --data " + ShellQuote(data.string()) +
                                   " -q --threads 1 --metrics " + ShellQuote(metrics) + " " + args);
  std::ifstream in(metrics);
  for (std::string line; std::getline(in, line);) {
    json m = json::parse(line);
    for (const char* timing : {"samples_per_s", "step_time_s", "elapsed_s", "peak_resident_bytes"}) m.erase(timing);
    run.metrics.push_back(std::move(m));
  }
  return run;
}

std::string ReadBytes(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

// Every dumped state file of every rank is byte-identical in the two dump folders.
void ExpectSameState(const fs::path& a, const fs::path& b, const std::string& what) {
  int files = 0;
  for (const auto& e : fs::recursive_directory_iterator(a)) {
    if (!e.is_regular_file()) continue;
    const fs::path rel = fs::relative(e.path(), a);
    ASSERT_TRUE(fs::exists(b / rel)) << what << ": " << rel << " missing after the resume";
    EXPECT_EQ(ReadBytes(e.path()), ReadBytes(b / rel)) << what << ": " << rel << " differs";
    ++files;
  }
  EXPECT_GT(files, 0) << what;
}

// 30 steps in one run vs 15 + save + resume + 15, compared bit for bit. `args` go to every run.
void ExpectExactResume(const std::string& plan, int world, const fs::path& data, const std::string& args,
                       const testing::TempDir& tmp, const std::string& what) {
  const std::string whole = tmp.File(what + "-whole"), resumed = tmp.File(what + "-resumed");
  const std::string ckpt = tmp.File(what + "-ckpt");
  DsrunResult a = Dsrun(plan, world, data, "--steps 30 --debug-dump-state " + ShellQuote(whole) + " --debug-dump-steps 30 " + args,
                tmp.File(what + "-a.jsonl"));
  ASSERT_EQ(a.result.rc, 0) << what << "\n" << a.result.output;
  DsrunResult b = Dsrun(plan, world, data, "--steps 15 --save-dir " + ShellQuote(ckpt) + " --save-at-end " + args,
                tmp.File(what + "-b.jsonl"));
  ASSERT_EQ(b.result.rc, 0) << what << "\n" << b.result.output;
  ASSERT_TRUE(fs::exists(fs::path(ckpt) / "global_step15" / "manifest.json")) << what;
  EXPECT_EQ(ReadBytes(fs::path(ckpt) / "latest"), "global_step15") << what;
  DsrunResult c = Dsrun(plan, world, data,
                "--steps 30 --resume " + ShellQuote(ckpt) + " --debug-dump-state " + ShellQuote(resumed) +
                    " --debug-dump-steps 30 " + args,
                tmp.File(what + "-c.jsonl"));
  ASSERT_EQ(c.result.rc, 0) << what << "\n" << c.result.output;
  ASSERT_EQ(a.metrics.size(), 30u) << what;
  ASSERT_EQ(b.metrics.size(), 15u) << what;
  ASSERT_EQ(c.metrics.size(), 15u) << what;
  for (size_t i = 0; i < 30; ++i) {
    const json& got = i < 15 ? b.metrics[i] : c.metrics[i - 15];
    EXPECT_EQ(got, a.metrics[i]) << what << ": step " << i + 1;
  }
  ExpectSameState(fs::path(whole) / "step-000030", fs::path(resumed) / "step-000030", what);
}

struct Layout {
  int stage, world;
};

class ExactResume : public ::testing::TestWithParam<Layout> {};

// The mlp with gradient accumulation (24 = 2 x GAS x world), clipping and weight decay, shuffled:
// 256 samples make 10 steps an epoch, so the resume at 15 sits in the middle of epoch 1.
TEST_P(ExactResume, ThirtyStepsEqualFifteenSavedPlusFifteenResumed) {
  const Layout l = GetParam();
  testing::TempDir tmp;
  const json cfg = ReadJsonFile(kModels / "zero_configs" /
                                         StrCat("stage", l.stage, "_w", l.world, ".json"));
  const std::string plan = Compile(tmp, "mlp", kModels / "mlp" / "mlp.onnx", cfg, l.world);
  ExpectExactResume(plan, l.world, kModels / "mlp" / "data", "", tmp, StrCat("stage", l.stage, "_w", l.world));
}

INSTANTIATE_TEST_SUITE_P(StagesAndRanks, ExactResume,
                         ::testing::Values(Layout{0, 1}, Layout{1, 1}, Layout{2, 1}, Layout{3, 1}, Layout{0, 2},
                                           Layout{1, 2}, Layout{2, 2}, Layout{3, 2}, Layout{0, 4}, Layout{1, 4},
                                           Layout{2, 4}, Layout{3, 4}),
                         [](const auto& info) { return StrCat("stage", info.param.stage, "_w", info.param.world); });

// Dropout masks are keyed by (seed, step, sample): a resume draws the masks the run would have.
TEST(ExactResumeWith, Dropout) {
  for (const Layout l : {Layout{0, 1}, Layout{2, 2}}) {
    testing::TempDir tmp;
    const json cfg = {{"train_batch_size", 16},
                      {"train_micro_batch_size_per_gpu", 4},
                      {"gradient_accumulation_steps", 4 / l.world},
                      {"optimizer", {{"type", "AdamW"}, {"params", {{"lr", 0.01}, {"weight_decay", 0.01}}}}},
                      {"zero_optimization", {{"stage", l.stage}}}};
    const std::string plan = Compile(tmp, "dropout", kModels / "dropout" / "dropout.onnx", cfg, l.world);
    ExpectExactResume(plan, l.world, kModels / "dropout" / "data", "", tmp, StrCat("dropout_w", l.world));
  }
}

// The element-wise optimizers' states are saved under torch's names and restored; what is not a
// state follows from the step the resume restores: NAdam's mu_product of a constant beta1
// (recomputed from step 1 by a fresh kernel) and Adagrad's initial_accumulator_value (applied at
// step 1 only).
TEST(ExactResumeWith, ElementwiseOptimizers) {
  for (const char* name : {"nadam_wd", "adagrad_wd", "rmsprop_wd"}) {
    testing::TempDir tmp;
    const json cfg = ReadJsonFile(kModels / "reference_configs" / (std::string(name) + ".json"));
    const std::string plan = Compile(tmp, name, kModels / "mlp" / "mlp.onnx", cfg, 1);
    ExpectExactResume(plan, 1, kModels / "mlp" / "data", "", tmp, name);
  }
}

// Under OneCycle's cycled momentum NAdam's mu_product (P::mu_product, a product over every step's
// beta1) is a state: saved at step 15, in the middle of the cycle, and restored, whole on every
// rank, with the moments whole and as ZeRO-3 chunks.
TEST(ExactResumeWith, NadamCycledMomentum) {
  for (const Layout l : {Layout{0, 1}, Layout{3, 2}}) {
    testing::TempDir tmp;
    json cfg = ReadJsonFile(kModels / "reference_configs" / "nadam_wd_onecycle.json");
    cfg["zero_optimization"] = {{"stage", l.stage}};
    cfg["zero_allow_untested_optimizer"] = true;
    const std::string plan = Compile(tmp, "nadam", kModels / "mlp" / "mlp.onnx", cfg, l.world);
    ExpectExactResume(plan, l.world, kModels / "mlp" / "data", "", tmp, StrCat("nadam_onecycle_w", l.world));
    // The checkpoint holds the product of 15 steps' mu (each about 0.6 to 0.95), not the initial 1.
    StatusOr<Checkpoint> ck = Checkpoint::Open(tmp.File(StrCat("nadam_onecycle_w", l.world, "-ckpt")) + "/global_step15");
    ASSERT_TRUE(ck.ok()) << ck.status().ToString();
    StatusOr<Tensor> mu = ck->ReadTensor("fc1.weight::mu_product");
    ASSERT_TRUE(mu.ok()) << mu.status().ToString();
    ASSERT_EQ(mu->numel(), 1);
    EXPECT_GT(mu->data<float>()[0], 0.0f);
    EXPECT_LT(mu->data<float>()[0], 0.05f);
  }
}

// Lamb's moments (P::exp_avg, P::exp_avg_sq, FusedLamb's state names) are saved and restored whole
// and as ZeRO-3 chunks; its trust ratios follow from them and the parameters.
TEST(ExactResumeWith, Lamb) {
  for (const Layout l : {Layout{0, 1}, Layout{3, 2}}) {
    testing::TempDir tmp;
    json cfg = ReadJsonFile(kModels / "reference_configs" / "lamb_wd.json");
    cfg["zero_optimization"] = {{"stage", l.stage}};
    cfg["zero_allow_untested_optimizer"] = true;
    const std::string plan = Compile(tmp, "lamb", kModels / "mlp" / "mlp.onnx", cfg, l.world);
    ExpectExactResume(plan, l.world, kModels / "mlp" / "data", "", tmp, StrCat("lamb_w", l.world));
  }
}

// Muon's momentum buffers (P::momentum_buffer) and the aux Adam's moments are saved and restored
// whole and as ZeRO-3 chunks (stage 3 without reduce_scatter, as DeepSpeed requires).
TEST(ExactResumeWith, Muon) {
  for (const Layout l : {Layout{0, 1}, Layout{3, 2}}) {
    testing::TempDir tmp;
    json cfg = ReadJsonFile(kModels / "reference_configs" / "muon_wd.json");
    cfg["zero_optimization"] = {{"stage", l.stage}, {"reduce_scatter", false}};
    const std::string plan = Compile(tmp, "muon", kModels / "mlp" / "mlp.onnx", cfg, l.world);
    ExpectExactResume(plan, l.world, kModels / "mlp" / "data", "", tmp, StrCat("muon_w", l.world));
  }
}

// BatchNorm's running statistics are buffers: saved, and restored, with the rest.
TEST(ExactResumeWith, BatchNormStatistics) {
  for (const Layout l : {Layout{0, 1}, Layout{3, 2}}) {
    testing::TempDir tmp;
    const json cfg = {{"train_batch_size", 16},
                      {"train_micro_batch_size_per_gpu", 4},
                      {"gradient_accumulation_steps", 4 / l.world},
                      {"optimizer", {{"type", "Adam"}, {"params", {{"lr", 0.002}}}}},
                      {"zero_optimization", {{"stage", l.stage}}}};
    const std::string plan = Compile(tmp, "cnn", kModels / "cnn" / "cnn.onnx", cfg, l.world);
    ExpectExactResume(plan, l.world, kModels / "cnn" / "data", "", tmp, StrCat("cnn_w", l.world));
  }
}

// fp16 with ZeRO's DynamicLossScaler, initial scale 4096, window 8, hysteresis 3: 8 clean steps
// double the scale after step 9; the overflow at 14 spends one chance of three before the save at
// 15, 17 the second, so 18 halves the scale only if the resume restored the hysteresis left (a
// fresh scaler would be back at 3 and keep 8192 for step 19).
TEST(ExactResumeWith, Fp16InTheMiddleOfAHysteresisWindow) {
  for (const Layout l : {Layout{1, 1}, Layout{2, 2}}) {
    testing::TempDir tmp;
    const json cfg = {{"train_batch_size", 24},
                      {"train_micro_batch_size_per_gpu", 4},
                      {"gradient_accumulation_steps", 6 / l.world},
                      {"optimizer", {{"type", "Adam"}, {"params", {{"lr", 0.002}}}}},
                      {"fp16", {{"enabled", true}, {"initial_scale_power", 12}, {"hysteresis", 3}, {"loss_scale_window", 8}}},
                      {"zero_optimization", {{"stage", l.stage}}}};
    const std::string plan = Compile(tmp, "fp16", kModels / "mlp" / "mlp.onnx", cfg, l.world);
    const std::string what = StrCat("fp16_w", l.world);
    ExpectExactResume(plan, l.world, kModels / "mlp" / "data", "--debug-inject-overflow 14,17,18", tmp, what);
    // The scales the metrics report follow DeepSpeed's rules across the resume.
    std::ifstream in(tmp.File(what + "-c.jsonl"));
    std::vector<double> scales;
    for (std::string line; std::getline(in, line);) scales.push_back(json::parse(line).at("loss_scale").get<double>());
    ASSERT_GE(scales.size(), 5u);
    EXPECT_EQ(scales[0], 8192.0) << "step 16";
    EXPECT_EQ(scales[2], 8192.0) << "step 18 runs at the scale before its overflow";
    EXPECT_EQ(scales[3], 4096.0) << "step 19: the third overflow within hysteresis 3 halved the scale";
  }
}

// Saved at ZeRO-3 on 4 ranks, resumed at stage 1 on 2 ranks and at stage 0 on 1 rank: the losses
// continue the single-rank run's within 1e-4 relative (the reductions sum in another order).
TEST(ResumeElsewhere, Zero3OnFourRanksContinuesAtStage1OnTwoAndStage0OnOne) {
  testing::TempDir tmp;
  const fs::path data = kModels / "mlp" / "data";
  auto plan_for = [&](int stage, int world) {
    return Compile(tmp, StrCat("s", stage, "w", world), kModels / "mlp" / "mlp.onnx",
                   ReadJsonFile(kModels / "zero_configs" / StrCat("stage", stage, "_w", world, ".json")), world);
  };
  const std::string ckpt = tmp.File("ckpt");
  DsrunResult ref = Dsrun(plan_for(0, 1), 1, data, "--steps 30", tmp.File("ref.jsonl"));
  ASSERT_EQ(ref.result.rc, 0) << ref.result.output;
  DsrunResult saved = Dsrun(plan_for(3, 4), 4, data, "--steps 15 --save-dir " + ShellQuote(ckpt) + " --save-at-end",
                    tmp.File("saved.jsonl"));
  ASSERT_EQ(saved.result.rc, 0) << saved.result.output;
  for (const Layout l : {Layout{1, 2}, Layout{0, 1}}) {
    const std::string what = StrCat("stage ", l.stage, " on ", l.world);
    DsrunResult r = Dsrun(plan_for(l.stage, l.world), l.world, data, "--steps 30 --resume " + ShellQuote(ckpt),
                  tmp.File(StrCat("r", l.stage, ".jsonl")));
    ASSERT_EQ(r.result.rc, 0) << what << "\n" << r.result.output;
    ASSERT_EQ(r.metrics.size(), 15u) << what;
    for (size_t i = 0; i < 15; ++i) {
      const double want = ref.metrics[15 + i].at("loss").get<double>(), got = r.metrics[i].at("loss").get<double>();
      EXPECT_LE(std::fabs(got - want), 1e-4 * std::fabs(want)) << what << ": step " << 16 + i;
      EXPECT_EQ(r.metrics[i].at("step").get<int>(), 16 + static_cast<int>(i)) << what;
    }
  }
}

// One checkpoint, other precisions: an fp16 run's fp32 masters become an fp32 run's parameters
// (not its fp16 copies), and an fp32 run's parameters become an fp16 run's masters and, rounded to
// nearest even, its fp16 parameters; Adam's moments carry over as they are.
TEST(ResumeElsewhere, AcrossPrecisions) {
  testing::TempDir tmp;
  const fs::path data = kModels / "mlp" / "data";
  json fp32 = ReadJsonFile(kModels / "zero_configs" / "stage2_w2.json");
  json fp16 = fp32;
  fp16["fp16"] = {{"enabled", true}, {"initial_scale_power", 12}};
  const std::string p16 = Compile(tmp, "p16", kModels / "mlp" / "mlp.onnx", fp16, 2);
  const std::string p32 = Compile(tmp, "p32", kModels / "mlp" / "mlp.onnx", fp32, 2);
  for (const auto& [from, to] : {std::pair{p16, p32}, std::pair{p32, p16}}) {
    const std::string ckpt = from + ".ckpt", dump = to + ".dump";
    DsrunResult saved = Dsrun(from, 2, data, "--steps 4 --save-dir " + ShellQuote(ckpt) + " --save-at-end",
                              tmp.File("s.jsonl"));
    ASSERT_EQ(saved.result.rc, 0) << saved.result.output;
    DsrunResult resumed = Dsrun(to, 2, data,
                                "--steps 6 --resume " + ShellQuote(ckpt) + " --debug-dump-state " + ShellQuote(dump) +
                                    " --debug-dump-steps 4",
                                tmp.File("r.jsonl"));
    ASSERT_EQ(resumed.result.rc, 0) << resumed.result.output;
    ASSERT_EQ(resumed.metrics.size(), 2u);
    StatusOr<Checkpoint> ck = Checkpoint::Open(ckpt + "/global_step4");
    ASSERT_TRUE(ck.ok()) << ck.status().ToString();
    const bool to_half = to == p16;
    for (const std::string name : {"fc1.weight", "fc3.bias"}) {
      StatusOr<Tensor> want = ck->ReadTensor(to_half ? name : name + "::master");
      ASSERT_TRUE(want.ok()) << want.status().ToString();
      for (int rank = 0; rank < 2; ++rank) {  // ZeRO-2: parameters whole on every rank
        const std::string dir = StrCat(dump, "/step-000004/rank-", rank, "/");
        StatusOr<Tensor> param = ReadNpy(dir + name + ".npy");
        ASSERT_TRUE(param.ok()) << param.status().ToString();
        ASSERT_EQ(param->numel(), want->numel());
        for (int64_t i = 0; i < want->numel(); ++i) {
          const float w = want->data<float>()[i];
          if (to_half) {
            EXPECT_EQ(param->data<uint16_t>()[i], FloatToHalf(w)) << name << "[" << i << "]";
          } else {
            EXPECT_EQ(param->data<float>()[i], w) << name << "[" << i << "]";
          }
        }
        if (to_half) {  // ZeRO-2 shards the masters: this rank's chunk of the whole
          StatusOr<Tensor> master = ReadNpy(dir + name + "::master.npy");
          ASSERT_TRUE(master.ok()) << master.status().ToString();
          const int64_t chunk = master->numel(), start = rank * chunk;
          for (int64_t i = 0; i < chunk && start + i < want->numel(); ++i)
            EXPECT_EQ(master->data<float>()[i], want->data<float>()[start + i]) << name << "::master[" << start + i << "]";
        }
      }
    }
  }
}

TEST(Resume, RefusesWhatWouldNotContinueTheRun) {
  testing::TempDir tmp;
  const fs::path data = kModels / "mlp" / "data";
  const json cfg = ReadJsonFile(kModels / "zero_configs" / "stage1_w2.json");
  const std::string plan = Compile(tmp, "mlp", kModels / "mlp" / "mlp.onnx", cfg, 2);
  const std::string ckpt = tmp.File("ckpt");
  DsrunResult saved = Dsrun(plan, 2, data, "--steps 4 --save-dir " + ShellQuote(ckpt) + " --save-every 2", tmp.File("s.jsonl"));
  ASSERT_EQ(saved.result.rc, 0) << saved.result.output;
  EXPECT_EQ(ReadBytes(fs::path(ckpt) / "latest"), "global_step4");
  auto resume = [&](const std::string& args) {
    return Dsrun(plan, 2, data, "--steps 6 " + args, tmp.File("r.jsonl")).result;
  };
  CommandResult seed = resume("--resume " + ShellQuote(ckpt) + " --seed 7");
  EXPECT_NE(seed.rc, 0);
  EXPECT_NE(seed.output.find("--seed 7 contradicts the checkpoint"), std::string::npos) << seed.output;
  CommandResult order = resume("--resume " + ShellQuote(ckpt) + " --no-shuffle");
  EXPECT_NE(order.rc, 0);
  EXPECT_NE(order.output.find("--no-shuffle contradicts"), std::string::npos) << order.output;
  CommandResult none = resume("--resume " + ShellQuote(tmp.File("nowhere")));
  EXPECT_NE(none.rc, 0);
  EXPECT_NE(none.output.find("nowhere"), std::string::npos) << none.output;
  // A flipped byte in a rank file: the resume names the file; an explicit older tag still loads.
  const fs::path shard = fs::path(ckpt) / "global_step4" / "rank-1.safetensors";
  std::string bytes = ReadBytes(shard);
  bytes[bytes.size() - 3] ^= 0x10;
  testing::WriteFileOrDie(shard.string(), bytes);
  CommandResult flipped = resume("--resume " + ShellQuote((fs::path(ckpt) / "global_step4").string()));
  EXPECT_NE(flipped.rc, 0);
  EXPECT_NE(flipped.output.find("rank-1.safetensors"), std::string::npos) << flipped.output;
  CommandResult older = resume("--resume " + ShellQuote((fs::path(ckpt) / "global_step2").string()));
  EXPECT_EQ(older.rc, 0) << older.output;
  // Another model's checkpoint.
  const json dcfg = {{"train_batch_size", 16},
                     {"train_micro_batch_size_per_gpu", 8},
                     {"optimizer", {{"type", "Adam"}, {"params", {{"lr", 0.01}}}}}};
  const std::string other = Compile(tmp, "dropout", kModels / "dropout" / "dropout.onnx", dcfg, 2);
  CommandResult model = testing::RunCommand(
      ShellQuote(DSRUN_PATH) + " " + ShellQuote(other) + " --nproc 2 --threads 1 -q --data " +
      ShellQuote((kModels / "dropout" / "data").string()) + " --steps 6 --resume " +
      ShellQuote((fs::path(ckpt) / "global_step2").string()));
  EXPECT_NE(model.rc, 0);
  EXPECT_NE(model.output.find("the checkpoint is of another model"), std::string::npos) << model.output;
  // Node-local storage is not supported: saying so beats writing checkpoints other nodes cannot read.
  json local = cfg;
  local["checkpoint"] = {{"use_node_local_storage", true}};
  const std::string local_plan = Compile(tmp, "local", kModels / "mlp" / "mlp.onnx", local, 2);
  CommandResult nl = Dsrun(local_plan, 2, data, "--steps 2 --save-dir " + ShellQuote(tmp.File("nl")) + " --save-at-end",
                           tmp.File("nl.jsonl")).result;
  EXPECT_NE(nl.rc, 0);
  EXPECT_NE(nl.output.find("use_node_local_storage"), std::string::npos) << nl.output;
}

// A plan's initial values are the step-0 checkpoint PLAN.weights next to it: without it, or with
// another compile's, dsrun refuses to start and says why.
TEST(PlanWeights, MissingOrForeignInitialValuesAreRefused) {
  testing::TempDir tmp;
  const fs::path data = kModels / "mlp" / "data";
  const json cfg = ReadJsonFile(kModels / "zero_configs" / "stage0_w1.json");
  const std::string a = Compile(tmp, "a", kModels / "mlp" / "mlp.onnx", cfg, 1);
  const std::string b = Compile(tmp, "b", kModels / "dropout" / "dropout.onnx", cfg, 1);
  ASSERT_TRUE(fs::exists(a + ".weights/global_step0/manifest.json"));
  fs::remove_all(a + ".weights");
  fs::rename(b + ".weights", a + ".weights");
  CommandResult foreign = Dsrun(a, 1, data, "--steps 1", tmp.File("f.jsonl")).result;
  EXPECT_NE(foreign.rc, 0);
  EXPECT_NE(foreign.output.find("are not the ones dscompile wrote with this plan"), std::string::npos) << foreign.output;
  fs::remove_all(a + ".weights");
  CommandResult missing = Dsrun(a, 1, data, "--steps 1", tmp.File("m.jsonl")).result;
  EXPECT_NE(missing.rc, 0);
  EXPECT_NE(missing.output.find("a.dsplan.weights/global_step0 cannot be read"), std::string::npos) << missing.output;
}

// When to save without where, or where without when, is a usage error before anything runs.
TEST(SaveFlags, NeedBothAFolderAndAMoment) {
  testing::TempDir tmp;
  const std::string plan = Compile(tmp, "mlp", kModels / "mlp" / "mlp.onnx",
                                   ReadJsonFile(kModels / "zero_configs" / "stage0_w1.json"), 1);
  const fs::path data = kModels / "mlp" / "data";
  for (const char* args : {"--save-every 2", "--save-at-end"}) {
    CommandResult r = Dsrun(plan, 1, data, StrCat("--steps 2 ", args), tmp.File("a.jsonl")).result;
    EXPECT_NE(r.rc, 0) << args;
    EXPECT_NE(r.output.find("--save-every and --save-at-end need --save-dir DIR"), std::string::npos) << r.output;
  }
  CommandResult r = Dsrun(plan, 1, data, "--steps 2 --save-dir " + ShellQuote(tmp.File("c")), tmp.File("b.jsonl")).result;
  EXPECT_NE(r.rc, 0);
  EXPECT_NE(r.output.find("--save-dir needs --save-every K or --save-at-end"), std::string::npos) << r.output;
  EXPECT_FALSE(fs::exists(tmp.File("c")));
}

// The bundled gpt's plan holds its programs and state table, not its weights.
TEST(PlanWeights, TheBundledGptPlanIsSmallerThanItsWeights) {
  testing::TempDir tmp;
  const std::string plan = Compile(tmp, "gpt", kModels / "gpt" / "gpt.onnx",
                                   ReadJsonFile(fs::path(DSC_SOURCE_DIR) / "configs" / "gpt.json"), 1);
  // The initial values' bytes, whether written into the weights folder or referred to in the model.
  auto ckpt = Checkpoint::Open(plan + ".weights/" + StepTag(0));
  ASSERT_TRUE(ckpt.ok()) << ckpt.status().ToString();
  int64_t weights = 0;
  for (const CheckpointTensor& t : ckpt->manifest().tensors) weights += t.numel * static_cast<int64_t>(DTypeSize(t.dtype));
  EXPECT_LT(static_cast<int64_t>(fs::file_size(plan)), weights);
}

}  // namespace
}  // namespace dsc
