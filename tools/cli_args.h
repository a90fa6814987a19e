// A small command-line parser shared by dscompile, dsrun and dsinspect: --flag, --flag=value, --flag value.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "ir/status.h"

namespace dsc {

struct FlagSpec {
  std::string name;       // "--config" or "-o"
  bool takes_value;
  bool repeatable = false;
};

struct ParsedArgs {
  std::vector<std::string> positional;
  std::map<std::string, std::vector<std::string>> values;  // flag -> values ("" for switches)

  bool Has(const std::string& flag) const { return values.count(flag) > 0; }
  std::string Get(const std::string& flag, const std::string& dflt = "") const;
  const std::vector<std::string>& All(const std::string& flag) const;
  StatusOr<int64_t> GetInt(const std::string& flag, int64_t dflt) const;
};

// Unknown flags, missing values and repeated single-use flags are errors naming the flag.
StatusOr<ParsedArgs> ParseArgs(int argc, char** argv, const std::vector<FlagSpec>& specs);

// The start every tool shares: parses, prints `usage` for -h/--help, reports a usage error as
// "TOOL: message". Returns the arguments, or nullopt with *exit_code set (0 help, 2 misuse).
std::optional<ParsedArgs> ParseCommandLine(const char* tool, int argc, char** argv, const std::vector<FlagSpec>& specs,
                                           const char* usage, int* exit_code);

}  // namespace dsc
