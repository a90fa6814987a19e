// Plans without weights (issue 12): a model of 100M+ parameters (six 4096 x 4096 layers, the
// size of GPT-2 small) compiles to a plan of a few MB whose initial values sit in PLAN.weights,
// and dsrun starts training it holding one copy of the weights, not two: its peak resident
// memory stays below the state it must hold plus half the weights' size; dscompile's below 1.5
// times the weights.
#include <gtest/gtest.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>

#include <nlohmann/json.hpp>

#include "ir/graph.h"
#include "ir/onnx_convert.h"
#include "runtime/npy.h"
#include "tests/testutil/test_util.h"

namespace dsc {
namespace {

namespace fs = std::filesystem;
using testing::ShellQuote;

constexpr int64_t kWidth = 4096, kLayers = 6;

// Peak resident memory of `cmd` and what it starts, in bytes, measured in a forked process so
// that earlier children do not count; *rc gets the command's exit status.
int64_t PeakRss(const std::string& cmd, int* rc) {
  int fds[2];
  if (pipe(fds) != 0) return -1;
  const pid_t pid = fork();
  if (pid == 0) {
    close(fds[0]);
    const int status = std::system(cmd.c_str());
    rusage ru{};
    getrusage(RUSAGE_CHILDREN, &ru);
    const int64_t bytes = static_cast<int64_t>(ru.ru_maxrss) * 1024;
    if (write(fds[1], &bytes, sizeof bytes) != sizeof bytes) _exit(99);
    _exit(WIFEXITED(status) ? WEXITSTATUS(status) : 98);
  }
  close(fds[1]);
  int64_t bytes = -1;
  if (read(fds[0], &bytes, sizeof bytes) != sizeof bytes) bytes = -1;
  close(fds[0]);
  int status = 0;
  waitpid(pid, &status, 0);
  *rc = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return bytes;
}

int64_t FolderBytes(const fs::path& dir) {
  int64_t total = 0;
  for (const auto& e : fs::recursive_directory_iterator(dir))
    if (e.is_regular_file()) total += static_cast<int64_t>(e.file_size());
  return total;
}

// x -> MatMul(W1) -> Relu -> ... -> MatMul(W6) -> mean of squares: the loss.
void WriteLargeModel(const std::string& path) {
  Graph g;
  Value* h = g.AddInput("x", TensorType{DType::kFloat32, Shape{Dim::Symbol("batch"), Dim::Static(kWidth)}});
  std::mt19937 rng(7);
  std::normal_distribution<float> normal(0.0f, 1.0f / 64.0f);  // 1/sqrt(width): activations stay O(1)
  for (int64_t l = 0; l < kLayers; ++l) {
    Tensor w(DType::kFloat32, {kWidth, kWidth});
    for (int64_t i = 0; i < w.numel(); ++i) w.data<float>()[i] = normal(rng);
    Value* wv = g.AddInitializer(StrCat("layers.", l, ".weight"), std::move(w));
    h = g.AddNode("MatMul", {h, wv}, {StrCat("mm", l)})->output(0);
    if (l + 1 < kLayers) h = g.AddNode("Relu", {h}, {StrCat("relu", l)})->output(0);
  }
  Value* sq = g.AddNode("Mul", {h, h}, {"sq"})->output(0);
  Node* mean = g.AddNode("ReduceMean", {sq}, {"loss"});
  mean->SetAttr("keepdims", int64_t{0});
  mean->output(0)->type = TensorType{DType::kFloat32, Shape{}};
  g.AddOutput(mean->output(0));
  std::ofstream out(path, std::ios::binary);
  ASSERT_TRUE(GraphToOnnx(g).SerializeToOstream(&out));
}

TEST(LargeModel, PlanIsSmallAndTrainingHoldsOneCopyOfTheWeights) {
  testing::TempDir tmp;
  const std::string model = tmp.File("large.onnx"), plan = tmp.File("large.dsplan"), cfg = tmp.File("cfg.json");
  WriteLargeModel(model);
  const int64_t weight_bytes = kLayers * kWidth * kWidth * 4;
  const nlohmann::json config = {{"train_batch_size", 2},
                                 {"train_micro_batch_size_per_gpu", 2},
                                 {"optimizer", {{"type", "Adam"}, {"params", {{"lr", 1e-4}}}}}};
  testing::WriteFileOrDie(cfg, config.dump());
  fs::create_directories(tmp.File("data"));
  Tensor x(DType::kFloat32, {4, kWidth});
  for (int64_t i = 0; i < x.numel(); ++i) x.data<float>()[i] = static_cast<float>((i * 37) % 101) / 101.0f - 0.5f;
  ASSERT_TRUE(WriteNpy(tmp.File("data/x.npy"), x).ok());

  int rc = 0;
  const int64_t compile_rss = PeakRss(ShellQuote(DSCOMPILE_PATH) + " " + ShellQuote(model) + " --config " +
                                          ShellQuote(cfg) + " -q -o " + ShellQuote(plan),
                                      &rc);
  ASSERT_EQ(rc, 0);
  // The importer maps the file and its tensors borrow the mapping; no pass reads or copies the
  // weights, and the step-0 checkpoint refers to them in the model: not even one copy.
  EXPECT_LT(compile_rss, weight_bytes / 4)
      << "dscompile peaked at " << compile_rss / (1 << 20) << " MiB for " << weight_bytes / (1 << 20) << " MiB of weights";
  const int64_t plan_bytes = static_cast<int64_t>(fs::file_size(plan));
  const int64_t values_bytes = FolderBytes(plan + ".weights");
  EXPECT_LT(plan_bytes, 4 << 20) << "the plan holds no weights";
  EXPECT_LT(values_bytes, 4 << 20) << "the initial values in " << plan << ".weights refer to the model's weights";

  const std::string metrics = tmp.File("m.jsonl");
  const int64_t run_rss = PeakRss(ShellQuote(DSRUN_PATH) + " " + ShellQuote(plan) + " --data " +
                                      ShellQuote(tmp.File("data")) + " --steps 2 --no-shuffle -q --threads 2 --metrics " +
                                      ShellQuote(metrics),
                                  &rc);
  ASSERT_EQ(rc, 0);
  std::ifstream in(metrics);
  std::string line, last;
  while (std::getline(in, line)) last = line;
  const nlohmann::json m = nlohmann::json::parse(last);
  const int64_t state_bytes = m["memory"]["model_states"].get<int64_t>() + m["memory"]["buffers"].get<int64_t>();
  const int64_t arena_bytes = m["memory"]["activations_peak"].get<int64_t>();
  EXPECT_EQ(m["memory"]["parameters"].get<int64_t>(), weight_bytes);
  // Parameters, gradients, two Adam moments and the programs' working memory are unavoidable; a
  // second copy of the initial values (a plan holding them, or a checkpoint read whole) is not.
  EXPECT_LT(run_rss, state_bytes + arena_bytes + weight_bytes / 2)
      << "dsrun peaked at " << run_rss / (1 << 20) << " MiB for " << state_bytes / (1 << 20) << " MiB of state and "
      << arena_bytes / (1 << 20) << " MiB of program arenas";
  std::cerr << "large model: " << weight_bytes / (1 << 20) << " MiB of weights; plan " << plan_bytes / 1024
            << " KiB, PLAN.weights " << values_bytes / (1 << 20) << " MiB; dscompile peak RSS "
            << compile_rss / (1 << 20) << " MiB; dsrun peak RSS " << run_rss / (1 << 20) << " MiB for "
            << state_bytes / (1 << 20) << " MiB of state and " << arena_bytes / (1 << 20) << " MiB of arenas\n";
}

}  // namespace
}  // namespace dsc
