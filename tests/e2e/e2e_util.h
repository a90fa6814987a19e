// What the end-to-end tests share: reading reference JSON, running dsrun for losses, and the
// per-step comparison with PyTorch's trajectory at 1e-4 relative.
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "tests/testutil/test_util.h"

namespace dsc::e2e {

inline constexpr double kRtol = 1e-4;

inline nlohmann::json ReadJson(const std::filesystem::path& p) {
  std::ifstream in(p);
  return nlohmann::json::parse(in);
}

// Trains `plan` for `steps` steps on `data_dir` without shuffling; the loss of each step (empty,
// with a test failure, when dsrun fails). `args` go to dsrun.
inline std::vector<double> DsrunLosses(const std::string& plan, const std::filesystem::path& data_dir, size_t steps,
                                       const testing::TempDir& tmp, const std::string& args = "") {
  using testing::ShellQuote;
  const std::string metrics = tmp.File(std::filesystem::path(plan).stem().string() + ".jsonl");
  testing::CommandResult r = testing::RunCommand(ShellQuote(DSRUN_PATH) + " " + ShellQuote(plan) + " --data " +
                                                 ShellQuote(data_dir.string()) + " --steps " + std::to_string(steps) +
                                                 " --no-shuffle -q --metrics " + ShellQuote(metrics) + " " + args);
  EXPECT_EQ(r.rc, 0) << r.output;
  std::vector<double> losses;
  if (r.rc != 0) return losses;
  std::ifstream in(metrics);
  for (std::string line; std::getline(in, line);) losses.push_back(nlohmann::json::parse(line).at("loss").get<double>());
  return losses;
}

// |got - want| <= kRtol |want| at every step, reporting the first step that is not.
inline void ExpectSameTrajectory(const std::vector<double>& got, const std::vector<double>& want,
                                 const std::string& what) {
  ASSERT_EQ(got.size(), want.size()) << what;
  for (size_t i = 0; i < want.size(); ++i) {
    const double rel = std::fabs(got[i] - want[i]) / std::max(std::fabs(want[i]), 1e-12);
    ASSERT_LE(rel, kRtol) << what << ": step " << i + 1 << " loss " << got[i] << " vs PyTorch " << want[i]
                          << " (first steps: dscompile " << got[0] << ", PyTorch " << want[0] << ")";
  }
}

}  // namespace dsc::e2e
