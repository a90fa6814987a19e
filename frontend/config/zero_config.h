// The zero_optimization section: DeepSpeedZeroConfig's fields, aliases, deprecated names and checks.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "frontend/config/section_reader.h"

namespace dsc {

struct OffloadParamConfig {
  std::string device = "none";  // "none" | "cpu" | "nvme"
  std::optional<std::string> nvme_path;
  int64_t buffer_count = 5;
  int64_t buffer_size = 100000000;
  int64_t max_in_cpu = 1000000000;
  bool pin_memory = true;
};

struct OffloadOptimizerConfig {
  std::string device = "none";
  std::optional<std::string> nvme_path;
  int64_t buffer_count = 4;
  bool pin_memory = true;
  bool pipeline_read = false;
  bool pipeline_write = false;
  bool fast_init = false;
  double ratio = 1.0;
  bool super_offload = false;
  double cpuadam_cores_perc = 0.8;
  bool pipeline() const { return pipeline_read || pipeline_write; }
};

struct ZenFlowConfig {
  double topk_ratio = 0.1;
  std::string select_strategy = "auto";
  nlohmann::json select_interval = "auto";  // "auto" or an int
  nlohmann::json update_interval = "auto";
  bool overlap_step = false;
  bool offload = false;
  double auto_ratio = 0.99;
  int64_t full_warm_up_rounds = 0;
  double pt_reserved_cores_perc = 0.5;
  std::optional<int64_t> steps_per_epoch;
};

struct LeafModuleConfig {
  std::vector<std::string> classes = {
      "transformers.models.mixtral.modeling_mixtral.MixtralSparseMoeBlock",
      "transformers.models.qwen2_moe.modeling_qwen2_moe.Qwen2MoeSparseMoeBlock",
      "transformers.models.qwen3_moe.modeling_qwen3_moe.Qwen3MoeSparseMoeBlock"};
  std::vector<std::string> names;
  std::vector<std::string> name_suffixes;
};

struct ZeroConfig {
  int stage = 0;
  bool contiguous_gradients = true;
  bool reduce_scatter = true;
  int64_t reduce_bucket_size = 500000000;
  bool use_multi_rank_bucket_allreduce = true;
  bool allgather_partitions = true;
  int64_t allgather_bucket_size = 500000000;
  bool overlap_comm = false;  // DeepSpeed's None resolves to (stage == 3)
  bool load_from_fp32_weights = true;
  bool elastic_checkpoint = false;
  std::optional<OffloadParamConfig> offload_param;
  std::optional<OffloadOptimizerConfig> offload_optimizer;
  std::optional<ZenFlowConfig> zenflow;
  int64_t sub_group_size = 1000000000;
  std::optional<bool> cpu_offload_param;         // deprecated
  std::optional<bool> cpu_offload_use_pin_memory;  // deprecated, kept as given
  std::optional<bool> cpu_offload;               // deprecated
  int64_t prefetch_bucket_size = 50000000;
  int64_t param_persistence_threshold = 100000;
  int64_t model_persistence_threshold = INT64_MAX;
  int64_t max_live_parameters = 1000000000;
  int64_t max_reuse_distance = 1000000000;
  bool gather_16bit_weights_on_model_save = false;
  int64_t module_granularity_threshold = 0;
  bool use_all_reduce_for_fetch_params = false;
  bool allgather_sequential = false;
  bool stage3_gather_fp16_weights_on_model_save = false;  // deprecated
  bool ignore_unused_parameters = true;
  bool legacy_stage1 = false;
  bool round_robin_gradients = false;
  int64_t zero_hpz_partition_size = 1;
  bool zero_quantized_weights = false;
  bool zero_quantized_nontrainable_weights = false;
  bool zero_quantized_gradients = false;
  std::optional<nlohmann::json> zeropp_loco_param;
  int64_t mics_shard_size = -1;
  bool mics_hierarchical_params_gather = false;
  bool memory_efficient_linear = true;
  bool pipeline_loading_checkpoint = false;
  bool override_module_apply = true;
  bool log_trace_cache_warnings = false;
  bool enable_sanity_checks = false;
  bool save_muon_momentum_buffer_in_memory = false;
  LeafModuleConfig leaf_module;

  bool enabled() const { return stage > 0; }
  // DeepSpeed's zero_use_cpu_optimizer / zero_cpu_offload.
  bool optimizer_offloaded() const { return offload_optimizer && offload_optimizer->device != "none"; }
  bool param_offloaded() const { return offload_param && offload_param->device != "none"; }
};

// (pydantic field name, JSON alias) for the stage-3 knobs; the alias is what ResolvedConfigJson writes.
const std::vector<std::pair<std::string, std::string>>& ZeroFieldAliases();

// `section` is the value of "zero_optimization" (object or legacy bool); `top` the whole document.
Status ParseZeroSection(ParseContext& ctx, const nlohmann::json& section, const nlohmann::json& top,
                        ZeroConfig* zero);
nlohmann::json ZeroToJson(const ZeroConfig& zero);

}  // namespace dsc
