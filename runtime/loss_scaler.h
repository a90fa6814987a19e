// The fp16 loss scale, host side: static, or dynamic with DeepSpeed's DynamicLossScaler rules.
//
// dscompile applies the ZeRO rules (hysteresis, consecutive_hysteresis, error at the minimum scale)
// at every stage, ZeRO-0 included; DeepSpeed's non-ZeRO fp16 optimizers ignore hysteresis and
// floor at the minimum instead (docs/config.md). kNonZeroFp16 reproduces those for parity tests.
//
//   ASSIGN_OR_RETURN(LossScaler scaler, LossScaler::Create(cfg));
//   loss *= scaler.scale(); ...; RETURN_IF_ERROR(scaler.Update(found_inf));
#pragma once

#include <cstdint>

#include "frontend/config/ds_config.h"
#include "ir/status.h"

namespace dsc {

enum class LossScalerRules {
  kZero,         // DynamicLossScaler.update_scale (DeepSpeed's ZeRO stages 1-3)
  kNonZeroFp16,  // FP16_Optimizer / FP16_UnfusedOptimizer._update_scale
};

class LossScaler {
 public:
  // fp16 with loss_scale 0: dynamic; fp16 with a loss_scale: static; bf16/fp32: a constant 1.
  static LossScaler Create(const DsConfig& config, LossScalerRules rules = LossScalerRules::kZero);
  static LossScaler Static(double scale);

  // Records one optimizer step's overflow check. With kZero it fails (DeepSpeed raises) when an
  // overflow arrives while the scale already sits at min_loss_scale and hysteresis is used up.
  Status Update(bool overflow);

  float scale() const { return static_cast<float>(cur_scale_); }
  double exact_scale() const { return cur_scale_; }
  bool dynamic() const { return dynamic_; }
  int64_t iteration() const { return cur_iter_; }

 private:
  LossScaler() = default;

  bool dynamic_ = false;
  LossScalerRules rules_ = LossScalerRules::kZero;
  double cur_scale_ = 1.0;
  double min_scale_ = 1.0;
  int64_t scale_window_ = 1000;
  int64_t delayed_shift_ = 2;  // fp16.hysteresis
  bool consecutive_hysteresis_ = false;
  int64_t cur_hysteresis_ = 2;
  int64_t cur_iter_ = 0;
  int64_t last_overflow_iter_ = -1;
  std::string source_;
};

}  // namespace dsc
