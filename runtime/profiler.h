// Per-node timing of the programs a training run executes, and what is made of it: dsrun
// --profile's tables and JSON, the config's wall_clock_breakdown lines (DeepSpeed's engine timers)
// and its flops_profiler profile of one step.
//
//   ASSIGN_OR_RETURN(auto prof, TrainingProfiler::Create(plan, cfg, popts));  // null: nothing asks
//   micro->Run(RunOptions{..., .node_times = prof ? prof->Times(kMicroStepProgram, step) : nullptr});
//   RETURN_IF_ERROR(prof->EndStep(step, step_seconds));
//   RETURN_IF_ERROR(prof->Finish());
//
// Forward and backward: the micro_step program's nodes that the loss depends on are the forward,
// its other nodes (gradients, their accumulation and any collectives) the backward; every node
// of the step program is the optimizer step. Only rank 0 profiles.
#pragma once

#include <cstdint>
#include <fstream>
#include <memory>
#include <ostream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "backend/flops.h"
#include "backend/plan.h"
#include "frontend/config/ds_config.h"
#include "runtime/executor.h"

namespace dsc {

inline constexpr size_t kMicroStepProgram = 0;
inline constexpr size_t kStepProgram = 1;

enum class Phase { kForward, kBackward, kStep };

struct ProfiledNode {
  std::string name, op, shapes;
  NodeCost cost;
  Phase phase;
};

struct ProfiledProgram {
  std::string name;
  std::vector<ProfiledNode> nodes;
};

// The micro_step and step programs' nodes with their static costs and phases.
StatusOr<std::vector<ProfiledProgram>> ProfiledPrograms(const Plan& plan);

// The profile of `times` (per program, per node) over `steps` optimizer steps whose wall-clock
// total the trainer measured as `step_seconds`. Stable keys (schema_version 1): see profiler.cc.
nlohmann::json ProfileReport(const std::vector<ProfiledProgram>& programs,
                             const std::vector<std::vector<NodeTime>>& times, int64_t steps, double step_seconds,
                             int64_t top_nodes, const std::string& timing);
// The report as text: per program, the op-kind table and (detailed) the top nodes.
std::string FormatProfile(const nlohmann::json& report, bool detailed);

struct ProfileOptions {
  bool profile = false;        // dsrun --profile: every step timed, the report printed at the end
  std::string json_path;       // and written there as JSON (empty: none)
  std::ostream* out = nullptr;  // the report and the flops profile without output_file (stdout)
  std::ostream* log = nullptr;  // wall_clock_breakdown lines and notes (the progress stream; null: none)
  int64_t first_step = 1;      // the run's first step: its warm-up, reported apart
  int64_t last_step = 1;
  int64_t print_every = 10;    // the progress cadence the breakdown lines follow
  bool on_gpu = false;
};

class TrainingProfiler {
 public:
  // Null when neither --profile, wall_clock_breakdown nor flops_profiler asks for timing. Opens the
  // JSON and output files at once, so that a path that cannot be written fails before training.
  static StatusOr<std::unique_ptr<TrainingProfiler>> Create(const Plan& plan, const DsConfig& cfg,
                                                            const ProfileOptions& opts);
  // Where optimizer step `step` records a program's node times; null when that step is not timed.
  std::vector<NodeTime>* Times(size_t program, int64_t step);
  // After step `step` (whose wall clock was `seconds`): breakdown lines, the flops profile.
  Status EndStep(int64_t step, double seconds);
  // After the last step: the --profile report and JSON.
  Status Finish();

 private:
  TrainingProfiler() = default;
  bool Timed(int64_t step) const;
  bool BreakdownDue(int64_t step) const;
  std::vector<ProfiledProgram> programs_;
  ProfileOptions opts_;
  bool breakdown_ = false;
  FlopsProfilerConfig flops_;
  int64_t gas_ = 1;
  std::string timing_;
  std::vector<std::vector<NodeTime>> current_, total_, warmup_;
  int64_t measured_steps_ = 0;
  double measured_seconds_ = 0, warmup_seconds_ = 0;
  bool warmup_done_ = false;
  bool flops_written_ = false;
  std::ofstream json_, flops_file_;
};

}  // namespace dsc
