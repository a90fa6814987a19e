#include "frontend/config/optimizer_config.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <map>

#include "frontend/config/key_suggest.h"
#include "frontend/config/precision_config.h"
#include "frontend/config/zero_config.h"

namespace dsc {
namespace {

const std::vector<std::string> kDeepSpeedOptimizers = {
    "adagrad", "adam", "adamw", "lamb", "onebitadam", "onebitlamb", "zerooneadam",
    "muadam", "muadamw", "musgd", "lion", "muon"};
const std::vector<std::string> kTorchOptimizers = {
    "Adadelta", "Adafactor", "Adagrad", "Adam", "AdamW", "Adamax", "ASGD", "LBFGS",
    "NAdam", "RAdam", "RMSprop", "Rprop", "SGD", "SparseAdam"};

// The torch.optim classes other than SGD whose constructor arguments and defaults are read here
// (the element-wise optimizers dscompile runs as OptimStep).
const std::vector<std::string> kElementwiseTorchOptimizers = {"RMSprop", "Adamax", "NAdam", "RAdam", "Adadelta"};

// One constructor parameter: its default and how to read it.
enum class ParamKind { kFloat, kBool, kBetas, kString, kIgnored };
struct ParamSpec {
  ParamKind kind;
  nlohmann::json default_value;
};
using ParamTable = std::map<std::string, ParamSpec>;

const nlohmann::json kBetas = {0.9, 0.999};

ParamTable TableFor(const std::string& impl) {
  ParamTable t;
  auto f = [&t](const char* n, double d) { t[n] = {ParamKind::kFloat, d}; };
  auto b = [&t](const char* n, bool d) { t[n] = {ParamKind::kBool, d}; };
  auto torch_flags = [&t] {
    for (const char* n : {"foreach", "fused"}) t[n] = {ParamKind::kIgnored, nullptr};
    for (const char* n : {"maximize", "capturable", "differentiable"}) t[n] = {ParamKind::kBool, false};
  };
  if (impl == "FusedAdam" || impl == "DeepSpeedCPUAdam") {
    f("lr", 1e-3); b("bias_correction", true); t["betas"] = {ParamKind::kBetas, kBetas};
    f("eps", 1e-8); f("weight_decay", 0.0); b("amsgrad", false);
    if (impl == "FusedAdam") b("set_grad_none", true);
    if (impl == "DeepSpeedCPUAdam") b("fp32_optimizer_states", true);
  } else if (impl == "torch.optim.Adam" || impl == "torch.optim.AdamW") {
    f("lr", 1e-3); t["betas"] = {ParamKind::kBetas, kBetas}; f("eps", 1e-8);
    f("weight_decay", impl == "torch.optim.AdamW" ? 0.01 : 0.0); b("amsgrad", false);
    torch_flags();
  } else if (impl == "torch.optim.Adagrad") {
    // torch 2.x: foreach, maximize, differentiable, fused (no capturable).
    f("lr", 1e-2); f("lr_decay", 0.0); f("weight_decay", 0.0); f("initial_accumulator_value", 0.0);
    f("eps", 1e-10); torch_flags(); t.erase("capturable");
  } else if (impl == "torch.optim.RMSprop") {
    f("lr", 1e-2); f("alpha", 0.99); f("eps", 1e-8); f("weight_decay", 0.0); f("momentum", 0.0);
    b("centered", false); torch_flags(); t.erase("fused");
  } else if (impl == "torch.optim.Adamax") {
    f("lr", 2e-3); t["betas"] = {ParamKind::kBetas, kBetas}; f("eps", 1e-8); f("weight_decay", 0.0);
    torch_flags(); t.erase("fused");
  } else if (impl == "torch.optim.NAdam") {
    f("lr", 2e-3); t["betas"] = {ParamKind::kBetas, kBetas}; f("eps", 1e-8); f("weight_decay", 0.0);
    f("momentum_decay", 4e-3); b("decoupled_weight_decay", false); torch_flags(); t.erase("fused");
  } else if (impl == "torch.optim.RAdam") {
    f("lr", 1e-3); t["betas"] = {ParamKind::kBetas, kBetas}; f("eps", 1e-8); f("weight_decay", 0.0);
    b("decoupled_weight_decay", false); torch_flags(); t.erase("fused");
  } else if (impl == "torch.optim.Adadelta") {
    f("lr", 1.0); f("rho", 0.9); f("eps", 1e-6); f("weight_decay", 0.0); torch_flags(); t.erase("fused");
  } else if (impl == "DeepSpeedCPUAdagrad") {
    f("lr", 1e-2); f("eps", 1e-10); f("weight_decay", 0.0); b("amsgrad", false);
  } else if (impl == "FusedLamb") {
    f("lr", 1e-3); b("bias_correction", true); t["betas"] = {ParamKind::kBetas, kBetas}; f("eps", 1e-8);
    b("eps_inside_sqrt", false); f("weight_decay", 0.0); f("max_coeff", 10.0); f("min_coeff", 0.01);
    b("amsgrad", false);
  } else if (impl == "FusedLion" || impl == "DeepSpeedCPULion") {
    f("lr", 1e-3); t["betas"] = {ParamKind::kBetas, kBetas}; f("weight_decay", 0.0);
    if (impl == "FusedLion") b("set_grad_none", true);
    if (impl == "DeepSpeedCPULion") b("fp32_optimizer_states", true);
  } else if (impl == "OnebitAdam") {
    // deepspeed/runtime/fp16/onebit/adam.py's constructor (max_grad_norm is refused before this).
    f("lr", 1e-3); f("freeze_step", 100000); b("bias_correction", true); t["betas"] = {ParamKind::kBetas, kBetas};
    f("eps", 1e-8); b("eps_inside_sqrt", false); f("weight_decay", 0.0); b("amsgrad", false); b("cuda_aware", false);
    t["comm_backend_name"] = {ParamKind::kString, "nccl"};
  } else if (impl == "ZeroOneAdam") {
    // deepspeed/runtime/fp16/onebit/zoadam.py's constructor (max_grad_norm is refused before this).
    f("lr", 1e-3); b("bias_correction", true); t["betas"] = {ParamKind::kBetas, kBetas}; f("eps", 1e-8);
    b("eps_inside_sqrt", false); f("weight_decay", 0.0); f("var_freeze_step", 100000); f("var_update_scaler", 16);
    f("local_step_scaler", 32678); f("local_step_clipper", 16); b("amsgrad", false); b("cuda_aware", false);
    t["comm_backend_name"] = {ParamKind::kString, "nccl"};
  } else if (impl == "OnebitLamb") {
    // deepspeed/runtime/fp16/onebit/lamb.py's constructor (max_grad_norm is refused before this).
    f("lr", 1e-3); f("freeze_step", 100000); b("bias_correction", true); t["betas"] = {ParamKind::kBetas, kBetas};
    f("eps", 1e-8); b("eps_inside_sqrt", false); f("weight_decay", 0.0); f("max_coeff", 10.0); f("min_coeff", 0.01);
    b("amsgrad", false); b("cuda_aware", false); t["comm_backend_name"] = {ParamKind::kString, "nccl"};
    f("coeff_beta", 0.9); f("factor_max", 4.0); f("factor_min", 0.5); f("factor_threshold", 0.1);
  } else if (impl == "torch.optim.SGD") {
    f("lr", 1e-3); f("momentum", 0.0); f("dampening", 0.0); f("weight_decay", 0.0); b("nesterov", false);
    torch_flags();
  }
  return t;
}

std::string Lower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

bool Contains(const std::vector<std::string>& v, const std::string& s) {
  return std::find(v.begin(), v.end(), s) != v.end();
}

// Why dscompile does not run an optimizer DeepSpeed accepts (the parser records it as unsupported).
std::string WhyNotRun(const std::string& type) {
  if (type == "muadam" || type == "muadamw" || type == "musgd")
    return "the mup package's optimizers scale each parameter's learning rate by its width relative to "
           "muP's base shapes (set_base_shapes on the PyTorch model), which an ONNX graph does not carry";
  return "torch.optim." + type + " is not implemented by dscompile (it runs Adam, AdamW, SGD, Lamb, Lion, Muon, Adagrad, "
         "RMSprop, Adamax, NAdam, RAdam and Adadelta)";
}

// "muon": the engine (engine.py:2197-2235) builds MuonWithAuxAdam from two groups: the use_muon
// parameters with lr, momentum, weight_decay, ns_method (muon_lr overrides lr), the others with
// lr, betas, eps, weight_decay (adam_lr overrides lr); original_muon.py:303-325 fills the rest
// (Muon: lr 0.02, momentum 0.95, weight_decay 0, ns_method "gram" asserted in {standard, gram};
// Adam: lr 3e-4, betas (0.9, 0.95), eps 1e-10, weight_decay 0). Other keys are never read there.
Status ParseMuonParams(ParseContext& ctx, const std::string& ppath, const nlohmann::json& params, OptimizerConfig* opt) {
  static const std::vector<std::string> known = {"lr", "muon_lr", "adam_lr", "momentum", "weight_decay",
                                                 "ns_method", "betas", "eps"};
  std::map<std::string, double> num;
  for (auto it = params.begin(); it != params.end(); ++it) {
    const std::string kpath = JoinPath(ppath, it.key());
    if (!Contains(known, it.key())) {
      ctx.Warn(kpath, "is not read by DeepSpeed's MuonWithAuxAdam (it takes " + nlohmann::json(known).dump() +
                          "), which ignores it" + DidYouMean(it.key(), known));
      continue;
    }
    const nlohmann::json& v = it.value();
    if (v.is_string() && v.get<std::string>() == "auto") {
      ctx.auto_keys.push_back(kpath);
      continue;
    }
    if (it.key() == "ns_method") {
      if (!v.is_string() || (v.get<std::string>() != "standard" && v.get<std::string>() != "gram"))
        return ctx.Error(DsErrorKind::kAssertionError, kpath,
                         "ns_method must be one of {'standard', 'gram'}, got " + ShortJson(v));
      opt->ns_method = v.get<std::string>();
    } else if (it.key() == "betas") {
      if (!v.is_array() || v.size() != 2 || !v[0].is_number() || !v[1].is_number())
        return ctx.Error(DsErrorKind::kTypeError, kpath, "expected two numbers [beta1, beta2], got " + ShortJson(v));
      opt->betas = {v[0].get<double>(), v[1].get<double>()};
    } else {
      double d = 0;
      if (std::string why = StrictNumber(v, &d); !why.empty()) return ctx.Error(DsErrorKind::kTypeError, kpath, why);
      num[it.key()] = d;
    }
  }
  auto get = [&num](const char* k, double fallback) { return num.count(k) ? num[k] : fallback; };
  opt->muon_lr = get("muon_lr", get("lr", 0.02));
  opt->adam_lr = get("adam_lr", get("lr", 3e-4));
  opt->lr = opt->muon_lr;
  opt->momentum = get("momentum", 0.95);
  opt->weight_decay = get("weight_decay", 0.0);
  opt->eps = get("eps", 1e-10);
  if (!params.contains("betas") || params["betas"].is_string()) opt->betas = {0.9, 0.95};
  // What each group gets, in the engine's names (the resolved config parses back to the same).
  opt->params = {{"muon_lr", opt->muon_lr},   {"adam_lr", opt->adam_lr},           {"momentum", opt->momentum},
                 {"weight_decay", opt->weight_decay}, {"ns_method", opt->ns_method}, {"betas", opt->betas},
                 {"eps", opt->eps}};
  return Status::OK();
}

// ZeroOneAdam's step counts: zoadam.py compares them with ==, doubles intervals and takes a step
// modulo them, so a fraction or a value below 1 makes an interval that never doubles, a
// fractional interval or a modulo by zero; dscompile runs whole counts of at least 1.
Status ReadZoadamCounts(ParseContext& ctx, const std::string& ppath, const nlohmann::json& effective,
                        OptimizerConfig* opt) {
  opt->var_freeze_step = effective["var_freeze_step"].get<double>();
  const std::pair<const char*, int64_t*> counts[] = {{"var_update_scaler", &opt->var_update_scaler},
                                                     {"local_step_scaler", &opt->local_step_scaler},
                                                     {"local_step_clipper", &opt->local_step_clipper}};
  for (const auto& [key, out] : counts) {
    const double d = effective[key].get<double>();
    if (!(d >= 1 && d <= 1e15 && std::floor(d) == d)) {
      ctx.Unsupported(JoinPath(ppath, key), StrCat("0/1 Adam's ", key, " ", d,
                                                   " (dscompile runs a whole number of steps >= 1; DeepSpeed compares "
                                                   "it with a step counter and doubles intervals by it)"));
      continue;
    }
    *out = static_cast<int64_t>(d);
  }
  return Status::OK();
}

// The 1-bit optimizers' (OnebitAdam's, OnebitLamb's, ZeroOneAdam's) own keys: freeze_step or
// ZeroOneAdam's counts, 1-bit Lamb's coefficient limits, the backend its compressed all-reduce runs
// on, and the keys its step() accepts but never reads (said, so a user setting them learns it).
Status ReadOnebitParams(ParseContext& ctx, const std::string& ppath, const nlohmann::json& given,
                        const nlohmann::json& effective, OptimizerConfig* opt) {
  const bool zoadam = opt->implementation == "ZeroOneAdam";
  const bool lamb = opt->implementation == "OnebitLamb";
  const std::string family = zoadam ? "0/1 Adam" : lamb ? "1-bit Lamb" : "1-bit Adam";
  if (opt->amsgrad)
    return ctx.Error(DsErrorKind::kRuntimeError, ppath + ".amsgrad", family + " does not support the AMSGrad variant.");
  if (lamb) {
    opt->coeff_beta = effective["coeff_beta"].get<double>();
    opt->factor_max = effective["factor_max"].get<double>();
    opt->factor_min = effective["factor_min"].get<double>();
    opt->factor_threshold = effective["factor_threshold"].get<double>();
  }
  if (zoadam) {
    RETURN_IF_ERROR(ReadZoadamCounts(ctx, ppath, effective, opt));
  } else {
    opt->freeze_step = effective["freeze_step"].get<double>();
  }
  opt->comm_backend_name = effective["comm_backend_name"].get<std::string>();
  const std::string& b = opt->comm_backend_name;
  if (b == "hccl" || b == "compressed") {
    ctx.Unsupported(ppath + ".comm_backend_name", family + "'s \"" + b + "\" backend (" +
                                                      (b == "hccl" ? "Ascend NPUs" : "the compressed comm library") +
                                                      "; \"nccl\" and \"mpi\" run the same arithmetic on dscompile's ranks)");
  } else if (b != "nccl" && b != "mpi") {
    // OnebitAdam and ZeroOneAdam leave their backend handle None for any other name and fail at once
    // (AttributeError).
    return ctx.Error(DsErrorKind::kValueError, ppath + ".comm_backend_name",
                     "\"" + b + "\" is not a 1-bit backend (nccl, mpi, hccl or compressed)");
  }
  for (const char* key : {"bias_correction", "eps_inside_sqrt", "cuda_aware"})
    if (given.contains(key) && effective[key] != TableFor(opt->implementation)[key].default_value)
      ctx.Warn(JoinPath(ppath, key), "DeepSpeed's " + opt->implementation + " accepts it and never reads it" +
                                         (std::string(key) == "cuda_aware" ? " for arithmetic (it is an MPI transport choice)"
                                                                           : " (its update is never bias-corrected, eps "
                                                                             "outside the square root)") +
                                         "; dscompile does the same");
  return Status::OK();
}

}  // namespace

// MuonWithAuxAdam passes empty defaults to torch.optim.Optimizer (original_muon.py:326): its betas
// are the aux Adam groups' only, so DeepSpeed's OneCycle does not cycle them.
bool OptimizerConfig::has_betas() const { return params.contains("betas") && implementation != "MuonWithAuxAdam"; }

int64_t OptimizerConfig::onebit_last_uncompressed_step() const {
  return std::max<int64_t>(2, static_cast<int64_t>(std::ceil(freeze_step)));
}

int64_t OptimizerConfig::zoadam_last_variance_step() const {
  // The first step s >= 2 with s > var_freeze_step.
  if (!(var_freeze_step < 1e15)) return int64_t{1000000000000000};
  return std::max<int64_t>(2, static_cast<int64_t>(std::floor(var_freeze_step)) + 1);
}

bool OptimizerConfig::zero_supported() const {
  static const std::vector<std::string> supported = {
      "FusedAdam", "DeepSpeedCPUAdam", "torch.optim.Adam", "torch.optim.AdamW",
      "torch.optim.Adagrad", "DeepSpeedCPUAdagrad", "FusedLion", "DeepSpeedCPULion", "MuonWithAuxAdam"};
  return Contains(supported, implementation);
}

Status ParseOptimizerSection(ParseContext& ctx, const nlohmann::json& section, const ZeroConfig& zero,
                             const Bf16Config& bf16, OptimizerConfig* opt) {
  const std::string path = "optimizer";
  if (section.is_null()) return Status::OK();
  if (!section.is_object()) return ctx.Error(DsErrorKind::kValueError, path, "expected an object, got " + ShortJson(section));
  SectionReader r(ctx, path, section, DsErrorKind::kValueError, /*strip_auto=*/false);
  const nlohmann::json* type = r.Get("type");
  RETURN_IF_ERROR(r.Bool("legacy_fusion", &opt->legacy_fusion));
  const nlohmann::json* given = r.Get("params");
  RETURN_IF_ERROR(r.FinishPlainDict());
  if (!type || type->is_null()) {
    // DeepSpeed reads params only with a type and builds no optimizer; the optimizer pass refuses that.
    if (given && !given->is_null()) ctx.Warn("optimizer.params", "ignored without optimizer.type, as DeepSpeed ignores them");
    return Status::OK();
  }
  if (!type->is_string()) return r.Error("type", "expected an optimizer name, got " + ShortJson(*type));
  std::string name = type->get<std::string>();
  const std::string lower = Lower(name);
  const bool offload = zero.optimizer_offloaded();
  if (Contains(kDeepSpeedOptimizers, lower)) {
    opt->type = lower;
  } else if (Contains(kTorchOptimizers, name)) {
    opt->type = name;
  } else {
    std::vector<std::string> all = kTorchOptimizers;
    all.insert(all.end(), {"Adam", "AdamW", "Lamb", "Lion", "Adagrad"});
    return r.Error(DsErrorKind::kAssertionError, "type",
                   "\"" + name + "\" is not a supported DeepSpeed Optimizer" + DidYouMean(name, all));
  }

  if (given && !given->is_null() && !given->is_object()) {
    return r.Error(DsErrorKind::kTypeError, "params", "expected an object of constructor arguments, got " + ShortJson(*given));
  }
  nlohmann::json params = (given && given->is_object()) ? *given : nlohmann::json::object();
  const std::string ppath = "optimizer.params";
  if (params.contains("max_grad_norm")) {
    return ctx.Error(DsErrorKind::kValueError, ppath + ".max_grad_norm",
                     "is not supported as an optimizer parameter; use the top-level \"gradient_clipping\" instead (got " +
                         ShortJson(params["max_grad_norm"]) + ")");
  }

  // Which class DeepSpeed constructs decides the accepted keywords and their defaults.
  const std::string& t = opt->type;
  if (t == "adam" || t == "adamw") {
    for (const char* key : {"torch_adam", "adam_w_mode"}) {
      if (!params.contains(key)) continue;
      bool value = false;
      std::string why = LaxBool(params[key], &value);
      if (!why.empty() || params[key].is_string()) {
        return ctx.Error(DsErrorKind::kTypeError, JoinPath(ppath, key), "expected true or false, got " + ShortJson(params[key]));
      }
      (std::string(key) == "torch_adam" ? opt->torch_adam : opt->adam_w_mode) = value;
      params.erase(key);
    }
    opt->adam_w_mode = t == "adamw" || opt->adam_w_mode;
    opt->implementation = opt->torch_adam ? (opt->adam_w_mode ? "torch.optim.AdamW" : "torch.optim.Adam")
                          : offload       ? "DeepSpeedCPUAdam"
                                          : "FusedAdam";
  } else if (t == "adagrad") {
    opt->implementation = offload ? "DeepSpeedCPUAdagrad" : "torch.optim.Adagrad";
  } else if (t == "lamb") {
    opt->implementation = "FusedLamb";
  } else if (t == "lion") {
    opt->implementation = offload ? "DeepSpeedCPULion" : "FusedLion";
  } else if (t == "muon") {
    opt->implementation = "MuonWithAuxAdam";
    return ParseMuonParams(ctx, ppath, params, opt);
  } else if (t == "onebitadam") {
    // engine.py _configure_basic_optimizer asserts it before building the optimizer.
    if (zero.enabled())
      return ctx.Error(DsErrorKind::kAssertionError, "optimizer.type", "1bit-Adam is not compatible with ZeRO (zero_optimization.stage is " +
                                                                          std::to_string(zero.stage) + ")");
    opt->implementation = "OnebitAdam";
  } else if (t == "zerooneadam") {
    // engine.py _configure_basic_optimizer asserts it before building the optimizer.
    if (zero.enabled())
      return ctx.Error(DsErrorKind::kAssertionError, "optimizer.type", "0/1 Adam is not compatible with ZeRO (zero_optimization.stage is " +
                                                                          std::to_string(zero.stage) + ")");
    opt->implementation = "ZeroOneAdam";
  } else if (t == "onebitlamb") {
    if (zero.enabled())
      return ctx.Error(DsErrorKind::kAssertionError, "optimizer.type", "1bit-Lamb is not compatible with ZeRO (zero_optimization.stage is " +
                                                                          std::to_string(zero.stage) + ")");
    opt->implementation = "OnebitLamb";
  } else if (t == "SGD" || Contains(kElementwiseTorchOptimizers, t)) {
    opt->implementation = "torch.optim." + t;
  } else {
    ctx.Unsupported("optimizer.type", "optimizer \"" + name + "\": " + WhyNotRun(t));
    opt->params = params;
    return Status::OK();
  }

  ParamTable table = TableFor(opt->implementation);
  std::vector<std::string> names;
  for (const auto& [k, spec] : table) names.push_back(k);
  nlohmann::json effective = nlohmann::json::object();
  for (auto it = params.begin(); it != params.end(); ++it) {
    if (!table.count(it.key())) {
      return ctx.Error(DsErrorKind::kTypeError, JoinPath(ppath, it.key()),
                       "is not a parameter of " + opt->implementation + DidYouMean(it.key(), names));
    }
  }
  for (const auto& [key, spec] : table) {
    const std::string kpath = JoinPath(ppath, key);
    nlohmann::json value = spec.default_value;
    if (params.contains(key)) {
      const nlohmann::json& v = params[key];
      if (v.is_string() && v.get<std::string>() == "auto") {
        ctx.auto_keys.push_back(kpath);
      } else if (spec.kind == ParamKind::kFloat) {
        double d = 0;
        std::string why = StrictNumber(v, &d);
        if (!why.empty()) return ctx.Error(DsErrorKind::kTypeError, kpath, why);
        value = d;
      } else if (spec.kind == ParamKind::kBool) {
        if (!v.is_boolean()) return ctx.Error(DsErrorKind::kTypeError, kpath, "expected true or false, got " + ShortJson(v));
        value = v;
      } else if (spec.kind == ParamKind::kString) {
        if (!v.is_string()) return ctx.Error(DsErrorKind::kTypeError, kpath, "expected a string, got " + ShortJson(v));
        value = v;
      } else if (spec.kind == ParamKind::kBetas) {
        if (!v.is_array() || v.size() != 2 || !v[0].is_number() || !v[1].is_number()) {
          return ctx.Error(DsErrorKind::kTypeError, kpath, "expected two numbers [beta1, beta2], got " + ShortJson(v));
        }
        value = v;
      } else {
        value = v;
      }
    }
    effective[key] = value;
  }

  auto num = [&effective](const char* k, double fallback) {
    return effective.contains(k) ? effective[k].get<double>() : fallback;
  };
  opt->lr = num("lr", opt->lr);
  opt->eps = num("eps", 0.0);
  opt->weight_decay = num("weight_decay", 0.0);
  opt->momentum = num("momentum", 0.0);
  opt->dampening = num("dampening", 0.0);
  opt->lr_decay = num("lr_decay", 0.0);
  opt->initial_accumulator_value = num("initial_accumulator_value", 0.0);
  opt->alpha = num("alpha", 0.99);
  opt->rho = num("rho", 0.9);
  opt->momentum_decay = num("momentum_decay", 4e-3);
  opt->max_coeff = num("max_coeff", 10.0);
  opt->min_coeff = num("min_coeff", 0.01);
  if (effective.contains("betas")) opt->betas = {effective["betas"][0].get<double>(), effective["betas"][1].get<double>()};
  auto flag = [&effective](const char* k, bool fallback) {
    return effective.contains(k) ? effective[k].get<bool>() : fallback;
  };
  opt->bias_correction = flag("bias_correction", true);
  opt->amsgrad = flag("amsgrad", false);
  opt->nesterov = flag("nesterov", false);
  opt->eps_inside_sqrt = flag("eps_inside_sqrt", false);
  opt->centered = flag("centered", false);
  opt->decoupled_weight_decay = flag("decoupled_weight_decay", false);
  if (opt->implementation == "DeepSpeedCPUAdam") {
    opt->fp32_optimizer_states = bf16.bf16_optimizer_states ? false : flag("fp32_optimizer_states", true);
    effective["fp32_optimizer_states"] = opt->fp32_optimizer_states;
  }

  // torch's own argument checks (ValueError), which FusedAdam & co. share.
  if (opt->lr < 0) return ctx.Error(DsErrorKind::kValueError, ppath + ".lr", StrCat("invalid learning rate: ", opt->lr));
  if (opt->eps < 0) return ctx.Error(DsErrorKind::kValueError, ppath + ".eps", StrCat("invalid epsilon value: ", opt->eps));
  if (opt->weight_decay < 0) return ctx.Error(DsErrorKind::kValueError, ppath + ".weight_decay", StrCat("invalid weight_decay value: ", opt->weight_decay));
  if (effective.contains("betas")) {
    for (int i = 0; i < 2; ++i) {
      if (!(opt->betas[i] >= 0 && opt->betas[i] < 1)) {
        return ctx.Error(DsErrorKind::kValueError, ppath + ".betas",
                         StrCat("invalid beta parameter at index ", i, ": ", opt->betas[i], " (must be in [0, 1))"));
      }
    }
  }
  if (opt->momentum < 0) return ctx.Error(DsErrorKind::kValueError, ppath + ".momentum", StrCat("invalid momentum value: ", opt->momentum));
  if (opt->nesterov && (opt->momentum <= 0 || opt->dampening != 0)) {
    return ctx.Error(DsErrorKind::kValueError, ppath + ".nesterov",
                     StrCat("Nesterov momentum requires a momentum > 0 and zero dampening (momentum ", opt->momentum,
                            ", dampening ", opt->dampening, ")"));
  }
  if (opt->lr_decay < 0) return ctx.Error(DsErrorKind::kValueError, ppath + ".lr_decay", StrCat("invalid lr_decay value: ", opt->lr_decay));
  if (opt->initial_accumulator_value < 0) {
    return ctx.Error(DsErrorKind::kValueError, ppath + ".initial_accumulator_value",
                     StrCat("invalid initial_accumulator_value value: ", opt->initial_accumulator_value));
  }
  if (effective.contains("alpha") && !(opt->alpha >= 0)) {
    return ctx.Error(DsErrorKind::kValueError, ppath + ".alpha", StrCat("invalid alpha value: ", opt->alpha));
  }
  if (effective.contains("rho") && !(opt->rho >= 0 && opt->rho <= 1)) {
    return ctx.Error(DsErrorKind::kValueError, ppath + ".rho", StrCat("invalid rho value: ", opt->rho));
  }
  if (opt->momentum_decay < 0) {
    return ctx.Error(DsErrorKind::kValueError, ppath + ".momentum_decay", StrCat("invalid momentum_decay value: ", opt->momentum_decay));
  }
  if (opt->implementation == "OnebitAdam" || opt->implementation == "ZeroOneAdam" ||
      opt->implementation == "OnebitLamb") {
    RETURN_IF_ERROR(ReadOnebitParams(ctx, ppath, params, effective, opt));
  } else if (opt->amsgrad) {
    ctx.Unsupported(ppath + ".amsgrad", "AMSGrad");
  }
  if (effective.value("maximize", false)) ctx.Unsupported(ppath + ".maximize", "maximize");
  opt->params = effective;
  return Status::OK();
}

nlohmann::json OptimizerToJson(const OptimizerConfig& opt) {
  if (!opt.present()) return nullptr;
  nlohmann::json params = opt.params;
  if (opt.type == "adam" || opt.type == "adamw") {
    params["adam_w_mode"] = opt.adam_w_mode;
    params["torch_adam"] = opt.torch_adam;
  }
  return {{"type", opt.type}, {"params", params}, {"legacy_fusion", opt.legacy_fusion}};
}

}  // namespace dsc
