#include "frontend/config/precision_config.h"

#include <algorithm>
#include <climits>
#include <cmath>
#include <vector>

#include "frontend/config/key_suggest.h"

namespace dsc {
namespace {

// fp16.loss_scale's before-validator: a finite number >= 0; bool is refused, "3" is 3.0.
Status ReadLossScale(SectionReader& r, double* out) {
  const nlohmann::json* v = r.Get("loss_scale");
  if (!v) return Status::OK();
  if (v->is_boolean()) return r.Error("loss_scale", "must be a number, not bool (got " + ShortJson(*v) + ")");
  double d = 0;
  if (!LaxFloat(*v, &d).empty()) return r.Error("loss_scale", "must be a number, got " + ShortJson(*v));
  if (!std::isfinite(d)) return r.Error("loss_scale", "must be a finite number (not inf/-inf/nan), got " + ShortJson(*v));
  if (d < 0) return r.Error("loss_scale", "must be >= 0 (0 enables dynamic loss scaling), got " + ShortJson(*v));
  *out = d;
  return Status::OK();
}

// The before-validator DeepSpeed puts on loss_scale_window and min_loss_scale, then int coercion.
Status ReadCheckedInt(SectionReader& r, const std::string& key, int64_t* out) {
  const nlohmann::json* v = r.Get(key);
  if (!v) return Status::OK();
  if (v->is_boolean()) return r.Error(key, "must be an integer, not bool (got " + ShortJson(*v) + ")");
  if (v->is_number_float() && !std::isfinite(v->get<double>())) {
    return r.Error(key, "must be a finite number (not inf/-inf/nan), got " + ShortJson(*v));
  }
  if (v->is_string()) {
    // Python int(str) takes only integer literals: "16" yes, "2.0", "inf" and "abc" no.
    int64_t n = 0;
    if (!LaxInt(*v, &n).empty()) return r.Error(key, "must be an integer, got " + ShortJson(*v));
    *out = n;
    return Status::OK();
  }
  int64_t n = 0;
  if (!LaxInt(*v, &n).empty()) return r.Error(key, "must be an integer, got " + ShortJson(*v));
  *out = n;
  return Status::OK();
}

// apex's amp.initialize keyword arguments that a config can carry ("models" and "optimizers" are
// DeepSpeed's own positional arguments; "enabled" is popped by DeepSpeed).
const std::vector<std::string>& ApexAmpKeys() {
  static const std::vector<std::string> keys = {
      "enabled",        "opt_level",     "cast_model_type", "patch_torch_functions", "keep_batchnorm_fp32",
      "master_weights", "loss_scale",    "min_loss_scale",  "max_loss_scale",        "cast_model_outputs",
      "num_losses",     "verbosity"};
  return keys;
}

// apex's O0-O3 property classes (apex/amp/frontend.py): what each level sets before overrides.
struct AmpLevel {
  std::optional<std::string> cast_model_type;
  bool patch_torch_functions;
  std::optional<bool> keep_batchnorm_fp32;
  std::optional<bool> master_weights;
  bool dynamic_loss_scale;  // else a static 1.0
};

std::optional<AmpLevel> AmpLevelDefaults(const std::string& level) {
  if (level == "O0") return AmpLevel{"fp32", false, std::nullopt, false, false};
  if (level == "O1") return AmpLevel{std::nullopt, true, std::nullopt, std::nullopt, true};
  if (level == "O2") return AmpLevel{"fp16", false, true, true, true};
  if (level == "O3") return AmpLevel{"fp16", false, false, false, false};
  return std::nullopt;
}

// The half type a level computes in, as apex names it, for messages.
const char* LevelModelType(const std::string& level) {
  return level == "O2" || level == "O3" ? "fp16 (torch.float16)" : level == "O0" ? "fp32 (torch.float32)" : "none";
}

Status AmpError(ParseContext& ctx, DsErrorKind kind, const std::string& key, const std::string& message) {
  return ctx.Error(kind, JoinPath("amp", key), message);
}

// A dtype option (cast_model_type, cast_model_outputs): null, false, or a dtype name (a JSON
// config cannot hold a torch.dtype; the spellings are data_types'). Sets *dtype to "" for false.
Status ReadAmpDtype(ParseContext& ctx, const std::string& key, const nlohmann::json& v, std::string* dtype) {
  if (v.is_boolean() && !v.get<bool>()) {
    *dtype = "";
    return Status::OK();
  }
  std::string canonical = v.is_string() ? CanonicalDtype(v.get<std::string>()) : "";
  if (canonical.empty() || canonical == "int8") {
    return AmpError(ctx, DsErrorKind::kValueError, key,
                    "expected null, false or a float dtype (\"fp16\", \"fp32\", \"bf16\" or a torch spelling such as "
                    "\"torch.float16\"), got " + ShortJson(v));
  }
  *dtype = canonical;
  return Status::OK();
}

// min_loss_scale / max_loss_scale: apex compares them with the float scale (max(), min()), so
// anything but a number fails there with TypeError.
Status ReadAmpScaleBound(ParseContext& ctx, const std::string& key, const nlohmann::json& v, double* out) {
  if (!v.is_number() || v.is_boolean()) {
    return AmpError(ctx, DsErrorKind::kTypeError, key, "expected a number (apex compares it with the float loss scale), got " +
                                                         ShortJson(v));
  }
  *out = v.get<double>();
  if (!std::isfinite(*out)) return AmpError(ctx, DsErrorKind::kValueError, key, "must be finite, got " + ShortJson(v));
  return Status::OK();
}

Status ReadAmpCount(ParseContext& ctx, const std::string& key, const nlohmann::json& v, int64_t min, int64_t* out) {
  if (!v.is_number_integer() || v.is_boolean()) {
    return AmpError(ctx, DsErrorKind::kTypeError, key, "expected an integer, got " + ShortJson(v));
  }
  if (v.is_number_unsigned() && v.get<uint64_t>() > static_cast<uint64_t>(INT64_MAX)) {
    return AmpError(ctx, DsErrorKind::kValueError, key, "expected an integer that fits in 64 bits, got " + ShortJson(v));
  }
  *out = v.get<int64_t>();
  if (*out < min) return AmpError(ctx, DsErrorKind::kValueError, key, StrCat("must be >= ", min, ", got ", *out));
  return Status::OK();
}

// loss_scale: "dynamic", a number, or a string holding one (apex: float(value)).
Status ReadAmpLossScale(ParseContext& ctx, const nlohmann::json& v, AmpConfig* amp) {
  if (v.is_string() && v.get<std::string>() == "dynamic") {
    amp->dynamic_loss_scale = true;
    return Status::OK();
  }
  if (v.is_boolean()) {
    ctx.Unsupported("amp.loss_scale", "a bool loss scale (apex reads true as 1.0); write \"dynamic\" or a number");
    return Status::OK();
  }
  double d = 0;
  if (v.is_number()) {
    d = v.get<double>();
  } else if (!v.is_string() || !LaxFloat(v, &d).empty()) {
    // Python's float() raises ValueError for a string it cannot read, TypeError for anything else.
    return AmpError(ctx, v.is_string() ? DsErrorKind::kValueError : DsErrorKind::kTypeError, "loss_scale",
                    "expected \"dynamic\" or a number, got " + ShortJson(v));
  }
  if (!std::isfinite(d) || d <= 0) {
    ctx.Unsupported("amp.loss_scale", "a static loss scale of " + ShortJson(v) +
                                          " (apex takes it, but every gradient becomes 0, inf or NaN); use a positive "
                                          "finite number or \"dynamic\"");
    return Status::OK();
  }
  amp->dynamic_loss_scale = false;
  amp->loss_scale = d;
  return Status::OK();
}

nlohmann::json OptJson(const std::optional<std::string>& s) {
  return s ? nlohmann::json(*s) : nlohmann::json(nullptr);
}

}  // namespace

std::string CanonicalDtype(const std::string& name) {
  for (const char* s : {"fp16", "float16", "half", "torch.float16"}) if (name == s) return "fp16";
  for (const char* s : {"fp32", "float32", "float", "torch.float32"}) if (name == s) return "fp32";
  for (const char* s : {"bf16", "bfloat16", "torch.bfloat16"}) if (name == s) return "bf16";
  for (const char* s : {"int8", "torch.int8"}) if (name == s) return "int8";
  return "";
}

std::string TorchDtypeName(const std::string& canonical) {
  if (canonical == "fp16") return "torch.float16";
  if (canonical == "bf16") return "torch.bfloat16";
  if (canonical == "int8") return "torch.int8";
  return "torch.float32";
}

Status ParseFp16Section(ParseContext& ctx, const nlohmann::json& section, Fp16Config* fp16) {
  if (section.is_null()) return Status::OK();
  if (!section.is_object()) {
    return ctx.Error(DsErrorKind::kValidationError, "fp16", "expected an object, got " + ShortJson(section));
  }
  SectionReader r(ctx, "fp16", section);
  RETURN_IF_ERROR(r.Bool("enabled", &fp16->enabled));
  RETURN_IF_ERROR(r.Bool("auto_cast", &fp16->auto_cast));
  RETURN_IF_ERROR(ReadLossScale(r, &fp16->loss_scale));
  RETURN_IF_ERROR(r.Int("initial_scale_power", &fp16->initial_scale_power));
  RETURN_IF_ERROR(ReadCheckedInt(r, "loss_scale_window", &fp16->loss_scale_window));
  RETURN_IF_ERROR(r.Int("hysteresis", &fp16->hysteresis));
  RETURN_IF_ERROR(r.Bool("consecutive_hysteresis", &fp16->consecutive_hysteresis));
  RETURN_IF_ERROR(ReadCheckedInt(r, "min_loss_scale", &fp16->min_loss_scale));
  RETURN_IF_ERROR(r.Bool("fp16_master_weights_and_grads", &fp16->fp16_master_weights_and_grads));
  RETURN_IF_ERROR(r.Finish());
  if (fp16->enabled && fp16->loss_scale == 0) {
    if (fp16->loss_scale_window <= 0) {
      return r.Error("loss_scale_window", StrCat("must be > 0 when dynamic loss scaling is enabled (loss_scale=0), got ",
                                                 fp16->loss_scale_window));
    }
    if (fp16->min_loss_scale <= 0) {
      return r.Error("min_loss_scale", StrCat("must be > 0 when dynamic loss scaling is enabled (loss_scale=0), got ",
                                              fp16->min_loss_scale));
    }
  }
  if (fp16->enabled && fp16->loss_scale == 0 && fp16->hysteresis < 1) {
    ctx.Warn("fp16.hysteresis", StrCat("is ", fp16->hysteresis,
                                       ": the loss scale would never decrease (DeepSpeed accepts this too)"));
  }
  if (fp16->enabled && fp16->auto_cast) ctx.Unsupported("fp16.auto_cast", "fp16 auto_cast of the model inputs");
  return Status::OK();
}

Status ParseBf16Section(ParseContext& ctx, const std::string& path, const nlohmann::json& section,
                        Bf16Config* bf16) {
  if (section.is_null()) return Status::OK();
  if (!section.is_object()) {
    return ctx.Error(DsErrorKind::kValidationError, path, "expected an object, got " + ShortJson(section));
  }
  SectionReader r(ctx, path, section);
  RETURN_IF_ERROR(r.Bool("enabled", &bf16->enabled));
  RETURN_IF_ERROR(r.Bool("immediate_grad_update", &bf16->immediate_grad_update));
  RETURN_IF_ERROR(r.Bool("check_grad_overflow", &bf16->check_grad_overflow));
  RETURN_IF_ERROR(r.Bool("bf16_master_weights_and_grads", &bf16->bf16_master_weights_and_grads));
  RETURN_IF_ERROR(r.Bool("bf16_optimizer_states", &bf16->bf16_optimizer_states));
  if (r.Given("check_overflow")) {
    return r.Error("check_overflow", "is no longer accepted by DeepSpeed; use \"check_grad_overflow\"");
  }
  return r.Finish();
}

Status ParseDataTypesSection(ParseContext& ctx, const nlohmann::json& section, DataTypesConfig* types) {
  if (section.is_null()) return Status::OK();
  if (!section.is_object()) {
    return ctx.Error(DsErrorKind::kValueError, "data_types", "expected an object, got " + ShortJson(section));
  }
  SectionReader r(ctx, "data_types", section, DsErrorKind::kValueError, /*strip_auto=*/false);
  for (auto [key, member] : {std::pair{"grad_accum_dtype", &types->grad_accum_dtype},
                             std::pair{"param_dtype", &types->param_dtype},
                             std::pair{"buffer_dtype", &types->buffer_dtype}}) {
    const nlohmann::json* v = r.Get(key);
    if (!v || v->is_null()) continue;
    std::string canonical = v->is_string() ? CanonicalDtype(v->get<std::string>()) : "";
    if (canonical.empty()) {
      return r.Error(key, "expected a dtype (fp32, fp16, bf16, int8 or a torch spelling), got " + ShortJson(*v));
    }
    *member = canonical;
  }
  return r.FinishPlainDict();
}

Status ParseAmpEnabled(ParseContext& ctx, const nlohmann::json& section, AmpConfig* amp) {
  if (section.is_null()) return Status::OK();
  if (!section.is_object()) {
    return ctx.Error(DsErrorKind::kValueError, "amp", "expected an object, got " + ShortJson(section));
  }
  if (!section.contains("enabled")) {
    return ctx.Error(DsErrorKind::kKeyError, "amp.enabled",
                     "is required in this section (DeepSpeed pops it before passing the rest to apex's "
                     "amp.initialize, and raises KeyError without it)");
  }
  std::string why = LaxBool(section["enabled"], &amp->enabled);
  if (!why.empty()) return ctx.Error(DsErrorKind::kValidationError, "amp.enabled", why);
  if (!amp->enabled && section.size() > 1) {
    ctx.Warn("amp", "amp.enabled is false, so DeepSpeed never calls apex and the other amp keys are ignored");
  }
  return Status::OK();
}

Status ParseAmpOptions(ParseContext& ctx, const nlohmann::json& section, AmpConfig* amp) {
  if (!amp->enabled || !section.is_object()) return Status::OK();
  // Python rejects an unexpected keyword argument before amp.initialize runs any of its code.
  const std::vector<std::string>& keys = ApexAmpKeys();
  for (auto it = section.begin(); it != section.end(); ++it) {
    if (std::find(keys.begin(), keys.end(), it.key()) != keys.end()) continue;
    return AmpError(ctx, DsErrorKind::kTypeError, it.key(),
                    "not an option of apex's amp.initialize, to which DeepSpeed passes every amp key but "
                    "\"enabled\"" + DidYouMean(it.key(), keys));
  }
  auto given = [&](const char* key) -> const nlohmann::json* {
    // apex's initialize() treats None as "not overridden".
    auto it = section.find(key);
    return it == section.end() || it->is_null() ? nullptr : &*it;
  };
  // The level first: it sets every property, and the overrides below are checked against it.
  if (section.contains("opt_level")) {
    const nlohmann::json& v = section["opt_level"];
    if (!v.is_string() || !AmpLevelDefaults(v.get<std::string>())) {
      return AmpError(ctx, DsErrorKind::kRuntimeError, "opt_level",
                      "unexpected optimization level " + ShortJson(v) + "; apex's options are \"O0\", \"O1\", \"O2\", \"O3\"");
    }
    amp->opt_level = v.get<std::string>();
  }
  const std::string& level = amp->opt_level;
  const AmpLevel defaults = *AmpLevelDefaults(level);
  amp->cast_model_type = defaults.cast_model_type;
  amp->patch_torch_functions = defaults.patch_torch_functions;
  amp->keep_batchnorm_fp32 = defaults.keep_batchnorm_fp32;
  amp->master_weights = defaults.master_weights;
  amp->dynamic_loss_scale = defaults.dynamic_loss_scale;
  amp->loss_scale = 1.0;

  // The overrides in apex's order; the RuntimeErrors are apex's own (Properties.__setattr__).
  if (const nlohmann::json* v = given("cast_model_type")) {
    std::string dtype;
    RETURN_IF_ERROR(ReadAmpDtype(ctx, "cast_model_type", *v, &dtype));
    if (level == "O1") {
      if (!dtype.empty() && dtype != "fp32") {
        return AmpError(ctx, DsErrorKind::kRuntimeError, "cast_model_type",
                        "O1 inserts casts around ops rather than casting the model weights, so with O1 the weights stay "
                        "fp32; use opt_level \"O2\" or \"O3\" to cast the model (got " + ShortJson(*v) + ")");
      }
      amp->cast_model_type = dtype.empty() ? std::nullopt : std::optional<std::string>(dtype);
    } else if (level == "O0" ? (dtype.empty() || dtype == "fp32") : dtype == "fp16") {
      amp->cast_model_type = level == "O0" ? "fp32" : "fp16";
    } else {
      ctx.Unsupported("amp.cast_model_type", StrCat(ShortJson(*v), " at ", level, ": dscompile's ", level,
                                                    " computes in ", LevelModelType(level), " only"));
    }
  }
  if (const nlohmann::json* v = given("patch_torch_functions")) {
    if (!v->is_boolean()) {
      return AmpError(ctx, DsErrorKind::kValueError, "patch_torch_functions", "expected true or false, got " + ShortJson(*v));
    }
    const bool patch = v->get<bool>();
    if (level != "O1" && patch) {
      return AmpError(ctx, DsErrorKind::kRuntimeError, "patch_torch_functions",
                      "true should only be set by selecting opt_level \"O1\" (apex refuses it at " + level + ")");
    }
    if (level == "O1" && !patch) {
      ctx.Unsupported("amp.patch_torch_functions",
                      "false at O1 (no per-op casts: an fp32 model with loss scaling); dscompile's O1 always casts");
    }
    amp->patch_torch_functions = patch;
  }
  if (const nlohmann::json* v = given("keep_batchnorm_fp32")) {
    if (level == "O1") {
      return AmpError(ctx, DsErrorKind::kRuntimeError, "keep_batchnorm_fp32",
                      "with opt_level O1, batchnorm runs in fp32 anyway, so keep_batchnorm_fp32 must be null (got " +
                          ShortJson(*v) + ")");
    }
    if (v->is_boolean()) {
      amp->keep_batchnorm_fp32 = v->get<bool>();
    } else if (v->is_string() && (v->get<std::string>() == "True" || v->get<std::string>() == "False")) {
      amp->keep_batchnorm_fp32 = v->get<std::string>() == "True";
    } else {
      return AmpError(ctx, DsErrorKind::kAssertionError, "keep_batchnorm_fp32",
                      "must be a boolean, the string \"True\" or \"False\", or null, got " + ShortJson(*v));
    }
  }
  if (const nlohmann::json* v = given("master_weights")) {
    if (level == "O1") {
      return AmpError(ctx, DsErrorKind::kRuntimeError, "master_weights",
                      "master weights make no sense with O1, whose model weights stay fp32; it must be null (got " +
                          ShortJson(*v) + ")");
    }
    if (!v->is_boolean()) {
      return AmpError(ctx, DsErrorKind::kValueError, "master_weights", "expected true, false or null, got " + ShortJson(*v));
    }
    amp->master_weights = v->get<bool>();
  }
  if (const nlohmann::json* v = given("loss_scale")) RETURN_IF_ERROR(ReadAmpLossScale(ctx, *v, amp));
  if (level == "O0" && (amp->dynamic_loss_scale || amp->loss_scale != 1.0)) {
    ctx.Unsupported("amp.loss_scale", "loss scaling at O0: dscompile's O0 is plain fp32 training, without a loss scale");
  }
  if (const nlohmann::json* v = given("min_loss_scale")) {
    double floor = 0;
    RETURN_IF_ERROR(ReadAmpScaleBound(ctx, "min_loss_scale", *v, &floor));
    // apex applies the floor only when it is truthy and above the halved scale; <= 0 never is.
    if (floor > 0) {
      amp->min_loss_scale = floor;
    } else {
      ctx.Warn("amp.min_loss_scale", "is " + ShortJson(*v) + ": a floor <= 0 never applies (apex treats it as none)");
    }
  }
  if (section.contains("max_loss_scale")) {
    RETURN_IF_ERROR(ReadAmpScaleBound(ctx, "max_loss_scale", section["max_loss_scale"], &amp->max_loss_scale));
    if (amp->max_loss_scale <= 0) {
      return AmpError(ctx, DsErrorKind::kValueError, "max_loss_scale",
                      "must be > 0 (apex caps the dynamic scale with it), got " + ShortJson(section["max_loss_scale"]));
    }
  }
  if (amp->min_loss_scale && *amp->min_loss_scale > amp->max_loss_scale) {
    return AmpError(ctx, DsErrorKind::kValueError, "min_loss_scale",
                    StrCat("is ", *amp->min_loss_scale, ", above max_loss_scale ", amp->max_loss_scale,
                           "; the dynamic scale could then never stay within both"));
  }
  if (const nlohmann::json* v = given("cast_model_outputs")) {
    std::string dtype;
    RETURN_IF_ERROR(ReadAmpDtype(ctx, "cast_model_outputs", *v, &dtype));
    if (dtype == "fp32") {
      amp->cast_model_outputs = dtype;
    } else if (!dtype.empty()) {
      ctx.Unsupported("amp.cast_model_outputs",
                      ShortJson(*v) + ": the model's output is the loss, which dscompile always computes in fp32");
    }
  }
  if (section.contains("num_losses")) RETURN_IF_ERROR(ReadAmpCount(ctx, "num_losses", section["num_losses"], 1, &amp->num_losses));
  if (section.contains("verbosity")) RETURN_IF_ERROR(ReadAmpCount(ctx, "verbosity", section["verbosity"], INT64_MIN, &amp->verbosity));
  return Status::OK();
}

nlohmann::json Fp16ToJson(const Fp16Config& f) {
  return {{"enabled", f.enabled}, {"auto_cast", f.auto_cast}, {"loss_scale", f.loss_scale},
          {"initial_scale_power", f.initial_scale_power}, {"loss_scale_window", f.loss_scale_window},
          {"hysteresis", f.hysteresis}, {"consecutive_hysteresis", f.consecutive_hysteresis},
          {"min_loss_scale", f.min_loss_scale},
          {"fp16_master_weights_and_grads", f.fp16_master_weights_and_grads}};
}

nlohmann::json Bf16ToJson(const Bf16Config& b) {
  return {{"enabled", b.enabled}, {"immediate_grad_update", b.immediate_grad_update},
          {"check_grad_overflow", b.check_grad_overflow},
          {"bf16_master_weights_and_grads", b.bf16_master_weights_and_grads},
          {"bf16_optimizer_states", b.bf16_optimizer_states}};
}

nlohmann::json DataTypesToJson(const DataTypesConfig& t) {
  return {{"grad_accum_dtype", OptJson(t.grad_accum_dtype)}, {"param_dtype", OptJson(t.param_dtype)},
          {"buffer_dtype", OptJson(t.buffer_dtype)}};
}

nlohmann::json AmpToJson(const AmpConfig& a) {
  if (!a.enabled) return {{"enabled", false}};
  auto opt_bool = [](const std::optional<bool>& b) { return b ? nlohmann::json(*b) : nlohmann::json(nullptr); };
  return {{"enabled", true},
          {"opt_level", a.opt_level},
          {"cast_model_type", OptJson(a.cast_model_type)},
          {"patch_torch_functions", a.patch_torch_functions},
          {"keep_batchnorm_fp32", opt_bool(a.keep_batchnorm_fp32)},
          {"master_weights", opt_bool(a.master_weights)},
          {"loss_scale", a.dynamic_loss_scale ? nlohmann::json("dynamic") : nlohmann::json(a.loss_scale)},
          {"min_loss_scale", a.min_loss_scale ? nlohmann::json(*a.min_loss_scale) : nlohmann::json(nullptr)},
          {"max_loss_scale", a.max_loss_scale},
          {"cast_model_outputs", OptJson(a.cast_model_outputs)},
          {"num_losses", a.num_losses},
          {"verbosity", a.verbosity}};
}

}  // namespace dsc
