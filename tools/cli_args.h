// A small command-line parser shared by dscompile, dsrun and dsinspect: --flag, --flag=value, --flag value.
#pragma once

#include <functional>
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

// Runs a tool's body so that nothing ends it silently or as a crash: any exception (bad_alloc,
// filesystem_error, JSON, anything) becomes "TOOL: error: ..." and exit 1, and standard output is
// flushed and checked, so `TOOL ... > /dev/full` fails instead of exiting 0 with nothing written.
// `on_exception` runs with the message before returning (dsrun ends its other ranks there).
int RunTool(const char* tool, const std::function<int()>& body,
            const std::function<void(const std::string&)>& on_exception = {});

// Flushes standard output; the error says it could not be written and why.
Status FlushStdout();

}  // namespace dsc
