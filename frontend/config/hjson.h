// Reads a config file the way DeepSpeed does: hjson.load (hjson-py 3.1) with DeepSpeed's duplicate
// key check, so every file DeepSpeed accepts reads to the same values here.
//
//   ASSIGN_OR_RETURN(nlohmann::json doc, ParseHjson(text, "ds.json", kMaxConfigNesting));
#pragma once

#include <string>

#include <nlohmann/json.hpp>

#include "ir/status.h"

namespace dsc {

// Hjson is JSON plus: #, // and /* */ comments; optional and trailing commas; quoteless keys; quoteless
// strings (to the end of the line); single-quoted and '''multiline''' strings; a root object without
// braces; an empty file for {}. hjson-py's readings that a JSON reader would not guess are kept:
// a number with a fraction or exponent whose value is whole and below 1e10 is an integer ("2.0" -> 2);
// a quoteless value that is not exactly a number, true, false or null runs to the end of its line
// ("Adam, lr: 1" is one string). An object with a repeated key is an error naming the keys' paths
// (DeepSpeed: "Duplicate keys in DeepSpeed config"); so is nesting deeper than `max_depth`. Errors
// name `source_name`, the line and the column, and carry DeepSpeed's error kind.
StatusOr<nlohmann::json> ParseHjson(const std::string& text, const std::string& source_name, int max_depth);

}  // namespace dsc
