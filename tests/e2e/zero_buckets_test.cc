// ZeRO's bucketed, asynchronous collectives end to end (issue 14): the collectives per step are
// the buckets the config implies (dsinspect and dsrun's counters agree), bucketed and overlapped
// plans keep the single-rank trajectory at every stage and world size (and report every rank's
// peak resident memory), and a small stage3_max_live_parameters bounds the gathered parameters
// in the plan and in the run.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>

#include <nlohmann/json.hpp>

#include "ir/status.h"
#include "tests/testutil/test_util.h"

namespace dsc {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using testing::CommandResult;
using testing::ShellQuote;

constexpr int kSteps = 8;
constexpr int kBatch = 24, kMicro = 2;

struct TrainRun {
  std::vector<double> loss;
  json summary;              // dsinspect --json
  std::vector<json> metrics; // one per step
};

// Compiles the bundled gpt for `world` ranks with this zero_optimization section and trains it.
TrainRun CompileAndTrain(const json& zero, int world, const testing::TempDir& tmp, const std::string& tag,
                         int micro = kMicro) {
  const fs::path root = DSC_SOURCE_DIR;
  const json cfg = {{"train_batch_size", kBatch},
                    {"train_micro_batch_size_per_gpu", micro},
                    {"gradient_accumulation_steps", kBatch / (micro * world)},
                    {"gradient_clipping", 0.5},
                    {"optimizer", {{"type", "Adam"}, {"params", {{"lr", 0.002}, {"weight_decay", 0.01}}}}},
                    {"zero_optimization", zero}};
  const std::string cfg_path = tmp.File(tag + ".json"), plan = tmp.File(tag + ".dsplan"),
                    metrics = tmp.File(tag + ".jsonl");
  std::ofstream(cfg_path) << cfg.dump();
  TrainRun run;
  CommandResult c = testing::RunCommand(ShellQuote(DSCOMPILE_PATH) + " " +
                                        ShellQuote((root / "models" / "gpt" / "gpt.onnx").string()) + " --config " +
                                        ShellQuote(cfg_path) + " --world-size " + std::to_string(world) + " -q -o " +
                                        ShellQuote(plan));
  EXPECT_EQ(c.rc, 0) << c.output;
  if (c.rc != 0) return run;
  CommandResult j = testing::RunCommand(ShellQuote(DSINSPECT_PATH) + " --json " + ShellQuote(plan), false);
  EXPECT_EQ(j.rc, 0);
  run.summary = json::parse(j.output);
  CommandResult r = testing::RunCommand(ShellQuote(DSRUN_PATH) + " " + ShellQuote(plan) + " --nproc " +
                                        std::to_string(world) + " --data " +
                                        ShellQuote((root / "models" / "gpt" / "data").string()) + " --steps " +
                                        std::to_string(kSteps) + " --no-shuffle -q --threads 1 --metrics " +
                                        ShellQuote(metrics));
  EXPECT_EQ(r.rc, 0) << r.output;
  std::ifstream in(metrics);
  for (std::string line; std::getline(in, line);) {
    run.metrics.push_back(json::parse(line));
    run.loss.push_back(run.metrics.back().at("loss").get<double>());
  }
  return run;
}

void ExpectSameTrajectory(const TrainRun& run, const TrainRun& base, const std::string& what) {
  ASSERT_EQ(run.loss.size(), base.loss.size()) << what;
  for (size_t i = 0; i < base.loss.size(); ++i)
    ASSERT_NEAR(run.loss[i], base.loss[i], 1e-4 * std::fabs(base.loss[i])) << what << " step " << i + 1;
}

// peak_resident_bytes: one entry per rank on every line, each rank's never below rank 0's model
// states (the ranks' shards are equal up to padding), and never falling from one step to the next.
void ExpectPeakResident(const TrainRun& run, int world, const std::string& what) {
  std::vector<int64_t> before(static_cast<size_t>(world), 0);
  for (const json& m : run.metrics) {
    const json& peaks = m.at("peak_resident_bytes");
    ASSERT_EQ(peaks.size(), static_cast<size_t>(world)) << what << " step " << m["step"];
    const int64_t states = m.at("memory").at("model_states").get<int64_t>();
    for (int r = 0; r < world; ++r) {
      const int64_t peak = peaks[r].get<int64_t>();
      EXPECT_GE(peak, states) << what << " rank " << r << " step " << m["step"];
      EXPECT_GE(peak, before[r]) << what << " rank " << r << " step " << m["step"];
      before[r] = peak;
    }
  }
}

// The buckets of one kind in a program's schedule, in issue order.
std::vector<json> Buckets(const json& summary, const std::string& program, const std::string& kind) {
  std::vector<json> out;
  for (const json& p : summary["programs"])
    if (p["name"] == program)
      for (const json& b : p["schedule"]["buckets"])
        if (b["kind"] == kind) out.push_back(b);
  return out;
}

int64_t ParameterElements(const json& summary) {
  int64_t n = 0;
  for (const json& s : summary["state"])
    if (s["kind"] == "parameter") n += s["shard_of_numel"].get<int64_t>() > 0 ? s["shard_of_numel"].get<int64_t>()
                                                                                : s["numel"].get<int64_t>();
  return n;
}

// reduce_bucket_size small (1 element: a bucket per gradient), medium and huge: the collectives
// per optimizer step are the buckets, in the plan and in the run.
TEST(ZeroBuckets, CollectivesPerStepAreTheBucketsTheConfigImplies) {
  testing::TempDir tmp;
  constexpr int kWorld = 2, kGas = kBatch / (kMicro * kWorld);
  for (int64_t size : {int64_t{1}, int64_t{4000}, int64_t{500000000}}) {
    const json zero = {{"stage", 2}, {"reduce_bucket_size", size}, {"allgather_bucket_size", size},
                       {"overlap_comm", true}};
    const TrainRun run = CompileAndTrain(zero, kWorld, tmp, "s2_" + std::to_string(size));
    ASSERT_EQ(run.metrics.size(), static_cast<size_t>(kSteps));
    int64_t tensors = 0;
    for (const json& s : run.summary["state"]) tensors += s["kind"] == "parameter";
    const int64_t elements = ParameterElements(run.summary);
    const std::vector<json> rs = Buckets(run.summary, "micro_step", "ReduceScatter");
    const std::vector<json> ag = Buckets(run.summary, "step", "AllGatherInPlace");
    // Every gradient in exactly one bucket, every bucket within the size unless it holds one
    // tensor, and no two neighbours that would have fitted together (the buckets fill greedily).
    for (const std::vector<json>* list : {&rs, &ag}) {
      int64_t members = 0, sum = 0;
      for (size_t k = 0; k < list->size(); ++k) {
        const json& b = (*list)[k];
        members += b["num_members"].get<int64_t>();
        sum += b["elements"].get<int64_t>();
        EXPECT_TRUE(b["elements"].get<int64_t>() <= size || b["num_members"] == 1) << b.dump();
        if (k + 1 < list->size()) {
          EXPECT_GT(b["elements"].get<int64_t>() + (*list)[k + 1]["elements"].get<int64_t>(), size) << b.dump();
        }
      }
      EXPECT_EQ(members, tensors) << "bucket size " << size;
      EXPECT_EQ(sum, elements) << "bucket size " << size;
    }
    if (size == 1) {
      EXPECT_EQ(rs.size(), static_cast<size_t>(tensors));
      EXPECT_EQ(ag.size(), static_cast<size_t>(tensors));
    }
    if (size == 500000000) {
      EXPECT_EQ(rs.size(), 1u);
      EXPECT_EQ(ag.size(), 1u);
    }
    // Per step: the micro-step's buckets once per micro-step, the step's (+1: the global norm).
    const int64_t planned = kGas * static_cast<int64_t>(rs.size()) + static_cast<int64_t>(ag.size()) + 1;
    EXPECT_EQ(run.summary["collectives"]["total"].get<int64_t>(), planned) << "bucket size " << size;
    for (const json& m : run.metrics) {
      int64_t calls = 0;
      for (const auto& [kind, n] : m["collectives"].items()) {
        calls += n.get<int64_t>();
        if (run.summary["collectives"].contains(kind)) {
          EXPECT_EQ(n.get<int64_t>(), run.summary["collectives"][kind].get<int64_t>()) << kind << " size " << size;
        }
      }
      EXPECT_EQ(calls, planned) << "step " << m["step"] << " bucket size " << size;
      for (const char* kind : {"reduce_scatter", "all_gather", "all_reduce"})
        EXPECT_EQ(m["bytes_sent"][kind].get<int64_t>(), run.summary["communication"][kind].get<int64_t>()) << kind;
    }
  }
}

// Small buckets with overlap at every stage and world size: the single-rank trajectory.
TEST(ZeroBuckets, BucketedOverlappedPlansKeepTheTrajectory) {
  testing::TempDir tmp;
  const TrainRun base = CompileAndTrain({{"stage", 0}}, 1, tmp, "base");
  ASSERT_EQ(base.loss.size(), static_cast<size_t>(kSteps));
  ExpectPeakResident(base, 1, "base");
  for (int stage : {0, 1, 2, 3})
    for (int world : {2, 3, 4}) {
      const json zero = {{"stage", stage},
                         {"reduce_bucket_size", 3000},
                         {"allgather_bucket_size", 3000},
                         {"stage3_prefetch_bucket_size", 3000},
                         {"stage3_param_persistence_threshold", 0},
                         {"overlap_comm", true}};
      const std::string tag = StrCat("s", stage, "w", world);
      const TrainRun run = CompileAndTrain(zero, world, tmp, tag);
      ExpectSameTrajectory(run, base, tag);
      ExpectPeakResident(run, world, tag);
      // Several buckets, and at least one of them overlaps compute.
      int buckets = 0, overlapped = 0;
      for (const json& p : run.summary["programs"])
        for (const json& b : p["schedule"]["buckets"]) {
          ++buckets;
          overlapped += b["overlap"]["nodes"].get<int>() > 0;
        }
      EXPECT_GT(buckets, 2) << tag;
      EXPECT_GT(overlapped, 0) << tag;
    }
}

// Stage 0 with one micro-step per step all-reduces each gradient in the micro-step, as the
// backward produces it (overlapping it with overlap_comm): the step has no collective but the
// trajectory is the one-rank one.
TEST(ZeroBuckets, Stage0WithoutAccumulationReducesInTheMicroStep) {
  testing::TempDir tmp;
  const TrainRun base = CompileAndTrain({{"stage", 0}}, 1, tmp, "base");
  for (int world : {2, 3}) {
    const std::string tag = "s0gas1w" + std::to_string(world);
    const TrainRun run = CompileAndTrain({{"stage", 0}, {"reduce_bucket_size", 3000}, {"overlap_comm", true}}, world,
                                         tmp, tag, kBatch / world);
    ExpectSameTrajectory(run, base, tag);
    EXPECT_FALSE(Buckets(run.summary, "micro_step", "AllReduce").empty()) << tag;
    EXPECT_TRUE(Buckets(run.summary, "step", "AllReduce").empty()) << tag;
    EXPECT_EQ(run.summary["collectives"]["total"].get<int64_t>(),
              static_cast<int64_t>(Buckets(run.summary, "micro_step", "AllReduce").size()))
        << tag;
  }
}

// stage3_max_live_parameters below what the default schedule keeps gathered: the plan's peak of
// live gathered elements stays within it, the run measures the same peak, the trajectory holds.
TEST(ZeroBuckets, Stage3MaxLiveParametersBoundsTheGatheredParameters) {
  testing::TempDir tmp;
  const TrainRun base = CompileAndTrain({{"stage", 0}}, 1, tmp, "base");
  const json unlimited = {{"stage", 3}, {"stage3_param_persistence_threshold", 0}};
  const TrainRun wide = CompileAndTrain(unlimited, 2, tmp, "wide");
  int64_t largest = 0;
  for (const json& s : wide.summary["state"])
    if (s["kind"] == "parameter") largest = std::max(largest, s["shard_of_numel"].get<int64_t>());
  const int64_t wide_peak = wide.summary["programs"][0]["schedule"]["gathered_peak_elements"].get<int64_t>();
  const int64_t limit = 2 * largest;
  ASSERT_GT(wide_peak, limit) << "the default schedule already fits; the test needs a limit that binds";
  json zero = unlimited;
  zero["stage3_max_live_parameters"] = limit;
  zero["stage3_prefetch_bucket_size"] = limit;
  for (bool overlap : {true, false}) {
    zero["overlap_comm"] = overlap;
    const TrainRun run = CompileAndTrain(zero, 2, tmp, overlap ? "limited" : "limited_sync");
    const int64_t peak = run.summary["programs"][0]["schedule"]["gathered_peak_elements"].get<int64_t>();
    EXPECT_LE(peak, limit);
    EXPECT_GT(peak, 0);
    for (const json& m : run.metrics) EXPECT_EQ(m.at("gathered_peak").get<int64_t>(), peak) << "step " << m["step"];
    ExpectSameTrajectory(run, base, overlap ? "limited" : "limited_sync");
  }
  for (const json& m : wide.metrics) EXPECT_EQ(m.at("gathered_peak").get<int64_t>(), wide_peak);
  ExpectSameTrajectory(wide, base, "wide");
}

}  // namespace
}  // namespace dsc
