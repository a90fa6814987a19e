// The DeepSpeed config: reading the file, every section, the cross-checks and the resolved JSON.
#include "frontend/config/ds_config.h"

#include <algorithm>
#include <cctype>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "frontend/config/batch_config.h"
#include "frontend/config/elasticity.h"
#include "frontend/config/json_text.h"
#include "frontend/config/key_suggest.h"

namespace dsc {
namespace {

const std::vector<std::string> kHandledTopLevel = {
    "train_batch_size", "train_micro_batch_size_per_gpu", "gradient_accumulation_steps",
    "managed_gradient_accumulation", "steps_per_print", "dump_state", "disable_allgather",
    "communication_data_type", "seq_parallel_communication_data_type", "prescale_gradients",
    "gradient_predivide_factor", "gradient_allreduce_op", "sparse_gradients", "gradient_clipping",
    "wall_clock_breakdown", "memory_breakdown", "zero_allow_untested_optimizer",
    "zero_force_ds_cpu_optimizer", "graph_harvesting", "dataloader_drop_last",
    "use_data_before_expert_parallelism", "vocabulary_size", "log_level", "sequence_parallel_size",
    "data_parallel_size", "seed", "allgather_size", "zero_optimization", "fp16", "bf16", "bfloat16",
    "data_types", "amp", "optimizer", "scheduler", "checkpoint", "tensorboard", "csv_monitor",
    "activation_checkpointing", "aio", "elasticity",
    kDscompileSection};  // dscompile's own section, which DeepSpeed ignores as an unknown top-level key

const nlohmann::json& Section(const nlohmann::json& doc, const char* key) {
  static const nlohmann::json kNull = nullptr;
  return doc.contains(key) ? doc.at(key) : kNull;
}

std::string Lower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

// communication_data_type & co.: lower-cased, one of fp16/bf16/fp32 (DeepSpeed: ValueError).
Status ReadCommDtype(SectionReader& top, const std::string& key, std::optional<std::string>* out) {
  const nlohmann::json* v = top.GetKeepingAuto(key);
  if (!v || v->is_null()) return Status::OK();
  if (!v->is_string())  // DeepSpeed calls .lower() on it
    return top.Error(DsErrorKind::kAttributeError, key, "expected one of \"fp16\", \"bf16\", \"fp32\", got " + ShortJson(*v));
  std::string s = Lower(v->get<std::string>());
  if (s != "fp16" && s != "bf16" && s != "fp32") {
    return top.Error(DsErrorKind::kValueError, key,
                     "invalid communication data type " + ShortJson(*v) + "; expected one of \"fp16\", \"bf16\", \"fp32\"");
  }
  *out = s;
  return Status::OK();
}

// Keys that change what DeepSpeed logs or how its Python side runs, not the numbers: accepted,
// and when given a non-default value, a warning says why nothing in dscompile changes.
void WarnWhatHasNoEffect(SectionReader& top, const DsConfig& c) {
  struct Row { bool set; const char* key; const char* why; };
  const Row rows[] = {
      {c.dump_state, "dump_state", "DeepSpeed prints its engine state at start; no effect here (dsinspect PLAN shows the plan)"},
      {c.memory_breakdown, "memory_breakdown",
       "DeepSpeed logs its memory use as it sets up; no effect here (dsinspect PLAN shows each rank's memory by "
       "kind, dsrun's metrics the measured peak)"},
      {c.log_level.has_value(), "log_level", "sets the level of DeepSpeed's Python logger; no effect here"},
      {c.graph_harvesting, "graph_harvesting", "DeepSpeed captures its bf16 optimizer's kernels in CUDA graphs; no effect here"},
      {c.sparse_gradients, "sparse_gradients",
       "DeepSpeed all-reduces nn.Embedding gradients as sparse tensors, which gives the same average; dscompile's "
       "gradients are dense"},
      {c.disable_allgather, "disable_allgather", "DeepSpeed reads it and never uses it; no effect here either"},
      {c.use_data_before_expert_parallelism, "use_data_before_expert_parallelism",
       "concerns Mixture-of-Experts checkpoints; no effect here"},
      {!c.zero_force_ds_cpu_optimizer, "zero_force_ds_cpu_optimizer",
       "concerns a client optimizer under ZeRO-Offload; a plan's optimizer always comes from the config, so no effect here"},
  };
  for (const Row& r : rows) {
    if (r.set) top.ctx().Warn(r.key, r.why);
  }
  if (top.Given("dataloader_drop_last"))
    top.ctx().Warn("dataloader_drop_last", std::string("concerns the loader DeepSpeed builds from training_data; dsrun ") +
                                               (c.dataloader_drop_last ? "also" : "always") +
                                               " drops the last partial batch (an epoch has floor(N / train_batch_size) steps)");
}

Status ReadTopLevelScalars(SectionReader& top, DsConfig* c) {
  RETURN_IF_ERROR(top.Bool("managed_gradient_accumulation", &c->managed_gradient_accumulation));
  RETURN_IF_ERROR(top.OptInt("steps_per_print", &c->steps_per_print));
  // DeepSpeed takes any integer and computes (step + 1) % steps_per_print at every step: 0 divides
  // by zero there, a negative value prints every |n| steps; dsrun's progress line needs n >= 1.
  if (c->steps_per_print && *c->steps_per_print < 1) {
    top.ctx().Unsupported("steps_per_print", StrCat(*c->steps_per_print, ": dsrun prints every n >= 1 steps"));
  }
  RETURN_IF_ERROR(top.Bool("dump_state", &c->dump_state));
  RETURN_IF_ERROR(top.Bool("disable_allgather", &c->disable_allgather));
  RETURN_IF_ERROR(ReadCommDtype(top, "communication_data_type", &c->communication_data_type));
  RETURN_IF_ERROR(ReadCommDtype(top, "seq_parallel_communication_data_type", &c->seq_parallel_communication_data_type));
  if (const nlohmann::json* v = top.GetKeepingAuto("seq_parallel_communication_data_type"); v && v->is_null()) {
    c->seq_parallel_communication_data_type.reset();
  }
  RETURN_IF_ERROR(top.Bool("prescale_gradients", &c->prescale_gradients));
  RETURN_IF_ERROR(top.Float("gradient_predivide_factor", &c->gradient_predivide_factor));
  // DeepSpeed does not check it; 0 divides by zero in its first gradient all-reduce.
  if (!(c->gradient_predivide_factor > 0)) {
    top.ctx().Unsupported("gradient_predivide_factor",
                          StrCat(c->gradient_predivide_factor, ": gradients are multiplied by its inverse, so it must be > 0"));
  }
  if (const nlohmann::json* v = top.GetKeepingAuto("gradient_allreduce_op")) {
    std::string op = v->is_string() ? Lower(v->get<std::string>()) : "";
    if (op != "mean" && op != "sum") {
      return top.Error(DsErrorKind::kValueError, "gradient_allreduce_op",
                       "invalid operation " + ShortJson(*v) + "; supported operations: \"mean\", \"sum\"");
    }
    c->gradient_allreduce_op = op;
  }
  RETURN_IF_ERROR(top.Bool("sparse_gradients", &c->sparse_gradients));
  // Not validated by DeepSpeed: every clipping site tests "> 0", so a negative value disables
  // clipping as 0 does, and so does ClipScale.
  RETURN_IF_ERROR(top.Float("gradient_clipping", &c->gradient_clipping));
  RETURN_IF_ERROR(top.Bool("wall_clock_breakdown", &c->wall_clock_breakdown));
  RETURN_IF_ERROR(top.Bool("memory_breakdown", &c->memory_breakdown));
  RETURN_IF_ERROR(top.Bool("zero_allow_untested_optimizer", &c->zero_allow_untested_optimizer));
  RETURN_IF_ERROR(top.Bool("zero_force_ds_cpu_optimizer", &c->zero_force_ds_cpu_optimizer));
  RETURN_IF_ERROR(top.Bool("graph_harvesting", &c->graph_harvesting));
  RETURN_IF_ERROR(top.Bool("dataloader_drop_last", &c->dataloader_drop_last));
  RETURN_IF_ERROR(top.Bool("use_data_before_expert_parallelism", &c->use_data_before_expert_parallelism));
  RETURN_IF_ERROR(top.OptInt("vocabulary_size", &c->vocabulary_size));
  if (c->vocabulary_size && *c->vocabulary_size % 8 != 0) {
    top.ctx().Warn("vocabulary_size", StrCat(*c->vocabulary_size, " is not a multiple of 8; fp16 GEMMs run slower"));
  }
  RETURN_IF_ERROR(top.OptString("log_level", &c->log_level));
  WarnWhatHasNoEffect(top, *c);
  RETURN_IF_ERROR(top.Int("sequence_parallel_size", &c->sequence_parallel_size, 1));
  if (c->sequence_parallel_size > 1) top.ctx().Unsupported("sequence_parallel_size", "sequence parallelism");
  int64_t dp = c->world_size;
  RETURN_IF_ERROR(top.Int("data_parallel_size", &dp, 1));
  if (dp != c->world_size) {
    top.ctx().Unsupported("data_parallel_size", StrCat(dp, " differs from the world size ", c->world_size,
                                                       ": dscompile is data parallel only, over every rank"));
  }
  int64_t seed = static_cast<int64_t>(c->seed);
  RETURN_IF_ERROR(top.Int("seed", &seed, 0));
  c->seed = static_cast<uint64_t>(seed);
  top.Get("allgather_size");  // read by the legacy "zero_optimization": true form
  return Status::OK();
}

Status ReadSections(ParseContext& ctx, const nlohmann::json& doc, DsConfig* c) {
  RETURN_IF_ERROR(ParseZeroSection(ctx, Section(doc, "zero_optimization"), doc, &c->zero));
  RETURN_IF_ERROR(ParseActivationCheckpointingSection(ctx, Section(doc, "activation_checkpointing"), &c->activation_checkpointing));
  RETURN_IF_ERROR(ParseCommsLoggerSection(ctx, Section(doc, "comms_logger"), &c->comms_logger));
  RETURN_IF_ERROR(ParseMonitorSection(ctx, "tensorboard", Section(doc, "tensorboard"), &c->tensorboard));
  RETURN_IF_ERROR(ParseMonitorSection(ctx, "csv_monitor", Section(doc, "csv_monitor"), &c->csv_monitor));
  RETURN_IF_ERROR(ParseFp16Section(ctx, Section(doc, "fp16"), &c->fp16));
  // The legacy "bfloat16" key is read only when "bf16" is absent, as DeepSpeed does.
  if (doc.contains("bf16")) {
    RETURN_IF_ERROR(ParseBf16Section(ctx, "bf16", doc["bf16"], &c->bf16));
    if (doc.contains("bfloat16")) ctx.Warn("bfloat16", "ignored because \"bf16\" is given (DeepSpeed ignores it too)");
  } else if (doc.contains("bfloat16")) {
    ctx.Warn("bfloat16", "deprecated; use \"bf16\"");
    RETURN_IF_ERROR(ParseBf16Section(ctx, "bfloat16", doc["bfloat16"], &c->bf16));
  }
  if (c->fp16.enabled && c->bf16.enabled) {
    return ctx.Error(DsErrorKind::kAssertionError, "bf16.enabled",
                     "fp16 and bf16 cannot both be enabled (fp16.enabled and bf16.enabled are both true)");
  }
  RETURN_IF_ERROR(ParseAmpEnabled(ctx, Section(doc, "amp"), &c->amp));
  RETURN_IF_ERROR(ParseOptimizerSection(ctx, Section(doc, "optimizer"), c->zero, c->bf16, &c->optimizer));
  RETURN_IF_ERROR(ParseSchedulerSection(ctx, Section(doc, "scheduler"), &c->scheduler));
  // DeepSpeed's OneCycle cycles the optimizer's betas; an optimizer without them trains uncycled.
  if (c->scheduler.type == "OneCycle" && c->scheduler.cycle_momentum && c->optimizer.present() && !c->optimizer.has_betas()) {
    ctx.Warn("scheduler.params.cycle_momentum",
             "disabled because optimizer " + c->optimizer.implementation +
                 " does not support momentum (no betas in its defaults), as DeepSpeed's OneCycle disables it");
  }
  RETURN_IF_ERROR(ParseDscompileSection(ctx, Section(doc, kDscompileSection), &c->dscompile));
  RETURN_IF_ERROR(ParseCheckpointSection(ctx, Section(doc, "checkpoint"), &c->checkpoint));
  RETURN_IF_ERROR(ParseDataTypesSection(ctx, Section(doc, "data_types"), &c->data_types));
  RETURN_IF_ERROR(ParseAioSection(ctx, Section(doc, "aio"), &c->aio));
  for (auto it = doc.begin(); it != doc.end(); ++it) {
    if (!IsRecognisedOnlySection(it.key())) continue;
    RETURN_IF_ERROR(CheckRecognisedOnlySection(ctx, it.key(), it.value()));
    c->recognised_sections[it.key()] = it.value();
  }
  c->pipeline_parallel = doc.contains("pipeline") && doc["pipeline"].is_object() && !doc["pipeline"].empty();
  RETURN_IF_ERROR(ParseFlopsProfilerSection(ctx, Section(doc, "flops_profiler"), &c->flops_profiler));
  c->wall_clock_breakdown = c->wall_clock_breakdown || c->flops_profiler.enabled;
  return Status::OK();
}

// The ZeRO optimizers' master-weight checks at initialize (base_optimizer.py
// _configure_master_weights): fp16 master weights, and bf16 master weights whose optimizer states
// stay fp32, live on the CPU, so they need optimizer offload with DeepSpeedCPUAdam.
Status CheckZeroMasterWeights(ParseContext& ctx, const DsConfig& c) {
  const bool fp16_master = c.fp16.fp16_master_weights_and_grads, bf16_master = c.bf16.bf16_master_weights_and_grads;
  if (fp16_master && bf16_master) {
    return ctx.Error(DsErrorKind::kAssertionError, "bf16.bf16_master_weights_and_grads",
                     "fp16.fp16_master_weights_and_grads and bf16.bf16_master_weights_and_grads are mutually exclusive");
  }
  const bool offload = c.zero.optimizer_offloaded();
  const bool needs_cpu_adam = fp16_master || (bf16_master && (!c.bf16.bf16_optimizer_states || offload));
  if (!needs_cpu_adam || (offload && c.optimizer.implementation == "DeepSpeedCPUAdam")) return Status::OK();
  const std::string key = fp16_master ? "fp16.fp16_master_weights_and_grads" : "bf16.bf16_master_weights_and_grads";
  return ctx.Error(DsErrorKind::kAssertionError, key,
                   StrCat("master weights in half precision need ZeRO-Offload with DeepSpeedCPUAdam (the fp32 optimizer "
                          "states live on the CPU)",
                          bf16_master && !offload ? ", unless bf16.bf16_optimizer_states keeps them in bf16 too" : "",
                          "; current offload_optimizer: ", offload ? c.zero.offload_optimizer->device : "none",
                          ", optimizer: ", c.optimizer.implementation.empty() ? "none" : c.optimizer.implementation));
}

// Checks DeepSpeed makes across sections (config.py _do_error_check, engine sanity checks).
Status CrossCheck(ParseContext& ctx, const nlohmann::json& doc, DsConfig* c) {
  // DeepSpeed scales by 1/predivide before its all-reduce and by predivide/world after it, or by
  // 1/world before it with prescale: the same average, rounded differently in half precision.
  if (c->prescale_gradients || c->gradient_predivide_factor != 1.0) {
    const std::string key = c->prescale_gradients ? "prescale_gradients" : "gradient_predivide_factor";
    ctx.Warn(key, c->gradient_allreduce_op == "sum"
                      ? "has no effect with gradient_allreduce_op \"sum\" (DeepSpeed sums without scaling)"
                      : "changes only where the division by the world size rounds; dscompile's reductions sum "
                        "(in communication_data_type), then divide once, as DeepSpeed does by default");
  }
  if (c->gradient_allreduce_op == "sum") {
    bool deepcompile = false;  // a pydantic bool: "true" and 1 count
    if (doc.contains("compile") && doc["compile"].is_object() && doc["compile"].contains("deepcompile") &&
        !LaxBool(doc["compile"]["deepcompile"], &deepcompile).empty())
      deepcompile = false;
    std::string with = c->zero.stage == 3 ? "ZeRO stage 3" : c->zero.zenflow ? "ZenFlow" : deepcompile ? "DeepCompile" : "";
    if (!with.empty()) {
      return ctx.Error(DsErrorKind::kValueError, "gradient_allreduce_op",
                       "\"sum\" is not supported with " + with + " (DeepSpeed averages there); use \"mean\"");
    }
    // DeepSpeed sums their warm-up gradients and averages their compressed momentum; dscompile's
    // 1-bit runs are checked only against the averaging.
    if (c->optimizer.onebit())
      ctx.Unsupported("gradient_allreduce_op", "\"sum\" with the 1-bit optimizer " + c->optimizer.implementation);
  }
  if (c->fp16.fp16_master_weights_and_grads && !c->zero.enabled()) {
    return ctx.Error(DsErrorKind::kAssertionError, "fp16.fp16_master_weights_and_grads", "needs ZeRO stage 1, 2 or 3, but zero_optimization.stage is 0");
  }
  if (c->bf16.bf16_master_weights_and_grads && !c->zero.enabled()) {
    return ctx.Error(DsErrorKind::kAssertionError, "bf16.bf16_master_weights_and_grads", "needs ZeRO stage 1, 2 or 3, but zero_optimization.stage is 0");
  }
  if (c->bf16.bf16_optimizer_states && (!c->zero.enabled() || !c->bf16.bf16_master_weights_and_grads)) {
    return ctx.Error(DsErrorKind::kAssertionError, "bf16.bf16_optimizer_states",
                     "needs ZeRO stage 1, 2 or 3 and bf16.bf16_master_weights_and_grads");
  }
  if (c->data_types.param_dtype && *c->data_types.param_dtype != c->model_dtype()) {
    return ctx.Error(DsErrorKind::kAssertionError, "data_types.param_dtype",
                     "is \"" + *c->data_types.param_dtype + "\" but the enabled precision mode computes in \"" +
                         c->model_dtype() + "\"; they must match");
  }
  // The engine's _do_sanity_check (engine.py:1705), before it configures the optimizer.
  if (!c->managed_gradient_accumulation) {
    if (c->zero.stage < 2 && c->zero.overlap_comm)
      return ctx.Error(DsErrorKind::kAssertionError, "managed_gradient_accumulation",
                       "false supports zero_optimization.overlap_comm only with ZeRO stage 2 or 3");
    if (c->amp.enabled)
      return ctx.Error(DsErrorKind::kAssertionError, "managed_gradient_accumulation", "false is not supported with apex AMP");
    ctx.Warn("managed_gradient_accumulation",
             "false leaves DeepSpeed's accumulation boundary to the training script; dsrun steps every "
             "gradient_accumulation_steps micro-batches, as DeepSpeed's managed boundary does");
  }
  if (c->zero.enabled() && c->optimizer.present() && !c->optimizer.implementation.empty() &&
      !c->optimizer.zero_supported() && !c->zero_allow_untested_optimizer) {
    return ctx.Error(DsErrorKind::kAssertionError, "optimizer.type",
                     c->optimizer.implementation + " is not tested with ZeRO; set \"zero_allow_untested_optimizer\": true to use it");
  }
  if ((c->optimizer.type == "lamb" || c->optimizer.type == "onebitlamb") && !c->fp16.dynamic()) {
    return ctx.Error(DsErrorKind::kAssertionError, "fp16.loss_scale",
                     StrCat(c->optimizer.type == "lamb" ? "Lamb" : "OneBitLamb",
                            " needs dynamic loss scaling (loss_scale 0), got ", c->fp16.loss_scale));
  }
  // stage3.py:351-352 and stage_1_and_2.py:230-232 refuse these when they build the optimizer.
  if (c->optimizer.type == "muon" && c->zero.stage == 3 && c->zero.reduce_scatter) {
    return ctx.Error(DsErrorKind::kValueError, "zero_optimization.reduce_scatter",
                     "Muon and reduce scatter cannot be used together (ZeRO stage 3); set it to false");
  }
  if (c->optimizer.type == "muon" && (c->zero.stage == 1 || c->zero.stage == 2) && c->zero.reduce_scatter &&
      c->zero.optimizer_offloaded()) {
    return ctx.Error(DsErrorKind::kValueError, "zero_optimization.reduce_scatter",
                     "Muon with reduce scatter does not support optimizer offload because offload retains only "
                     "partition slices; disable reduce scatter or optimizer offload");
  }
  // stage3.py keeps the Muon momentum out of the swapped subgroups with it; offload-optimizer swaps
  // every state.
  if (c->optimizer.type == "muon" && c->zero.stage == 3 && c->zero.save_muon_momentum_buffer_in_memory &&
      c->zero.offload_optimizer && c->zero.offload_optimizer->device == "nvme") {
    ctx.Unsupported("zero_optimization.save_muon_momentum_buffer_in_memory",
                    "keeping Muon's momentum buffers in memory while NVMe offload swaps the other optimizer states");
  }
  if (c->zero.optimizer_offloaded() && !c->zero.enabled()) {
    ctx.Warn("zero_optimization.offload_optimizer", "has no effect at ZeRO stage 0");
  }
  // DeepSpeed reads aio only to swap tensors to NVMe (refused when asked for): otherwise say it is moot.
  const bool nvme = (c->zero.offload_optimizer && c->zero.offload_optimizer->device == "nvme") ||
                    (c->zero.offload_param && c->zero.offload_param->device == "nvme");
  if (doc.contains("aio") && !doc["aio"].is_null() && !nvme)
    ctx.Warn("aio", "has no effect: it configures the I/O of offload to \"nvme\", which this config does not use");
  // stage_1_and_2.py checks this only when averaging; stage3.py always.
  if (((c->zero.stage == 2 && c->gradient_allreduce_op == "mean") || c->zero.stage == 3) && c->zero.reduce_scatter &&
      (c->gradient_predivide_factor != 1.0 || c->prescale_gradients)) {
    return ctx.Error(DsErrorKind::kAssertionError, "gradient_predivide_factor",
                     StrCat("ZeRO stage ", c->zero.stage,
                            " with reduce_scatter needs gradient_predivide_factor 1.0 and prescale_gradients false"));
  }
  StatusOr<std::string> wrapper = OptimizerWrapper(*c);
  if (!wrapper.ok()) return wrapper.status();
  if (*wrapper == "zero_optimization") RETURN_IF_ERROR(CheckZeroMasterWeights(ctx, *c));
  // DeepSpeed calls apex's amp.initialize only once the wrapper is chosen.
  return ParseAmpOptions(ctx, Section(doc, "amp"), &c->amp);
}

// With elasticity enabled, the elastic batch replaces the batch keys (runtime/config.py:730-789).
StatusOr<BatchSizes> ResolveBatches(ParseContext& ctx, const nlohmann::json& doc, int64_t world) {
  bool elastic = false;
  if (doc.contains("elasticity")) {
    const nlohmann::json& e = doc["elasticity"];
    if (!e.is_object() && !e.is_null()) {
      return ctx.Error(DsErrorKind::kElasticityConfigError, "elasticity", "expected an object, got " + ShortJson(e));
    }
    if (e.is_object() && e.contains("enabled") && !LaxBool(e["enabled"], &elastic).empty()) {
      return ctx.Error(DsErrorKind::kElasticityConfigError, "elasticity.enabled", "expected true or false, got " + ShortJson(e["enabled"]));
    }
  }
  if (!elastic) return ResolveBatchSizes(ctx, doc, world);
  ASSIGN_OR_RETURN(ElasticResult r, ComputeElasticConfig(doc, kDeepSpeedVersion, world, std::nullopt, ctx.source));
  const nlohmann::json& e = doc["elasticity"];
  bool ignore = false;
  if (e.contains("ignore_non_elastic_batch_info")) LaxBool(e["ignore_non_elastic_batch_info"], &ignore);
  for (const char* key : {"train_batch_size", "train_micro_batch_size_per_gpu", "gradient_accumulation_steps"}) {
    if (!doc.contains(key)) continue;
    if (!ignore) {
      return ctx.Error(DsErrorKind::kElasticityConfigError, key,
                       "batch keys are not used when elastic training is enabled (the elasticity section decides "
                       "the batch); remove them or set elasticity.ignore_non_elastic_batch_info to true");
    }
    ctx.Warn(key, "ignored: elastic training decides the batch size");
  }
  BatchSizes b;
  b.train_batch_size = r.final_batch_size;
  b.train_micro_batch_size_per_gpu = *r.micro_batch_size;
  b.gradient_accumulation_steps = r.final_batch_size / (*r.micro_batch_size * world);
  return b;
}

}  // namespace

std::string DsConfig::model_dtype() const { return fp16.enabled ? "fp16" : bf16.enabled ? "bf16" : "fp32"; }
std::string DsConfig::grad_accum_dtype() const { return data_types.grad_accum_dtype.value_or(model_dtype()); }
std::string DsConfig::effective_communication_data_type() const {
  return communication_data_type.value_or(model_dtype());
}

const std::vector<std::string>& KnownTopLevelKeys() {
  static const std::vector<std::string> keys = [] {
    std::vector<std::string> k = kHandledTopLevel;
    for (const char* s : {"progressive_layer_drop", "torch_autocast", "autotuning", "eigenvalue",
                          "quantize_training", "hybrid_engine", "curriculum_learning", "data_efficiency", "nebula",
                          "datastates", "elasticity", "flops_profiler", "comms_logger", "wandb", "comet",
                          "compression_training", "pipeline", "sparse_attention", "weight_quantization",
                          "expert_parallel", "tensor_parallel", "compile", "timers"}) {
      k.push_back(s);
    }
    return k;
  }();
  return keys;
}

StatusOr<std::string> OptimizerWrapper(const DsConfig& c) {
  const std::string model = c.model_dtype();
  const std::string accum = c.grad_accum_dtype();
  if (c.zero.enabled()) {
    if (c.amp.enabled) {
      return ConfigError(DsErrorKind::kAssertionError, c.source, "amp.enabled", "apex AMP and ZeRO cannot be combined");
    }
    bool cpu_offload = c.zero.offload_optimizer && c.zero.offload_optimizer->device == "cpu";
    if (model == "bf16" && accum == "fp32" && c.zero.stage == 1 && !cpu_offload) return std::string("bf16");
    return std::string("zero_optimization");
  }
  if (c.amp.enabled) {
    if (model != accum) {
      return ConfigError(DsErrorKind::kNotImplementedError, c.source, "data_types.grad_accum_dtype",
                         "model data type (" + model + ") and gradient accumulation data type (" + accum +
                             ") must be equal to use Amp");
    }
    if (c.fp16.enabled || c.bf16.enabled) {
      return ConfigError(DsErrorKind::kNotImplementedError, c.source, "amp.enabled",
                         "cannot enable both amp with (legacy) fp16 or bfloat16 mode");
    }
    return std::string("amp");
  }
  if (model == accum) {
    if (model == "fp32") return std::string("");
    if (model == "bf16") return std::string(c.pipeline_parallel ? "bf16" : "ddp_bf16");
    return std::string("fp16");
  }
  return ConfigError(DsErrorKind::kNotImplementedError, c.source, "data_types.grad_accum_dtype",
                     "unsupported mix of model_dtype=" + TorchDtypeName(model) + " and grad_accum_dtype=" +
                         TorchDtypeName(accum) + " without ZeRO");
}

Status RefuseUnsupported(const DsConfig& c) {
  if (c.unsupported.empty()) return Status::OK();
  std::string list;
  for (const std::string& u : c.unsupported) list += "\n  " + u;
  return ConfigError(DsErrorKind::kUnsupported, c.source, "",
                     "accepted by DeepSpeed but not supported by dscompile, so it cannot be compiled:" + list);
}

StatusOr<DsConfig> ParseDsConfigJson(const nlohmann::json& doc, const ConfigOptions& options,
                                     std::vector<std::string>* warnings, const std::string& source_name) {
  ParseContext ctx;
  ctx.source = source_name;
  ctx.world_size = options.world_size;
  ctx.strict = options.strict;
  ctx.warnings = warnings;
  if (!doc.is_object()) return ctx.Error(DsErrorKind::kValueError, "", "the config must be a JSON object, got " + ShortJson(doc));
  if (options.world_size < 1) {
    return ctx.Error(DsErrorKind::kValueError, "", StrCat("world size must be >= 1, got ", options.world_size));
  }
  DsConfig c;
  c.source = source_name;
  c.world_size = options.world_size;

  ASSIGN_OR_RETURN(BatchSizes batch, ResolveBatches(ctx, doc, options.world_size));
  c.train_batch_size = batch.train_batch_size;
  c.train_micro_batch_size_per_gpu = batch.train_micro_batch_size_per_gpu;
  c.gradient_accumulation_steps = batch.gradient_accumulation_steps;

  SectionReader top(ctx, "", doc, DsErrorKind::kValueError, /*strip_auto=*/true);
  RETURN_IF_ERROR(ReadTopLevelScalars(top, &c));
  RETURN_IF_ERROR(ReadSections(ctx, doc, &c));
  RETURN_IF_ERROR(CrossCheck(ctx, doc, &c));

  const std::vector<std::string>& known = KnownTopLevelKeys();
  for (auto it = doc.begin(); it != doc.end(); ++it) {
    if (std::find(known.begin(), known.end(), it.key()) != known.end()) continue;
    std::string message = "unknown top-level key" + DidYouMean(it.key(), known) +
                          "; DeepSpeed ignores it silently";
    if (options.strict) return ctx.Error(DsErrorKind::kValueError, it.key(), message);
    ctx.Warn(it.key(), message);
  }
  for (const std::string& key : ctx.auto_keys) {
    bool batch = key == "train_batch_size" || key == "train_micro_batch_size_per_gpu" || key == "gradient_accumulation_steps";
    ctx.Warn(key, batch ? "is \"auto\"; derived from the other batch keys and the world size"
                        : "is \"auto\"; resolved to DeepSpeed's default (see --explain-config)");
  }
  c.auto_keys = ctx.auto_keys;
  c.unsupported = ctx.unsupported;
  return c;
}

StatusOr<DsConfig> ParseDsConfig(const std::string& json_text, const ConfigOptions& options,
                                 std::vector<std::string>* warnings, const std::string& source_name) {
  ASSIGN_OR_RETURN(nlohmann::json doc, ParseConfigJson(json_text, source_name));
  return ParseDsConfigJson(doc, options, warnings, source_name);
}

StatusOr<DsConfig> LoadDsConfig(const std::string& path, const ConfigOptions& options,
                                std::vector<std::string>* warnings) {
  // Only a regular file of plausible size: `--config /dev/zero` or a FIFO would read forever.
  std::error_code ec;
  const std::filesystem::file_status st = std::filesystem::status(path, ec);
  if (ec) return NotFound(path, ": cannot open the DeepSpeed config: ", ec.message());
  if (!std::filesystem::is_regular_file(st)) return InvalidArgument(path, ": not a regular file, so not a DeepSpeed config");
  const uintmax_t size = std::filesystem::file_size(path, ec);
  if (ec) return NotFound(path, ": cannot open the DeepSpeed config: ", ec.message());
  if (size > static_cast<uintmax_t>(kMaxConfigBytes))
    return InvalidArgument(path, ": ", size, " bytes; DeepSpeed configs larger than ", kMaxConfigBytes >> 20,
                           " MiB are refused");
  std::ifstream in(path, std::ios::binary);
  if (!in) return NotFound(path, ": cannot open the DeepSpeed config");
  std::string text(static_cast<size_t>(size), '\0');
  if (size > 0 && !in.read(text.data(), static_cast<std::streamsize>(size)))
    return InvalidArgument(path, ": cannot read the DeepSpeed config");
  return ParseDsConfig(text, options, warnings, path);
}

nlohmann::json ResolvedConfigJson(const DsConfig& c) {
  nlohmann::json j;
  j["train_batch_size"] = c.train_batch_size;
  j["train_micro_batch_size_per_gpu"] = c.train_micro_batch_size_per_gpu;
  j["gradient_accumulation_steps"] = c.gradient_accumulation_steps;
  j["gradient_clipping"] = c.gradient_clipping;
  j["steps_per_print"] = c.steps_per_print ? nlohmann::json(*c.steps_per_print) : nullptr;
  j["prescale_gradients"] = c.prescale_gradients;
  j["gradient_predivide_factor"] = c.gradient_predivide_factor;
  j["gradient_allreduce_op"] = c.gradient_allreduce_op;
  j["communication_data_type"] = c.communication_data_type ? nlohmann::json(*c.communication_data_type) : nullptr;
  j["seq_parallel_communication_data_type"] =
      c.seq_parallel_communication_data_type ? nlohmann::json(*c.seq_parallel_communication_data_type) : nullptr;
  j["managed_gradient_accumulation"] = c.managed_gradient_accumulation;
  j["sparse_gradients"] = c.sparse_gradients;
  j["disable_allgather"] = c.disable_allgather;
  j["dump_state"] = c.dump_state;
  j["wall_clock_breakdown"] = c.wall_clock_breakdown;
  j["memory_breakdown"] = c.memory_breakdown;
  j["zero_allow_untested_optimizer"] = c.zero_allow_untested_optimizer;
  j["zero_force_ds_cpu_optimizer"] = c.zero_force_ds_cpu_optimizer;
  j["graph_harvesting"] = c.graph_harvesting;
  j["dataloader_drop_last"] = c.dataloader_drop_last;
  j["use_data_before_expert_parallelism"] = c.use_data_before_expert_parallelism;
  j["vocabulary_size"] = c.vocabulary_size ? nlohmann::json(*c.vocabulary_size) : nullptr;
  j["log_level"] = c.log_level ? nlohmann::json(*c.log_level) : nullptr;
  j["sequence_parallel_size"] = c.sequence_parallel_size;
  j["seed"] = c.seed;
  j["optimizer"] = OptimizerToJson(c.optimizer);
  j["scheduler"] = SchedulerToJson(c.scheduler, c.optimizer.present() ? std::optional<double>(c.optimizer.lr) : std::nullopt);
  j["fp16"] = Fp16ToJson(c.fp16);
  j["bf16"] = Bf16ToJson(c.bf16);
  j["data_types"] = DataTypesToJson(c.data_types);
  j["amp"] = AmpToJson(c.amp);
  j["zero_optimization"] = ZeroToJson(c.zero);
  j["checkpoint"] = CheckpointToJson(c.checkpoint);
  j["tensorboard"] = MonitorToJson(c.tensorboard);
  j["csv_monitor"] = MonitorToJson(c.csv_monitor);
  j["comms_logger"] = CommsLoggerToJson(c.comms_logger);
  j["activation_checkpointing"] = ActivationCheckpointingToJson(c.activation_checkpointing);
  j["aio"] = AioToJson(c.aio);
  j["flops_profiler"] = FlopsProfilerToJson(c.flops_profiler);
  j[kDscompileSection] = DscompileToJson(c.dscompile);
  for (auto it = c.recognised_sections.begin(); it != c.recognised_sections.end(); ++it) j[it.key()] = it.value();
  return j;
}

}  // namespace dsc
