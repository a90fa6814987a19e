// Mixed precision end to end (issue 10): fp16 and bf16 runs of the bundled models at ZeRO stages
// 0-3 on 1, 2 and 4 ranks stay near the fp32 trajectory without overflow and give the one-rank
// half-precision trajectory; the bf16 gpt follows PyTorch's bf16 training
// (models/gpt/reference/mixed_precision/bf16.json, models/reference_mixed_precision.py); the
// example configs configs/zero1_fp16.json, zero2_bf16.json and amp_o2.json train the gpt.
//
// The ZeRO runs use models/zero_configs/stage<S>_w<W>.json (train_batch_size 24, micro-batches
// of 2, clipping 0.5, Adam with weight decay) plus an fp16 or bf16 section, so every world size
// sees the same micro-batches and only the rounding of the half gradient sums differs.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "tests/e2e/e2e_util.h"
#include "tests/testutil/test_util.h"

namespace dsc {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using testing::CommandResult;
using testing::ShellQuote;

constexpr size_t kSteps = 30;
// Issue 10's bounds: a half run against the fp32 run of the same config; any stage and world size
// against stage 0 on one rank in the same dtype; the bf16 gpt against PyTorch's bf16 training.
constexpr double kVsFp32 = 3e-2;
// Stage 0's exception to kVsFp32: DeepSpeed's wrapper calls optimizer.step() once before training
// there (WrapperCallsBeforeTraining), which fp32 has no wrapper to make; that alone moves the
// trajectories 0.8e-2 (gpt) to 2.6e-2 (cnn) from the ZeRO stages'. Stage 0's own numbers are held to
// PyTorch with that call (Bf16Gpt) and to its formula (overflow_test ExpectConstructorCall).
constexpr double kStage0VsFp32 = 5e-2;
constexpr double kVsOneRank = 1e-3;
constexpr double kVsPyTorch = 1e-2;
constexpr double kFirstLossVsPyTorch = 2e-6;
// The cnn's exception to kVsOneRank. Its max pools and ReLUs turn small weight differences into
// different selections, and half gradient sums round differently when they are grouped by rank:
// on one rank its trajectory already moves 1.1e-3 (bf16) and 2.3e-3 (fp16) when the accumulators
// are fp32 instead of half, and 1.9e-3 / 2.2e-3 between world sizes. With fp32 accumulators and
// communication it is world-invariant (FullPrecisionGradients below).
constexpr double kCnnVsOneRank = 5e-3;
// The same invariant as zero_test.cc: only the fp32 summation order differs.
constexpr double kFp32GradsVsOneRank = 1e-4;
// fp16 dynamic scaling starts at 2**12 here. DeepSpeed's default 2**16 overflows once for the cnn
// on 4 ranks at stage 0 (step 23): each rank seeds its backward with scale / (12 / world) and the
// fp16 all-reduce sums the ranks before averaging, as DeepSpeed's does. With loss_scale_window
// 1000 and no overflow the scale stays 2**12 for all 30 steps. (The overflow rules have their own
// tests; the example config keeps DeepSpeed's defaults.)
constexpr int kFp16ScalePower = 12;
constexpr double kFp16Scale = 4096.0;

const fs::path& Root() {
  static const fs::path root = DSC_SOURCE_DIR;
  return root;
}

struct TrainRun {
  std::vector<double> loss, grad_norm, loss_scale;
  std::vector<bool> skipped;
  json summary;  // dsinspect --json of the plan
};

// Compiles `model` with `config` for `world` ranks, trains `steps` steps without shuffling on
// `world` MPI ranks, and returns the per-step metrics (empty, with a test failure, on an error).
TrainRun CompileAndTrain(const std::string& model, const json& config, int world, size_t steps,
                         const testing::TempDir& tmp) {
  const std::string cfg = tmp.File("config.json"), plan = tmp.File(model + ".dsplan"),
                    metrics = tmp.File(model + ".jsonl");
  testing::WriteFileOrDie(cfg, config.dump(1));
  TrainRun run;
  CommandResult c = testing::RunCommand(ShellQuote(DSCOMPILE_PATH) + " " +
                                        ShellQuote((Root() / "models" / model / (model + ".onnx")).string()) +
                                        " --config " + ShellQuote(cfg) + " --world-size " + std::to_string(world) +
                                        " -q -o " + ShellQuote(plan));
  EXPECT_EQ(c.rc, 0) << config.dump() << "\n" << c.output;
  if (c.rc != 0) return run;
  CommandResult j = testing::RunCommand(ShellQuote(DSINSPECT_PATH) + " --json " + ShellQuote(plan), false);
  EXPECT_EQ(j.rc, 0) << j.output;
  if (j.rc == 0) run.summary = json::parse(j.output);
  CommandResult r = testing::RunCommand(ShellQuote(DSRUN_PATH) + " " + ShellQuote(plan) + " --nproc " +
                                        std::to_string(world) + " --data " +
                                        ShellQuote((Root() / "models" / model / "data").string()) + " --steps " +
                                        std::to_string(steps) + " --no-shuffle -q --threads 1 --metrics " +
                                        ShellQuote(metrics));
  EXPECT_EQ(r.rc, 0) << config.dump() << "\n" << r.output;
  if (r.rc != 0) return run;
  std::ifstream in(metrics);
  // JSON has no inf or NaN: dsrun writes them as null.
  auto number = [](const json& v) { return v.is_number() ? v.get<double>() : std::nan(""); };
  for (std::string line; std::getline(in, line);) {
    const json m = json::parse(line);
    run.loss.push_back(number(m.at("loss")));
    run.grad_norm.push_back(number(m.at("grad_norm")));
    run.loss_scale.push_back(number(m.at("loss_scale")));
    run.skipped.push_back(m.at("skipped").get<bool>());
  }
  EXPECT_EQ(run.loss.size(), steps) << config.dump();
  return run;
}

json ZeroConfig(int stage, int world) {
  return e2e::ReadJson(Root() / "models" / "zero_configs" /
                       ("stage" + std::to_string(stage) + "_w" + std::to_string(world) + ".json"));
}

// DeepSpeed's sections for a half model: fp16 with dynamic loss scaling (DeepSpeed's defaults but
// the initial scale), or bf16 (no scale, steps with inf/NaN gradients skipped).
json WithHalf(json config, const std::string& dtype) {
  if (dtype == "fp16") {
    config["fp16"] = {{"enabled", true}, {"loss_scale", 0}, {"initial_scale_power", kFp16ScalePower}};
  } else {
    config["bf16"] = {{"enabled", true}};
  }
  return config;
}

std::string HalfDTypeName(const std::string& dtype) { return dtype == "fp16" ? "float16" : "bfloat16"; }

double Rel(double got, double want) { return std::fabs(got - want) / std::max(std::fabs(want), 1e-12); }

// The largest per-step relative difference and its 1-based step; the first NaN (a NaN loss) wins.
std::pair<double, size_t> MaxRel(const std::vector<double>& got, const std::vector<double>& want) {
  std::pair<double, size_t> worst{0.0, 0};
  for (size_t i = 0; i < std::min(got.size(), want.size()); ++i) {
    const double rel = Rel(got[i], want[i]);
    if (std::isnan(rel)) return {rel, i + 1};
    if (rel > worst.first) worst = {rel, i + 1};
  }
  return worst;
}

std::string Losses(const std::vector<double>& v) {
  std::string s;
  for (size_t i = 0; i < v.size(); ++i) {
    if (i) s += ' ';
    s += std::to_string(v[i]);
  }
  return s;
}

// The plan keeps half parameters and an fp32 master copy of each (the optimizer's state).
void ExpectHalfModel(const json& summary, const std::string& half, const std::string& what) {
  ASSERT_TRUE(summary.contains("state")) << what;
  int params = 0, masters = 0;
  for (const json& s : summary["state"]) {
    const std::string kind = s.at("kind").get<std::string>();
    if (kind == "parameter") {
      ++params;
      EXPECT_EQ(s.at("dtype").get<std::string>(), half) << what << ": " << s.at("name");
    } else if (kind == "master") {
      ++masters;
      EXPECT_EQ(s.at("dtype").get<std::string>(), "float") << what << ": " << s.at("name");
    }
  }
  EXPECT_GT(params, 0) << what;
  EXPECT_EQ(masters, params) << what << ": one fp32 master per half parameter";
}

// No overflow: no step skipped, and the loss scale is DeepSpeed's constant for the run (fp16's
// initial dynamic scale, which only changes after an overflow or 1000 clean steps; 1 for bf16).
void ExpectNoOverflow(const TrainRun& run, double scale, const std::string& what) {
  for (size_t i = 0; i < run.skipped.size(); ++i) {
    EXPECT_FALSE(run.skipped[i]) << what << ": step " << i + 1 << " overflowed (loss scale " << run.loss_scale[i]
                                 << ")";
    EXPECT_EQ(run.loss_scale[i], scale) << what << ": step " << i + 1;
  }
}

struct Case {
  std::string model, dtype;
};
void PrintTo(const Case& c, std::ostream* os) { *os << c.model << " " << c.dtype; }

class HalfPrecisionZero : public ::testing::TestWithParam<Case> {};

// (a) every stage and world size stays within 3e-2 of fp32 with no overflow; (b) and within 1e-3
// (the cnn: 5e-3) of the half-precision trajectory of the same regime on one rank: stage 0's, whose
// DeepSpeed wrapper calls optimizer.step() once before training (WrapperCallsBeforeTraining: its
// trajectory is about 1e-2 from the others'), or stage 1's for the ZeRO stages, which make no such
// call; (c) and the two regimes do differ by that call.
TEST_P(HalfPrecisionZero, NearFp32AndSameAsOneRank) {
  const Case& c = GetParam();
  const std::string what0 = c.model + " " + c.dtype;
  testing::TempDir fp32_dir;
  const TrainRun fp32 = CompileAndTrain(c.model, ZeroConfig(0, 1), 1, kSteps, fp32_dir);
  ASSERT_EQ(fp32.loss.size(), kSteps) << what0 << " fp32";
  std::vector<double> one_rank, stage0_one_rank;
  for (int stage : {0, 1, 2, 3}) {
    for (int world : {1, 2, 4}) {
      const std::string what = what0 + " stage " + std::to_string(stage) + " world " + std::to_string(world);
      testing::TempDir tmp;
      const TrainRun run = CompileAndTrain(c.model, WithHalf(ZeroConfig(stage, world), c.dtype), world, kSteps, tmp);
      if (run.loss.size() != kSteps) continue;  // reported by CompileAndTrain; the other runs still say something
      ExpectHalfModel(run.summary, HalfDTypeName(c.dtype), what);
      ExpectNoOverflow(run, c.dtype == "fp16" ? kFp16Scale : 1.0, what);
      if (world == 1 && stage <= 1) {
        one_rank = run.loss;
        if (stage == 0) {
          stage0_one_rank = run.loss;
        } else if (!stage0_one_rank.empty()) {
          const double apart = MaxRel(run.loss, stage0_one_rank).first;
          std::cout << "[mixed-precision] " << what << ": max rel vs stage 0 (the constructor call) " << apart << "\n";
          EXPECT_GT(apart, 2 * (c.model == "cnn" ? kCnnVsOneRank : kVsOneRank))
              << what << ": stage 0's constructor call made no difference";
        }
      }
      if (one_rank.empty()) continue;
      const auto [vs_fp32, at_fp32] = MaxRel(run.loss, fp32.loss);
      const auto [vs_one, at_one] = MaxRel(run.loss, one_rank);
      // The measured figures, for the record (ctest -V shows them).
      std::cout << "[mixed-precision] " << what << ": max rel vs fp32 " << vs_fp32 << " (step " << at_fp32
                << "), vs one rank " << vs_one << " (step " << at_one << ")\n";
      EXPECT_LE(vs_fp32, stage == 0 ? kStage0VsFp32 : kVsFp32) << what << " at step " << at_fp32 << "\n half: " << Losses(run.loss)
                                  << "\n fp32: " << Losses(fp32.loss);
      const double one_rank_bound = c.model == "cnn" ? kCnnVsOneRank : kVsOneRank;
      EXPECT_LE(vs_one, one_rank_bound) << what << " at step " << at_one << "\n this: " << Losses(run.loss)
                                        << "\n one rank: " << Losses(one_rank);
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Models, HalfPrecisionZero,
                         ::testing::Values(Case{"mlp", "bf16"}, Case{"mlp", "fp16"}, Case{"cnn", "bf16"},
                                           Case{"cnn", "fp16"}, Case{"gpt", "bf16"}, Case{"gpt", "fp16"}),
                         [](const ::testing::TestParamInfo<Case>& info) {
                           return info.param.model + "_" + info.param.dtype;
                         });

// (b) without half rounding in the gradient sums: bf16 models with fp32 gradient accumulators and
// fp32 communication (DeepSpeed's data_types.grad_accum_dtype and communication_data_type; stage 1
// is its BF16_Optimizer, stages 2-3 its ZeRO optimizer) give the one-rank trajectory at every stage
// and world size within the fp32 bound: the sharded half parameters, fp32 masters and their
// gathers add no error of their own.
class FullPrecisionGradients : public ::testing::TestWithParam<std::string> {};

TEST_P(FullPrecisionGradients, Bf16SameAsOneRank) {
  const std::string model = GetParam();
  std::vector<double> one_rank;
  for (int stage : {1, 2, 3}) {
    for (int world : {1, 2, 4}) {
      const std::string what = model + " bf16, fp32 gradients, stage " + std::to_string(stage) + " world " +
                               std::to_string(world);
      json config = WithHalf(ZeroConfig(stage, world), "bf16");
      config["data_types"] = {{"grad_accum_dtype", "fp32"}};
      config["communication_data_type"] = "fp32";
      testing::TempDir tmp;
      const TrainRun run = CompileAndTrain(model, config, world, kSteps, tmp);
      if (run.loss.size() != kSteps) continue;
      ExpectHalfModel(run.summary, "bfloat16", what);
      ExpectNoOverflow(run, 1.0, what);
      if (stage == 1 && world == 1) one_rank = run.loss;
      if (one_rank.empty()) continue;
      const auto [vs_one, at_one] = MaxRel(run.loss, one_rank);
      std::cout << "[mixed-precision] " << what << ": max rel vs one rank " << vs_one << " (step " << at_one << ")\n";
      EXPECT_LE(vs_one, kFp32GradsVsOneRank) << what << " at step " << at_one << "\n this: " << Losses(run.loss)
                                             << "\n one rank: " << Losses(one_rank);
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Models, FullPrecisionGradients, ::testing::Values("mlp", "cnn", "gpt"),
                         [](const ::testing::TestParamInfo<std::string>& info) { return info.param; });

// (c) The bf16 gpt follows PyTorch's bf16 training of the same graph (bf16 model and gradient
// accumulation, loss in fp32, fp32 master weights and AdamW, the same batches) within 1e-2 per
// step, on one rank at ZeRO 0 and with ZeRO-2 on two. Training is forgiving (PyTorch's fp32
// trajectory is within 2e-4 of its bf16 one), the first loss is not: it is the bf16 forward of the
// initial weights rounded to bf16, 1.05e-5 away from the fp32 forward, and must match within 2e-6.
// At ZeRO 0 DeepSpeed's wrapper calls optimizer.step() once on zero gradients before training
// (passes/precision_policy.h WrapperCallsBeforeTraining): bf16.json has that call, bf16_zero2.json
// (ZeRO 2) has not, and the ZeRO 0 run must follow the first far more closely than the second.
TEST(Bf16Gpt, MatchesPyTorchBf16Training) {
  const fs::path refs = Root() / "models" / "gpt" / "reference" / "mixed_precision";
  const json ref = e2e::ReadJson(refs / "bf16.json");
  const json ref_zero2 = e2e::ReadJson(refs / "bf16_zero2.json");
  // PyTorch's reference runs the gpt's decomposed attention, rounding scores and probabilities to
  // bf16 at every link; one recognized Attention rounds once (first loss 1.2e-5 off, not 2e-6), so
  // this comparison keeps the chain.
  json config = ref.at("config");
  config["dscompile"] = {{"recognize_attention", false}};
  json zero2 = config;
  zero2["zero_optimization"] = {{"stage", 2}};
  zero2.erase("gradient_accumulation_steps");  // train_batch_size 16 = 4 per micro-batch x 2 x 2 ranks
  struct Setup {
    json config;
    int world;
    const json* ref;
    const json* other;  // the reference of the other regime (with or without the constructor call)
  };
  for (const Setup& s : {Setup{config, 1, &ref, &ref_zero2}, Setup{zero2, 2, &ref_zero2, &ref}}) {
    const std::string what = "gpt bf16 world " + std::to_string(s.world);
    const auto want_loss = s.ref->at("loss").get<std::vector<double>>();
    const auto want_norm = s.ref->at("grad_norm").get<std::vector<double>>();
    const auto other_loss = s.other->at("loss").get<std::vector<double>>();
    ASSERT_EQ(want_loss.size(), kSteps);
    testing::TempDir tmp;
    const TrainRun run = CompileAndTrain("gpt", s.config, s.world, kSteps, tmp);
    ASSERT_EQ(run.loss.size(), kSteps) << what;
    ExpectHalfModel(run.summary, "bfloat16", what);
    ExpectNoOverflow(run, 1.0, what);
    EXPECT_LE(Rel(run.loss[0], want_loss[0]), kFirstLossVsPyTorch)
        << what << ": first loss " << run.loss[0] << ", PyTorch bf16 " << want_loss[0];
    const auto [dl, at_l] = MaxRel(run.loss, want_loss);
    const auto [dn, at_n] = MaxRel(run.grad_norm, want_norm);
    // The first steps, where bf16 noise is still small and the constructor call's bias-correction
    // shift is largest.
    const std::vector<double> head(run.loss.begin(), run.loss.begin() + 6);
    const double near = MaxRel(head, std::vector<double>(want_loss.begin(), want_loss.begin() + 6)).first;
    const double far = MaxRel(head, std::vector<double>(other_loss.begin(), other_loss.begin() + 6)).first;
    std::cout << "[mixed-precision] " << what << " vs PyTorch bf16: first loss rel " << Rel(run.loss[0], want_loss[0])
              << ", max rel loss " << dl << " (step " << at_l << "), grad_norm " << dn << " (step " << at_n
              << "); steps 1-6: " << near << " from its regime's reference, " << far << " from the other\n";
    EXPECT_LE(dl, kVsPyTorch) << what << " loss at step " << at_l << "\n dscompile: " << Losses(run.loss)
                              << "\n PyTorch:   " << Losses(want_loss);
    EXPECT_LE(dn, kVsPyTorch) << what << " grad_norm at step " << at_n << "\n dscompile: " << Losses(run.grad_norm)
                              << "\n PyTorch:   " << Losses(want_norm);
    EXPECT_LT(3 * near, far) << what << ": as close to the reference " << (s.world == 1 ? "without" : "with")
                             << " DeepSpeed's constructor call";
  }
}

// (c') Other optimizers through the same two regimes (bf16_optimizers.json, 10 steps each): at
// ZeRO 0 the wrapper's constructor call runs through each optimizer's own update on zero
// gradients, which moves SGD's momentum buffer and L2 decay, Adam's L2 moments and step count,
// Adagrad's lr_decay and sums, Lamb's step count and Lion's decoupled decay. Each ZeRO-0 run follows
// its PyTorch reference with that call, and ZeRO 2's the one without, each far closer to its own.
class Bf16Optimizers : public ::testing::TestWithParam<std::string> {};

TEST_P(Bf16Optimizers, FollowTheirRegimesReference) {
  const json all = e2e::ReadJson(Root() / "models" / "gpt" / "reference" / "mixed_precision" / "bf16_optimizers.json");
  const json& v = all.at("variants").at(GetParam());
  const size_t steps = all.at("steps").get<size_t>();
  for (const char* regime : {"zero0", "zero2"}) {
    const bool zero0 = std::string(regime) == "zero0";
    const std::string what = GetParam() + " bf16 " + regime;
    const auto want = v.at(regime).at("loss").get<std::vector<double>>();
    const auto other = v.at(zero0 ? "zero2" : "zero0").at("loss").get<std::vector<double>>();
    json config = v.at(regime).at("config");
    config["dscompile"] = {{"recognize_attention", false}};  // as PyTorch's decomposed attention (Bf16Gpt)
    testing::TempDir tmp;
    const TrainRun run = CompileAndTrain("gpt", config, 1, steps, tmp);
    ASSERT_EQ(run.loss.size(), steps) << what;
    const auto [near, at] = MaxRel(run.loss, want);
    const double far = MaxRel(run.loss, other).first;
    std::cout << "[mixed-precision] " << what << ": max rel loss " << near << " (step " << at << ") from its regime's "
              << "reference, " << far << " from the other\n";
    EXPECT_LE(near, kVsPyTorch) << what << "\n dscompile: " << Losses(run.loss) << "\n PyTorch:   " << Losses(want);
    // Lamb and Lion's decays move the loss least: 4.4x and 5.9x apart here; without the call (or
    // with it at ZeRO 2) the ratio falls below 1.
    EXPECT_LT(2 * near, far) << what << ": as close to the reference " << (zero0 ? "without" : "with")
                             << " DeepSpeed's constructor call";
  }
}

INSTANTIATE_TEST_SUITE_P(Variants, Bf16Optimizers, ::testing::Values("sgd", "adam_l2", "adagrad", "lamb", "lion"),
                         [](const ::testing::TestParamInfo<std::string>& info) { return info.param; });

// (d) The example configs compile for two ranks and train the gpt as the README shows: a half
// model, finite losses, the loss well down after 60 steps.
class ExampleConfig : public ::testing::TestWithParam<std::string> {};

TEST_P(ExampleConfig, TrainsTheGpt) {
  const std::string name = GetParam();
  constexpr size_t kExampleSteps = 60;
  testing::TempDir tmp;
  // The examples carry // comments; dscompile reads them, nlohmann::json does with ignore_comments.
  std::ifstream in(Root() / "configs" / (name + ".json"));
  const json config = json::parse(in, nullptr, true, /*ignore_comments=*/true);
  const TrainRun run = CompileAndTrain("gpt", config, 2, kExampleSteps, tmp);
  ASSERT_EQ(run.loss.size(), kExampleSteps) << name;
  ExpectHalfModel(run.summary, name == "zero2_bf16" ? "bfloat16" : "float16", name);
  size_t skipped = 0;
  for (size_t i = 0; i < run.loss.size(); ++i) {
    EXPECT_TRUE(std::isfinite(run.loss[i])) << name << " step " << i + 1;
    skipped += run.skipped[i];
  }
  double last = 0;
  for (size_t i = kExampleSteps - 5; i < kExampleSteps; ++i) last += run.loss[i] / 5;
  std::cout << "[mixed-precision] " << name << ": loss " << run.loss.front() << " -> " << last
            << " (mean of the last 5 of " << kExampleSteps << " steps), " << skipped << " skipped, final scale "
            << run.loss_scale.back() << "\n";
  EXPECT_LT(last, 0.8 * run.loss.front()) << name << ": " << Losses(run.loss);
  // fp16 may skip the first steps while the dynamic scale settles; it must not keep skipping.
  EXPECT_LE(skipped, 4u) << name;
}

INSTANTIATE_TEST_SUITE_P(Configs, ExampleConfig, ::testing::Values("zero1_fp16", "zero2_bf16", "amp_o2"),
                         [](const ::testing::TestParamInfo<std::string>& info) { return info.param; });

// (e) DeepSpeed itself (models/deepspeed_trajectory.py: its engine, wrappers and ZeRO stages on the
// CPU accelerator, loss in fp32) trained the gpt at every ZeRO stage with the Adam reference
// config, with AdamW under accumulation, clipping and WarmupDecayLR, and with the bf16 reference
// config, on one rank, and on two ranks at ZeRO 1-3 (gloo; dsrun's split of each step's batch),
// there also with gradient_allreduce_op "sum" at ZeRO 0-2 (the gradients summed over the ranks).
// dscompile, on as many ranks, follows each run: fp32 as closely as
// PyTorch's own reference does (DeepSpeed is within 3.1e-7 of it), bf16 within 5e-4 per step, where
// the forwards round differently (dscompile's ONNX ops, PyTorch's fused ones; DeepSpeed's ZeRO-3
// linear) and DeepSpeed's ZeRO 0 and ZeRO 1-3 runs are 2e-3 apart by its wrapper's constructor step.
class DeepSpeedItself : public ::testing::TestWithParam<std::string> {};

TEST_P(DeepSpeedItself, TrainsTheGptAsDscompileDoes) {
  const json ds = e2e::ReadJson(Root() / "models" / "gpt" / "reference" / "deepspeed" / (GetParam() + ".json"));
  const bool bf16 = ds.at("config").contains("bf16");
  const double loss_tol = bf16 ? 5e-4 : 1e-5, norm_tol = bf16 ? 1e-3 : 1e-5;
  const auto want = ds.at("loss").get<std::vector<double>>();
  testing::TempDir tmp;
  const int world = ds.at("world_size").get<int>();
  const TrainRun run = CompileAndTrain("gpt", ds.at("config"), world, want.size(), tmp);
  ASSERT_EQ(run.loss.size(), want.size());
  const auto [dl, at_l] = MaxRel(run.loss, want);
  double dn = 0;
  size_t at_n = 0, norms = 0;
  for (size_t i = 0; i < want.size(); ++i) {
    if (ds.at("grad_norm")[i].is_null()) continue;  // DeepSpeed keeps none for a bare fp32 optimizer
    ++norms;
    const double r = Rel(run.grad_norm[i], ds.at("grad_norm")[i].get<double>());
    if (r > dn) dn = r, at_n = i + 1;
  }
  std::cout << "[deepspeed] gpt " << GetParam() << " (" << ds.at("optimizer_wrapper").get<std::string>()
            << "): max rel loss " << dl << " (step " << at_l << "), grad_norm " << dn << " over " << norms
            << " steps\n";
  EXPECT_LE(dl, loss_tol) << "step " << at_l << "\n dscompile: " << Losses(run.loss) << "\n DeepSpeed: " << Losses(want);
  EXPECT_LE(dn, norm_tol) << "grad_norm at step " << at_n;
}

INSTANTIATE_TEST_SUITE_P(Runs, DeepSpeedItself,
                         ::testing::Values("adam_zero0", "adam_zero1", "adam_zero2", "adam_zero3",
                                           "adamw_warmup_decay_zero0", "adamw_warmup_decay_zero1",
                                           "adamw_warmup_decay_zero2", "adamw_warmup_decay_zero3", "bf16_zero0",
                                           "bf16_zero1", "bf16_zero2", "bf16_zero3", "adamw_warmup_decay_zero1_world2",
                                           "adamw_warmup_decay_zero3_world2", "bf16_zero2_world2",
                                           "bf16_zero3_world2", "adamw_warmup_decay_sum_zero0_world2",
                                           "adamw_warmup_decay_sum_zero1_world2", "adamw_warmup_decay_sum_zero2_world2"),
                         [](const ::testing::TestParamInfo<std::string>& info) { return info.param; });

}  // namespace
}  // namespace dsc
