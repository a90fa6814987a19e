// Learning-rate schedules (WarmupLR, WarmupDecayLR, WarmupCosineLR, OneCycle, LRRangeTest) as pure
// functions of DeepSpeed's last_batch_iteration, plus the host-side state machine the runtime steps.
//
// DeepSpeed's engine steps the scheduler once per optimizer step that did not overflow, after the
// step. The LR the constructor writes (iteration -1) is used by optimizer step 1, the iteration-0 LR
// by step 2, and so on; a skipped step leaves the LR where it was.
//
//   ASSIGN_OR_RETURN(LrSchedule schedule, LrSchedule::Create(cfg));
//   for (...) { Train(schedule.lr(), schedule.beta1()); schedule.Step(/*skipped=*/overflow); }
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "frontend/config/ds_config.h"
#include "ir/status.h"

namespace dsc {

class LrSchedule {
 public:
  // Fails when a parameter needs the optimizer's lr but the config has no optimizer section.
  static StatusOr<LrSchedule> Create(const DsConfig& config);

  // The LR DeepSpeed's get_lr() gives at last_batch_iteration `it`; it = -1 is what the constructor
  // writes into the optimizer.
  double LrAt(int64_t it) const;
  // Adam's beta1 (SGD's momentum) at `it` when the schedule cycles momentum (OneCycle), else none.
  std::optional<double> Beta1At(int64_t it) const;
  // OneCycle also rewrites beta2 to 0.99 while it cycles momentum (DeepSpeed's quirk).
  std::optional<double> Beta2At(int64_t it) const;
  // The LR used by 1-based optimizer step `step` when no step was skipped.
  double LrForStep(int64_t step) const { return LrAt(step - 2); }

  // Stateful view for the runtime.
  double lr() const { return LrAt(iteration_); }
  std::optional<double> beta1() const { return Beta1At(iteration_); }
  std::optional<double> beta2() const { return Beta2At(iteration_); }
  // Called after every optimizer step; a skipped (overflowed) step does not advance the schedule.
  void Step(bool skipped) {
    if (!skipped) ++iteration_;
  }
  int64_t last_batch_iteration() const { return iteration_; }
  // A resume continues the schedule where the checkpoint left it.
  void set_last_batch_iteration(int64_t it) { iteration_ = it; }
  const std::string& type() const { return config_.type; }

 private:
  LrSchedule(SchedulerConfig config, double base_lr, bool has_betas);
  double WarmupGamma(int64_t it, int64_t warmup) const;
  double OneCycleScale(int64_t it) const;

  SchedulerConfig config_;
  double base_lr_;  // the optimizer's lr (constant LR without a scheduler)
  bool has_betas_;  // the optimizer has betas: OneCycle cycles beta1
  int64_t iteration_;
};

// "step lr" lines for optimizer steps 1..n, as DeepSpeed applies them with no skipped steps
// (dscompile --lr-schedule N).
StatusOr<std::string> FormatLrSchedule(const DsConfig& config, int64_t n);

}  // namespace dsc
