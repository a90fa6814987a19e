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
inline constexpr uint32_t kPlanFormatVersion = 1;

// The module (programs and state) plus how it was made.
struct Plan : Module {
  uint32_t format_version = kPlanFormatVersion;
  std::string producer = "dscompile";
  std::string source_model;      // path given to dscompile
  nlohmann::json config;         // the resolved DeepSpeed config it was compiled with
  int world_size = 1;
  std::vector<std::string> command_line;
  std::vector<PassRecord> pipeline;
};

}  // namespace dsc
