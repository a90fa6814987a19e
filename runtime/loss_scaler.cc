#include "runtime/loss_scaler.h"

#include <algorithm>
#include <cmath>

#include "frontend/config/config_error.h"

namespace dsc {

LossScaler LossScaler::Static(double scale) {
  LossScaler s;
  s.cur_scale_ = scale;
  return s;
}

LossScaler LossScaler::Create(const DsConfig& config, LossScalerRules rules) {
  const Fp16Config& f = config.fp16;
  if (!f.enabled) return Static(1.0);
  if (!f.dynamic()) return Static(f.loss_scale);
  LossScaler s;
  s.dynamic_ = true;
  s.rules_ = rules;
  s.cur_scale_ = std::ldexp(1.0, static_cast<int>(std::clamp<int64_t>(f.initial_scale_power, -1074, 1023)));
  s.min_scale_ = static_cast<double>(f.min_loss_scale);
  s.scale_window_ = f.loss_scale_window;
  s.delayed_shift_ = f.hysteresis;
  s.cur_hysteresis_ = f.hysteresis;
  s.consecutive_hysteresis_ = f.consecutive_hysteresis;
  s.source_ = config.source;
  return s;
}

Status LossScaler::Update(bool overflow) {
  if (!dynamic_) return Status::OK();
  const int64_t stable = cur_iter_ - last_overflow_iter_ - 1;
  const bool window_done = stable > 0 && scale_window_ > 0 && stable % scale_window_ == 0;
  if (rules_ == LossScalerRules::kNonZeroFp16) {
    if (overflow) {
      cur_scale_ = std::max(cur_scale_ / 2, min_scale_);
      last_overflow_iter_ = cur_iter_;
    } else if (window_done) {
      cur_scale_ *= 2;
    }
    ++cur_iter_;
    return Status::OK();
  }
  if (overflow) {
    if (delayed_shift_ == 1 || cur_hysteresis_ == 1) {
      if (cur_scale_ == min_scale_) {
        return ConfigError(DsErrorKind::kException, source_, "fp16.min_loss_scale",
                           StrCat("gradient overflow at step ", cur_iter_ + 1, " while the loss scale is already at "
                                  "its minimum ", min_scale_, "; cannot decrease it further (DeepSpeed stops the run "
                                  "here too). Lower min_loss_scale or fix the source of the inf/nan"));
      }
      cur_scale_ = std::max(cur_scale_ / 2, min_scale_);
    } else {
      --cur_hysteresis_;
    }
    last_overflow_iter_ = cur_iter_;
  } else {
    if (consecutive_hysteresis_) cur_hysteresis_ = delayed_shift_;
    if (window_done) {
      if (!consecutive_hysteresis_) cur_hysteresis_ = delayed_shift_;
      cur_scale_ *= 2;
    }
  }
  ++cur_iter_;
  return Status::OK();
}

}  // namespace dsc
