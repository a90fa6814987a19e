#include "runtime/lr_schedule.h"

#include <algorithm>
#include <cmath>

#include "frontend/config/config_error.h"

namespace dsc {

LrSchedule::LrSchedule(SchedulerConfig config, double base_lr, bool has_betas)
    : config_(std::move(config)), base_lr_(base_lr), has_betas_(has_betas),
      iteration_(config_.last_batch_iteration) {}

StatusOr<LrSchedule> LrSchedule::Create(const DsConfig& config) {
  const SchedulerConfig& s = config.scheduler;
  bool needs_optimizer_lr = !s.present() || s.type == "WarmupCosineLR" ||
                            ((s.type == "WarmupLR" || s.type == "WarmupDecayLR") && !s.warmup_max_lr);
  if (needs_optimizer_lr && !config.optimizer.present()) {
    std::string what = s.present() ? s.type + " takes its base learning rate from optimizer.params.lr"
                                    : "the learning rate comes from optimizer.params.lr";
    return ConfigError(DsErrorKind::kValueError, config.source, "optimizer",
                       "is missing, but " + what + "; add an optimizer section");
  }
  double lr = config.optimizer.present() ? config.optimizer.lr : 0.0;
  bool has_betas = config.optimizer.present() && config.optimizer.has_betas();
  return LrSchedule(s, lr, has_betas);
}

double LrSchedule::WarmupGamma(int64_t it, int64_t warmup) const {
  if (it >= warmup) return 1.0;
  if (config_.warmup_type == "linear") return static_cast<double>(it) / warmup;
  return (1.0 / std::log(static_cast<double>(warmup))) * std::log(static_cast<double>(it + 1));
}

double LrSchedule::OneCycleScale(int64_t it) const {
  const SchedulerConfig& s = config_;
  const double first = s.cycle_first_step_size;
  const double second = s.cycle_second_step_size.value_or(first);
  const double total = first + second;
  const double ratio = first / total;
  const double b = static_cast<double>(it + 1);
  const double cycle = std::floor(1 + b / total);
  const double x = 1. + b / total - cycle;
  const int64_t first_stairs = s.cycle_first_stair_count;
  const int64_t second_stairs = s.cycle_second_stair_count.value_or(first_stairs);
  double scale;
  int64_t stairs;
  if (x <= ratio) {
    scale = x / ratio;
    stairs = first_stairs;
  } else {
    scale = (x - 1) / (ratio - 1);
    stairs = second_stairs;
  }
  if (stairs > 0) {
    const double in_cycle = std::fmod(b, total);
    const double pos = in_cycle <= first ? in_cycle * stairs / first : (total - in_cycle) * stairs / second;
    scale = std::floor(pos) / stairs;
  }
  return scale;
}

double LrSchedule::LrAt(int64_t it) const {
  const SchedulerConfig& s = config_;
  if (s.type.empty()) return base_lr_;
  if (s.type == "WarmupLR" || s.type == "WarmupDecayLR") {
    const double min_lr = s.warmup_min_lr;
    const double delta = s.warmup_max_lr.value_or(base_lr_) - min_lr;
    if (it < 0) return min_lr;
    const int64_t warmup = std::max<int64_t>(2, s.warmup_num_steps);
    double gamma = WarmupGamma(it, warmup);
    if (s.type == "WarmupDecayLR" && it >= warmup) {
      gamma = std::max(0.0, (s.total_num_steps - it) / std::max(1.0, s.total_num_steps - warmup));
    }
    return min_lr + delta * gamma;
  }
  if (s.type == "WarmupCosineLR") {
    if (it < 0) return 0.0;  // DeepSpeed's constructor writes 0, not warmup_min_ratio * lr
    const int64_t warmup = std::max<int64_t>(2, s.warmup_num_steps);
    double ratio;
    if (it < warmup) {
      ratio = s.warmup_min_ratio + WarmupGamma(it, warmup) * (1. - s.warmup_min_ratio);
    } else {
      const double progress = std::min(1.0, (it - warmup + 1) / std::max(1.0, s.total_num_steps - warmup));
      ratio = std::max(0.0, s.cos_min_ratio + (1. - s.cos_min_ratio) * (1 + std::cos(M_PI * progress)) / 2);
    }
    return base_lr_ * ratio;
  }
  if (s.type == "OneCycle") {
    const double total = s.cycle_first_step_size + s.cycle_second_step_size.value_or(s.cycle_first_step_size);
    if (it < total) return s.cycle_min_lr + (s.cycle_max_lr - s.cycle_min_lr) * OneCycleScale(it);
    if (s.decay_step_size == 0 || s.decay_lr_rate == 0) return s.cycle_min_lr;
    const double interval = (it - total + 1) / s.decay_step_size;
    return s.cycle_min_lr / (1 + s.decay_lr_rate * interval);
  }
  // LRRangeTest
  const double steps = static_cast<double>(it + 1) / s.lr_range_test_step_size;
  const double interval = s.lr_range_test_staircase ? std::floor(steps) : steps;
  return s.lr_range_test_min_lr * (1 + s.lr_range_test_step_rate * interval);
}

std::optional<double> LrSchedule::Beta1At(int64_t it) const {
  const SchedulerConfig& s = config_;
  if (s.type != "OneCycle" || !s.cycle_momentum || !has_betas_) return std::nullopt;
  if (it < 0) return s.cycle_min_mom;  // what the constructor writes (get_mom() would say max)
  const double total = s.cycle_first_step_size + s.cycle_second_step_size.value_or(s.cycle_first_step_size);
  if (it < total) return s.cycle_max_mom - (s.cycle_max_mom - s.cycle_min_mom) * OneCycleScale(it);
  if (s.decay_step_size == 0 || s.decay_mom_rate == 0) return s.cycle_max_mom;
  const double interval = (it - total + 1) / s.decay_step_size;
  return s.cycle_max_mom * (1 + s.decay_mom_rate * interval);
}

std::optional<double> LrSchedule::Beta2At(int64_t it) const {
  if (!Beta1At(it)) return std::nullopt;
  return 0.99;
}

StatusOr<std::string> FormatLrSchedule(const DsConfig& config, int64_t n) {
  ASSIGN_OR_RETURN(LrSchedule schedule, LrSchedule::Create(config));
  std::string out;
  for (int64_t step = 1; step <= n; ++step) {
    // nlohmann writes the shortest text that reads back to the same double, as Python's repr.
    out += std::to_string(step) + " " + nlohmann::json(schedule.lr()).dump() + "\n";
    schedule.Step(/*skipped=*/false);
  }
  return out;
}

}  // namespace dsc
