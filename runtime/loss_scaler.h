// The loss scale, host side: the scaler DeepSpeed's engine would build for a config (its optimizer
// wrapper decides the rules), with DeepSpeed's and apex's exact update rules.
//
//   ASSIGN_OR_RETURN(LossScaler scaler, LossScaler::ForTraining(cfg));
//   bind dsc::loss_scale = scaler.scale(); run the step; RETURN_IF_ERROR(scaler.Update(overflow, step));
//
// The rules per wrapper (frontend/config/ds_config.h OptimizerWrapper, config-reference.md §6-7):
//   "zero_optimization" + fp16  DynamicLossScaler (hysteresis, consecutive_hysteresis, an overflow
//                               at min_loss_scale with hysteresis used up ends the run)
//   "fp16" (FP16_Optimizer)     no hysteresis; every overflow halves, floored at min_loss_scale
//   "amp" (apex)                init min(2^24 cap, 2^16), window 2000, halve on overflow (floored at
//                               amp.min_loss_scale when set), double after 2000 clean steps capped
//                               at amp.max_loss_scale; or a static amp.loss_scale
//   fp16 with loss_scale > 0    static (every wrapper)
//   bf16, ddp_bf16, fp32        a constant 1 (no scaling; bf16 overflow checks only skip steps)
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include <nlohmann/json.hpp>

#include "frontend/config/ds_config.h"
#include "ir/status.h"

namespace dsc {

enum class LossScalerRules {
  kZero,         // DeepSpeed's DynamicLossScaler.update_scale (ZeRO stages 1-3)
  kNonZeroFp16,  // FP16_Optimizer / FP16_UnfusedOptimizer._update_scale
  kApex,         // apex.amp's LossScaler.update_scale
};

class LossScaler {
 public:
  // The scaler DeepSpeed builds for `config` (see the table above). Fails only where
  // OptimizerWrapper refuses the config.
  static StatusOr<LossScaler> ForTraining(const DsConfig& config);
  // The fp16 section with the given rules: loss_scale 0 is dynamic, > 0 static; fp16 disabled
  // gives a constant 1 (the replay of DeepSpeed's scaler test cases).
  static LossScaler Create(const DsConfig& config, LossScalerRules rules = LossScalerRules::kZero);
  // apex.amp's scaler for the amp section.
  static LossScaler Apex(const AmpConfig& amp);
  static LossScaler Static(double scale);

  // Records one optimizer step's overflow verdict (`step`, 1-based, only names the step in the
  // error). With kZero it fails, as DeepSpeed raises, when an overflow arrives while the scale
  // already sits at min_loss_scale and hysteresis is used up.
  Status Update(bool overflow, int64_t step = 0);

  float scale() const { return static_cast<float>(cur_scale_); }
  double exact_scale() const { return cur_scale_; }
  bool dynamic() const { return dynamic_; }
  LossScalerRules rules() const { return rules_; }
  int64_t iteration() const { return cur_iter_; }
  // What an exact resume needs: the rules, the scale, hysteresis and counters (a checkpoint's
  // trainer_state.loss_scaler).
  nlohmann::json SaveState() const;
  // Continues from SaveState()'s output. A dynamic scaler with the same rules takes over the saved
  // scale, hysteresis and counters; any other pairing (a resume into another precision or wrapper)
  // keeps this scaler's initial state and returns a note saying so, else an empty string. Malformed
  // input is an error naming `what`.
  StatusOr<std::string> RestoreState(const nlohmann::json& saved, const std::string& what);

  // One line for logs: "dynamic (DeepSpeed ZeRO rules: initial 65536, window 1000, hysteresis 2,
  // min 1)", "static 128", "none".
  std::string Describe() const;

 private:
  LossScaler() = default;

  bool dynamic_ = false;
  LossScalerRules rules_ = LossScalerRules::kZero;
  double cur_scale_ = 1.0;
  double initial_scale_ = 1.0;
  double min_scale_ = 1.0;       // kApex: 0 = no floor (apex's None)
  double max_scale_ = 0.0;       // kApex only: the cap of a raise
  int64_t scale_window_ = 1000;  // kApex: 2000
  int64_t delayed_shift_ = 2;    // fp16.hysteresis
  bool consecutive_hysteresis_ = false;
  int64_t cur_hysteresis_ = 2;
  int64_t cur_iter_ = 0;
  int64_t last_overflow_iter_ = -1;
  int64_t unskipped_ = 0;  // kApex: clean steps since the last overflow or raise
  std::string source_;
};

}  // namespace dsc
