// The scheduler section: DeepSpeed's five LR schedules, their parameters, defaults and checks.
// The schedules themselves (LR at a step) live in runtime/lr_schedule.h.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include <nlohmann/json.hpp>

#include "frontend/config/section_reader.h"

namespace dsc {

struct SchedulerConfig {
  std::string type;  // "WarmupLR", "WarmupDecayLR", "WarmupCosineLR", "OneCycle", "LRRangeTest"; "" = none
  int64_t last_batch_iteration = -1;
  // WarmupLR / WarmupDecayLR / WarmupCosineLR
  double warmup_min_lr = 0.0;
  std::optional<double> warmup_max_lr;  // WarmupLR: none = the optimizer's lr; WarmupDecayLR: 0.001
  int64_t warmup_num_steps = 1000;      // as given (> 0); the schedules use max(2, n)
  std::string warmup_type = "log";      // "log" | "linear" (anything else falls back to log)
  double total_num_steps = 0.0;         // WarmupDecayLR, WarmupCosineLR (required)
  double warmup_min_ratio = 0.0;
  double cos_min_ratio = 0.0001;
  // OneCycle
  double cycle_min_lr = 0.0;
  double cycle_max_lr = 0.0;
  double decay_lr_rate = 0.0;
  double cycle_first_step_size = 2000;
  std::optional<double> cycle_second_step_size;  // none = same as the first
  int64_t cycle_first_stair_count = 0;
  std::optional<int64_t> cycle_second_stair_count;
  double decay_step_size = 0;
  bool cycle_momentum = true;
  double cycle_min_mom = 0.8;
  double cycle_max_mom = 0.9;
  double decay_mom_rate = 0.0;
  // LRRangeTest
  double lr_range_test_min_lr = 1e-3;
  int64_t lr_range_test_step_size = 2000;
  double lr_range_test_step_rate = 1.0;
  bool lr_range_test_staircase = false;

  // A torch.optim.lr_scheduler class, kept as given for --explain-config: type stays "" (it is not
  // one of the schedules above) and the config records it as unsupported, so nothing compiles it.
  nlohmann::json torch_scheduler = nullptr;

  bool present() const { return !type.empty(); }
};

Status ParseSchedulerSection(ParseContext& ctx, const nlohmann::json& section, SchedulerConfig* sched);
// `optimizer_lr` fills WarmupLR's default warmup_max_lr when known.
nlohmann::json SchedulerToJson(const SchedulerConfig& sched, std::optional<double> optimizer_lr);

}  // namespace dsc
