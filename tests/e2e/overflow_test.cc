// Forced gradient overflows (dsrun --debug-inject-overflow) in fp16 and bf16 plans of the bundled
// mlp: at every ZeRO stage on 1, 2 and 4 ranks the metrics' loss_scale/skipped sequence follows
// DeepSpeed's rules for the same pattern (FP16_Optimizer at stage 0, DynamicLossScaler at stages
// 1-3: hysteresis, consecutive_hysteresis, window raises, the error at the minimum scale), the
// WarmupLR schedule and the optimizer's step counter do not advance on a skipped step, and a
// skipped step leaves parameters, master weights and optimizer states bitwise unchanged
// (dsrun --debug-dump-state). amp O1/O2 follow apex's scaler; bf16 skips without a scale.
//
// The expected scale sequences are worked out by hand below from DeepSpeed's update_scale code
// (config-reference.md §7.2-7.3), not from runtime/loss_scaler.cc. Overflows are injected on
// varying ranks, so every rank's verdict must come from the global norm.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <set>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "runtime/npy.h"
#include "tests/testutil/test_util.h"

namespace dsc {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using testing::CommandResult;
using testing::ShellQuote;

const fs::path kModel = fs::path(DSC_SOURCE_DIR) / "models" / "mlp";
constexpr double kMinLr = 0.0005, kMaxLr = 0.002;
constexpr int kWarmup = 20;

// train_batch_size 24 in micro-batches of 2 at every world size; AdamW with weight decay and
// clipping; a linear WarmupLR, so the LR of each step shows how many steps were applied before it.
json Config(int stage, int world, const json& precision) {
  json c = {{"train_batch_size", 24},
            {"train_micro_batch_size_per_gpu", 2},
            {"gradient_accumulation_steps", 12 / world},
            {"gradient_clipping", 0.5},
            {"optimizer", {{"type", "AdamW"}, {"params", {{"lr", kMaxLr}, {"weight_decay", 0.01}}}}},
            {"scheduler",
             {{"type", "WarmupLR"},
              {"params", {{"warmup_min_lr", kMinLr}, {"warmup_max_lr", kMaxLr}, {"warmup_num_steps", kWarmup},
                          {"warmup_type", "linear"}}}}},
            {"zero_optimization", {{"stage", stage}, {"stage3_param_persistence_threshold", 0}}}};
  c.update(precision);
  return c;
}

// DeepSpeed's WarmupLR (linear) at last_batch_iteration `it` (§9.1): min below 0, then
// min + (max - min) * it / W up to W = max(2, warmup_num_steps).
double WarmupLr(int64_t it) {
  if (it < 0) return kMinLr;
  if (it >= kWarmup) return kMaxLr;
  return kMinLr + (kMaxLr - kMinLr) * static_cast<double>(it) / kWarmup;
}

struct TrainRun {
  CommandResult result{-1, ""};
  std::vector<json> metrics;
};

// Compiles `cfg` for `world` ranks and trains `steps` steps with overflows injected at `inject`.
TrainRun CompileAndTrain(const json& cfg, int world, int steps, const std::string& inject, const testing::TempDir& tmp,
                    const std::string& extra = "") {
  TrainRun run;
  testing::WriteFileOrDie(tmp.File("ds.json"), cfg.dump());
  const std::string plan = tmp.File("mlp.dsplan"), metrics = tmp.File("metrics.jsonl");
  CommandResult c = testing::RunCommand(ShellQuote(DSCOMPILE_PATH) + " " + ShellQuote((kModel / "mlp.onnx").string()) +
                                        " --config " + ShellQuote(tmp.File("ds.json")) + " --world-size " +
                                        std::to_string(world) + " -q -o " + ShellQuote(plan));
  EXPECT_EQ(c.rc, 0) << c.output;
  if (c.rc != 0) return run;
  run.result = testing::RunCommand(ShellQuote(DSRUN_PATH) + " " + ShellQuote(plan) + " --nproc " + std::to_string(world) +
                                   " --data " + ShellQuote((kModel / "data").string()) + " --steps " +
                                   std::to_string(steps) + " --no-shuffle -q --threads 1 --metrics " +
                                   ShellQuote(metrics) + (inject.empty() ? "" : " --debug-inject-overflow " + inject) +
                                   extra);
  std::ifstream in(metrics);
  for (std::string line; std::getline(in, line);) run.metrics.push_back(json::parse(line));
  return run;
}

// "2@0,3@1,...": each overflow on a different rank in turn.
std::string InjectSpec(const std::vector<int>& steps, int world) {
  std::string spec;
  for (size_t i = 0; i < steps.size(); ++i)
    spec.append(i ? "," : "").append(std::to_string(steps[i])).append("@").append(std::to_string(static_cast<int>(i) % world));
  return spec;
}

// The metrics follow `scales` (the scale each step used), skip exactly the overflow steps, and
// take their LR from the count of applied steps.
// Under amp DeepSpeed steps the LR schedule on every step (`lr_counts_skipped`): its engine
// reads optimizer.overflow, which apex's patched torch optimizer does not have.
void ExpectSequence(const TrainRun& run, const std::vector<int>& overflow, const std::vector<double>& scales,
                    const std::string& what, bool lr_counts_skipped = false) {
  ASSERT_EQ(run.metrics.size(), scales.size()) << what << "\n" << run.result.output;
  const std::set<int> skip(overflow.begin(), overflow.end());
  int64_t applied = 0;
  for (size_t i = 0; i < scales.size(); ++i) {
    const json& m = run.metrics[i];
    const int step = static_cast<int>(i) + 1;
    const bool skipped = skip.count(step) > 0;
    EXPECT_EQ(m.at("loss_scale").get<double>(), scales[i]) << what << " step " << step;
    EXPECT_EQ(m.at("skipped").get<bool>(), skipped) << what << " step " << step;
    // An overflow step's norm is inf, which JSON cannot hold: null.
    EXPECT_EQ(m.at("grad_norm").is_null(), skipped) << what << " step " << step;
    EXPECT_TRUE(std::isfinite(m.at("loss").get<double>())) << what << " step " << step;
    const double lr = WarmupLr((lr_counts_skipped ? step - 1 : applied) - 1);
    EXPECT_NEAR(m.at("lr").get<double>(), lr, 1e-12 * lr) << what << " step " << step << " (" << applied
                                                         << " steps applied before it)";
    if (!skipped) ++applied;
    EXPECT_EQ(m.at("skipped_steps").get<int64_t>(), step - applied) << what << " step " << step;
  }
}

std::string ReadBytes(const fs::path& p) { return testing::ReadFileOrDie(p.string()); }

// Every state but the gradient accumulators is bitwise the same after a skipped step as before
// it, on every rank; an applied step does change the parameters (so the check can fail).
void ExpectSkippedStepsChangeNothing(const fs::path& dump, int world, int steps, const std::vector<int>& overflow,
                                     const std::string& what) {
  const std::set<int> skip(overflow.begin(), overflow.end());
  auto dir = [&](int step, int rank) {
    char sub[64];
    std::snprintf(sub, sizeof sub, "step-%06d/rank-%d", step, rank);
    return dump / sub;
  };
  for (int step = 1; step <= steps; ++step) {
    for (int rank = 0; rank < world; ++rank) {
      int compared = 0, changed = 0;
      ASSERT_TRUE(fs::is_directory(dir(step, rank))) << what << ": no dump " << dir(step, rank);
      for (const auto& e : fs::directory_iterator(dir(step - 1, rank))) {
        const std::string name = e.path().filename().string();
        if (name.find("::grad") != std::string::npos) continue;  // accumulators are zeroed by every step
        const bool same = ReadBytes(e.path()) == ReadBytes(dir(step, rank) / name);
        ++compared;
        changed += same ? 0 : 1;
        if (skip.count(step)) {
          EXPECT_TRUE(same) << what << ": skipped step " << step << " changed " << name << " on rank " << rank;
        }
      }
      EXPECT_GE(compared, 3) << what;
      if (!skip.count(step)) {
        EXPECT_GT(changed, 0) << what << ": applied step " << step << " changed nothing on rank " << rank;
      }
    }
  }
}

// The first update after skipped steps uses dsc::step = applied updates + 1, like torch Adam's
// state['step']: recompute it from the dumped states of fc1.weight (one rank: whole tensors).
// AdamW (dsc_ops.h AdamStep): p -= lr * ((m / bc1) / (sqrt(v / bc2) + eps) + wd * p).
void ExpectAdamStepCount(const fs::path& dump, int step, int64_t want_t, int64_t wrong_t, float lr, const std::string& what) {
  auto load = [&](int s, const std::string& name) {
    char sub[64];
    std::snprintf(sub, sizeof sub, "step-%06d/rank-0/", s);
    StatusOr<Tensor> t = ReadNpy((dump / sub).string() + name + ".npy");
    EXPECT_TRUE(t.ok()) << t.status().message();
    return t.ok() ? *t : Tensor();
  };
  // The fp32 master is what the optimizer updates in a half model.
  const std::string p = fs::exists(dump / "step-000000/rank-0/fc1.weight::master.npy") ? "fc1.weight::master" : "fc1.weight";
  const Tensor before = load(step - 1, p), after = load(step, p);
  const Tensor m = load(step, "fc1.weight::exp_avg"), v = load(step, "fc1.weight::exp_avg_sq");
  ASSERT_EQ(before.dtype(), DType::kFloat32) << p;
  ASSERT_EQ(before.numel(), m.numel());
  auto max_error = [&](int64_t t) {
    const double bc1 = 1 - std::pow(0.9, t), bc2 = 1 - std::pow(0.999, t);
    double err = 0;
    for (int64_t i = 0; i < before.numel(); ++i) {
      const double p0 = before.data<float>()[i];
      const double update = (m.data<float>()[i] / bc1) / (std::sqrt(v.data<float>()[i] / bc2) + 1e-8) + 0.01 * p0;
      err = std::max(err, std::fabs(p0 - static_cast<double>(lr) * update - after.data<float>()[i]));
    }
    return err;
  };
  const double right = max_error(want_t), wrong = max_error(wrong_t);
  EXPECT_LT(right, 1e-6) << what << ": step " << step << " is not AdamW step " << want_t;
  EXPECT_LT(right, 0.01 * wrong) << what << ": step " << step << " fits step count " << wrong_t << " as well as " << want_t;
}

// DeepSpeed's fp16 wrapper at ZeRO 0 calls optimizer.step() once on zero gradients in its
// constructor, with the optimizer's lr (the scheduler comes later): AdamW's decay acts once on the
// fp32 masters, the moments stay zero, and the half parameters keep their values
// (passes/precision_policy.h WrapperCallsBeforeTraining). The ZeRO stages make no such call.
void ExpectConstructorCall(const fs::path& dump, bool called, float lr, const std::string& what) {
  auto load = [&](const std::string& name) {
    StatusOr<Tensor> t = ReadNpy((dump / "step-000000/rank-0" / (name + ".npy")).string());
    EXPECT_TRUE(t.ok()) << t.status().message();
    return t.ok() ? *t : Tensor();
  };
  const Tensor half = load("fc1.weight"), master = load("fc1.weight::master"), m = load("fc1.weight::exp_avg");
  ASSERT_EQ(half.dtype(), DType::kFloat16) << what;
  ASSERT_GE(master.numel(), half.numel()) << what;  // a ZeRO chunk may carry padding
  double worst = 0, moved = 0;
  for (int64_t i = 0; i < half.numel(); ++i) {
    const float p = HalfToFloat(half.data<uint16_t>()[i]);
    const float want = called ? p - lr * (0.01f * p) : p;
    worst = std::max(worst, static_cast<double>(std::fabs(master.data<float>()[i] - want)));
    moved = std::max(moved, static_cast<double>(std::fabs(master.data<float>()[i] - p)));
    EXPECT_EQ(m.data<float>()[i], 0.0f) << what << " exp_avg[" << i << "]";
  }
  EXPECT_LE(worst, 6e-8) << what << (called ? ": the masters are not decayed once by the optimizer's lr"
                                            : ": the masters are not the half parameters");
  if (called) EXPECT_GT(moved, 1e-7) << what << ": the decay is too small to see";
}

// One overflow pattern with the scale sequences DeepSpeed's two fp16 scalers give it.
struct Scenario {
  std::string name;
  json fp16;
  int steps;
  std::vector<int> overflow;        // 1-based steps
  std::vector<double> fp16_scales;  // FP16_Optimizer (ZeRO stage 0): the scale each step used
  std::vector<double> zero_scales;  // DynamicLossScaler (stages 1-3); shorter when it raises
  int zero_error_step = 0;          // the step at which DynamicLossScaler raises (0: never)
};

const std::vector<Scenario>& Scenarios() {
  static const std::vector<Scenario> all = {
      // Hysteresis 2, window 3. ZeRO: step 2 only spends the hysteresis; 3 and 5 halve (it stays
      // spent); step 9 ends a window of 3 clean steps after step 5 (stable = 3): doubles and
      // refills, so 10 is absorbed again and 11 halves. FP16_Optimizer halves on every overflow and
      // doubles after the same window.
      {"hysteresis",
       {{"enabled", true}, {"initial_scale_power", 10}, {"loss_scale_window", 3}, {"hysteresis", 2}},
       12,
       {2, 3, 5, 10, 11},
       {1024, 1024, 512, 256, 256, 128, 128, 128, 128, 256, 128, 64},
       {1024, 1024, 1024, 512, 512, 256, 256, 256, 256, 512, 512, 256}},
      // consecutive_hysteresis: every clean step refills, so lone overflows (2, 4, 6) are all
      // absorbed and only the pair 6-7 halves; step 11 ends a window of 3 clean steps after 7 and
      // doubles; 12 is absorbed.
      {"consecutive_hysteresis",
       {{"enabled", true}, {"initial_scale_power", 10}, {"loss_scale_window", 3}, {"hysteresis", 2},
        {"consecutive_hysteresis", true}},
       12,
       {2, 4, 6, 7, 12},
       {1024, 1024, 512, 512, 256, 256, 128, 64, 64, 64, 64, 128},
       {1024, 1024, 1024, 1024, 1024, 1024, 1024, 512, 512, 512, 512, 1024}},
      // hysteresis 1, min_loss_scale 2: 8 -> 4 -> 2, and the third overflow meets the minimum:
      // DynamicLossScaler raises at step 4; FP16_Optimizer stays at the floor.
      {"minimum",
       {{"enabled", true}, {"initial_scale_power", 3}, {"hysteresis", 1}, {"min_loss_scale", 2}},
       6,
       {2, 3, 4},
       {8, 8, 4, 2, 2, 2},
       {8, 8, 4, 2},
       4},
  };
  return all;
}

struct Case {
  int stage, world;
};
void PrintTo(const Case& c, std::ostream* os) { *os << "stage " << c.stage << " world " << c.world; }

class Fp16Overflow : public ::testing::TestWithParam<Case> {};

TEST_P(Fp16Overflow, FollowsDeepSpeedsLossScaleRules) {
  const Case& c = GetParam();
  for (const Scenario& sc : Scenarios()) {
    SCOPED_TRACE(sc.name);
    testing::TempDir tmp;
    const fs::path dump = fs::path(tmp.path()) / "dump";
    std::string steps_list = "0";
    for (int s = 1; s <= sc.steps; ++s) steps_list.append(",").append(std::to_string(s));
    const TrainRun run = CompileAndTrain(Config(c.stage, c.world, {{"fp16", sc.fp16}}), c.world, sc.steps,
                                         InjectSpec(sc.overflow, c.world), tmp,
                                         " --debug-dump-state " + ShellQuote(dump.string()) + " --debug-dump-steps " + steps_list);
    const bool zero = c.stage > 0;
    const std::string what = sc.name + " stage " + std::to_string(c.stage) + " world " + std::to_string(c.world);
    if (zero && sc.zero_error_step > 0) {
      EXPECT_NE(run.result.rc, 0) << what;
      EXPECT_NE(run.result.output.find("step " + std::to_string(sc.zero_error_step) +
                                       ": Current loss scale already at minimum - cannot decrease scale anymore"),
                std::string::npos)
          << what << "\n" << run.result.output;
    } else {
      ASSERT_EQ(run.result.rc, 0) << what << "\n" << run.result.output;
    }
    std::vector<int> overflow;
    for (int s : sc.overflow)
      if (s <= static_cast<int>((zero ? sc.zero_scales : sc.fp16_scales).size())) overflow.push_back(s);
    ExpectSequence(run, overflow, zero ? sc.zero_scales : sc.fp16_scales, what);
    if (sc.name != "hysteresis") continue;
    ExpectSkippedStepsChangeNothing(dump, c.world, sc.steps, sc.overflow, what);
    // Step 4 is the first update after the skipped steps 2 and 3: Adam step 2, not 4; at ZeRO 0
    // the wrapper's constructor call counts too: step 3, not 2.
    if (c.world == 1)
      ExpectAdamStepCount(dump, 4, zero ? 2 : 3, zero ? 4 : 2, static_cast<float>(run.metrics.at(3).at("lr").get<double>()), what);
    if (c.world == 1) ExpectConstructorCall(dump, !zero, static_cast<float>(kMaxLr), what);
  }
}

INSTANTIATE_TEST_SUITE_P(StagesAndRanks, Fp16Overflow,
                         ::testing::Values(Case{0, 1}, Case{0, 2}, Case{0, 4}, Case{1, 1}, Case{1, 2}, Case{1, 4},
                                           Case{2, 1}, Case{2, 2}, Case{2, 4}, Case{3, 1}, Case{3, 2}, Case{3, 4}),
                         [](const ::testing::TestParamInfo<Case>& info) {
                           return "stage" + std::to_string(info.param.stage) + "_w" + std::to_string(info.param.world);
                         });

// Lamb's two ops both take the skip input: an overflowed fp16 step leaves the parameters, masters
// and moments bitwise as they were (the sums all-reduced between them are all zeros then), at
// stage 0 on one rank and sharded at stages 1 and 3 on two.
TEST(Fp16Overflow, LambSkipsChangeNothing) {
  for (const Case& c : {Case{0, 1}, Case{1, 2}, Case{3, 2}}) {
    testing::TempDir tmp;
    const fs::path dump = fs::path(tmp.path()) / "dump";
    const std::vector<int> overflow = {2, 4};
    json cfg = Config(c.stage, c.world, {{"fp16", {{"enabled", true}, {"initial_scale_power", 8}}}});
    cfg["optimizer"] = {{"type", "Lamb"}, {"params", {{"lr", kMaxLr}, {"weight_decay", 0.01}}}};
    cfg["zero_allow_untested_optimizer"] = true;
    const TrainRun run = CompileAndTrain(cfg, c.world, 5, InjectSpec(overflow, c.world), tmp,
                                         " --debug-dump-state " + ShellQuote(dump.string()) + " --debug-dump-steps 0,1,2,3,4,5");
    const std::string what = "lamb fp16 stage " + std::to_string(c.stage) + " world " + std::to_string(c.world);
    ASSERT_EQ(run.result.rc, 0) << what << "\n" << run.result.output;
    ASSERT_EQ(run.metrics.size(), 5u) << what;
    for (int step = 1; step <= 5; ++step)
      EXPECT_EQ(run.metrics[static_cast<size_t>(step - 1)].at("skipped").get<bool>(), step == 2 || step == 4) << what << " step " << step;
    ExpectSkippedStepsChangeNothing(dump, c.world, 5, overflow, what);
  }
}

// Muon's two ops both take the skip input: an overflowed fp16 step leaves the parameters, masters,
// momentum buffers and the aux Adam's moments bitwise as they were, at stage 0 on one rank and
// sharded at stages 1 and 3 on two (the update gathered between them is then zeros).
TEST(Fp16Overflow, MuonSkipsChangeNothing) {
  for (const Case& c : {Case{0, 1}, Case{1, 2}, Case{3, 2}}) {
    testing::TempDir tmp;
    const fs::path dump = fs::path(tmp.path()) / "dump";
    const std::vector<int> overflow = {2, 4};
    json cfg = Config(c.stage, c.world, {{"fp16", {{"enabled", true}, {"initial_scale_power", 8}}}});
    cfg["optimizer"] = {{"type", "Muon"}, {"params", {{"muon_lr", kMaxLr}, {"weight_decay", 0.01}}}};
    if (c.stage == 3) cfg["zero_optimization"]["reduce_scatter"] = false;
    const TrainRun run = CompileAndTrain(cfg, c.world, 5, InjectSpec(overflow, c.world), tmp,
                                         " --debug-dump-state " + ShellQuote(dump.string()) + " --debug-dump-steps 0,1,2,3,4,5");
    const std::string what = "muon fp16 stage " + std::to_string(c.stage) + " world " + std::to_string(c.world);
    ASSERT_EQ(run.result.rc, 0) << what << "\n" << run.result.output;
    ASSERT_EQ(run.metrics.size(), 5u) << what;
    for (int step = 1; step <= 5; ++step)
      EXPECT_EQ(run.metrics[static_cast<size_t>(step - 1)].at("skipped").get<bool>(), step == 2 || step == 4) << what << " step " << step;
    ExpectSkippedStepsChangeNothing(dump, c.world, 5, overflow, what);
  }
}

// NAdam under OneCycle's cycled momentum: an overflowed fp16 step leaves the parameters, masters,
// moments and each parameter's mu_product (whole on every rank) bitwise as they were, as torch's
// step() is never called then, at stage 0 on one rank and sharded at stages 1 and 3 on two.
// Decoupled weight decay: at ZeRO 0 the wrapper's constructor call of step() uses the optimizer's
// own beta2, which dsrun refuses with L2 decay (CheckConstructorCall).
TEST(Fp16Overflow, NadamCycledMomentumSkipsChangeNothing) {
  for (const Case& c : {Case{0, 1}, Case{1, 2}, Case{3, 2}}) {
    testing::TempDir tmp;
    const fs::path dump = fs::path(tmp.path()) / "dump";
    const std::vector<int> overflow = {2, 4};
    json cfg = Config(c.stage, c.world, {{"fp16", {{"enabled", true}, {"initial_scale_power", 8}}}});
    cfg["optimizer"] = {{"type", "NAdam"},
                        {"params", {{"lr", kMaxLr}, {"weight_decay", 0.01}, {"decoupled_weight_decay", true}}}};
    cfg["scheduler"] = {{"type", "OneCycle"},
                        {"params", {{"cycle_min_lr", kMinLr}, {"cycle_max_lr", kMaxLr}, {"cycle_first_step_size", 3},
                                    {"cycle_min_mom", 0.6}, {"cycle_max_mom", 0.95}}}};
    cfg["zero_allow_untested_optimizer"] = true;
    const TrainRun run = CompileAndTrain(cfg, c.world, 5, InjectSpec(overflow, c.world), tmp,
                                         " --debug-dump-state " + ShellQuote(dump.string()) + " --debug-dump-steps 0,1,2,3,4,5");
    const std::string what = "nadam fp16 stage " + std::to_string(c.stage) + " world " + std::to_string(c.world);
    ASSERT_EQ(run.result.rc, 0) << what << "\n" << run.result.output;
    ASSERT_EQ(run.metrics.size(), 5u) << what;
    for (int step = 1; step <= 5; ++step)
      EXPECT_EQ(run.metrics[static_cast<size_t>(step - 1)].at("skipped").get<bool>(), step == 2 || step == 4) << what << " step " << step;
    ExpectSkippedStepsChangeNothing(dump, c.world, 5, overflow, what);
    // The applied steps did advance it (so the comparison above can fail).
    for (int rank = 0; rank < c.world; ++rank) {
      const std::string file = "step-000005/rank-" + std::to_string(rank) + "/fc1.weight::mu_product.npy";
      EXPECT_NE(ReadBytes(dump / ("step-000000/rank-" + std::to_string(rank) + "/fc1.weight::mu_product.npy")),
                ReadBytes(dump / file)) << what << ": " << file;
    }
  }
}

// bf16 has no loss scale; with check_grad_overflow (the default) an inf/NaN gradient still skips
// the step under the wrappers that check (ddp_bf16 at stage 0 around an unfused optimizer, here
// torch's AdamW: FP16_UnfusedOptimizer; the ZeRO 1-2 optimizer), leaving the states and the LR
// schedule where they were.
TEST(Bf16Overflow, SkipsWithoutAScale) {
  for (const Case& c : {Case{0, 1}, Case{1, 2}, Case{2, 2}, Case{2, 4}}) {
    testing::TempDir tmp;
    const fs::path dump = fs::path(tmp.path()) / "dump";
    const std::vector<int> overflow = {3, 4};
    json cfg = Config(c.stage, c.world, {{"bf16", {{"enabled", true}}}});
    if (c.stage == 0) cfg["optimizer"]["params"]["torch_adam"] = true;
    const TrainRun run = CompileAndTrain(cfg, c.world, 6,
                                         InjectSpec(overflow, c.world), tmp,
                                         " --debug-dump-state " + ShellQuote(dump.string()) + " --debug-dump-steps 0,1,2,3,4,5,6");
    const std::string what = "bf16 stage " + std::to_string(c.stage) + " world " + std::to_string(c.world);
    ASSERT_EQ(run.result.rc, 0) << what << "\n" << run.result.output;
    ExpectSequence(run, overflow, std::vector<double>(6, 1.0), what);
    ExpectSkippedStepsChangeNothing(dump, c.world, 6, overflow, what);
  }
}

// DeepSpeed's ZeRO 3 checks overflow only in fp16, BF16_Optimizer (bf16 + ZeRO 1 + fp32
// gradient accumulation) never checks, nor does FP16_Optimizer, ddp_bf16's wrapper for FusedAdam
// at stage 0 (it skips only when it scales the loss); check_grad_overflow false turns the ZeRO 1-2
// check off. Those plans have no verdict to inject into.
TEST(Bf16Overflow, WrappersThatNeverSkipHaveNoCheck) {
  const nlohmann::json fp32_accum = {{"grad_accum_dtype", "fp32"}};
  const std::vector<std::pair<Case, nlohmann::json>> cases = {
      {Case{0, 1}, {{"bf16", {{"enabled", true}}}}},
      {Case{3, 2}, {{"bf16", {{"enabled", true}}}}},
      {Case{1, 2}, {{"bf16", {{"enabled", true}}}, {"data_types", fp32_accum}}},
      {Case{2, 2}, {{"bf16", {{"enabled", true}, {"check_grad_overflow", false}}}}}};
  for (const auto& [c, extra] : cases) {
    testing::TempDir tmp;
    const TrainRun run = CompileAndTrain(Config(c.stage, c.world, extra), c.world, 2, InjectSpec({1}, c.world), tmp, "");
    const std::string what = "bf16 stage " + std::to_string(c.stage) + " " + extra.dump();
    EXPECT_NE(run.result.rc, 0) << what;
    EXPECT_NE(run.result.output.find("has no dsc::overflow output"), std::string::npos) << what << "\n" << run.result.output;
  }
}

// The ZeRO-0 constructor call needs the optimizer's own betas. With OneCycle cycling them the plan
// keeps only OneCycle's beta2, which an L2 weight decay (here a parameter group's) would feed into
// the call's moments: refused, naming the key; without the decay the same plan trains.
TEST(ConstructorCall, RefusesCycledBetasWithL2Decay) {
  for (double group_decay : {0.01, 0.0}) {
    testing::TempDir tmp;
    json cfg = Config(0, 1, {{"fp16", {{"enabled", true}, {"initial_scale_power", 8}}}});
    cfg["optimizer"] = {{"type", "Adam"}, {"params", {{"lr", kMaxLr}, {"betas", {0.9, 0.999}}, {"adam_w_mode", false}}}};
    cfg["scheduler"] = {{"type", "OneCycle"},
                        {"params", {{"cycle_min_lr", kMinLr}, {"cycle_max_lr", kMaxLr}, {"cycle_first_step_size", 4},
                                    {"cycle_momentum", true}, {"cycle_min_mom", 0.85}, {"cycle_max_mom", 0.95}}}};
    cfg["dscompile"] = {{"parameter_groups", {{{"params", {"fc1.*"}}, {"weight_decay", group_decay}}}}};
    const TrainRun run = CompileAndTrain(cfg, 1, 2, "", tmp);
    if (group_decay != 0) {
      EXPECT_NE(run.result.rc, 0);
      EXPECT_NE(run.result.output.find("scheduler.params.cycle_momentum with FusedAdam's L2 weight_decay at ZeRO 0 in fp16"),
                std::string::npos)
          << run.result.output;
    } else {
      EXPECT_EQ(run.result.rc, 0) << run.result.output;
      EXPECT_EQ(run.metrics.size(), 2u);
    }
  }
}

// apex.amp's scaler (amp cannot be combined with ZeRO): 2**16 halved by each overflow, the LR
// schedule stepped regardless (see ExpectSequence), Adam's step count not; O1 updates the fp32
// parameters themselves, O2 fp32 masters of a half model.
TEST(AmpOverflow, FollowsApexsScaler) {
  for (const char* level : {"O1", "O2"}) {
    for (int world : {1, 2}) {
      testing::TempDir tmp;
      const fs::path dump = fs::path(tmp.path()) / "dump";
      const std::vector<int> overflow = {2, 3};
      const TrainRun run = CompileAndTrain(Config(0, world, {{"amp", {{"enabled", true}, {"opt_level", level}}}}), world, 5,
                                           InjectSpec(overflow, world), tmp,
                                           " --debug-dump-state " + ShellQuote(dump.string()) + " --debug-dump-steps 0,1,2,3,4,5");
      const std::string what = std::string("amp ") + level + " world " + std::to_string(world);
      ASSERT_EQ(run.result.rc, 0) << what << "\n" << run.result.output;
      ExpectSequence(run, overflow, {65536, 65536, 32768, 16384, 16384}, what, /*lr_counts_skipped=*/true);
      ExpectSkippedStepsChangeNothing(dump, world, 5, overflow, what);
      if (world == 1) ExpectAdamStepCount(dump, 4, 2, 4, static_cast<float>(run.metrics.at(3).at("lr").get<double>()), what);
    }
  }
}

// The flag refuses plans that never check for overflow, and malformed or out-of-range specs.
TEST(OverflowInjection, RefusesWhatItCannotDo) {
  testing::TempDir tmp;
  TrainRun fp32 = CompileAndTrain(Config(1, 2, json::object()), 2, 2, "1", tmp);
  EXPECT_NE(fp32.result.rc, 0);
  EXPECT_NE(fp32.result.output.find("--debug-inject-overflow: the plan has no dsc::overflow output"), std::string::npos)
      << fp32.result.output;
  EXPECT_TRUE(fp32.metrics.empty());
  for (const char* bad : {"0", "x", "3@", "3,,4", "2@-1", "3,"}) {
    CommandResult r = testing::RunCommand(ShellQuote(DSRUN_PATH) + " " + ShellQuote(tmp.File("mlp.dsplan")) +
                                          " --data " + ShellQuote((kModel / "data").string()) +
                                          " --debug-inject-overflow " + ShellQuote(bad));
    EXPECT_NE(r.rc, 0) << bad;
    EXPECT_NE(r.output.find("--debug-inject-overflow"), std::string::npos) << bad << ": " << r.output;
  }
  testing::TempDir half;
  TrainRun rank = CompileAndTrain(Config(2, 2, {{"fp16", {{"enabled", true}}}}), 2, 2, "1@2", half);
  EXPECT_NE(rank.result.rc, 0);
  EXPECT_NE(rank.result.output.find("names rank 2 but the job has 2 ranks"), std::string::npos) << rank.result.output;
}

}  // namespace
}  // namespace dsc
