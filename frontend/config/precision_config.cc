#include "frontend/config/precision_config.h"

#include <cmath>

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
  if (r.Has("check_overflow")) {
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
  return r.Finish();
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

}  // namespace dsc
