// The compiled training plan: what dscompile writes and dsrun/dsinspect load (one versioned file).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "ir/graph.h"
#include "passes/pass_manager.h"  // PassRecord

namespace dsc {

// Bump when the file layout or the meaning of any field changes; loading another version fails.
inline constexpr uint32_t kPlanFormatVersion = 1;

// A named program of the plan (e.g. "train" today; "micro_step"/"step" once accumulation lands).
struct PlanProgram {
  std::string name;
  std::unique_ptr<Graph> graph;
};

struct Plan {
  uint32_t format_version = kPlanFormatVersion;
  std::string producer = "dscompile";
  std::string source_model;      // path given to dscompile
  nlohmann::json config;         // the resolved DeepSpeed config it was compiled with
  int world_size = 1;
  std::vector<std::string> command_line;
  std::vector<PassRecord> pipeline;
  std::vector<PlanProgram> programs;

  const PlanProgram* FindProgram(const std::string& name) const;
};

}  // namespace dsc
