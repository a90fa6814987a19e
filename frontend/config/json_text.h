// Reads ds_config text the way DeepSpeed's hjson loader does: comments and trailing commas are
// allowed, duplicate keys are an error (DeepSpeed: "Duplicate keys in DeepSpeed config").
#pragma once

#include <string>

#include <nlohmann/json.hpp>

#include "ir/status.h"

namespace dsc {

// Parses `text`; errors name `source_name`, the line and column, or the duplicated key's path.
StatusOr<nlohmann::json> ParseConfigJson(const std::string& text, const std::string& source_name);

// The text with //, /* */ and # comments and trailing commas blanked out (lines and columns kept),
// or an error for an unterminated comment or string.
StatusOr<std::string> StripJsonExtensions(const std::string& text, const std::string& source_name);

}  // namespace dsc
