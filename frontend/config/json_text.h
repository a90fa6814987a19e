// Reads ds_config text the way DeepSpeed's loader does (hjson, see hjson.h): comments, trailing commas,
// quoteless keys and strings; duplicate keys are an error (DeepSpeed: "Duplicate keys in DeepSpeed config").
#pragma once

#include <cstdint>
#include <string>

#include <nlohmann/json.hpp>

#include "ir/status.h"

namespace dsc {

// DeepSpeed configs nest about 4 deep. Deeper text is refused before nlohmann parses it: the
// duplicate-key tracking costs memory quadratic in depth, and printing a deep value recurses.
inline constexpr int kMaxConfigNesting = 64;
// Files larger than this are not configs (and `--config /dev/zero` must not read forever).
inline constexpr int64_t kMaxConfigBytes = 16 << 20;

// Parses `text`; errors name `source_name`, the line and column, or the duplicated key's path.
StatusOr<nlohmann::json> ParseConfigJson(const std::string& text, const std::string& source_name);

// "nesting deeper than N objects and arrays at line L, column C" where JSON `text` (comments
// already blanked) opens its (max_depth + 1)-th nested object or array. Linear, no recursion; the
// plan file checks its header with it too.
Status CheckJsonNesting(const std::string& text, int max_depth);

}  // namespace dsc
