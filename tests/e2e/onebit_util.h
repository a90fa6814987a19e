// What the 1-bit optimizers' end-to-end tests share (onebit_test, onebit_lamb_test, zoadam_test):
// compiling a config for N ranks, dsinspect's view of the plan, training it, the metrics lines,
// the references under models/MODEL/reference/onebit/, and DeepSpeed's bytes per compressed buffer.
#pragma once

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <numeric>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "tests/e2e/e2e_util.h"
#include "tests/testutil/test_util.h"

namespace dsc::e2e {

inline const std::filesystem::path& SourceRoot() {
  static const std::filesystem::path root = DSC_SOURCE_DIR;
  return root;
}

// dscompile's command line for models/MODEL/MODEL.onnx with `config` on `world` ranks into `plan`.
inline std::string CompileCommand(const std::string& model, const std::filesystem::path& config, int world,
                                  const std::string& plan) {
  using testing::ShellQuote;
  return ShellQuote(DSCOMPILE_PATH) + " " + ShellQuote((SourceRoot() / "models" / model / (model + ".onnx")).string()) +
         " --config " + ShellQuote(config.string()) + " --world-size " + std::to_string(world) + " -q -o " +
         ShellQuote(plan);
}

// dsrun's command line for `plan` on `world` ranks and MODEL's data, unshuffled and quiet; more
// arguments follow the trailing space.
inline std::string DsrunCommand(const std::string& model, const std::string& plan, int world) {
  using testing::ShellQuote;
  return ShellQuote(DSRUN_PATH) + " " + ShellQuote(plan) + " --nproc " + std::to_string(world) + " --threads 1 --data " +
         ShellQuote((SourceRoot() / "models" / model / "data").string()) + " --no-shuffle -q ";
}

inline std::vector<nlohmann::json> ReadMetrics(const std::string& path) {
  std::vector<nlohmann::json> out;
  std::ifstream in(path);
  for (std::string line; std::getline(in, line);) out.push_back(nlohmann::json::parse(line));
  return out;
}

inline std::vector<double> Losses(const std::vector<nlohmann::json>& metrics) {
  std::vector<double> got;
  for (const nlohmann::json& m : metrics) got.push_back(m.at("loss").get<double>());
  return got;
}

inline std::filesystem::path ReferenceConfig(const std::string& name) {
  return SourceRoot() / "models" / "reference_configs" / (name + ".json");
}

// models/MODEL/reference/onebit/NAME.json, written by models/reference_trajectories.py.
inline nlohmann::json OnebitReference(const std::string& model, const std::string& name) {
  return ReadJson(SourceRoot() / "models" / model / "reference" / "onebit" / (name + ".json"));
}

struct OnebitRun {
  std::string plan;
  std::vector<nlohmann::json> metrics;  // one line per step
  nlohmann::json inspect;               // dsinspect --json
};

// Compiles MODEL with the config file `config` on `world` ranks, inspects the plan and trains it
// for `steps` steps; fails the test on any error.
inline void TrainOnebit(const std::string& model, const std::filesystem::path& config, int world, size_t steps,
                        const testing::TempDir& tmp, OnebitRun* out) {
  using testing::ShellQuote;
  out->plan = tmp.File("onebit.dsplan");
  const std::string metrics = tmp.File("onebit.jsonl");
  testing::CommandResult r = testing::RunCommand(CompileCommand(model, config, world, out->plan));
  ASSERT_EQ(r.rc, 0) << r.output;
  r = testing::RunCommand(ShellQuote(DSINSPECT_PATH) + " --json " + ShellQuote(out->plan), false);
  ASSERT_EQ(r.rc, 0) << r.output;
  out->inspect = nlohmann::json::parse(r.output);
  r = testing::RunCommand(DsrunCommand(model, out->plan, world) + "--steps " + std::to_string(steps) + " --metrics " +
                          ShellQuote(metrics));
  ASSERT_EQ(r.rc, 0) << r.output;
  out->metrics = ReadMetrics(metrics);
  ASSERT_EQ(out->metrics.size(), steps);
}

// DeepSpeed's bytes for one compressed buffer of n elements on `world` ranks: the signs'
// all_to_all ((world-1)/world of N/8 bytes), the all_gather of the server signs ((world-1) chunks
// of N/world/8 bytes) and the two all_gathers of one float scale.
inline int64_t CompressedBytes(int64_t n, int64_t world) {
  const int64_t unit = world * (world * 8 / std::gcd(world, int64_t{8}));
  const int64_t size = n % unit == 0 ? n : n + unit - n % unit;
  return (world - 1) * (size / 8) / world + (world - 1) * (size / world / 8) + 2 * (world - 1) * 4;
}

// Bytes per step on two ranks of the plan's parameters, each all-reduced fp32 tensor (the warm-up)
// and each compressed on its own (1-bit Adam's fp32 units): {all_reduce, compressed}.
inline std::pair<int64_t, int64_t> PerTensorBytesOnTwoRanks(const nlohmann::json& inspect) {
  int64_t all_reduce = 0, compressed = 0;
  for (const nlohmann::json& s : inspect.at("state")) {
    if (s.at("kind") != "parameter") continue;
    const int64_t n = s.at("numel").get<int64_t>();
    all_reduce += 2 * (2 - 1) * 4 * n / 2;
    compressed += CompressedBytes(n, 2);
  }
  return {all_reduce, compressed};
}

// A 1-bit run's traffic: up to `freeze` each step all-reduces `all_reduce` bytes and compresses
// nothing, after it each step sends `compressed` bytes of signs and scales (all_to_all and
// all_gather) and no all-reduce; dsinspect says the same before training.
inline void ExpectWarmThenCompressed(const OnebitRun& run, int64_t freeze, int64_t all_reduce, int64_t compressed) {
  for (size_t i = 0; i < run.metrics.size(); ++i) {
    const nlohmann::json& sent = run.metrics[i].at("bytes_sent");
    const bool warm = static_cast<int64_t>(i + 1) <= freeze;
    EXPECT_EQ(sent.at("all_reduce").get<int64_t>(), warm ? all_reduce : 0) << "step " << i + 1;
    const int64_t packed = sent.at("all_to_all").get<int64_t>() + sent.at("all_gather").get<int64_t>();
    EXPECT_EQ(packed, warm ? 0 : compressed) << "step " << i + 1;
  }
  EXPECT_EQ(run.inspect.at("communication").at("total").get<int64_t>(), all_reduce);
  const nlohmann::json& after = run.inspect.at("communication_compressed");
  EXPECT_EQ(after.at("from_step").get<int64_t>(), freeze + 1) << after.dump();
  EXPECT_EQ(after.at("bytes").at("total").get<int64_t>(), compressed) << after.dump();
  EXPECT_EQ(after.at("bytes").at("all_reduce").get<int64_t>(), 0) << after.dump();
}

}  // namespace dsc::e2e
