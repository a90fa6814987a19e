// DsConfig: a DeepSpeed ds_config.json parsed, validated and resolved for one world size, with
// DeepSpeed's defaults, aliases and checks (see /work/shared/deepspeed/config-reference.md).
//
//   std::vector<std::string> warnings;
//   ASSIGN_OR_RETURN(DsConfig cfg, LoadDsConfig("ds.json", {.world_size = 8}, &warnings));
//   cfg.gradient_accumulation_steps;  // resolved from whichever batch keys were given
//   ResolvedConfigJson(cfg).dump(2);  // every key with its effective value
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "frontend/config/config_error.h"
#include "frontend/config/optimizer_config.h"
#include "frontend/config/parameter_groups.h"
#include "frontend/config/other_sections.h"
#include "frontend/config/precision_config.h"
#include "frontend/config/scheduler_config.h"
#include "frontend/config/zero_config.h"
#include "ir/status.h"

namespace dsc {

struct ConfigOptions {
  int world_size = 1;
  bool strict = false;  // unknown keys DeepSpeed ignores (top level, plain-dict sections) are errors, not warnings
};

struct DsConfig {
  std::string source;  // file name or "<config>"
  int world_size = 1;

  int64_t train_batch_size = 0;
  int64_t train_micro_batch_size_per_gpu = 0;
  int64_t gradient_accumulation_steps = 0;

  double gradient_clipping = 1.0;  // 0 disables clipping
  std::optional<int64_t> steps_per_print;  // DeepSpeed's code default is None (its docs say 10)
  bool prescale_gradients = false;
  double gradient_predivide_factor = 1.0;
  std::string gradient_allreduce_op = "mean";  // "mean" | "sum"
  std::optional<std::string> communication_data_type;  // "fp32" | "fp16" | "bf16"; none = model dtype
  // "fp32" when absent; an explicit null stays none, as in DeepSpeed (nothing reads it: no sequence parallelism).
  std::optional<std::string> seq_parallel_communication_data_type = "fp32";
  bool managed_gradient_accumulation = true;
  bool sparse_gradients = false;
  bool disable_allgather = false;
  bool dump_state = false;
  bool wall_clock_breakdown = false;  // effective: also true when flops_profiler is enabled
  bool memory_breakdown = false;
  bool zero_allow_untested_optimizer = false;
  bool zero_force_ds_cpu_optimizer = true;
  bool graph_harvesting = false;
  bool dataloader_drop_last = false;
  bool use_data_before_expert_parallelism = false;
  std::optional<int64_t> vocabulary_size;
  std::optional<std::string> log_level;
  int64_t sequence_parallel_size = 1;
  uint64_t seed = 42;  // dscompile's data-order seed; DeepSpeed leaves seeding to the script

  OptimizerConfig optimizer;
  SchedulerConfig scheduler;
  Fp16Config fp16;
  Bf16Config bf16;
  DataTypesConfig data_types;
  ZeroConfig zero;
  CheckpointConfig checkpoint;
  MonitorConfig tensorboard;
  MonitorConfig csv_monitor;
  CommsLoggerConfig comms_logger;
  ActivationCheckpointingConfig activation_checkpointing;
  AioConfig aio;
  FlopsProfilerConfig flops_profiler;
  AmpConfig amp;
  bool pipeline_parallel = false;
  DscompileConfig dscompile;  // dscompile's own "dscompile" section (parameter groups)

  std::vector<std::string> auto_keys;    // JSON paths given as "auto"
  // What DeepSpeed accepts and dscompile cannot compile, one "json.path: what" each. Parsing records
  // them so that --explain-config can explain the config; compiling refuses them (RefuseUnsupported).
  std::vector<std::string> unsupported;
  nlohmann::json recognised_sections = nlohmann::json::object();  // sections kept as given

  // "fp16" | "bf16" | "fp32": the dtype the model computes in.
  std::string model_dtype() const;
  // data_types.grad_accum_dtype, else the model dtype.
  std::string grad_accum_dtype() const;
  // communication_data_type, else the model dtype (DeepSpeed's engine rule).
  std::string effective_communication_data_type() const;
};

StatusOr<DsConfig> ParseDsConfig(const std::string& json_text, const ConfigOptions& options,
                                 std::vector<std::string>* warnings,
                                 const std::string& source_name = "<config>");
// Errors name the file.
StatusOr<DsConfig> LoadDsConfig(const std::string& path, const ConfigOptions& options,
                                std::vector<std::string>* warnings);
// Parses an already-decoded document (no duplicate-key check possible).
StatusOr<DsConfig> ParseDsConfigJson(const nlohmann::json& document, const ConfigOptions& options,
                                     std::vector<std::string>* warnings,
                                     const std::string& source_name = "<config>");

// Every key with its effective value, under DeepSpeed's key names. It is itself a valid config
// that parses back to the same values (for the world size it was resolved for).
nlohmann::json ResolvedConfigJson(const DsConfig& config);

// The optimizer wrapper DeepSpeed's engine picks (_do_optimizer_sanity_check): "zero_optimization",
// "bf16" (BF16_Optimizer), "ddp_bf16", "fp16" (FP16_Optimizer: no hysteresis), "amp", or "" for the
// bare optimizer; an error for the combinations DeepSpeed refuses.
StatusOr<std::string> OptimizerWrapper(const DsConfig& config);

// The compile-time refusal of config.unsupported: an Unimplemented error naming every JSON path and
// why, or OK when there is none. RunPipeline calls it before the first pass and VerifyPlan for a
// plan's config, so a feature dscompile does not implement is never parsed and ignored.
Status RefuseUnsupported(const DsConfig& config);

// Every top-level key DeepSpeed knows (for "did you mean").
const std::vector<std::string>& KnownTopLevelKeys();

}  // namespace dsc
