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
// With amp enabled, ParseAmpOptions leaves every field at its effective value: the level's
// default (apex's O0-O3 property classes) unless the config overrides it. With amp disabled the
// fields keep O1's defaults, as apex's initialize() would pick.
struct AmpConfig {
  bool enabled = false;
  std::string opt_level = "O1";            // "O0" | "O1" | "O2" | "O3"
  std::optional<bool> keep_batchnorm_fp32;  // level default: O2 true, O3 false, O0/O1 none
  std::optional<bool> master_weights;       // level default: O2 true, O0/O3 false, O1 none
  bool dynamic_loss_scale = true;           // loss_scale "dynamic": level default for O1 and O2
  double loss_scale = 1.0;                  // the static scale when not dynamic (O0 and O3: 1.0)
  std::optional<double> min_loss_scale;     // apex: none (a floor <= 0 is none too)
  double max_loss_scale = 16777216.0;       // apex: 2**24
  // apex's other amp.initialize options. cast_model_type: "fp16" (O2, O3), "fp32" (O0), none (O1).
  std::optional<std::string> cast_model_type;
  bool patch_torch_functions = true;           // level default: true only at O1
  std::optional<std::string> cast_model_outputs;  // none or "fp32": the loss is always fp32 here
  int64_t num_losses = 1;                      // loss scalers apex keeps; dscompile uses the first
  int64_t verbosity = 1;                       // apex's logging; no effect on the plan
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
// The amp section in DeepSpeed's two steps. ParseAmpEnabled is DeepSpeedConfig's reading: an
// object with an "enabled" key (KeyError without it). ParseAmpOptions is apex's amp.initialize,
// which DeepSpeed calls only after its optimizer sanity checks pass (so amp + ZeRO is an
// AssertionError whatever the options say): the options are checked only when amp is enabled.
Status ParseAmpEnabled(ParseContext& ctx, const nlohmann::json& section, AmpConfig* amp);
Status ParseAmpOptions(ParseContext& ctx, const nlohmann::json& section, AmpConfig* amp);

// DeepSpeed's DtypeEnum spellings ("half", "torch.bfloat16", ...) → canonical name, or "" if unknown.
std::string CanonicalDtype(const std::string& name);
// "torch.float16" etc., as DeepSpeed prints dtypes.
std::string TorchDtypeName(const std::string& canonical);

nlohmann::json Fp16ToJson(const Fp16Config& fp16);
nlohmann::json Bf16ToJson(const Bf16Config& bf16);
nlohmann::json DataTypesToJson(const DataTypesConfig& types);
// {"enabled": false} when disabled; otherwise every option with its effective value.
nlohmann::json AmpToJson(const AmpConfig& amp);

}  // namespace dsc
