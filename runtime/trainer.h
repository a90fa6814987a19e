// The training loop dsrun drives: state buffers, the micro-step and step programs, data,
// learning-rate schedule, metrics and progress.
#pragma once

#include <cstdint>
#include <optional>
#include <ostream>
#include <string>

#include "backend/plan.h"
#include "runtime/data_loader.h"

namespace dsc {

class Communicator;

struct TrainOptions {
  std::string data_dir;
  int64_t steps = -1;   // optimizer steps; -1: from epochs
  int64_t epochs = -1;  // -1 with steps -1: one epoch
  bool shuffle = true;
  std::optional<uint64_t> seed;  // default: the config's seed
  // One JSON object per step and line, written by rank 0 (not owned; null = none). dsrun opens it
  // during setup, so a path that cannot be written fails before the ranks agree to start.
  std::ostream* metrics = nullptr;
  std::string metrics_path;  // what write errors call it
  int threads = 0;               // 0 = all cores
  std::ostream* progress = nullptr;
  // The ranks this run trains on (not owned; null = one rank). Only rank 0 writes progress
  // lines and the metrics file.
  Communicator* comm = nullptr;
};

struct TrainSummary {
  int64_t steps = 0;
  double first_loss = 0, last_loss = 0;
  double seconds = 0;
};

// The data a run trains on, opened and checked against the plan's micro_step inputs. dsrun opens it
// before its ranks agree on setup, so a rank that cannot read its data ends the whole job at once
// with its own message instead of leaving the others waiting in the first collective.
StatusOr<DataLoader> OpenTrainingData(const Plan& plan, const TrainOptions& opts);

// Trains on `data`, which OpenTrainingData opened for the same plan and options.
StatusOr<TrainSummary> Train(const Plan& plan, const TrainOptions& opts, DataLoader data);

// Both at once, for a single process with no ranks to agree with (fuzz/fuzz_plan.cc, tests).
StatusOr<TrainSummary> Train(const Plan& plan, const TrainOptions& opts);

}  // namespace dsc
