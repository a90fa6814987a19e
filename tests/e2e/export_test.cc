// dsrun --export-onnx: the trained model comes out as the source ONNX with the trained weights,
// the same at every ZeRO stage and world size (shards gathered from every rank), and loads back.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>

#include <nlohmann/json.hpp>

#include "frontend/onnx_import.h"
#include "runtime/npy.h"
#include "tests/e2e/e2e_util.h"

namespace dsc {
namespace {

namespace fs = std::filesystem;
using testing::ShellQuote;

// Compiles the mlp for `world` ranks with `cfg`, trains 3 steps and exports; returns the ONNX path.
std::string TrainAndExport(testing::TempDir& tmp, const std::string& name, const nlohmann::json& cfg, int world) {
  const fs::path model = fs::path(DSC_SOURCE_DIR) / "models" / "mlp" / "mlp.onnx";
  const std::string config = tmp.File(name + ".json"), plan = tmp.File(name + ".dsplan"), out = tmp.File(name + ".onnx");
  std::ofstream(config) << cfg.dump();
  testing::CommandResult c = testing::RunCommand(ShellQuote(DSCOMPILE_PATH) + " " + ShellQuote(model.string()) +
                                                 " --config " + ShellQuote(config) + " --world-size " +
                                                 std::to_string(world) + " -q -o " + ShellQuote(plan));
  EXPECT_EQ(c.rc, 0) << c.output;
  testing::CommandResult r = testing::RunCommand(
      ShellQuote(DSRUN_PATH) + " " + ShellQuote(plan) + " --data " +
      ShellQuote((fs::path(DSC_SOURCE_DIR) / "models" / "mlp" / "data").string()) +
      " --steps 3 --no-shuffle --threads 1 -q --nproc " + std::to_string(world) + " --export-onnx " + ShellQuote(out));
  EXPECT_EQ(r.rc, 0) << r.output;
  return out;
}

std::map<std::string, std::vector<double>> FloatInitializers(const std::string& path) {
  StatusOr<std::unique_ptr<Graph>> g = ImportOnnxFile(path);
  EXPECT_TRUE(g.ok()) << path << ": " << g.status().message();
  std::map<std::string, std::vector<double>> out;
  if (!g.ok()) return out;
  for (const Value* v : (*g)->initializers()) {
    const Tensor& t = v->initializer();
    if (t.dtype() != DType::kFloat32) continue;
    out[v->name()].assign(t.data<float>(), t.data<float>() + t.numel());
  }
  return out;
}

nlohmann::json Config(int stage, int world, bool bf16) {
  nlohmann::json c = {{"train_batch_size", 16},
                      {"train_micro_batch_size_per_gpu", 16 / world},
                      {"gradient_accumulation_steps", 1},
                      {"optimizer", {{"type", "Adam"}, {"params", {{"lr", 0.01}}}}},
                      {"zero_optimization", {{"stage", stage}}}};
  if (bf16) c["bf16"] = {{"enabled", true}};
  return c;
}

class ExportOnnx : public ::testing::TestWithParam<bool> {};  // bf16 (fp32 master weights) or fp32

TEST_P(ExportOnnx, SameTrainedWeightsAtZero3OnTwoRanksAsUnsharded) {
  const bool bf16 = GetParam();
  testing::TempDir tmp;
  const auto source = FloatInitializers((fs::path(DSC_SOURCE_DIR) / "models" / "mlp" / "mlp.onnx").string());
  // bf16 computes per micro-batch in bf16, so a batch split over 2 ranks rounds differently from
  // one rank's: its reference is ZeRO-1 on the same 2 ranks (masters sharded, parameters whole).
  const int ref_world = bf16 ? 2 : 1;
  const auto one = FloatInitializers(TrainAndExport(tmp, "one", Config(bf16 ? 1 : 0, ref_world, bf16), ref_world));
  const auto two = FloatInitializers(TrainAndExport(tmp, "two", Config(3, 2, bf16), 2));
  ASSERT_EQ(one.size(), source.size());
  ASSERT_EQ(two.size(), source.size());
  int changed = 0;
  for (const auto& [name, want] : one) {
    const std::vector<double>& got = two.at(name);
    ASSERT_EQ(got.size(), want.size()) << name;
    for (size_t i = 0; i < want.size(); ++i)
      ASSERT_NEAR(got[i], want[i], 1e-4 * std::max(1.0, std::fabs(want[i]))) << name << "[" << i << "]";
    changed += want != source.at(name);
  }
  EXPECT_GT(changed, 0) << "training changed no exported weight";
}

INSTANTIATE_TEST_SUITE_P(Precisions, ExportOnnx, ::testing::Values(false, true),
                         [](const ::testing::TestParamInfo<bool>& i) { return i.param ? "bf16" : "fp32"; });

// A default dynamo export: the plan trained the parameters the import rebuilt (GPT-2's folded
// transposed weights, its merged biases and LayerNorm scales), and the exported model holds them under
// PyTorch's names. Trained 2 steps on one repeated batch, the exported model's loss on that batch is
// the third step's loss of the same run.
TEST(ExportOnnx, DefaultDynamoExportWritesTheRebuiltParameters) {
  testing::TempDir tmp;
  const fs::path dir = fs::path(DSC_SOURCE_DIR) / "models" / "current" / "gpt2";
  const fs::path model = dir / "gpt2.dynamo_default.onnx";
  fs::create_directories(tmp.File("one_batch"));
  for (const char* input : {"input_ids", "labels"}) {
    StatusOr<Tensor> all = ReadNpy((dir / "data" / (std::string(input) + ".npy")).string());
    ASSERT_TRUE(all.ok()) << all.status().ToString();
    std::vector<int64_t> dims = all->dims();
    dims[0] = 16;
    Tensor batch(all->dtype(), dims);
    std::memcpy(batch.raw(), all->raw(), batch.nbytes());
    ASSERT_TRUE(WriteNpy(tmp.File("one_batch/" + std::string(input) + ".npy"), batch).ok());
  }
  const std::string config = (fs::path(DSC_SOURCE_DIR) / "models" / "reference_configs" / "adam.json").string();
  auto compile = [&](const fs::path& onnx, const std::string& plan) {
    testing::CommandResult c = testing::RunCommand(ShellQuote(DSCOMPILE_PATH) + " " + ShellQuote(onnx.string()) +
                                                   " --config " + ShellQuote(config) + " -q -o " + ShellQuote(plan));
    EXPECT_EQ(c.rc, 0) << c.output;
  };
  compile(model, tmp.File("a.dsplan"));
  const std::vector<double> run = e2e::DsrunLosses(tmp.File("a.dsplan"), tmp.File("one_batch"), 3, tmp);
  testing::CommandResult r = testing::RunCommand(ShellQuote(DSRUN_PATH) + " " + ShellQuote(tmp.File("a.dsplan")) +
                                                 " --data " + ShellQuote(tmp.File("one_batch")) +
                                                 " --steps 2 --no-shuffle -q --export-onnx " + ShellQuote(tmp.File("out.onnx")));
  ASSERT_EQ(r.rc, 0) << r.output;
  StatusOr<std::unique_ptr<Graph>> exported = ImportOnnxFile(tmp.File("out.onnx"));
  ASSERT_TRUE(exported.ok()) << exported.status().ToString();
  for (const char* name : {"model.transformer.h.0.attn.c_attn.weight", "model.transformer.h.0.ln_1.bias",
                           "model.transformer.h.1.mlp.c_proj.bias"})
    EXPECT_NE((*exported)->FindValue(name), nullptr) << name;
  compile(tmp.File("out.onnx"), tmp.File("b.dsplan"));
  const std::vector<double> resumed = e2e::DsrunLosses(tmp.File("b.dsplan"), tmp.File("one_batch"), 1, tmp);
  ASSERT_EQ(run.size(), 3u);
  ASSERT_EQ(resumed.size(), 1u);
  EXPECT_NE(run[2], run[0]);
  EXPECT_NEAR(resumed[0], run[2], 1e-6 * std::fabs(run[2]));
}

// Compiles the mlp and trains 1 step exporting with --export-source `source`: refused before the
// first step, nothing written; returns dsrun's output.
std::string RefusedExport(const testing::TempDir& tmp, const std::string& source) {
  const fs::path model = fs::path(DSC_SOURCE_DIR) / "models" / "mlp" / "mlp.onnx";
  const std::string config = tmp.File("c.json"), plan = tmp.File("p.dsplan");
  std::ofstream(config) << Config(0, 1, false).dump();
  EXPECT_EQ(testing::RunCommand(ShellQuote(DSCOMPILE_PATH) + " " + ShellQuote(model.string()) + " --config " +
                                ShellQuote(config) + " -q -o " + ShellQuote(plan)).rc, 0);
  testing::CommandResult r = testing::RunCommand(
      ShellQuote(DSRUN_PATH) + " " + ShellQuote(plan) + " --data " +
      ShellQuote((model.parent_path() / "data").string()) + " --steps 1 -q --export-onnx " +
      ShellQuote(tmp.File("out.onnx")) + " --export-source " + ShellQuote(source));
  EXPECT_NE(r.rc, 0);
  EXPECT_EQ(r.output.find("step "), std::string::npos) << "trained before refusing: " << r.output;
  EXPECT_FALSE(fs::exists(tmp.File("out.onnx")));
  return r.output;
}

TEST(ExportOnnxErrors, AMissingSourceModelFailsBeforeTraining) {
  testing::TempDir tmp;
  const std::string out = RefusedExport(tmp, tmp.File("nowhere.onnx"));
  EXPECT_NE(out.find("nowhere.onnx"), std::string::npos) << out;
}

TEST(ExportOnnxErrors, ASourceWithoutTheTrainedNamesFailsBeforeTraining) {
  testing::TempDir tmp;
  const std::string out = RefusedExport(tmp, (fs::path(DSC_SOURCE_DIR) / "models" / "cnn" / "cnn.onnx").string());
  EXPECT_NE(out.find("has no initializer named"), std::string::npos) << out;
}

}  // namespace
}  // namespace dsc
