// DeepSpeed's monitors end to end (issue 18): a 2-rank ZeRO-2 fp16 run of the mlp with
// `tensorboard` and `csv_monitor` on and an overflow forced at step 3 (so the loss scale moves).
// The event file is read back with TensorBoard's own reader (tests/e2e/read_tensorboard.py under
// the python of scripts/install-tensorboard.sh) and its scalars, like the CSV rows, must equal
// the --metrics lines of the same run, at DeepSpeed's x axis (samples seen).
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <vector>

#include <nlohmann/json.hpp>

#include "tests/testutil/test_util.h"

namespace dsc {
namespace {

namespace fs = std::filesystem;
using testing::CommandResult;
using testing::ShellQuote;

constexpr int kSteps = 6;
constexpr int kBatch = 8;

std::vector<std::string> Lines(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::vector<std::string> lines;
  for (std::string l; std::getline(in, l);) lines.push_back(l);
  return lines;
}

TEST(Monitors, TensorBoardAndCsvEqualTheMetrics) {
  const fs::path tb_python = DSC_TENSORBOARD_PYTHON;
  ASSERT_TRUE(fs::exists(tb_python)) << tb_python
                                     << " is missing: run scripts/install-tensorboard.sh (scripts/install-deps.sh "
                                        "runs it) or point the CMake cache variable DSC_TENSORBOARD_PYTHON at a python "
                                        "with the tensorboard package";
  testing::TempDir tmp;
  const fs::path root = DSC_SOURCE_DIR;
  const std::string cfg_path = tmp.File("ds.json");
  nlohmann::json cfg = {
      {"train_batch_size", kBatch},
      {"train_micro_batch_size_per_gpu", 2},
      {"optimizer", {{"type", "Adam"}, {"params", {{"lr", 0.01}}}}},
      {"scheduler", {{"type", "WarmupLR"}, {"params", {{"warmup_num_steps", 4}}}}},
      {"fp16", {{"enabled", true}, {"initial_scale_power", 8}, {"hysteresis", 1}}},
      {"zero_optimization", {{"stage", 2}}},
      {"tensorboard", {{"enabled", true}, {"output_path", tmp.File("tb")}, {"job_name", "mlp_job"}}},
      {"csv_monitor", {{"enabled", true}, {"output_path", tmp.File("csv")}, {"job_name", "mlp_job"}}}};
  std::ofstream(cfg_path) << cfg.dump();
  const std::string plan = tmp.File("mlp.dsplan"), metrics = tmp.File("m.jsonl");
  CommandResult c = testing::RunCommand(ShellQuote(DSCOMPILE_PATH) + " " +
                                        ShellQuote((root / "models/mlp/mlp.onnx").string()) + " --config " +
                                        ShellQuote(cfg_path) + " --world-size 2 -q -o " + ShellQuote(plan));
  ASSERT_EQ(c.rc, 0) << c.output;
  CommandResult r = testing::RunCommand(ShellQuote(DSRUN_PATH) + " " + ShellQuote(plan) + " --nproc 2 --data " +
                                        ShellQuote((root / "models/mlp/data").string()) + " --steps " +
                                        std::to_string(kSteps) + " --no-shuffle -q --threads 1 --metrics " +
                                        ShellQuote(metrics) + " --debug-inject-overflow 3");
  ASSERT_EQ(r.rc, 0) << r.output;
  std::vector<nlohmann::json> m;
  for (const std::string& l : Lines(metrics)) m.push_back(nlohmann::json::parse(l));
  ASSERT_EQ(m.size(), static_cast<size_t>(kSteps));
  ASSERT_TRUE(m[2]["skipped"].get<bool>());
  ASSERT_NE(m[2]["loss_scale"], m[3]["loss_scale"]) << "the forced overflow should halve the scale";

  // The metric each DeepSpeed tag carries.
  const std::map<std::string, std::string> tags = {
      {"Train/Samples/train_loss", "loss"}, {"Train/Samples/lr", "lr"}, {"Train/Samples/loss_scale", "loss_scale"}};

  // One event file, written by rank 0 only.
  std::vector<fs::path> files;
  for (const auto& e : fs::directory_iterator(tmp.File("tb/mlp_job"))) files.push_back(e.path());
  ASSERT_EQ(files.size(), 1u);
  EXPECT_EQ(files[0].filename().string().rfind("events.out.tfevents.", 0), 0u) << files[0];
  CommandResult tb = testing::RunCommand(ShellQuote(tb_python.string()) + " " +
                                             ShellQuote((root / "tests/e2e/read_tensorboard.py").string()) + " " +
                                             ShellQuote(tmp.File("tb/mlp_job")),
                                         false);
  ASSERT_EQ(tb.rc, 0) << tb.output;
  const nlohmann::json scalars = nlohmann::json::parse(tb.output);
  ASSERT_EQ(scalars.size(), tags.size()) << scalars.dump();
  for (const auto& [tag, key] : tags) {
    ASSERT_TRUE(scalars.contains(tag)) << tag;
    const auto& events = scalars[tag];
    ASSERT_EQ(events.size(), static_cast<size_t>(kSteps)) << tag;
    for (int i = 0; i < kSteps; ++i) {
      EXPECT_EQ(events[i][0].get<int64_t>(), (i + 1) * kBatch) << tag << " step " << i + 1;
      // simple_value is a float: the metric rounded to float32, exactly.
      EXPECT_EQ(events[i][1].get<double>(), static_cast<double>(static_cast<float>(m[i][key].get<double>())))
          << tag << " step " << i + 1;
    }
  }

  // csv_monitor: Train_Samples_<name>.csv with "step,<name>" and then "samples,value" rows whose
  // values read back as the metrics' doubles.
  for (const auto& [tag, key] : tags) {
    const std::string name = tag.substr(tag.rfind('/') + 1);
    const std::vector<std::string> rows = Lines(tmp.File("csv/mlp_job/Train_Samples_" + name + ".csv"));
    ASSERT_EQ(rows.size(), static_cast<size_t>(kSteps + 1)) << tag;
    EXPECT_EQ(rows[0], "step," + name + "\r");
    for (int i = 0; i < kSteps; ++i) {
      const std::string& row = rows[static_cast<size_t>(i) + 1];
      const size_t comma = row.find(',');
      ASSERT_NE(comma, std::string::npos) << row;
      EXPECT_EQ(row.substr(0, comma), std::to_string((i + 1) * kBatch)) << row;
      EXPECT_EQ(std::stod(row.substr(comma + 1)), m[i][key].get<double>()) << tag << " row " << row;
      EXPECT_EQ(row.back(), '\r') << "csv.writer ends rows in \\r\\n";
    }
  }
}

}  // namespace
}  // namespace dsc
