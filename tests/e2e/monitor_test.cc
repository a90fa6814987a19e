// DeepSpeed's monitors and comms_logger end to end (issue 18). Monitors: a 2-rank ZeRO-2 fp16 run of the mlp with
// `tensorboard` and `csv_monitor` on and an overflow forced at step 3 (so the loss scale moves).
// The event file is read back with TensorBoard's own reader (tests/e2e/read_tensorboard.py under
// the python of scripts/install-tensorboard.sh) and its scalars, like the CSV rows, must equal
// the --metrics lines of the same run, at DeepSpeed's x axis (samples seen).
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <cstdio>
#include <cstring>
#include <sstream>
#include <vector>

#include <nlohmann/json.hpp>

#include "ir/status.h"  // StrCat
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

// comms_logger on 2 ranks, ZeRO-2 with 2 micro-steps: the bytes each kind sent, as the logger
// summed them from the communicator's records, equal dsinspect's per-step communication figures
// times the steps, and its verbose lines are one per collective the metrics lines count. The same
// run's end-of-run summary is checked too.
TEST(Monitors, CommsLoggerBytesEqualDsinspect) {
  testing::TempDir tmp;
  const fs::path root = DSC_SOURCE_DIR;
  const std::string cfg_path = tmp.File("ds.json");
  nlohmann::json cfg = {{"train_batch_size", kBatch},
                        {"train_micro_batch_size_per_gpu", 2},
                        {"optimizer", {{"type", "Adam"}, {"params", {{"lr", 0.01}}}}},
                        {"zero_optimization", {{"stage", 2}}},
                        {"comms_logger", {{"enabled", true}, {"verbose", true}}}};
  std::ofstream(cfg_path) << cfg.dump();
  const std::string plan = tmp.File("mlp.dsplan"), metrics = tmp.File("m.jsonl");
  CommandResult c = testing::RunCommand(ShellQuote(DSCOMPILE_PATH) + " " +
                                        ShellQuote((root / "models/mlp/mlp.onnx").string()) + " --config " +
                                        ShellQuote(cfg_path) + " --world-size 2 -q -o " + ShellQuote(plan));
  ASSERT_EQ(c.rc, 0) << c.output;
  CommandResult j = testing::RunCommand(ShellQuote(DSINSPECT_PATH) + " --json " + ShellQuote(plan), false);
  ASSERT_EQ(j.rc, 0) << j.output;
  const nlohmann::json per_step = nlohmann::json::parse(j.output)["communication"];
  CommandResult r = testing::RunCommand(ShellQuote(DSRUN_PATH) + " " + ShellQuote(plan) + " --nproc 2 --data " +
                                        ShellQuote((root / "models/mlp/data").string()) + " --steps " +
                                        std::to_string(kSteps) + " --no-shuffle --threads 1 --metrics " +
                                        ShellQuote(metrics));
  ASSERT_EQ(r.rc, 0) << r.output;
  // The table's header, and a verbose line per collective (rank 0's only).
  EXPECT_NE(r.output.find("Comm. Op            Message Size        Count"), std::string::npos) << r.output;
  std::map<std::string, int64_t> logged;
  int verbose_lines = 0;
  std::istringstream out(r.output);
  for (std::string line; std::getline(out, line);) {
    if (line.rfind("comm op: ", 0) == 0) ++verbose_lines;
    char kind[64];
    long long bytes = 0, steps = 0;
    if (std::sscanf(line.c_str(), "comms_logger: %63s sent %lld bytes from this rank in %lld steps", kind, &bytes,
                    &steps) == 3) {
      EXPECT_EQ(steps, kSteps) << line;
      logged[kind] = bytes;
    }
  }
  int64_t total_calls = 0;
  for (const std::string& l : Lines(metrics)) {
    const nlohmann::json line = nlohmann::json::parse(l);
    for (const auto& [kind, n] : line.at("collectives").items()) total_calls += n.get<int64_t>();
  }
  EXPECT_EQ(verbose_lines, total_calls);
  int kinds = 0;
  for (const auto& [kind, bytes] : per_step.items()) {
    if (kind == "total") continue;
    if (bytes.get<int64_t>() == 0) {
      EXPECT_EQ(logged.count(kind), 0u) << kind;
      continue;
    }
    ++kinds;
    EXPECT_EQ(logged[kind], kSteps * bytes.get<int64_t>()) << kind << ": dsinspect says " << bytes << " per step";
  }
  EXPECT_GE(kinds, 2) << "ZeRO-2 reduce-scatters gradients and all-gathers parameters: " << per_step.dump();
  EXPECT_GT(total_calls, 0);

  // The end-of-run summary: this run's steps and samples, a time split whose parts fit in the
  // wall time (communication printed, never timed), and the model states allocated as planned.
  EXPECT_NE(r.output.find(StrCat("dsrun: summary (rank 0, cpu")), std::string::npos) << r.output;
  EXPECT_NE(r.output.find(StrCat(": ", kSteps, " steps, ", kSteps * kBatch, " samples in ")), std::string::npos)
      << r.output;
  double wall = 0, compute = 0, comm = 0, data = 0, idle = 0;
  int shares[4] = {};
  const size_t at = r.output.find("dsrun: time: ");
  ASSERT_NE(at, std::string::npos) << r.output;
  ASSERT_EQ(std::sscanf(r.output.c_str() + at,
                        "dsrun: time: compute %lf s (%d%%), communication %lf s (%d%%), data %lf s (%d%%), "
                        "idle/other %lf s (%d%%)",
                        &compute, &shares[0], &comm, &shares[1], &data, &shares[2], &idle, &shares[3]),
            8)
      << r.output.substr(at, 200);
  ASSERT_EQ(std::sscanf(r.output.c_str() + r.output.find(" samples in "), " samples in %lf s", &wall), 1);
  // The whole run takes a few milliseconds, so communication can print as 0.000 s: only its
  // presence and sign are checked, never a timing.
  EXPECT_GE(comm, 0);
  // Five figures each rounded to 1 ms: up to 2.5 ms apart, plus the doubles' own error.
  EXPECT_NEAR(compute + comm + data + idle, wall, 0.003);
  EXPECT_NEAR(shares[0] + shares[1] + shares[2] + shares[3], 100, 2);
  for (const char* kind : {"parameters", "gradients", "optimizer_states"}) {
    const size_t k = r.output.find(StrCat(" ", kind, " "), r.output.find("planned / allocated:"));
    ASSERT_NE(k, std::string::npos) << kind << "\n" << r.output;
    const std::string rest = r.output.substr(k + std::strlen(kind) + 2);
    const std::string planned = rest.substr(0, rest.find(" / "));
    const std::string allocated = rest.substr(rest.find(" / ") + 3, planned.size());
    EXPECT_EQ(planned, allocated) << kind << ": " << rest.substr(0, 60);
  }
}

}  // namespace
}  // namespace dsc
