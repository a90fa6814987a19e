// Command-line parsing.
#include "tools/cli_args.h"

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <iostream>
#include <new>

namespace dsc {

std::string ParsedArgs::Get(const std::string& flag, const std::string& dflt) const {
  auto it = values.find(flag);
  return it == values.end() || it->second.empty() ? dflt : it->second.back();
}

const std::vector<std::string>& ParsedArgs::All(const std::string& flag) const {
  static const std::vector<std::string> kEmpty;
  auto it = values.find(flag);
  return it == values.end() ? kEmpty : it->second;
}

StatusOr<int64_t> ParsedArgs::GetInt(const std::string& flag, int64_t dflt) const {
  if (!Has(flag)) return dflt;
  const std::string s = Get(flag);
  try {
    size_t pos = 0;
    long long v = std::stoll(s, &pos);
    if (pos != s.size()) throw std::invalid_argument(s);
    return static_cast<int64_t>(v);
  } catch (const std::exception&) {
    return InvalidArgument(flag, " expects an integer, got '", s, "'");
  }
}

StatusOr<ParsedArgs> ParseArgs(int argc, char** argv, const std::vector<FlagSpec>& specs) {
  ParsedArgs out;
  bool only_positional = false;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    if (only_positional || arg.size() < 2 || arg[0] != '-') {
      out.positional.push_back(arg);
      continue;
    }
    if (arg == "--") {
      only_positional = true;
      continue;
    }
    std::string name = arg, value;
    bool inline_value = false;
    if (auto eq = arg.find('='); eq != std::string::npos && arg.rfind("--", 0) == 0) {
      name = arg.substr(0, eq);
      value = arg.substr(eq + 1);
      inline_value = true;
    }
    const FlagSpec* spec = nullptr;
    for (const auto& s : specs)
      if (s.name == name) spec = &s;
    if (!spec) return InvalidArgument("unknown option ", name, " (see --help)");
    if (!spec->takes_value) {
      if (inline_value) return InvalidArgument(name, " takes no value");
      value.clear();
    } else if (!inline_value) {
      if (i + 1 >= argc) return InvalidArgument(name, " needs a value");
      value = argv[++i];
    }
    auto& slot = out.values[name];
    if (!slot.empty() && !spec->repeatable && spec->takes_value)
      return InvalidArgument(name, " is given twice");
    slot.push_back(value);
  }
  return out;
}

std::optional<ParsedArgs> ParseCommandLine(const char* tool, int argc, char** argv, const std::vector<FlagSpec>& specs,
                                           const char* usage, int* exit_code) {
  StatusOr<ParsedArgs> args = ParseArgs(argc, argv, specs);
  if (!args.ok()) {
    std::cerr << tool << ": " << args.status().message() << "\n";
    *exit_code = 2;
    return std::nullopt;
  }
  if (args->Has("-h") || args->Has("--help")) {
    std::cout << usage;
    *exit_code = 0;
    return std::nullopt;
  }
  return std::move(args).value();
}

namespace {

const char* g_tool = "dscompile";  // for the terminate handler, which takes no arguments

std::string DescribeException(std::exception_ptr e) {
  try {
    std::rethrow_exception(e);
  } catch (const std::bad_alloc&) {
    return "out of memory (std::bad_alloc)";
  } catch (const std::exception& ex) {
    return ex.what();
  } catch (...) {
    return "an unknown exception";
  }
}

// An exception that escapes a worker thread (a kernel's OpenMP region, say) never reaches
// RunTool's catch: std::terminate would abort with a core dump and no word about the cause.
[[noreturn]] void OnTerminate() {
  std::exception_ptr e = std::current_exception();
  const std::string what = e ? DescribeException(e) : "terminated without an exception";
  std::fprintf(stderr, "%s: error: %s\n", g_tool, what.c_str());
  std::fflush(stderr);
  std::_Exit(1);  // under mpirun, a rank exiting without finalizing ends the whole job
}

}  // namespace

Status FlushStdout() {
  errno = 0;
  std::cout.flush();
  int err = errno;
  const bool cout_failed = !std::cout;
  if (std::fflush(stdout) != 0 && err == 0) err = errno;
  if (cout_failed || std::ferror(stdout))
    return DataLoss("cannot write to standard output: ", std::strerror(err ? err : EIO));
  return Status::OK();
}

int RunTool(const char* tool, const std::function<int()>& body,
            const std::function<void(const std::string&)>& on_exception) {
  g_tool = tool;
  std::set_terminate(OnTerminate);
  int rc = 0;
  try {
    rc = body();
  } catch (...) {
    const std::string what = DescribeException(std::current_exception());
    if (on_exception) on_exception(what);
    std::cerr << tool << ": error: " << what << "\n";
    return 1;
  }
  if (Status s = FlushStdout(); !s.ok()) {
    std::cerr << tool << ": error: " << s.message() << "\n";
    return rc == 0 ? 1 : rc;
  }
  return rc;
}

}  // namespace dsc
