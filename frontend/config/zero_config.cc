#include "frontend/config/zero_config.h"

#include <algorithm>

namespace dsc {
namespace {

// no_effect: why a value other than DeepSpeed's default changes nothing in dscompile (the knobs of
// DeepSpeed's hooks, collective calls and checkpoint files, not of the numbers); warned when given.
struct BoolField { const char* name; const char* alias; bool ZeroConfig::*member; const char* no_effect = nullptr; };
struct IntField {
  const char* name;
  const char* alias;
  int64_t ZeroConfig::*member;
  bool non_negative;
  const char* no_effect = nullptr;
};

const std::vector<BoolField>& BoolFields() {
  static const std::vector<BoolField> fields = {
      {"contiguous_gradients", "", &ZeroConfig::contiguous_gradients},
      {"reduce_scatter", "", &ZeroConfig::reduce_scatter},
      {"use_multi_rank_bucket_allreduce", "", &ZeroConfig::use_multi_rank_bucket_allreduce,
       "how DeepSpeed issues its bucket reductions; the reduced gradients are the same"},
      {"allgather_partitions", "", &ZeroConfig::allgather_partitions,
       "DeepSpeed shares updated partitions by all-gather or by broadcasts; the same parameters either way (dscompile all-gathers)"},
      {"load_from_fp32_weights", "", &ZeroConfig::load_from_fp32_weights},
      {"elastic_checkpoint", "", &ZeroConfig::elastic_checkpoint,
       "the layout of DeepSpeed's ZeRO checkpoint files; dscompile's checkpoints resume at any world size either way"},
      {"gather_16bit_weights_on_model_save", "stage3_gather_16bit_weights_on_model_save",
       &ZeroConfig::gather_16bit_weights_on_model_save,
       "concerns DeepSpeed's save_16bit_model; dsrun --export-onnx/--export-safetensors always write whole weights"},
      {"use_all_reduce_for_fetch_params", "stage3_use_all_reduce_for_fetch_params",
       &ZeroConfig::use_all_reduce_for_fetch_params,
       "DeepSpeed fetches stage-3 parameters by all-reduce instead of all-gather; the same parameters"},
      {"allgather_sequential", "stage3_allgather_sequential", &ZeroConfig::allgather_sequential},
      {"ignore_unused_parameters", "", &ZeroConfig::ignore_unused_parameters,
       "concerns DeepSpeed's stage-3 hooks for parameters a forward never uses; a plan knows its graph"},
      {"legacy_stage1", "", &ZeroConfig::legacy_stage1},
      {"round_robin_gradients", "", &ZeroConfig::round_robin_gradients,
       "orders the gradient partitions for DeepSpeed's CPU-offload copies; the same numbers"},
      {"zero_quantized_weights", "", &ZeroConfig::zero_quantized_weights},
      {"zero_quantized_nontrainable_weights", "", &ZeroConfig::zero_quantized_nontrainable_weights},
      {"zero_quantized_gradients", "", &ZeroConfig::zero_quantized_gradients},
      {"mics_hierarchical_params_gather", "", &ZeroConfig::mics_hierarchical_params_gather,
       "applies only with MiCS (mics_shard_size), which dscompile refuses"},
      {"memory_efficient_linear", "", &ZeroConfig::memory_efficient_linear,
       "DeepSpeed's stage-3 linear that frees its input early; the same numbers"},
      {"pipeline_loading_checkpoint", "", &ZeroConfig::pipeline_loading_checkpoint,
       "concerns pipeline parallelism, which a plan does not have"},
      {"override_module_apply", "", &ZeroConfig::override_module_apply,
       "DeepSpeed's stage-3 hook around module.apply; a plan has no modules"},
      {"log_trace_cache_warnings", "", &ZeroConfig::log_trace_cache_warnings},
      {"enable_sanity_checks", "", &ZeroConfig::enable_sanity_checks,
       "DeepSpeed's stage-3 debugging checks; no effect here"},
      {"save_muon_momentum_buffer_in_memory", "", &ZeroConfig::save_muon_momentum_buffer_in_memory,
       "where DeepSpeed keeps Muon's momentum while it saves; no effect on training"},
  };
  return fields;
}

const std::vector<IntField>& IntFields() {
  static const std::vector<IntField> fields = {
      {"reduce_bucket_size", "", &ZeroConfig::reduce_bucket_size, true},
      {"allgather_bucket_size", "", &ZeroConfig::allgather_bucket_size, true},
      {"sub_group_size", "", &ZeroConfig::sub_group_size, true,
       "DeepSpeed steps its optimizer in groups of this many elements to bound its temporary memory; dscompile updates parameter by parameter: the same numbers"},
      {"prefetch_bucket_size", "stage3_prefetch_bucket_size", &ZeroConfig::prefetch_bucket_size, true},
      {"param_persistence_threshold", "stage3_param_persistence_threshold",
       &ZeroConfig::param_persistence_threshold, true},
      {"model_persistence_threshold", "stage3_model_persistence_threshold",
       &ZeroConfig::model_persistence_threshold, true},
      {"max_live_parameters", "stage3_max_live_parameters", &ZeroConfig::max_live_parameters, true},
      {"max_reuse_distance", "stage3_max_reuse_distance", &ZeroConfig::max_reuse_distance, true},
      {"module_granularity_threshold", "stage3_module_granularity_threshold",
       &ZeroConfig::module_granularity_threshold, false,
       "groups small modules under one DeepSpeed stage-3 hook; a plan's gathers follow stage3_prefetch_bucket_size"},
      {"zero_hpz_partition_size", "", &ZeroConfig::zero_hpz_partition_size, true},
      {"mics_shard_size", "", &ZeroConfig::mics_shard_size, false},
  };
  return fields;
}

const std::vector<std::string> kDevices = {"none", "cpu", "nvme"};

// str(pathlib.Path(p)), which DeepSpeed's nvme_path field holds: "" -> ".", "./a//b/" -> "a/b".
std::string PythonPath(const std::string& p) {
  const size_t slashes = p.find_first_not_of('/') == std::string::npos ? p.size() : p.find_first_not_of('/');
  const std::string root = slashes == 0 ? "" : slashes == 2 ? "//" : "/";
  std::string out;
  for (size_t at = slashes; at < p.size();) {
    size_t end = p.find('/', at);
    if (end == std::string::npos) end = p.size();
    const std::string part = p.substr(at, end - at);
    if (!part.empty() && part != ".") out += (out.empty() ? "" : "/") + part;
    at = end + 1;
  }
  return out.empty() ? (root.empty() ? "." : root) : root + out;
}

Status ReadOffloadDevice(SectionReader& r, std::string* device) {
  return r.Enum("device", kDevices, device);
}

// `stage`: below 3 DeepSpeed ignores the section (ParseZero warns once for all of it).
Status ParseOffloadParam(ParseContext& ctx, const std::string& path, const nlohmann::json& v, int stage,
                         OffloadParamConfig* out) {
  SectionReader r(ctx, path, v);
  RETURN_IF_ERROR(ReadOffloadDevice(r, &out->device));
  RETURN_IF_ERROR(r.OptString("nvme_path", &out->nvme_path));
  if (out->nvme_path) *out->nvme_path = PythonPath(*out->nvme_path);
  RETURN_IF_ERROR(r.Int("buffer_count", &out->buffer_count, 0));
  RETURN_IF_ERROR(r.Int("buffer_size", &out->buffer_size, 0));
  RETURN_IF_ERROR(r.Int("max_in_cpu", &out->max_in_cpu, 0));
  RETURN_IF_ERROR(r.Bool("pin_memory", &out->pin_memory));
  RETURN_IF_ERROR(r.Finish());
  if (stage != 3) return Status::OK();
  // Offload to "cpu" is acted on by leaving the parameter chunks where CPU ranks already keep them
  // (host memory; dsrun refuses such a plan on a CUDA device), to "nvme" by swapping them
  // (passes/offload_param.cc). DeepSpeed reads the swap buffers' keys only with "nvme"
  // (partitioned_param_swapper.py) and pins host copies only for a GPU.
  const bool cpu = out->device == "cpu";
  if (out->device == "nvme") {
    if (v.contains("pin_memory"))
      ctx.Warn(r.Path("pin_memory"), "has no effect with device \"nvme\": pins the host buffers a GPU copies from; "
                                     "CPU ranks read the swap file into their own memory");
    return Status::OK();
  }
  for (const auto& [key, value] : v.items()) {
    if (key == "device") continue;
    if (!cpu)
      ctx.Warn(r.Path(key), "has no effect: nothing is offloaded (device \"none\")");
    else if (key == "pin_memory")
      ctx.Warn(r.Path(key), "has no effect with device \"cpu\": pins the host copies a GPU copies from; on CPU "
                            "ranks nothing is copied");
    else
      ctx.Warn(r.Path(key), "has no effect with device \"cpu\": read only with device \"nvme\"");
  }
  return Status::OK();
}

Status ParseOffloadOptimizer(ParseContext& ctx, const std::string& path, const nlohmann::json& v,
                             OffloadOptimizerConfig* out) {
  SectionReader r(ctx, path, v);
  RETURN_IF_ERROR(ReadOffloadDevice(r, &out->device));
  RETURN_IF_ERROR(r.OptString("nvme_path", &out->nvme_path));
  if (out->nvme_path) *out->nvme_path = PythonPath(*out->nvme_path);
  RETURN_IF_ERROR(r.Int("buffer_count", &out->buffer_count, 0));
  RETURN_IF_ERROR(r.Bool("pin_memory", &out->pin_memory));
  RETURN_IF_ERROR(r.Bool("pipeline_read", &out->pipeline_read));
  RETURN_IF_ERROR(r.Bool("pipeline_write", &out->pipeline_write));
  RETURN_IF_ERROR(r.Bool("fast_init", &out->fast_init));
  RETURN_IF_ERROR(r.Float("ratio", &out->ratio, 0.0, 1.0));
  RETURN_IF_ERROR(r.Bool("super_offload", &out->super_offload));
  RETURN_IF_ERROR(r.Float("cpuadam_cores_perc", &out->cpuadam_cores_perc, 0.0, 1.0));
  RETURN_IF_ERROR(r.Finish());
  // Offload to "cpu" is acted on by leaving the states where CPU ranks already keep them (host
  // memory) and, on a GPU rank, by running the step program on the host with them there
  // (backend/host_step.h); offload to "nvme" by swapping them (passes/offload_optimizer.cc,
  // runtime/nvme_swap.h). What DeepSpeed reads only for the other device, or only to move states
  // a CPU rank keeps in place, changes nothing then: say so for each key the user wrote.
  struct NoEffect { const char* key; bool on_cpu, on_nvme; const char* why; };  // why: ": ..." or " on ..."
  static const NoEffect kNoEffect[] = {
      {"nvme_path", true, false, ": read only with device \"nvme\""},
      {"buffer_count", true, false, ": read only with device \"nvme\""},
      {"pipeline_read", true, false, ": read only with device \"nvme\""},
      {"pipeline_write", true, false, ": read only with device \"nvme\""},
      {"fast_init", true, true, ": the states start as zeros, their initial value, in host memory or the swap file "
                                "without a separate write"},
      {"pin_memory", true, true, " on CPU ranks, which copy nothing (a GPU rank page-locks the host copies of its "
                                 "states when true)"},
      {"ratio", true, false, " on CPU ranks, where all the states are in host memory already (a GPU rank refuses "
                             "ratio < 1: partial offload is not implemented)"},
      {"cpuadam_cores_perc", true, true, ": DeepSpeedCPUAdam's share of the cores; dsrun runs the optimizer step on "
                                         "--threads like every other kernel"},
  };
  const bool cpu = out->device == "cpu", nvme = out->device == "nvme";
  if (!cpu && !nvme) {
    for (const auto& [key, value] : v.items())
      if (key != "device") ctx.Warn(r.Path(key), "has no effect: nothing is offloaded (device \"none\")");
    return Status::OK();
  }
  for (const NoEffect& e : kNoEffect)
    if (v.contains(e.key) && ((cpu && e.on_cpu) || (nvme && e.on_nvme)))
      ctx.Warn(r.Path(e.key), StrCat("has no effect with device \"", out->device, "\"", e.why));
  return Status::OK();
}

Status ParseZenFlow(ParseContext& ctx, const std::string& path, const nlohmann::json& v,
                    ZenFlowConfig* out) {
  SectionReader r(ctx, path, v);
  RETURN_IF_ERROR(r.Float("topk_ratio", &out->topk_ratio, 0.0, 1.0));
  RETURN_IF_ERROR(r.Enum("select_strategy", {"auto", "step", "epoch"}, &out->select_strategy));
  for (auto [key, member] : {std::pair{"select_interval", &out->select_interval},
                             std::pair{"update_interval", &out->update_interval}}) {
    const nlohmann::json* x = r.Get(key);
    if (!x) continue;
    int64_t n = 0;
    if (x->is_string() || !LaxInt(*x, &n).empty()) {
      return r.Error(key, "expected \"auto\" or an integer, got " + ShortJson(*x));
    }
    *member = n;
  }
  RETURN_IF_ERROR(r.Bool("overlap_step", &out->overlap_step));
  RETURN_IF_ERROR(r.Bool("offload", &out->offload));
  RETURN_IF_ERROR(r.Float("auto_ratio", &out->auto_ratio, 0.0, 1.0));
  RETURN_IF_ERROR(r.Int("full_warm_up_rounds", &out->full_warm_up_rounds));
  RETURN_IF_ERROR(r.Float("pt_reserved_cores_perc", &out->pt_reserved_cores_perc, 0.0, 1.0));
  RETURN_IF_ERROR(r.OptInt("steps_per_epoch", &out->steps_per_epoch));
  return r.Finish();
}

Status ParseStringList(SectionReader& r, const std::string& key, std::vector<std::string>* out) {
  const nlohmann::json* v = r.Get(key);
  if (!v) return Status::OK();
  std::vector<std::string> items;
  if (v->is_string()) {
    items.push_back(v->get<std::string>());
  } else if (v->is_array()) {
    for (const nlohmann::json& e : *v) {
      if (!e.is_string()) return r.Error(key, "expected a string or a list of strings, got " + ShortJson(*v));
      items.push_back(e.get<std::string>());
    }
  } else {
    return r.Error(key, "expected a string or a list of strings, got " + ShortJson(*v));
  }
  out->clear();
  for (const std::string& s : items) {
    if (std::find(out->begin(), out->end(), s) == out->end()) out->push_back(s);
  }
  return Status::OK();
}

// Sub-model values: null → none; an object → parsed; anything else is pydantic's dict error.
Status CheckSubModel(SectionReader& r, const std::string& key, const nlohmann::json& v) {
  if (v.is_object() || v.is_null()) return Status::OK();
  return r.Error(key, "expected an object (or null), got " + ShortJson(v));
}

Status DeprecatedToNew(SectionReader& r, const std::string& old_key, const std::string& new_key) {
  r.ctx().Warn(r.Path(old_key), "deprecated; use \"" + new_key + "\" instead");
  if (r.Given(new_key)) {
    return r.Error(DsErrorKind::kAssertionError, old_key,
                   "cannot be given together with its replacement \"" + new_key + "\"");
  }
  return Status::OK();
}

}  // namespace

const std::vector<std::pair<std::string, std::string>>& ZeroFieldAliases() {
  static const std::vector<std::pair<std::string, std::string>> aliases = [] {
    std::vector<std::pair<std::string, std::string>> a;
    for (const BoolField& f : BoolFields()) if (*f.alias) a.emplace_back(f.name, f.alias);
    for (const IntField& f : IntFields()) if (*f.alias) a.emplace_back(f.name, f.alias);
    return a;
  }();
  return aliases;
}

Status ParseZeroSection(ParseContext& ctx, const nlohmann::json& section, const nlohmann::json& top,
                        ZeroConfig* zero) {
  const std::string path = "zero_optimization";
  if (section.is_boolean()) {
    ctx.Warn(path, "a bool here is deprecated; write {\"stage\": 1} instead");
    zero->stage = section.get<bool>() ? 1 : 0;
    if (zero->stage == 1 && top.contains("allgather_size")) {
      int64_t size = 0;
      std::string why = LaxInt(top["allgather_size"], &size);
      if (!why.empty() || size < 0) {
        return ctx.Error(DsErrorKind::kValidationError, "allgather_size",
                         why.empty() ? "must be >= 0, got " + ShortJson(top["allgather_size"]) : why);
      }
      zero->allgather_bucket_size = size;
    }
    return Status::OK();
  }
  if (section.is_null() && !top.contains(path)) return Status::OK();
  if (!section.is_object()) {  // DeepSpeedZeroConfig(**section): an explicit null and "auto" fail there too
    return ctx.Error(DsErrorKind::kTypeError, path,
                     "expected an object (or a bool, the legacy form), got " + ShortJson(section));
  }
  SectionReader r(ctx, path, section);

  if (const nlohmann::json* v = r.Get("stage")) {
    int64_t stage = -1;
    if (!LaxInt(*v, &stage).empty() || stage < 0 || stage > 3) {
      return r.Error("stage", "expected a ZeRO stage 0, 1, 2 or 3, got " + ShortJson(*v));
    }
    zero->stage = static_cast<int>(stage);
  }
  for (const BoolField& f : BoolFields()) RETURN_IF_ERROR(r.Bool(f.name, &(zero->*f.member), f.alias));
  for (const IntField& f : IntFields()) {
    RETURN_IF_ERROR(r.Int(f.name, &(zero->*f.member),
                          f.non_negative ? std::optional<int64_t>(0) : std::nullopt, f.alias));
  }
  std::optional<bool> overlap;
  RETURN_IF_ERROR(r.OptBool("overlap_comm", &overlap));
  zero->overlap_comm = overlap.value_or(zero->stage == 3);

  if (const nlohmann::json* v = r.Get("offload_param")) {
    RETURN_IF_ERROR(CheckSubModel(r, "offload_param", *v));
    if (v->is_object()) {
      zero->offload_param.emplace();
      RETURN_IF_ERROR(ParseOffloadParam(ctx, r.Path("offload_param"), *v, zero->stage, &*zero->offload_param));
    }
  }
  if (const nlohmann::json* v = r.Get("offload_optimizer")) {
    RETURN_IF_ERROR(CheckSubModel(r, "offload_optimizer", *v));
    if (v->is_object()) {
      zero->offload_optimizer.emplace();
      RETURN_IF_ERROR(ParseOffloadOptimizer(ctx, r.Path("offload_optimizer"), *v, &*zero->offload_optimizer));
    }
  }
  if (const nlohmann::json* v = r.Get("zenflow")) {
    RETURN_IF_ERROR(CheckSubModel(r, "zenflow", *v));
    if (v->is_object()) {
      zero->zenflow.emplace();
      RETURN_IF_ERROR(ParseZenFlow(ctx, r.Path("zenflow"), *v, &*zero->zenflow));
    }
  }
  if (const nlohmann::json* v = r.Get("zeropp_loco_param")) {
    RETURN_IF_ERROR(CheckSubModel(r, "zeropp_loco_param", *v));
    if (v->is_object()) zero->zeropp_loco_param = *v;
  }
  if (const nlohmann::json* v = r.Get("leaf_module")) {
    if (!v->is_object() && !v->is_null())  // its "before" validator raises TypeError, which pydantic passes on
      return r.Error(DsErrorKind::kTypeError, "leaf_module",
                     "leaf_module configuration must be a mapping of fields to values, got " + ShortJson(*v));
    if (v->is_object()) {
      SectionReader leaf(ctx, r.Path("leaf_module"), *v);
      RETURN_IF_ERROR(ParseStringList(leaf, "classes", &zero->leaf_module.classes));
      RETURN_IF_ERROR(ParseStringList(leaf, "names", &zero->leaf_module.names));
      RETURN_IF_ERROR(ParseStringList(leaf, "name_suffixes", &zero->leaf_module.name_suffixes));
      RETURN_IF_ERROR(leaf.Finish());
    }
  }

  // Deprecated names: DeepSpeed maps them onto their replacement and refuses both together. pydantic
  // checks every field's type first, and a key given as null counts as given; one given as "auto"
  // does not (DeepSpeedConfigModel drops it before pydantic sees it).
  RETURN_IF_ERROR(r.OptBool("cpu_offload_param", &zero->cpu_offload_param));
  RETURN_IF_ERROR(r.OptBool("cpu_offload", &zero->cpu_offload));
  RETURN_IF_ERROR(r.OptBool("cpu_offload_use_pin_memory", &zero->cpu_offload_use_pin_memory));
  if (r.Has("stage3_gather_fp16_weights_on_model_save"))
    RETURN_IF_ERROR(r.Bool("stage3_gather_fp16_weights_on_model_save", &zero->stage3_gather_fp16_weights_on_model_save));
  if (r.Given("cpu_offload_param")) {
    RETURN_IF_ERROR(DeprecatedToNew(r, "cpu_offload_param", "offload_param"));
    if (zero->cpu_offload_param && *zero->cpu_offload_param) {
      zero->offload_param.emplace();
      zero->offload_param->device = "cpu";
    } else if (zero->cpu_offload_param) {
      zero->offload_param.reset();
    }
  }
  if (r.Given("cpu_offload")) {
    RETURN_IF_ERROR(DeprecatedToNew(r, "cpu_offload", "offload_optimizer"));
    if (zero->cpu_offload && *zero->cpu_offload) {
      zero->offload_optimizer.emplace();
      zero->offload_optimizer->device = "cpu";
    } else if (zero->cpu_offload) {
      zero->offload_optimizer.reset();
    }
  }
  if (zero->cpu_offload_use_pin_memory) {
    ctx.Warn(r.Path("cpu_offload_use_pin_memory"), "deprecated and has no effect; use offload_*.pin_memory");
  }
  if (r.Given("stage3_gather_fp16_weights_on_model_save")) {
    std::string replacement =
        r.Given("gather_16bit_weights_on_model_save") ? "gather_16bit_weights_on_model_save"
                                                    : "stage3_gather_16bit_weights_on_model_save";
    RETURN_IF_ERROR(DeprecatedToNew(r, "stage3_gather_fp16_weights_on_model_save", replacement));
    zero->gather_16bit_weights_on_model_save = zero->stage3_gather_fp16_weights_on_model_save;
  }
  RETURN_IF_ERROR(r.Finish());

  if (zero->offload_optimizer && zero->offload_optimizer->ratio < 1.0 && zero->stage != 3) {
    return ctx.Error(DsErrorKind::kValidationError, path + ".offload_optimizer.ratio",
                     StrCat("partial offloading (ratio ", zero->offload_optimizer->ratio,
                            " < 1) is only supported with ZeRO stage 3, but stage is ", zero->stage));
  }
  if (zero->param_offloaded() && zero->stage != 3) {
    ctx.Warn(path + ".offload_param", StrCat("only ZeRO stage 3 offloads parameters; ignored at stage ", zero->stage));
  }
  if (zero->allgather_sequential && zero->stage == 3) zero->prefetch_bucket_size = 1;
  // Our buckets are always one flat buffer that each gradient is packed into once (the ZeRO
  // chunks are per parameter, so a reduce-scatter bucket's layout is not the gradients' own).
  if (!zero->contiguous_gradients && zero->stage >= 1)
    ctx.Warn(path + ".contiguous_gradients",
             "false changes nothing in dscompile: gradients are always packed into one flat bucket buffer");

  // Accepted by DeepSpeed, not implemented by dscompile.
  if (zero->zenflow) ctx.Unsupported(path + ".zenflow", "ZenFlow");
  if (zero->mics_shard_size > 0) ctx.Unsupported(path + ".mics_shard_size", "MiCS sharding");
  if (zero->zero_quantized_weights || zero->zero_quantized_nontrainable_weights)
    ctx.Unsupported(path + ".zero_quantized_weights", "ZeRO++ quantized weights");
  if (zero->zero_quantized_gradients) ctx.Unsupported(path + ".zero_quantized_gradients", "ZeRO++ quantized gradients");
  if (zero->zero_hpz_partition_size > 1) ctx.Unsupported(path + ".zero_hpz_partition_size", "ZeRO++ hierarchical partitioning");
  if (zero->zeropp_loco_param) ctx.Unsupported(path + ".zeropp_loco_param", "ZeRO++ LoCo");
  if (zero->legacy_stage1) ctx.Unsupported(path + ".legacy_stage1", "legacy stage 1 (DeepSpeed removed it too)");
  if (!zero->load_from_fp32_weights)
    ctx.Unsupported(path + ".load_from_fp32_weights",
                    "false (rebuilding the fp32 master weights from the 16-bit ones on resume; dscompile resumes "
                    "the checkpoint's own fp32 masters)");
  const ZeroConfig defaults;
  for (const BoolField& f : BoolFields()) {
    if (f.no_effect && zero->*f.member != defaults.*f.member)
      ctx.Warn(r.Path(*f.alias && r.Given(f.alias) ? f.alias : f.name),
               std::string(zero->*f.member ? "true" : "false") + ": " + f.no_effect);
  }
  for (const IntField& f : IntFields()) {
    if (f.no_effect && zero->*f.member != defaults.*f.member)
      ctx.Warn(r.Path(*f.alias && r.Given(f.alias) ? f.alias : f.name), StrCat(zero->*f.member, ": ", f.no_effect));
  }
  if (zero->offload_optimizer && zero->offload_optimizer->super_offload)
    ctx.Unsupported(path + ".offload_optimizer.super_offload", "SuperOffload");
  // DeepSpeed offloads parameters only at stage 3 (the warning above); optimizer offload also picks
  // DeepSpeedCPUAdam at stage 0. On CPU ranks the host is where the optimizer states already live.
  if (zero->optimizer_offloaded() && zero->offload_optimizer->device == "cpu" && zero->stage > 0)
    ctx.Warn(path + ".offload_optimizer.device",
             "\"cpu\": on CPU ranks the optimizer states already live in host memory, so the plan keeps them "
             "there as it does without offload; on a CUDA device dsrun runs the step program (norms, update) on "
             "the host, with the optimizer states and master weights in host memory (dsinspect: places)");
  if (zero->optimizer_offloaded() && zero->offload_optimizer->device == "nvme" && zero->stage > 0) {
    const OffloadOptimizerConfig& o = *zero->offload_optimizer;
    if (!o.nvme_path)
      ctx.Unsupported(path + ".offload_optimizer.nvme_path", "device \"nvme\" needs the folder of the swap files");
    if (o.buffer_count < 1)
      ctx.Unsupported(path + ".offload_optimizer.buffer_count",
                      StrCat(o.buffer_count, ": swapping the optimizer states needs at least 1 buffer"));
    if (o.ratio < 1.0)
      ctx.Unsupported(path + ".offload_optimizer.ratio", "partial offload (ratio < 1) to \"nvme\"");
  }
  if (zero->param_offloaded() && zero->stage == 3 && zero->offload_param->device == "cpu")
    ctx.Warn(path + ".offload_param.device",
             "\"cpu\": on CPU ranks the parameters already live in host memory, so the plan keeps them there as "
             "it does without offload; dsrun refuses the plan on a CUDA device, where moving them to the host is "
             "not implemented");
  if (zero->param_offloaded() && zero->stage == 3 && zero->offload_param->device == "nvme") {
    const OffloadParamConfig& p = *zero->offload_param;
    if (!p.nvme_path)
      ctx.Unsupported(path + ".offload_param.nvme_path", "device \"nvme\" needs the folder of the swap files");
    if (p.buffer_count < 1)
      ctx.Unsupported(path + ".offload_param.buffer_count",
                      StrCat(p.buffer_count, ": swapping the parameters needs at least 1 buffer"));
  }
  return Status::OK();
}

nlohmann::json ZeroToJson(const ZeroConfig& zero) {
  nlohmann::json j;
  j["stage"] = zero.stage;
  for (const BoolField& f : BoolFields()) j[*f.alias ? f.alias : f.name] = zero.*f.member;
  for (const IntField& f : IntFields()) j[*f.alias ? f.alias : f.name] = zero.*f.member;
  j["overlap_comm"] = zero.overlap_comm;
  if (zero.offload_param) {
    const OffloadParamConfig& p = *zero.offload_param;
    j["offload_param"] = {{"device", p.device}, {"nvme_path", p.nvme_path ? nlohmann::json(*p.nvme_path) : nullptr},
                          {"buffer_count", p.buffer_count}, {"buffer_size", p.buffer_size},
                          {"max_in_cpu", p.max_in_cpu}, {"pin_memory", p.pin_memory}};
  } else {
    j["offload_param"] = nullptr;
  }
  if (zero.offload_optimizer) {
    const OffloadOptimizerConfig& o = *zero.offload_optimizer;
    j["offload_optimizer"] = {{"device", o.device}, {"nvme_path", o.nvme_path ? nlohmann::json(*o.nvme_path) : nullptr},
                              {"buffer_count", o.buffer_count}, {"pin_memory", o.pin_memory},
                              {"pipeline_read", o.pipeline_read}, {"pipeline_write", o.pipeline_write},
                              {"fast_init", o.fast_init}, {"ratio", o.ratio},
                              {"super_offload", o.super_offload}, {"cpuadam_cores_perc", o.cpuadam_cores_perc}};
  } else {
    j["offload_optimizer"] = nullptr;
  }
  if (zero.zenflow) {
    const ZenFlowConfig& z = *zero.zenflow;
    j["zenflow"] = {{"topk_ratio", z.topk_ratio}, {"select_strategy", z.select_strategy},
                    {"select_interval", z.select_interval}, {"update_interval", z.update_interval},
                    {"overlap_step", z.overlap_step}, {"offload", z.offload}, {"auto_ratio", z.auto_ratio},
                    {"full_warm_up_rounds", z.full_warm_up_rounds},
                    {"pt_reserved_cores_perc", z.pt_reserved_cores_perc},
                    {"steps_per_epoch", z.steps_per_epoch ? nlohmann::json(*z.steps_per_epoch) : nullptr}};
  } else {
    j["zenflow"] = nullptr;
  }
  j["zeropp_loco_param"] = zero.zeropp_loco_param ? *zero.zeropp_loco_param : nlohmann::json(nullptr);
  j["leaf_module"] = {{"classes", zero.leaf_module.classes}, {"names", zero.leaf_module.names},
                      {"name_suffixes", zero.leaf_module.name_suffixes}};
  return j;
}

}  // namespace dsc
