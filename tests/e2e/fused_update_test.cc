// End-to-end: the fuse pass's mixed-precision rewrites (cast-into-update, refresh-into-update: the
// optimizer update reads the half gradient and writes the half parameter itself; loss-casts: the
// loss gradient reads the half logits and writes the half gradient) change no bit. Each case
// compiles the bundled model twice, with and without them (--disable-fuse-rewrite), trains both
// with gradient accumulation 2, and compares the losses, gradient norms and every state tensor
// of every rank after the last step (dsrun --debug-dump-state: parameters, masters, moments,
// accumulators). The fused step program has 3 nodes fewer per parameter (two Casts and an Assign),
// the fused micro-step one fewer (the Cast of the loss gradient back to the logits' dtype).
// fp16 starts at a loss scale so high that its first steps overflow and are skipped: the refresh
// of a skipped step is checked too.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include <nlohmann/json.hpp>

#include "tests/testutil/test_util.h"

namespace dsc {
namespace {

namespace fs = std::filesystem;
using testing::CommandResult;
using testing::ShellQuote;

constexpr int kSteps = 6;

struct Case {
  std::string model, precision, optimizer;
  int stage, world;
};
void PrintTo(const Case& c, std::ostream* os) {
  *os << c.model << "/" << c.precision << "/" << c.optimizer << "/zero" << c.stage << "/w" << c.world;
}

std::string Config(const Case& c) {
  nlohmann::json cfg = {{"train_batch_size", 4 * c.world},
                        {"train_micro_batch_size_per_gpu", 2},
                        {"gradient_accumulation_steps", 2},
                        {"gradient_clipping", 1.0},
                        {"zero_optimization", {{"stage", c.stage}}}};
  if (c.optimizer == "adamw") cfg["optimizer"] = {{"type", "AdamW"}, {"params", {{"lr", 0.003}, {"weight_decay", 0.1}}}};
  else if (c.optimizer == "sgd") cfg["optimizer"] = {{"type", "SGD"}, {"params", {{"lr", 0.05}, {"momentum", 0.9}}}};
  else if (c.optimizer == "lion") cfg["optimizer"] = {{"type", "Lion"}, {"params", {{"lr", 0.001}}}};
  else if (c.optimizer == "lamb") cfg["optimizer"] = {{"type", "Lamb"}, {"params", {{"lr", 0.01}}}};
  if (c.precision == "bf16") cfg["bf16"] = {{"enabled", true}};
  // A first loss scale at which the first steps overflow and the last ones do not (the mlp's
  // gradients are larger than the gpt's).
  else cfg["fp16"] = {{"enabled", true}, {"initial_scale_power", c.model == "mlp" ? 19 : 24}, {"hysteresis", 1}};
  if (c.optimizer != "adamw") cfg["zero_allow_untested_optimizer"] = true;
  return cfg.dump();
}

struct Training {
  std::vector<double> loss, grad_norm;
  std::vector<bool> skipped;
  int64_t step_nodes = 0, micro_step_nodes = 0, parameters = 0;
  fs::path dump;  // the state after the last step: rank-R/NAME.npy
};

Training CompileAndTrain(const Case& c, bool fused, const testing::TempDir& tmp) {
  const fs::path root = DSC_SOURCE_DIR;
  const std::string tag = fused ? "fused" : "unfused";
  const std::string cfg = tmp.File("config.json"), plan = tmp.File(tag + ".dsplan"), metrics = tmp.File(tag + ".jsonl");
  std::ofstream(cfg) << Config(c);
  Training run;
  CommandResult comp = testing::RunCommand(
      ShellQuote(DSCOMPILE_PATH) + " " + ShellQuote((root / "models" / c.model / (c.model + ".onnx")).string()) +
      " --config " + ShellQuote(cfg) + " --world-size " + std::to_string(c.world) +
      (fused ? "" : " --disable-fuse-rewrite cast-into-update,refresh-into-update,loss-casts") + " -q -o " +
      ShellQuote(plan));
  EXPECT_EQ(comp.rc, 0) << comp.output;
  if (comp.rc != 0) return run;
  CommandResult j = testing::RunCommand(ShellQuote(DSINSPECT_PATH) + " --json " + ShellQuote(plan), false);
  EXPECT_EQ(j.rc, 0);
  const nlohmann::json summary = nlohmann::json::parse(j.output);
  for (const nlohmann::json& p : summary.at("programs"))
    if (p.at("name") == "step") run.step_nodes = p.at("num_nodes").get<int64_t>();
    else if (p.at("name") == "micro_step") run.micro_step_nodes = p.at("num_nodes").get<int64_t>();
  for (const nlohmann::json& s : summary.at("state"))
    if (s.value("kind", "") == "parameter") ++run.parameters;
  run.dump = tmp.File(tag + "-dump");
  CommandResult r = testing::RunCommand(
      ShellQuote(DSRUN_PATH) + " " + ShellQuote(plan) + " --nproc " + std::to_string(c.world) + " --data " +
      ShellQuote((root / "models" / c.model / "data").string()) + " --steps " + std::to_string(kSteps) +
      " --no-shuffle -q --threads 1 --metrics " + ShellQuote(metrics) + " --debug-dump-state " +
      ShellQuote(run.dump.string()) + " --debug-dump-steps " + std::to_string(kSteps));
  EXPECT_EQ(r.rc, 0) << r.output;
  std::ifstream in(metrics);
  for (std::string line; std::getline(in, line);) {
    const nlohmann::json m = nlohmann::json::parse(line);
    run.loss.push_back(m.at("loss").get<double>());
    // null on a skipped step: -1 there, so both runs must skip alike to compare equal.
    run.grad_norm.push_back(m.at("grad_norm").is_number() ? m.at("grad_norm").get<double>() : -1.0);
    run.skipped.push_back(m.value("skipped", false));
  }
  return run;
}

std::string ReadBytes(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

class FusedUpdate : public ::testing::TestWithParam<Case> {};

TEST_P(FusedUpdate, BitIdenticalToTheUnfusedPlan) {
  const Case& c = GetParam();
  testing::TempDir tmp;
  const Training fused = CompileAndTrain(c, true, tmp);
  const Training plain = CompileAndTrain(c, false, tmp);
  ASSERT_EQ(fused.loss.size(), size_t{kSteps});
  ASSERT_EQ(plain.loss.size(), size_t{kSteps});
  ASSERT_GT(fused.parameters, 0);
  EXPECT_EQ(plain.step_nodes - fused.step_nodes, 3 * fused.parameters)
      << "the step program should lose two Casts and an Assign per parameter";
  EXPECT_EQ(plain.micro_step_nodes - fused.micro_step_nodes, 1)
      << "the micro-step should lose the Cast of the cross-entropy gradient";
  for (int i = 0; i < kSteps; ++i) {
    EXPECT_EQ(fused.loss[i], plain.loss[i]) << "step " << i + 1;
    EXPECT_EQ(fused.grad_norm[i], plain.grad_norm[i]) << "step " << i + 1;
    EXPECT_EQ(fused.skipped[i], plain.skipped[i]) << "step " << i + 1;
  }
  if (c.precision == "fp16") {  // both kinds of step ran
    EXPECT_TRUE(fused.skipped.front()) << "the first step should overflow";
    EXPECT_FALSE(fused.skipped.back()) << "the last step should update";
  }
  // Every state tensor of every rank, bit for bit.
  int compared = 0;
  for (const auto& e : fs::recursive_directory_iterator(plain.dump)) {
    if (!e.is_regular_file()) continue;
    const fs::path rel = fs::relative(e.path(), plain.dump);
    const fs::path other = fused.dump / rel;
    ASSERT_TRUE(fs::exists(other)) << rel;
    EXPECT_TRUE(ReadBytes(e.path()) == ReadBytes(other)) << rel << " differs";
    ++compared;
  }
  EXPECT_GE(compared, 3 * fused.parameters * c.world) << "the state dump holds too few tensors";
}

// ZeRO 0-3, 1 and 2 ranks, bf16 and fp16, each update kernel with a param_copy (AdamStep, SGDStep,
// OptimStep, LambApply) at least once, both bundled models.
INSTANTIATE_TEST_SUITE_P(
    Plans, FusedUpdate,
    ::testing::Values(Case{"mlp", "bf16", "adamw", 0, 1}, Case{"mlp", "fp16", "sgd", 1, 2},
                      Case{"mlp", "bf16", "lion", 2, 2}, Case{"mlp", "fp16", "adamw", 3, 2},
                      Case{"gpt", "fp16", "adamw", 0, 1}, Case{"gpt", "bf16", "adamw", 1, 2},
                      Case{"gpt", "fp16", "lamb", 2, 1}, Case{"gpt", "bf16", "adamw", 3, 2}),
    [](const ::testing::TestParamInfo<Case>& info) {
      const Case& c = info.param;
      return c.model + "_" + c.precision + "_" + c.optimizer + "_zero" + std::to_string(c.stage) + "_w" +
             std::to_string(c.world);
    });

}  // namespace
}  // namespace dsc
