// The 1-bit optimizers' warm-up gradient all-reduces in buckets (schedule-collectives, issue 16):
// OneBitAdam's and OneBitLamb's all-reduces stop after the freeze, 0/1 Adam's run on its variance
// steps only, and a bucket of them (its Start carries their until_step and var_update_scaler)
// retires on the same steps. On two ranks the trajectory is bit for bit the same with one tensor
// per bucket (reduce_bucket_size 1), a few per bucket and DeepSpeed's default size; every step
// sends either nothing or what dsinspect predicts, on the same steps for every bucket size, in
// as many calls as the plan has buckets.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "tests/e2e/e2e_util.h"
#include "tests/e2e/onebit_util.h"
#include "tests/testutil/test_util.h"

namespace dsc {
namespace {

using e2e::OnebitRun;
using e2e::ReadJson;

struct BucketCase {
  std::string config;  // models/reference_configs/CONFIG.json
  size_t steps;        // past the freeze (and, for 0/1 Adam, through variance and other steps)
};
void PrintTo(const BucketCase& c, std::ostream* os) { *os << c.config; }

constexpr int kWorld = 2;

// The gpt with `c`'s config and zero_optimization.reduce_bucket_size = `bucket` (0: the default).
void TrainWithBuckets(const BucketCase& c, int64_t bucket, const testing::TempDir& tmp, OnebitRun* out) {
  nlohmann::json cfg = ReadJson(e2e::ReferenceConfig(c.config));
  if (bucket > 0) cfg["zero_optimization"] = {{"stage", 0}, {"reduce_bucket_size", bucket}};
  const std::string config = tmp.File("onebit.json");
  std::ofstream(config) << cfg.dump();
  e2e::TrainOnebit("gpt", config, kWorld, c.steps, tmp, out);
}

int64_t AllReduceBuckets(const OnebitRun& run) {
  int64_t n = 0;
  for (const nlohmann::json& p : run.inspect.at("programs"))
    if (p.contains("schedule"))
      for (const nlohmann::json& b : p.at("schedule").at("buckets")) n += b.at("kind") == "AllReduce";
  return n;
}

class OnebitBuckets : public ::testing::TestWithParam<BucketCase> {};

TEST_P(OnebitBuckets, RetireTogetherAndKeepTheTrajectory) {
  const BucketCase& c = GetParam();
  // One tensor per bucket (what the plan had before these all-reduces were bucketed), a few, all.
  const std::vector<int64_t> sizes = {1, 20000, 0};
  std::vector<OnebitRun> runs(sizes.size());
  std::vector<int64_t> buckets;
  std::vector<bool> warm_steps;  // the steps that all-reduce, from the first run
  for (size_t k = 0; k < sizes.size(); ++k) {
    testing::TempDir tmp;
    ASSERT_NO_FATAL_FAILURE(TrainWithBuckets(c, sizes[k], tmp, &runs[k]));
    const OnebitRun& run = runs[k];
    const std::string at = c.config + " with reduce_bucket_size " + std::to_string(sizes[k]);
    buckets.push_back(AllReduceBuckets(run));
    const int64_t predicted = run.inspect.at("communication").at("all_reduce").get<int64_t>();
    EXPECT_GT(predicted, 0) << at;
    // The calls dsinspect counts are the buckets; dsrun makes as many on a step that all-reduces.
    EXPECT_EQ(run.inspect.at("collectives").at("all_reduce").get<int64_t>(), buckets.back()) << at;
    for (size_t i = 0; i < run.metrics.size(); ++i) {
      const int64_t sent = run.metrics[i].at("bytes_sent").value("all_reduce", int64_t{0});
      const int64_t calls = run.metrics[i].at("collectives").value("all_reduce", int64_t{0});
      EXPECT_TRUE(sent == 0 || sent == predicted) << at << " step " << i + 1 << ": " << sent << " bytes";
      EXPECT_EQ(calls, sent == 0 ? 0 : buckets.back()) << at << " step " << i + 1;
      if (k == 0) warm_steps.push_back(sent > 0);
      else EXPECT_EQ(sent > 0, warm_steps[i]) << at << " step " << i + 1;
    }
    if (k > 0) {
      EXPECT_EQ(e2e::Losses(run.metrics), e2e::Losses(runs[0].metrics)) << at << " against one tensor per bucket";
      EXPECT_EQ(predicted, runs[0].inspect.at("communication").at("all_reduce").get<int64_t>()) << at;
    }
  }
  // Some steps all-reduce and some do not; the buckets really group the tensors.
  EXPECT_NE(std::count(warm_steps.begin(), warm_steps.end(), true), 0);
  EXPECT_NE(std::count(warm_steps.begin(), warm_steps.end(), false), 0);
  EXPECT_GT(buckets[0], buckets[1]);
  EXPECT_GT(buckets[1], buckets[2]);
  EXPECT_GT(buckets[1], 1);
}

INSTANTIATE_TEST_SUITE_P(Configs, OnebitBuckets,
                         ::testing::Values(BucketCase{"onebitadam", 12}, BucketCase{"onebitlamb", 12},
                                           BucketCase{"zoadam", 16}),
                         [](const ::testing::TestParamInfo<BucketCase>& info) { return info.param.config; });

}  // namespace
}  // namespace dsc
