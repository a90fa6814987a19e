// The optimizer section: DeepSpeed's optimizer names, what each builds, its parameters and defaults.
//
// "Adam" means AdamW unless params.adam_w_mode is false; with torch_adam it is torch's AdamW;
// with optimizer offload it is DeepSpeedCPUAdam. `implementation` records that choice, because the
// defaults differ (torch AdamW's weight_decay is 0.01, FusedAdam's 0).
#pragma once

#include <array>
#include <string>

#include <nlohmann/json.hpp>

#include "frontend/config/section_reader.h"

namespace dsc {

struct Bf16Config;
struct ZeroConfig;

struct OptimizerConfig {
  std::string type;            // as DeepSpeed stores it ("adam", "SGD"); "" = no optimizer section
  std::string implementation;  // "FusedAdam", "torch.optim.AdamW", "DeepSpeedCPUAdam", "torch.optim.SGD", "FusedLion", ...
  bool legacy_fusion = false;
  double lr = 1e-3;
  std::array<double, 2> betas = {0.9, 0.999};
  double eps = 1e-8;
  double weight_decay = 0.0;
  bool adam_w_mode = true;  // effective: decoupled weight decay (Adam family)
  bool torch_adam = false;
  bool bias_correction = true;
  bool amsgrad = false;
  double momentum = 0.0;  // SGD, RMSprop
  double dampening = 0.0;
  bool nesterov = false;
  double lr_decay = 0.0;  // Adagrad
  double initial_accumulator_value = 0.0;
  double alpha = 0.99;  // RMSprop
  bool centered = false;
  double rho = 0.9;  // Adadelta
  double momentum_decay = 4e-3;  // NAdam
  bool decoupled_weight_decay = false;  // NAdam, RAdam
  bool eps_inside_sqrt = false;  // Lamb
  double max_coeff = 10.0;
  double min_coeff = 0.01;
  bool fp32_optimizer_states = true;  // DeepSpeedCPUAdam
  // "muon" (MuonWithAuxAdam): the Muon group's lr (muon_lr, else lr, else 0.02; also `lr`, the
  // scheduled one), the aux Adam group's (adam_lr, else lr, else 3e-4), and Muon's Newton-Schulz
  // method; `momentum` is Muon's, `betas`/`eps` the aux Adam's, `weight_decay` both groups'.
  double muon_lr = 0.02;
  double adam_lr = 3e-4;
  std::string ns_method = "gram";
  // "onebitadam" (DeepSpeed's OnebitAdam): the step after which its momentum is compressed, and
  // the backend its compressed all-reduce names ("nccl" or "mpi": the same arithmetic, which
  // dscompile runs over the rank's own communicator).
  double freeze_step = 100000;
  std::string comm_backend_name = "nccl";
  // "zerooneadam" (DeepSpeed's ZeroOneAdam, 0/1 Adam): the variance updates while the step is at
  // most var_freeze_step, at intervals doubling every var_update_scaler updates; then the
  // parameters synchronise every local_step_interval steps, doubling every local_step_scaler
  // steps up to local_step_clipper. comm_backend_name as above.
  double var_freeze_step = 100000;
  int64_t var_update_scaler = 16;
  int64_t local_step_scaler = 32678;
  int64_t local_step_clipper = 16;
  // "onebitlamb" (DeepSpeed's OnebitLamb; also freeze_step, comm_backend_name, max/min_coeff): the
  // EMA rate of the warm-up's lamb coefficient and the limits of its factor after the freeze.
  double coeff_beta = 0.9;
  double factor_max = 4.0;
  double factor_min = 0.5;
  double factor_threshold = 0.1;
  nlohmann::json params = nlohmann::json::object();  // every effective parameter, DeepSpeed names

  bool present() const { return !type.empty(); }
  // One of the 1-bit family (OnebitAdam, ZeroOneAdam, OnebitLamb).
  bool onebit() const {
    return implementation == "OnebitAdam" || implementation == "ZeroOneAdam" || implementation == "OnebitLamb";
  }
  // OnebitAdam's (and OnebitLamb's) last uncompressed step: its first step() only initialises and returns before the
  // freeze check, so the earliest freeze is after step 2; then the first step >= freeze_step.
  int64_t onebit_last_uncompressed_step() const;
  // ZeroOneAdam's last step before the freeze: it freezes after a step > var_freeze_step, never
  // after the first (which only initialises).
  int64_t zoadam_last_variance_step() const;
  // Whether the optimizer's defaults hold betas: what DeepSpeed's OneCycle cycles (beta1) and
  // replaces (beta2 = 0.99) when cycle_momentum is on.
  bool has_betas() const;
  // In DeepSpeed's ZERO_SUPPORTED_OPTIMIZERS (others need zero_allow_untested_optimizer).
  bool zero_supported() const;
};

// Reads "optimizer"; needs the ZeRO and bf16 sections already parsed (offload picks CPU variants).
Status ParseOptimizerSection(ParseContext& ctx, const nlohmann::json& section, const ZeroConfig& zero,
                             const Bf16Config& bf16, OptimizerConfig* opt);
nlohmann::json OptimizerToJson(const OptimizerConfig& opt);

}  // namespace dsc
