#include "frontend/config/scheduler_config.h"

#include <algorithm>
#include <map>

#include "frontend/config/key_suggest.h"

namespace dsc {
namespace {

const std::vector<std::string> kSchedules = {"WarmupLR", "WarmupDecayLR", "WarmupCosineLR", "OneCycle", "LRRangeTest"};
const std::vector<std::string> kTorchSchedulers = {
    "LambdaLR", "MultiplicativeLR", "StepLR", "MultiStepLR", "ConstantLR", "LinearLR", "ExponentialLR",
    "SequentialLR", "CosineAnnealingLR", "ChainedScheduler", "ReduceLROnPlateau", "CyclicLR",
    "CosineAnnealingWarmRestarts", "OneCycleLR", "PolynomialLR", "LRScheduler"};

std::vector<std::string> KeysOf(const std::string& type) {
  if (type == "WarmupLR") return {"warmup_min_lr", "warmup_max_lr", "warmup_num_steps", "warmup_type", "last_batch_iteration"};
  if (type == "WarmupDecayLR") return {"total_num_steps", "warmup_min_lr", "warmup_max_lr", "warmup_num_steps", "warmup_type", "last_batch_iteration"};
  if (type == "WarmupCosineLR") return {"total_num_steps", "warmup_min_ratio", "warmup_num_steps", "cos_min_ratio", "warmup_type", "last_batch_iteration"};
  if (type == "OneCycle") {
    return {"cycle_min_lr", "cycle_max_lr", "decay_lr_rate", "cycle_first_step_size", "cycle_second_step_size",
            "cycle_first_stair_count", "cycle_second_stair_count", "decay_step_size", "cycle_momentum",
            "cycle_min_mom", "cycle_max_mom", "decay_mom_rate", "last_batch_iteration"};
  }
  return {"lr_range_test_min_lr", "lr_range_test_step_size", "lr_range_test_step_rate", "lr_range_test_staircase", "last_batch_iteration"};
}

// Reads schedule parameters: a scalar or a one-element list (our single parameter group).
class ParamReader {
 public:
  ParamReader(ParseContext& ctx, const nlohmann::json& params) : ctx_(ctx), params_(params) {}

  // The value under key, or nullptr when absent or "auto" (then the default applies).
  const nlohmann::json* Get(const std::string& key, bool has_default, Status* status) {
    if (!params_.contains(key)) return nullptr;
    const nlohmann::json* v = &params_.at(key);
    if (v->is_array()) {
      if (v->size() != 1) {
        *status = ctx_.Error(DsErrorKind::kValueError, Path(key),
                             StrCat("expected 1 value (one parameter group), got ", v->size(), ": ", ShortJson(*v)));
        return nullptr;
      }
      v = &(*v)[0];
    }
    if (v->is_string() && v->get<std::string>() == "auto") {
      if (!has_default) {
        *status = ctx_.Error(DsErrorKind::kTypeError, Path(key), "is \"auto\" but has no default and cannot be derived; give a value");
        return nullptr;
      }
      ctx_.auto_keys.push_back(Path(key));
      return nullptr;
    }
    return v;
  }

  Status Number(const std::string& key, double* out) {
    Status s;
    const nlohmann::json* v = Get(key, true, &s);
    RETURN_IF_ERROR(s);
    if (!v) return Status::OK();
    if (!v->is_number()) return ctx_.Error(DsErrorKind::kTypeError, Path(key), "expected a number, got " + ShortJson(*v));
    *out = v->get<double>();
    return Status::OK();
  }
  Status RequiredNumber(const std::string& key, const std::string& type, double* out) {
    Status s;
    const nlohmann::json* v = Get(key, false, &s);
    RETURN_IF_ERROR(s);
    if (!params_.contains(key)) {
      return ctx_.Error(DsErrorKind::kTypeError, Path(key), "is required by " + type);
    }
    if (!v || !v->is_number()) return ctx_.Error(DsErrorKind::kTypeError, Path(key), "expected a number, got " + ShortJson(params_.at(key)));
    *out = v->get<double>();
    return Status::OK();
  }
  // DeepSpeed checks isinstance(value, int) and value > 0: 10.0 (in a dict; a file's hjson reads it
  // as 10), false and null are refused, and true is Python's int 1.
  Status PositiveInt(const std::string& key, int64_t* out) {
    Status s;
    const nlohmann::json* v = Get(key, true, &s);
    RETURN_IF_ERROR(s);
    if (!v) return Status::OK();
    const int64_t value = v->is_boolean() ? v->get<bool>() : v->is_number_integer() ? v->get<int64_t>() : 0;
    if (value <= 0) {
      return ctx_.Error(DsErrorKind::kValueError, Path(key), "must be a positive integer, got " + ShortJson(*v));
    }
    *out = value;
    return Status::OK();
  }
  Status Int(const std::string& key, int64_t* out) {
    Status s;
    const nlohmann::json* v = Get(key, true, &s);
    RETURN_IF_ERROR(s);
    if (!v) return Status::OK();
    if (!v->is_number_integer()) return ctx_.Error(DsErrorKind::kTypeError, Path(key), "expected an integer, got " + ShortJson(*v));
    *out = v->get<int64_t>();
    return Status::OK();
  }
  Status Bool(const std::string& key, bool* out) {
    Status s;
    const nlohmann::json* v = Get(key, true, &s);
    RETURN_IF_ERROR(s);
    if (!v) return Status::OK();
    if (!v->is_boolean()) return ctx_.Error(DsErrorKind::kTypeError, Path(key), "expected true or false, got " + ShortJson(*v));
    *out = v->get<bool>();
    return Status::OK();
  }
  // null and "auto" mean "none" (DeepSpeed's None: the optimizer's lr, the first step size).
  Status OptionalNumber(const std::string& key, std::optional<double>* out) {
    if (!params_.contains(key)) return Status::OK();
    Status s;
    const nlohmann::json* v = Get(key, true, &s);
    RETURN_IF_ERROR(s);
    if (!v || v->is_null()) {
      out->reset();
      return Status::OK();
    }
    if (!v->is_number()) return ctx_.Error(DsErrorKind::kTypeError, Path(key), "expected a number or null, got " + ShortJson(*v));
    *out = v->get<double>();
    return Status::OK();
  }
  bool IsNull(const std::string& key) const { return params_.contains(key) && params_.at(key).is_null(); }
  std::string Path(const std::string& key) const { return "scheduler.params." + key; }

 private:
  ParseContext& ctx_;
  const nlohmann::json& params_;
};

Status ParseWarmup(ParseContext& ctx, ParamReader& p, SchedulerConfig* s) {
  RETURN_IF_ERROR(p.PositiveInt("warmup_num_steps", &s->warmup_num_steps));
  Status st;
  if (const nlohmann::json* v = p.Get("warmup_type", true, &st)) {
    if (!v->is_string() || (v->get<std::string>() != "log" && v->get<std::string>() != "linear")) {
      ctx.Warn(p.Path("warmup_type"), "unknown warmup type " + ShortJson(*v) + "; DeepSpeed falls back to \"log\"" +
                                          (v->is_string() ? DidYouMean(v->get<std::string>(), {"log", "linear"}) : ""));
    } else {
      s->warmup_type = v->get<std::string>();
    }
  }
  return st;
}

}  // namespace

Status ParseSchedulerSection(ParseContext& ctx, const nlohmann::json& section, SchedulerConfig* s) {
  if (section.is_null()) return Status::OK();
  if (!section.is_object()) return ctx.Error(DsErrorKind::kValueError, "scheduler", "expected an object, got " + ShortJson(section));
  SectionReader r(ctx, "scheduler", section, DsErrorKind::kValueError, /*strip_auto=*/false);
  const nlohmann::json* type = r.Get("type");
  const nlohmann::json* given = r.Get("params");
  RETURN_IF_ERROR(r.FinishPlainDict());
  if (!type || type->is_null()) {
    // DeepSpeed reads params only with a type: no schedule, the optimizer's lr throughout.
    if (given && !given->is_null()) ctx.Warn("scheduler.params", "ignored without scheduler.type, as DeepSpeed ignores them");
    return Status::OK();
  }
  if (!type->is_string()) return r.Error("type", "expected a scheduler name, got " + ShortJson(*type));
  const std::string name = type->get<std::string>();
  if (std::find(kTorchSchedulers.begin(), kTorchSchedulers.end(), name) != kTorchSchedulers.end()) {
    ctx.Unsupported("scheduler.type", "torch LR scheduler \"" + name + "\" (use one of DeepSpeed's: WarmupLR, "
                                      "WarmupDecayLR, WarmupCosineLR, OneCycle, LRRangeTest)");
    s->torch_scheduler = {{"type", name}, {"params", given ? *given : nlohmann::json(nullptr)}};
    return Status::OK();
  }
  if (std::find(kSchedules.begin(), kSchedules.end(), name) == kSchedules.end()) {
    return r.Error(DsErrorKind::kAssertionError, "type",
                   "DeepSpeed does not recognize LR scheduler \"" + name + "\"" + DidYouMean(name, kSchedules));
  }
  s->type = name;
  if (given && !given->is_null() && !given->is_object()) {
    return r.Error(DsErrorKind::kTypeError, "params", "expected an object of schedule parameters, got " + ShortJson(*given));
  }
  static const nlohmann::json kEmpty = nlohmann::json::object();
  const nlohmann::json& params = (given && given->is_object()) ? *given : kEmpty;
  std::vector<std::string> keys = KeysOf(name);
  for (auto it = params.begin(); it != params.end(); ++it) {
    if (std::find(keys.begin(), keys.end(), it.key()) == keys.end()) {
      return ctx.Error(DsErrorKind::kTypeError, "scheduler.params." + it.key(),
                       "is not a parameter of " + name + DidYouMean(it.key(), keys));
    }
  }
  ParamReader p(ctx, params);
  RETURN_IF_ERROR(p.Int("last_batch_iteration", &s->last_batch_iteration));
  if (name == "WarmupLR" || name == "WarmupDecayLR") {
    if (name == "WarmupDecayLR") s->warmup_max_lr = 0.001;
    RETURN_IF_ERROR(ParseWarmup(ctx, p, s));
    RETURN_IF_ERROR(p.Number("warmup_min_lr", &s->warmup_min_lr));
    RETURN_IF_ERROR(p.OptionalNumber("warmup_max_lr", &s->warmup_max_lr));
    if (name == "WarmupDecayLR") {
      RETURN_IF_ERROR(p.RequiredNumber("total_num_steps", name, &s->total_num_steps));
      if (s->total_num_steps < std::max<int64_t>(2, s->warmup_num_steps)) {
        ctx.Warn(p.Path("total_num_steps"), StrCat("(", s->total_num_steps, ") is smaller than warmup_num_steps (",
                                                   s->warmup_num_steps, "): the LR never decays"));
      }
    }
  } else if (name == "WarmupCosineLR") {
    RETURN_IF_ERROR(ParseWarmup(ctx, p, s));
    RETURN_IF_ERROR(p.RequiredNumber("total_num_steps", name, &s->total_num_steps));
    RETURN_IF_ERROR(p.Number("warmup_min_ratio", &s->warmup_min_ratio));
    RETURN_IF_ERROR(p.Number("cos_min_ratio", &s->cos_min_ratio));
  } else if (name == "OneCycle") {
    RETURN_IF_ERROR(p.RequiredNumber("cycle_min_lr", name, &s->cycle_min_lr));
    RETURN_IF_ERROR(p.RequiredNumber("cycle_max_lr", name, &s->cycle_max_lr));
    RETURN_IF_ERROR(p.Number("decay_lr_rate", &s->decay_lr_rate));
    RETURN_IF_ERROR(p.Number("cycle_first_step_size", &s->cycle_first_step_size));
    RETURN_IF_ERROR(p.OptionalNumber("cycle_second_step_size", &s->cycle_second_step_size));
    RETURN_IF_ERROR(p.Int("cycle_first_stair_count", &s->cycle_first_stair_count));
    if (!p.IsNull("cycle_second_stair_count") && params.contains("cycle_second_stair_count")) {
      int64_t stairs = 0;
      RETURN_IF_ERROR(p.Int("cycle_second_stair_count", &stairs));
      s->cycle_second_stair_count = stairs;
    }
    RETURN_IF_ERROR(p.Number("decay_step_size", &s->decay_step_size));
    RETURN_IF_ERROR(p.Bool("cycle_momentum", &s->cycle_momentum));
    RETURN_IF_ERROR(p.Number("cycle_min_mom", &s->cycle_min_mom));
    RETURN_IF_ERROR(p.Number("cycle_max_mom", &s->cycle_max_mom));
    RETURN_IF_ERROR(p.Number("decay_mom_rate", &s->decay_mom_rate));
    if (s->cycle_first_step_size <= 0) {
      return ctx.Error(DsErrorKind::kValueError, p.Path("cycle_first_step_size"),
                       StrCat("must be positive, got ", s->cycle_first_step_size));
    }
    if (s->cycle_second_step_size && *s->cycle_second_step_size < 0) {
      return ctx.Error(DsErrorKind::kValueError, p.Path("cycle_second_step_size"),
                       StrCat("must be non-negative, got ", *s->cycle_second_step_size));
    }
    if (s->cycle_first_stair_count < 0 || s->cycle_second_stair_count.value_or(0) < 0) {
      return ctx.Error(DsErrorKind::kValueError, p.Path("cycle_first_stair_count"), "stair counts must be >= 0");
    }
  } else {  // LRRangeTest
    RETURN_IF_ERROR(p.Number("lr_range_test_min_lr", &s->lr_range_test_min_lr));
    RETURN_IF_ERROR(p.PositiveInt("lr_range_test_step_size", &s->lr_range_test_step_size));
    RETURN_IF_ERROR(p.Number("lr_range_test_step_rate", &s->lr_range_test_step_rate));
    RETURN_IF_ERROR(p.Bool("lr_range_test_staircase", &s->lr_range_test_staircase));
  }
  return Status::OK();
}

nlohmann::json SchedulerToJson(const SchedulerConfig& s, std::optional<double> optimizer_lr) {
  if (!s.present()) return s.torch_scheduler;
  nlohmann::json p;
  auto opt = [](const auto& o) { return o ? nlohmann::json(*o) : nlohmann::json(nullptr); };
  if (s.type == "WarmupLR" || s.type == "WarmupDecayLR" || s.type == "WarmupCosineLR") {
    p["warmup_num_steps"] = s.warmup_num_steps;
    p["warmup_type"] = s.warmup_type;
  }
  if (s.type == "WarmupLR" || s.type == "WarmupDecayLR") {
    p["warmup_min_lr"] = s.warmup_min_lr;
    p["warmup_max_lr"] = s.warmup_max_lr ? nlohmann::json(*s.warmup_max_lr) : opt(optimizer_lr);
  }
  if (s.type == "WarmupDecayLR" || s.type == "WarmupCosineLR") p["total_num_steps"] = s.total_num_steps;
  if (s.type == "WarmupCosineLR") {
    p["warmup_min_ratio"] = s.warmup_min_ratio;
    p["cos_min_ratio"] = s.cos_min_ratio;
  }
  if (s.type == "OneCycle") {
    p = {{"cycle_min_lr", s.cycle_min_lr}, {"cycle_max_lr", s.cycle_max_lr}, {"decay_lr_rate", s.decay_lr_rate},
         {"cycle_first_step_size", s.cycle_first_step_size},
         {"cycle_second_step_size", s.cycle_second_step_size.value_or(s.cycle_first_step_size)},
         {"cycle_first_stair_count", s.cycle_first_stair_count},
         {"cycle_second_stair_count", s.cycle_second_stair_count.value_or(s.cycle_first_stair_count)},
         {"decay_step_size", s.decay_step_size}, {"cycle_momentum", s.cycle_momentum},
         {"cycle_min_mom", s.cycle_min_mom}, {"cycle_max_mom", s.cycle_max_mom}, {"decay_mom_rate", s.decay_mom_rate}};
  }
  if (s.type == "LRRangeTest") {
    p = {{"lr_range_test_min_lr", s.lr_range_test_min_lr}, {"lr_range_test_step_size", s.lr_range_test_step_size},
         {"lr_range_test_step_rate", s.lr_range_test_step_rate}, {"lr_range_test_staircase", s.lr_range_test_staircase}};
  }
  p["last_batch_iteration"] = s.last_batch_iteration;
  return {{"type", s.type}, {"params", p}};
}

}  // namespace dsc
