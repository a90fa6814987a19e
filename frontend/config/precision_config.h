// The fp16, bf16 (legacy "bfloat16") and data_types sections, and which optimizer wrapper
// (mixed-precision regime) DeepSpeed would pick for them.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include <nlohmann/json.hpp>

#include "frontend/config/section_reader.h"

namespace dsc {

struct Fp16Config {
  bool enabled = false;
  bool auto_cast = false;
  double loss_scale = 0.0;  // 0 = dynamic loss scaling
  int64_t initial_scale_power = 16;
  int64_t loss_scale_window = 1000;
  int64_t hysteresis = 2;
  bool consecutive_hysteresis = false;
  int64_t min_loss_scale = 1;
  bool fp16_master_weights_and_grads = false;
  // DeepSpeed's engine.dynamic_loss_scale(): loss_scale == 0, whether or not fp16 is enabled.
  bool dynamic() const { return loss_scale == 0.0; }
};

struct Bf16Config {
  bool enabled = false;
  bool immediate_grad_update = false;
  bool check_grad_overflow = true;
  bool bf16_master_weights_and_grads = false;
  bool bf16_optimizer_states = false;
};

// The amp section (apex AMP; DeepSpeed passes every key but "enabled" to amp.initialize).
// dscompile's meaning of the levels: O0 fp32; O1 per-op casts from the precision policy with fp32
// weights; O2 a half model (BatchNorm kept fp32 unless keep_batchnorm_fp32 is false) with fp32
// master weights; O3 a half model without master weights. Always fp16, as apex.
struct AmpConfig {
  bool enabled = false;
  std::string opt_level = "O1";            // "O0" | "O1" | "O2" | "O3"
  std::optional<bool> keep_batchnorm_fp32;  // level default: O2 true, O3 false
  std::optional<bool> master_weights;       // level default: O2 true, O1/O3 false
  bool dynamic_loss_scale = true;           // loss_scale "dynamic" (default for O1-O3; O0: static 1)
  double loss_scale = 1.0;                  // the static scale when not dynamic
  std::optional<double> min_loss_scale;     // apex: none
  double max_loss_scale = 16777216.0;       // apex: 2**24
};

// Canonical dtype names: "fp16", "bf16", "fp32", "int8".
struct DataTypesConfig {
  std::optional<std::string> grad_accum_dtype;
  std::optional<std::string> param_dtype;
  std::optional<std::string> buffer_dtype;
};

Status ParseFp16Section(ParseContext& ctx, const nlohmann::json& section, Fp16Config* fp16);
Status ParseBf16Section(ParseContext& ctx, const std::string& path, const nlohmann::json& section,
                        Bf16Config* bf16);
Status ParseDataTypesSection(ParseContext& ctx, const nlohmann::json& section, DataTypesConfig* types);

// DeepSpeed's DtypeEnum spellings ("half", "torch.bfloat16", ...) → canonical name, or "" if unknown.
std::string CanonicalDtype(const std::string& name);
// "torch.float16" etc., as DeepSpeed prints dtypes.
std::string TorchDtypeName(const std::string& canonical);

nlohmann::json Fp16ToJson(const Fp16Config& fp16);
nlohmann::json Bf16ToJson(const Bf16Config& bf16);
nlohmann::json DataTypesToJson(const DataTypesConfig& types);

}  // namespace dsc
