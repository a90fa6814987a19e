#include "frontend/config/other_sections.h"

#include <algorithm>
#include <cctype>
#include <map>

namespace dsc {
namespace {

std::string Upper(std::string s) {
  for (char& c : s) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return s;
}

Status RequireObject(ParseContext& ctx, const std::string& path, const nlohmann::json& v, DsErrorKind kind) {
  if (v.is_object()) return Status::OK();
  return ctx.Error(kind, path, "expected an object, got " + ShortJson(v));
}

// Is any "enabled" inside (at any depth) true? Compression sections nest their switches.
bool AnyEnabled(const nlohmann::json& v) {
  if (!v.is_object()) return false;
  for (auto it = v.begin(); it != v.end(); ++it) {
    if (it.key() == "enabled" && it.value().is_boolean() && it.value().get<bool>()) return true;
    if (AnyEnabled(it.value())) return true;
  }
  return false;
}

struct RecognisedSection {
  const char* what;        // the feature, for the error
  bool switched_by_enabled;  // on = "enabled": true; otherwise on = present and non-empty
  bool enabled_required;   // DeepSpeed pops "enabled" and raises KeyError without it
};

const std::map<std::string, RecognisedSection>& RecognisedSections() {
  static const std::map<std::string, RecognisedSection> sections = {
      {"progressive_layer_drop", {"progressive layer drop", true, true}},
      {"torch_autocast", {"torch autocast", true, false}},
      {"autotuning", {"autotuning", true, false}},
      {"eigenvalue", {"eigenvalue computation", true, false}},
      {"quantize_training", {"quantization-aware training", true, false}},
      {"hybrid_engine", {"the hybrid engine", true, false}},
      {"curriculum_learning", {"curriculum learning", true, false}},
      {"data_efficiency", {"data efficiency (curriculum learning, random-LTD)", true, false}},
      {"nebula", {"Nebula checkpointing", true, false}},
      {"datastates", {"DataStates checkpointing", true, false}},
      // These two log to their services (wandb.init, comet_ml.start), which a compiled run does not
      // reach; the same events go to files with the monitors that work offline.
      {"wandb", {"the Weights & Biases monitor needs its service; \"tensorboard\" and \"csv_monitor\" write the same "
                 "metrics offline", true, false}},
      {"comet", {"the Comet monitor needs its service; \"tensorboard\" and \"csv_monitor\" write the same metrics "
                 "offline", true, false}},
      {"compression_training", {"compression training", true, false}},
      {"pipeline", {"pipeline parallelism", false, false}},
      {"sparse_attention", {"sparse attention", false, false}},
      {"weight_quantization", {"weight quantization", false, false}},
      {"expert_parallel", {"expert parallelism", false, false}},
      {"tensor_parallel", {"tensor parallelism", false, false}},
      {"compile", {"DeepCompile", false, false}},
      {"timers", {"timers", false, false}},
  };
  return sections;
}

}  // namespace

Status ParseCheckpointSection(ParseContext& ctx, const nlohmann::json& section, CheckpointConfig* out) {
  if (section.is_null()) return Status::OK();
  RETURN_IF_ERROR(RequireObject(ctx, "checkpoint", section, DsErrorKind::kDeepSpeedConfigError));
  SectionReader r(ctx, "checkpoint", section, DsErrorKind::kDeepSpeedConfigError, /*strip_auto=*/false);
  if (const nlohmann::json* v = r.Get("tag_validation")) {
    std::string mode = v->is_string() ? Upper(v->get<std::string>()) : "";
    if (mode != "WARN" && mode != "IGNORE" && mode != "FAIL") {
      return r.Error("tag_validation", "expected one of \"Warn\", \"Ignore\", \"Fail\", got " + ShortJson(*v));
    }
    out->tag_validation = mode;
  }
  RETURN_IF_ERROR(r.Bool("load_universal", &out->load_universal));
  RETURN_IF_ERROR(r.Bool("use_node_local_storage", &out->use_node_local_storage));
  RETURN_IF_ERROR(r.Bool("checkpoint_serialization", &out->checkpoint_serialization));
  if (const nlohmann::json* pw = r.Get("parallel_write")) {
    RETURN_IF_ERROR(RequireObject(ctx, "checkpoint.parallel_write", *pw, DsErrorKind::kDeepSpeedConfigError));
    SectionReader w(ctx, "checkpoint.parallel_write", *pw, DsErrorKind::kDeepSpeedConfigError, false);
    if (const nlohmann::json* v = w.Get("pipeline_stage")) {
      // Python's `value in [True, False]` also admits 0 and 1.
      bool ok = v->is_boolean() || (v->is_number() && (v->get<double>() == 0 || v->get<double>() == 1));
      if (!ok) return w.Error("pipeline_stage", "expected true or false, got " + ShortJson(*v));
      out->parallel_write_pipeline_stage = *v;
    }
    RETURN_IF_ERROR(w.FinishPlainDict());
  }
  if (const nlohmann::json* wr = r.Get("writer")) {
    if (!wr->is_null()) {
      RETURN_IF_ERROR(RequireObject(ctx, "checkpoint.writer", *wr, DsErrorKind::kAssertionError));
      SectionReader w(ctx, "checkpoint.writer", *wr, DsErrorKind::kAssertionError, false);
      nlohmann::json writer = {{"type", "FAST"}, {"io_buffer_size", 64 * 1024 * 1024}, {"io_buffer_double", true},
                               {"show_statistics", false}, {"data_parallel", nullptr}, {"decoupled", false},
                               {"io_multiplier", 1}};
      if (const nlohmann::json* v = w.Get("type")) {
        std::string t = v->is_string() ? Upper(v->get<std::string>()) : "";
        if (t != "MOCK" && t != "PYTHON" && t != "FAST") return w.Error("type", "expected MOCK, PYTHON or FAST, got " + ShortJson(*v));
        writer["type"] = t;
      }
      if (const nlohmann::json* v = w.Get("data_parallel")) {
        std::string t = v->is_string() ? Upper(v->get<std::string>()) : "";
        if (!v->is_null() && t != "REPLICA" && t != "SOCKET" && t != "MACHINE") {
          return w.Error("data_parallel", "expected null, REPLICA, SOCKET or MACHINE, got " + ShortJson(*v));
        }
        writer["data_parallel"] = v->is_null() ? nlohmann::json(nullptr) : nlohmann::json(t);
      }
      int64_t n = 0;
      // Plain values to DeepSpeed (no range check); dscompile's checkpoints do not use the writer.
      if (w.Has("io_buffer_size")) { RETURN_IF_ERROR(w.Int("io_buffer_size", &n)); writer["io_buffer_size"] = n; }
      if (w.Has("io_multiplier")) { RETURN_IF_ERROR(w.Int("io_multiplier", &n)); writer["io_multiplier"] = n; }
      for (const char* key : {"io_buffer_double", "show_statistics", "decoupled"}) {
        bool b = writer[key].get<bool>();
        RETURN_IF_ERROR(w.Bool(key, &b));
        writer[key] = b;
      }
      RETURN_IF_ERROR(w.FinishPlainDict());
      out->writer = writer;
    }
  }
  return r.FinishPlainDict();
}

Status ParseMonitorSection(ParseContext& ctx, const std::string& name, const nlohmann::json& section,
                           MonitorConfig* out) {
  if (section.is_null()) return Status::OK();
  RETURN_IF_ERROR(RequireObject(ctx, name, section, DsErrorKind::kValidationError));
  SectionReader r(ctx, name, section);
  RETURN_IF_ERROR(r.Bool("enabled", &out->enabled));
  RETURN_IF_ERROR(r.String("output_path", &out->output_path));
  RETURN_IF_ERROR(r.String("job_name", &out->job_name));
  // dsrun writes the enabled monitors (runtime/training_monitor.h).
  return r.Finish();
}

// deepspeed/comm/config.py CommsLoggerConfig (pydantic: extra keys are errors). DeepSpeed's
// CommsLogger.configure switches on whenever the section is present, whatever `enabled` says;
// dscompile follows `enabled`, as DeepSpeed's docs describe it (docs/config.md).
Status ParseCommsLoggerSection(ParseContext& ctx, const nlohmann::json& section, CommsLoggerConfig* out) {
  if (section.is_null()) return Status::OK();
  RETURN_IF_ERROR(RequireObject(ctx, "comms_logger", section, DsErrorKind::kValidationError));
  SectionReader r(ctx, "comms_logger", section);
  RETURN_IF_ERROR(r.Bool("enabled", &out->enabled));
  RETURN_IF_ERROR(r.Bool("prof_all", &out->prof_all));
  RETURN_IF_ERROR(r.Bool("verbose", &out->verbose));
  RETURN_IF_ERROR(r.Bool("debug", &out->debug));
  if (const nlohmann::json* v = r.Get("prof_ops")) {
    if (!v->is_array()) return r.Error("prof_ops", "expected a list, got " + ShortJson(*v));
    out->prof_ops.clear();
    for (size_t i = 0; i < v->size(); ++i) {
      const nlohmann::json& op = (*v)[i];
      if (!op.is_string()) return r.Error(StrCat("prof_ops[", i, "]"), "expected an op name, got " + ShortJson(op));
      out->prof_ops.push_back(op.get<std::string>());
    }
  }
  RETURN_IF_ERROR(r.Finish());
  if (out->enabled && out->debug)
    ctx.Unsupported("comms_logger.debug",
                    "records named after their caller: the communicator does not know which plan node issued a "
                    "collective (the records are per collective kind and message size)");
  return Status::OK();
}

Status ParseActivationCheckpointingSection(ParseContext& ctx, const nlohmann::json& section,
                                           ActivationCheckpointingConfig* out) {
  if (section.is_null()) return Status::OK();
  const std::string path = "activation_checkpointing";
  RETURN_IF_ERROR(RequireObject(ctx, path, section, DsErrorKind::kValueError));
  SectionReader r(ctx, path, section, DsErrorKind::kValueError, false);
  RETURN_IF_ERROR(r.Bool("partition_activations", &out->partition_activations));
  RETURN_IF_ERROR(r.Bool("contiguous_memory_optimization", &out->contiguous_memory_optimization));
  RETURN_IF_ERROR(r.Bool("cpu_checkpointing", &out->cpu_checkpointing));
  RETURN_IF_ERROR(r.OptInt("number_checkpoints", &out->number_checkpoints));
  RETURN_IF_ERROR(r.Bool("synchronize_checkpoint_boundary", &out->synchronize_checkpoint_boundary));
  RETURN_IF_ERROR(r.Bool("profile", &out->profile));
  RETURN_IF_ERROR(r.FinishPlainDict());
  out->present = true;
  // DeepSpeed checkpoints only inside models that call deepspeed.checkpointing; dscompile cuts
  // the graph itself (passes/rematerialize.cc). cpu_checkpointing is acted on there: the
  // recomputed segments' checkpoints go to host memory between forward and backward (on a CPU
  // rank the same plan runs, its host arena being host memory like the rest). What the other
  // four do in DeepSpeed has no counterpart here.
  if (out->partition_activations)
    ctx.Warn(JoinPath(path, "partition_activations"), "has no effect: it splits checkpoints across model-parallel ranks, and dscompile runs data parallel only");
  if (out->contiguous_memory_optimization)
    ctx.Warn(JoinPath(path, "contiguous_memory_optimization"), "has no effect: dscompile's memory plan places every activation in one arena already");
  if (out->synchronize_checkpoint_boundary)
    ctx.Warn(JoinPath(path, "synchronize_checkpoint_boundary"), "has no effect: the recomputation runs in the program's own order");
  if (out->profile)
    ctx.Warn(JoinPath(path, "profile"), "has no effect; dsrun --profile times every node, the recomputed ones (named @remat) too");
  return Status::OK();
}

Status ParseAioSection(ParseContext& ctx, const nlohmann::json& section, AioConfig* out) {
  if (section.is_null()) return Status::OK();
  RETURN_IF_ERROR(RequireObject(ctx, "aio", section, DsErrorKind::kValueError));
  SectionReader r(ctx, "aio", section, DsErrorKind::kValueError, false);
  // No range checks, as in DeepSpeed: only its NVMe swapping (refused here) reads these.
  RETURN_IF_ERROR(r.Int("block_size", &out->block_size));
  RETURN_IF_ERROR(r.Int("queue_depth", &out->queue_depth));
  RETURN_IF_ERROR(r.Int("intra_op_parallelism", &out->intra_op_parallelism, std::nullopt, "thread_count"));
  RETURN_IF_ERROR(r.Bool("single_submit", &out->single_submit));
  RETURN_IF_ERROR(r.Bool("overlap_events", &out->overlap_events));
  RETURN_IF_ERROR(r.Bool("use_gds", &out->use_gds));
  RETURN_IF_ERROR(r.FinishPlainDict());
  if (out->use_gds) ctx.Unsupported("aio.use_gds", "GPUDirect Storage");
  return Status::OK();
}

Status ParseFlopsProfilerSection(ParseContext& ctx, const nlohmann::json& section, FlopsProfilerConfig* out) {
  if (section.is_null()) return Status::OK();
  RETURN_IF_ERROR(RequireObject(ctx, "flops_profiler", section, DsErrorKind::kValueError));
  SectionReader r(ctx, "flops_profiler", section, DsErrorKind::kValueError, false);
  RETURN_IF_ERROR(r.Bool("enabled", &out->enabled));
  RETURN_IF_ERROR(r.Float("recompute_fwd_factor", &out->recompute_fwd_factor, 0.0));
  RETURN_IF_ERROR(r.Int("profile_step", &out->profile_step));
  RETURN_IF_ERROR(r.Int("module_depth", &out->module_depth));
  RETURN_IF_ERROR(r.Int("top_modules", &out->top_modules));
  RETURN_IF_ERROR(r.Bool("detailed", &out->detailed));
  if (const nlohmann::json* v = r.Get("output_file"); v && !v->is_null()) {
    if (!v->is_string() || v->get<std::string>().empty())
      return r.Error("output_file", "expected null or a file name, got " + ShortJson(*v));
    out->output_file = v->get<std::string>();
  }
  RETURN_IF_ERROR(r.FinishPlainDict());
  // DeepSpeed reads these values only when the profiler is on; so do we.
  if (!out->enabled) return Status::OK();
  if (out->module_depth != -1)
    ctx.Unsupported("flops_profiler.module_depth",
                    StrCat("only -1 (the whole model) can be honoured, got ", out->module_depth,
                           ": a compiled plan has nodes, not modules; the profile lists op kinds and the "
                           "top_modules slowest nodes"));
  if (out->profile_step < 1)
    ctx.Unsupported("flops_profiler.profile_step", StrCat(out->profile_step, ": dsrun profiles an optimizer step >= 1"));
  if (out->top_modules < 1)
    ctx.Unsupported("flops_profiler.top_modules", StrCat(out->top_modules, ": dsrun lists at least the slowest node"));
  if (out->recompute_fwd_factor != 0.0)
    ctx.Unsupported("flops_profiler.recompute_fwd_factor",
                    StrCat("only 0 can be honoured, got ", out->recompute_fwd_factor,
                           ": plans recompute no forward activations, and the profile counts the backward's "
                           "nodes as they are"));
  return Status::OK();
}

nlohmann::json FlopsProfilerToJson(const FlopsProfilerConfig& f) {
  return {{"enabled", f.enabled}, {"recompute_fwd_factor", f.recompute_fwd_factor},
          {"profile_step", f.profile_step}, {"module_depth", f.module_depth}, {"top_modules", f.top_modules},
          {"detailed", f.detailed}, {"output_file", f.output_file ? nlohmann::json(*f.output_file) : nullptr}};
}

bool IsRecognisedOnlySection(const std::string& key) { return RecognisedSections().count(key) > 0; }

Status CheckRecognisedOnlySection(ParseContext& ctx, const std::string& key, const nlohmann::json& section) {
  const RecognisedSection& info = RecognisedSections().at(key);
  if (section.is_null()) return Status::OK();
  if (!section.is_object()) {
    return ctx.Error(DsErrorKind::kValueError, key, "expected an object, got " + ShortJson(section));
  }
  bool on = false;
  if (info.switched_by_enabled) {
    if (info.enabled_required && !section.contains("enabled")) {
      return ctx.Error(DsErrorKind::kKeyError, key + ".enabled", "is required in this section (DeepSpeed raises KeyError without it)");
    }
    if (section.contains("enabled")) {
      bool enabled = false;
      std::string why = LaxBool(section["enabled"], &enabled);
      if (!why.empty()) return ctx.Error(DsErrorKind::kValidationError, key + ".enabled", why);
      on = enabled;
    }
    if (key == "compression_training") on = AnyEnabled(section);
  } else if (key == "compile") {
    bool deepcompile = false;  // CompileConfig.deepcompile is a pydantic bool: "true" and 1 count
    on = section.contains("deepcompile") && LaxBool(section["deepcompile"], &deepcompile).empty() && deepcompile;
  } else if (key == "tensor_parallel") {
    for (const char* k : {"autotp_size", "tp_size"}) {
      if (section.contains(k) && section[k].is_number() && section[k].get<double>() > 1) on = true;
    }
  } else if (key == "timers") {
    on = false;  // throughput timers change nothing in the training math
  } else {
    on = !section.empty();
  }
  if (on) ctx.Unsupported(key, info.what);
  return Status::OK();
}

nlohmann::json CheckpointToJson(const CheckpointConfig& c) {
  std::string tag = c.tag_validation == "WARN" ? "Warn" : c.tag_validation == "IGNORE" ? "Ignore" : "Fail";
  return {{"tag_validation", tag}, {"load_universal", c.load_universal},
          {"use_node_local_storage", c.use_node_local_storage},
          {"parallel_write", {{"pipeline_stage", c.parallel_write_pipeline_stage}}},
          {"checkpoint_serialization", c.checkpoint_serialization}, {"writer", c.writer}};
}

nlohmann::json MonitorToJson(const MonitorConfig& m) {
  return {{"enabled", m.enabled}, {"output_path", m.output_path}, {"job_name", m.job_name}};
}

nlohmann::json CommsLoggerToJson(const CommsLoggerConfig& c) {
  return {{"enabled", c.enabled}, {"prof_all", c.prof_all}, {"prof_ops", c.prof_ops}, {"verbose", c.verbose},
          {"debug", c.debug}};
}

nlohmann::json ActivationCheckpointingToJson(const ActivationCheckpointingConfig& a) {
  if (!a.present) return nullptr;
  return {{"partition_activations", a.partition_activations},
          {"contiguous_memory_optimization", a.contiguous_memory_optimization},
          {"cpu_checkpointing", a.cpu_checkpointing},
          {"number_checkpoints", a.number_checkpoints ? nlohmann::json(*a.number_checkpoints) : nullptr},
          {"synchronize_checkpoint_boundary", a.synchronize_checkpoint_boundary}, {"profile", a.profile}};
}

nlohmann::json AioToJson(const AioConfig& a) {
  return {{"block_size", a.block_size}, {"queue_depth", a.queue_depth},
          {"intra_op_parallelism", a.intra_op_parallelism}, {"single_submit", a.single_submit},
          {"overlap_events", a.overlap_events}, {"use_gds", a.use_gds}};
}

}  // namespace dsc
