// dsinspect: shows what a compiled plan holds (summary, JSON, or a program's graph); logic lives in
// backend/plan_summary.h.
#include <cerrno>
#include <cstdint>
#include <cstdlib>
#include <iostream>
#include <optional>
#include <string>
#include <vector>

#include "backend/plan_file.h"
#include "ir/file_write.h"
#include "backend/plan_summary.h"
#include "tools/cli_args.h"

namespace {

constexpr const char* kUsage = R"(usage: dsinspect PLAN [options]

Shows what a plan compiled by dscompile holds.

  (no options)          summary: producer, pipeline, config, and per program the ops,
                        inputs, outputs, loss, parameters and constants
  --json                the same summary as JSON (stable keys, for scripts and jq)
  --program NAME        only this program (default: all for the summary, the first for --graph)
  --graph               print the program's graph in the IR text form
  --format text|onnx|dot
                        graph format (implies --graph): IR text, an .onnx model (needs -o;
                        opens in Netron) or a Graphviz digraph
  --elide N             in the text form, elide initializers with more than N elements
                        (default 64; -1 prints every weight)
  -o FILE               write to FILE instead of standard output
  --help                this message

Exit status: 0 on success, 1 when the plan cannot be read or written, 2 on a usage error.
)";

struct Options {
  std::string plan;
  bool json = false;
  bool graph = false;
  std::optional<std::string> program;
  std::optional<std::string> format;
  std::optional<std::string> output;
  int64_t elide = 64;
};

int UsageError(const std::string& msg) {
  std::cerr << "dsinspect: " << msg << "\n(run dsinspect --help for usage)\n";
  return 2;
}

int Fail(const dsc::Status& s) {
  std::cerr << "dsinspect: error: " << s.message() << "\n";
  return 1;
}

// Returns an exit code when parsing ends the run (help, usage error), nullopt to go on.
std::optional<int> ParseArgs(int argc, char** argv, Options* o) {
  std::vector<std::string> args(argv + 1, argv + argc);
  for (size_t i = 0; i < args.size(); ++i) {
    std::string a = args[i];
    std::optional<std::string> inline_value;
    if (a.rfind("--", 0) == 0 && a.find('=') != std::string::npos) {
      inline_value = a.substr(a.find('=') + 1);
      a = a.substr(0, a.find('='));
    }
    auto value = [&](std::string* out) -> bool {
      if (inline_value) {
        *out = *inline_value;
        return true;
      }
      if (i + 1 >= args.size()) return false;
      *out = args[++i];
      return true;
    };
    auto takes_no_value = [&]() { return !inline_value.has_value(); };
    std::string v;
    if (a == "--help" || a == "-h") {
      std::cout << kUsage;
      return 0;
    } else if (a == "--json" && takes_no_value()) {
      o->json = true;
    } else if (a == "--graph" && takes_no_value()) {
      o->graph = true;
    } else if (a == "--program") {
      if (!value(&v)) return UsageError("--program needs a program name");
      o->program = v;
    } else if (a == "--format") {
      if (!value(&v)) return UsageError("--format needs text, onnx or dot");
      o->format = v;
    } else if (a == "-o" || a == "--output") {
      if (!value(&v)) return UsageError(a + " needs a file name");
      o->output = v;
    } else if (a == "--elide") {
      if (!value(&v)) return UsageError("--elide needs a number");
      char* end = nullptr;
      errno = 0;
      long long n = std::strtoll(v.c_str(), &end, 10);
      if (v.empty() || *end != '\0' || errno != 0 || n < -1) return UsageError("--elide needs a number >= -1, got '" + v + "'");
      o->elide = n;
    } else if (a.size() > 1 && a[0] == '-') {
      return UsageError("unknown option '" + args[i] + "'");
    } else if (o->plan.empty()) {
      o->plan = a;
    } else {
      return UsageError("more than one plan given ('" + o->plan + "' and '" + a + "')");
    }
  }
  if (o->plan.empty()) return UsageError("no plan given");
  if (o->format) o->graph = true;
  if (o->json && o->graph) return UsageError("--json is for the summary; it does not combine with --graph/--format");
  return std::nullopt;
}

int Emit(const Options& o, const std::string& text) {
  if (!o.output) {
    std::cout << text;
    return 0;
  }
  dsc::Status s = dsc::WriteFileAtomically(*o.output, text);
  return s.ok() ? 0 : Fail(s);
}

int Run(const Options& o) {
  dsc::StatusOr<dsc::Plan> plan = dsc::ReadPlan(o.plan);
  if (!plan.ok()) return Fail(plan.status());

  if (o.program && !plan->FindProgram(*o.program)) {
    std::string names;
    for (const dsc::PlanProgram& p : plan->programs) names += (names.empty() ? "" : ", ") + p.name;
    return Fail(dsc::NotFound(o.plan, " has no program '", *o.program, "' (it has: ", names.empty() ? "none" : names, ")"));
  }

  if (!o.graph) {
    nlohmann::json summary = dsc::SummarizePlan(*plan, o.program.value_or(""));
    return Emit(o, o.json ? summary.dump(2) + "\n" : dsc::RenderSummaryText(summary, o.plan));
  }

  dsc::StatusOr<dsc::GraphFormat> format = dsc::ParseGraphFormat(o.format.value_or("text"));
  if (!format.ok()) return UsageError(format.status().message());
  if (*format == dsc::GraphFormat::kOnnx && !o.output)
    return UsageError("--format onnx writes a binary model: give -o FILE.onnx");
  if (plan->programs.empty()) return Fail(dsc::NotFound(o.plan, " holds no programs"));
  const dsc::PlanProgram* program = o.program ? plan->FindProgram(*o.program) : &plan->programs.front();
  dsc::StatusOr<std::string> out = dsc::ExportGraph(*program->graph, *format, o.elide);
  if (!out.ok()) return Fail(out.status());
  return Emit(o, *out);
}

}  // namespace

int main(int argc, char** argv) {
  return dsc::RunTool("dsinspect", [&] {
    Options o;
    if (std::optional<int> rc = ParseArgs(argc, argv, &o)) return *rc;
    return Run(o);
  });
}
