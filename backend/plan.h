// The compiled training plan: what dscompile writes and dsrun/dsinspect load (one versioned file).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "ir/graph.h"
#include "ir/module.h"
#include "passes/pass_manager.h"  // PassRecord

namespace dsc {

// Bump when the file layout or the meaning of any field changes; loading another version fails.
inline constexpr uint32_t kPlanFormatVersion = 2;  // 2: initial values in a step-0 checkpoint

// The module (programs and state) plus how it was made.
struct Plan : Module {
  uint32_t format_version = kPlanFormatVersion;
  std::string producer = "dscompile";
  std::string source_model;      // path given to dscompile
  nlohmann::json config;         // the resolved DeepSpeed config it was compiled with
  int world_size = 1;
  std::vector<std::string> command_line;
  std::vector<PassRecord> pipeline;
  // A plan read from a file holds no initial values (Module::initial_state is null): they are the
  // step-0 checkpoint dscompile wrote next to it (runtime/checkpoint_format.h), here as a path,
  // with the crc32c its manifest.json had when written (a weights folder of another compile is
  // refused). Empty when initial_state holds them (a plan built or parsed in memory).
  std::string initial_values_dir;
  uint32_t initial_values_manifest_crc = 0;
};

}  // namespace dsc
