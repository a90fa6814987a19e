#include "runtime/loss_scaler.h"

#include <algorithm>
#include <cmath>
#include <sstream>

#include "frontend/config/config_error.h"

namespace dsc {

LossScaler LossScaler::Static(double scale) {
  LossScaler s;
  s.cur_scale_ = s.initial_scale_ = scale;
  return s;
}

LossScaler LossScaler::Create(const DsConfig& config, LossScalerRules rules) {
  const Fp16Config& f = config.fp16;
  if (!f.enabled) return Static(1.0);
  if (!f.dynamic()) return Static(f.loss_scale);
  LossScaler s;
  s.dynamic_ = true;
  s.rules_ = rules;
  s.cur_scale_ = s.initial_scale_ =
      std::ldexp(1.0, static_cast<int>(std::clamp<int64_t>(f.initial_scale_power, -1074, 1023)));
  s.min_scale_ = static_cast<double>(f.min_loss_scale);
  s.scale_window_ = f.loss_scale_window;
  s.delayed_shift_ = f.hysteresis;
  s.cur_hysteresis_ = f.hysteresis;
  s.consecutive_hysteresis_ = f.consecutive_hysteresis;
  s.source_ = config.source;
  return s;
}

// apex/amp/scaler.py LossScaler.__init__ as amp.initialize builds it: init_scale 2**16 and
// scale_window 2000 are not configurable through amp.initialize, min/max_loss_scale are.
LossScaler LossScaler::Apex(const AmpConfig& amp) {
  if (!amp.dynamic_loss_scale) return Static(amp.loss_scale);
  LossScaler s;
  s.dynamic_ = true;
  s.rules_ = LossScalerRules::kApex;
  s.max_scale_ = amp.max_loss_scale;
  s.cur_scale_ = s.initial_scale_ = std::min(amp.max_loss_scale, 65536.0);
  s.min_scale_ = amp.min_loss_scale.value_or(0.0);  // apex tests `if min_loss_scale:`, so 0 is none
  s.scale_window_ = 2000;
  return s;
}

StatusOr<LossScaler> LossScaler::ForTraining(const DsConfig& config) {
  ASSIGN_OR_RETURN(std::string wrapper, OptimizerWrapper(config));
  if (wrapper == "amp") return Apex(config.amp);
  // ZeRO's CreateLossScaler and FP16_Optimizer: dynamic only for fp16 with loss_scale 0, else a
  // static scale of loss_scale (fp16) or 1 (anything else).
  if (!config.fp16.enabled) return Static(1.0);
  if (wrapper == "fp16") return Create(config, LossScalerRules::kNonZeroFp16);
  return Create(config, LossScalerRules::kZero);
}

Status LossScaler::Update(bool overflow, int64_t step) {
  if (!dynamic_) return Status::OK();
  if (rules_ == LossScalerRules::kApex) {
    if (overflow) {
      cur_scale_ = min_scale_ > 0 ? std::max(min_scale_, cur_scale_ / 2) : cur_scale_ / 2;
      unskipped_ = 0;
    } else {
      ++unskipped_;
    }
    if (unskipped_ == scale_window_) {
      cur_scale_ = std::min(max_scale_, cur_scale_ * 2);
      unskipped_ = 0;
    }
    ++cur_iter_;
    return Status::OK();
  }
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
        // DeepSpeed's exception text, so logs read the same; the step and the key say where.
        return ConfigError(DsErrorKind::kException, source_, "fp16.min_loss_scale",
                           StrCat("step ", step > 0 ? step : cur_iter_ + 1,
                                  ": Current loss scale already at minimum - cannot decrease scale anymore. "
                                  "Exiting run. (gradient overflow while the loss scale is at min_loss_scale ",
                                  min_scale_, " and hysteresis is used up; lower min_loss_scale or find the "
                                  "source of the inf/NaN)"));
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

namespace {
const char* RulesName(LossScalerRules r) {
  switch (r) {
    case LossScalerRules::kZero: return "zero";
    case LossScalerRules::kNonZeroFp16: return "fp16_optimizer";
    case LossScalerRules::kApex: return "apex";
  }
  return "?";
}
}  // namespace

nlohmann::json LossScaler::SaveState() const {
  return {{"dynamic", dynamic_},
          {"rules", RulesName(rules_)},
          {"cur_scale", cur_scale_},
          {"cur_hysteresis", cur_hysteresis_},
          {"cur_iter", cur_iter_},
          {"last_overflow_iter", last_overflow_iter_},
          {"unskipped", unskipped_}};
}

StatusOr<std::string> LossScaler::RestoreState(const nlohmann::json& saved, const std::string& what) {
  const bool ok = saved.is_object() && saved.value("dynamic", nlohmann::json()).is_boolean() &&
                  saved.value("rules", nlohmann::json()).is_string() &&
                  saved.value("cur_scale", nlohmann::json()).is_number() &&
                  saved.value("cur_scale", 0.0) > 0 && saved.value("cur_hysteresis", nlohmann::json()).is_number_integer() &&
                  saved.value("cur_iter", nlohmann::json()).is_number_integer() &&
                  saved.value("last_overflow_iter", nlohmann::json()).is_number_integer() &&
                  saved.value("unskipped", nlohmann::json()).is_number_integer();
  if (!ok) return DataLoss(what, ": the loss scaler state is malformed: ", saved.dump());
  const bool was_dynamic = saved["dynamic"].get<bool>();
  const std::string rules = saved["rules"].get<std::string>();
  if (!dynamic_ || !was_dynamic || rules != RulesName(rules_)) {
    if (!dynamic_ && !was_dynamic) return std::string();
    return StrCat("the checkpoint's loss scaler (", was_dynamic ? "dynamic, " + rules + " rules" : "static",
                  ", scale ", saved["cur_scale"].get<double>(), ") differs from this config's (", Describe(),
                  "): starting from the config's");
  }
  cur_scale_ = saved["cur_scale"].get<double>();
  cur_hysteresis_ = saved["cur_hysteresis"].get<int64_t>();
  cur_iter_ = saved["cur_iter"].get<int64_t>();
  last_overflow_iter_ = saved["last_overflow_iter"].get<int64_t>();
  unskipped_ = saved["unskipped"].get<int64_t>();
  return std::string();
}

std::string LossScaler::Describe() const {
  std::ostringstream os;
  if (!dynamic_) {
    if (cur_scale_ == 1.0) return "none";
    os << "static " << cur_scale_;
    return os.str();
  }
  os.precision(17);
  os << "dynamic (";
  switch (rules_) {
    case LossScalerRules::kZero:
      os << "DeepSpeed ZeRO rules: initial " << initial_scale_ << ", window " << scale_window_ << ", hysteresis "
         << delayed_shift_ << (consecutive_hysteresis_ ? " consecutive" : "") << ", min " << min_scale_;
      break;
    case LossScalerRules::kNonZeroFp16:
      os << "DeepSpeed FP16_Optimizer rules: initial " << initial_scale_ << ", window " << scale_window_
         << ", no hysteresis, floor " << min_scale_;
      break;
    case LossScalerRules::kApex:
      os << "apex amp rules: initial " << initial_scale_ << ", window " << scale_window_ << ", max " << max_scale_;
      if (min_scale_ > 0) os << ", min " << min_scale_;
      break;
  }
  os << ")";
  return os.str();
}

}  // namespace dsc
