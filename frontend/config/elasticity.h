// Elastic training (the "elasticity" section): DeepSpeed's choice of a batch size that many GPU
// counts divide, and the micro batch / accumulation it implies for this world size.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "frontend/config/section_reader.h"

namespace dsc {

struct ElasticResult {
  int64_t final_batch_size = 0;
  // None (nullopt) when no candidate batch had a GPU count in range, as DeepSpeed returns it.
  std::optional<std::vector<int64_t>> valid_gpus;
  std::optional<int64_t> micro_batch_size;  // when a world size was given
};

// DeepSpeed's compute_elastic_config(ds_config, target_deepspeed_version, world_size). With
// world_size 0, version 0.2 takes the GPU count from `env_world_size` (DeepSpeed: $WORLD_SIZE).
StatusOr<ElasticResult> ComputeElasticConfig(const nlohmann::json& ds_config, const std::string& target_version,
                                             int64_t world_size, std::optional<int64_t> env_world_size,
                                             const std::string& source = "<config>");

// The DeepSpeed version whose elasticity rules we follow.
inline constexpr const char* kDeepSpeedVersion = "0.19.6";

}  // namespace dsc
