// dsinspect: shows what a compiled plan holds (summary, JSON, a program's graph, a memory timeline),
// plots a metrics file, and exports a checkpoint's trained weights as ONNX or safetensors; logic
// lives in backend/plan_summary.h, memory_timeline.h, metrics_plot.h, export_onnx.h and
// export_safetensors.h.
#include <cerrno>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "backend/export_onnx.h"
#include "backend/export_safetensors.h"
#include "backend/memory_timeline.h"
#include "backend/metrics_plot.h"
#include "backend/plan_file.h"
#include "ir/file_write.h"
#include "backend/plan_summary.h"
#include "tools/cli_args.h"
#include "tools/tool_mains.h"

namespace {

constexpr const char* kUsage = R"(usage: dsinspect PLAN [options]
       dsinspect --export-onnx CKPT OUT.onnx [--export-source MODEL.onnx]
       dsinspect --export-safetensors CKPT OUT.safetensors [--export-source MODEL.onnx]
       dsinspect PLAN --memory-timeline OUT.svg|OUT.json [--program NAME]
       dsinspect --plot-metrics METRICS.jsonl OUT.svg

Shows what a plan compiled by dscompile holds, or exports the trained weights of a checkpoint
that dsrun --save-dir wrote.

  (no options)          summary: producer, pipeline, config, and per program the ops,
                        inputs, outputs, loss, parameters, constants, memory and the schedule
                        of bucketed collectives; per rank the state (with each parameter's
                        group when the config has parameter groups), memory by kind, the
                        places of the bytes (device, host, NVMe) and the bytes moved between
                        them per optimizer step, and bytes and collective calls per step
  --schedule            in the summary, every bucketed collective of each program: its members,
                        node indices, bytes sent and the compute it overlaps (by default one
                        line per bucket, at most 20 per program)
  --json                the same summary as JSON (stable keys, for scripts and jq; the schedule
                        is always complete there)
  --program NAME        only this program (default: all for the summary, the first for --graph)
  --graph               print the program's graph in the IR text form
  --format text|onnx|dot
                        graph format (implies --graph): IR text, an .onnx model (needs -o;
                        opens in Netron) or a Graphviz digraph
  --elide N             in the text form, elide initializers with more than N elements
                        (default 64; -1 prints every weight)
  -o FILE               write to FILE instead of standard output
  --memory-timeline OUT.svg|OUT.json
                        the bytes alive at every node of each program (or --program's), per
                        rank: the state as constant bands, the activation arena's values
                        stacked by kind (gathered parameters, gradients, communication
                        buffers, activations) and the arena in use as a line, with the peak
                        marked and its largest values named; .json writes the data
                        (format at the top of backend/memory_timeline.h)
  --help                this message

Exports (no PLAN; CKPT is a checkpoint folder DIR, whose `latest` tag is used, or DIR/TAG):
  --export-onnx CKPT OUT.onnx
                        the source model with the trained parameters (fp32 masters of a
                        half-precision run) and BatchNorm statistics as its initializers;
                        passes ONNX's checker; external data in OUT.onnx.data above 2 GB
  --export-safetensors CKPT OUT.safetensors
                        the same weights, consolidated, under the model's initializer names
                        (PyTorch's state_dict names for PyTorch exports), for
                        safetensors.torch.load_file and Hugging Face
  --export-source MODEL.onnx
                        the model the checkpoint was trained from (default: the path its
                        manifest records); safetensors exports use it for the dtypes only
                        and keep the checkpoint's dtypes when the recorded model is gone
  Both exports may be given at once. Files are written atomically; nothing is left on failure.

Metrics (no PLAN):
  --plot-metrics METRICS.jsonl OUT.svg
                        the loss, learning rate and gradient norm per step of a
                        dsrun --metrics file (and the loss scale when it changes), skipped
                        steps marked

Exit status: 0 on success, 1 when the plan or checkpoint cannot be read or an output cannot be
written, 2 on a usage error.
)";

struct Options {
  std::string plan;
  bool json = false;
  bool graph = false;
  bool schedule = false;
  std::optional<std::string> program;
  std::optional<std::string> format;
  std::optional<std::string> output;
  int64_t elide = 64;
  // Exports: (checkpoint, output file).
  std::optional<std::pair<std::string, std::string>> export_onnx, export_safetensors;
  std::optional<std::string> export_source;
  std::optional<std::string> memory_timeline;
  std::optional<std::pair<std::string, std::string>> plot_metrics;  // (metrics file, output)
  bool exporting() const { return export_onnx || export_safetensors; }
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
    } else if (a == "--schedule" && takes_no_value()) {
      o->schedule = true;
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
    } else if (a == "--export-onnx" || a == "--export-safetensors") {
      if (inline_value || i + 2 >= args.size()) return UsageError(a + " needs a checkpoint and an output file");
      auto& slot = a == "--export-onnx" ? o->export_onnx : o->export_safetensors;
      if (slot) return UsageError(a + " given twice");
      slot = std::make_pair(args[i + 1], args[i + 2]);
      i += 2;
    } else if (a == "--memory-timeline") {
      if (!value(&v)) return UsageError("--memory-timeline needs an output file (.svg or .json)");
      if (!v.ends_with(".svg") && !v.ends_with(".json"))
        return UsageError("--memory-timeline writes .svg or .json, not '" + v + "'");
      o->memory_timeline = v;
    } else if (a == "--plot-metrics") {
      if (inline_value || i + 2 >= args.size()) return UsageError("--plot-metrics needs a metrics file and an output .svg");
      if (!args[i + 2].ends_with(".svg")) return UsageError("--plot-metrics writes an .svg, not '" + args[i + 2] + "'");
      o->plot_metrics = std::make_pair(args[i + 1], args[i + 2]);
      i += 2;
    } else if (a == "--export-source") {
      if (!value(&v)) return UsageError("--export-source needs a model file");
      o->export_source = v;
    } else if (a.size() > 1 && a[0] == '-') {
      return UsageError("unknown option '" + args[i] + "'");
    } else if (o->plan.empty()) {
      o->plan = a;
    } else {
      return UsageError("more than one plan given ('" + o->plan + "' and '" + a + "')");
    }
  }
  if (o->plot_metrics) {
    if (!o->plan.empty()) return UsageError("--plot-metrics reads a metrics file, not a plan: '" + o->plan + "' is one argument too many");
    if (o->exporting() || o->json || o->graph || o->schedule || o->format || o->program || o->output || o->memory_timeline)
      return UsageError("--plot-metrics does not combine with other options");
    return std::nullopt;
  }
  if (o->exporting()) {
    if (!o->plan.empty())
      return UsageError("exports read a checkpoint, not a plan: '" + o->plan + "' is one argument too many");
    if (o->json || o->graph || o->schedule || o->format || o->program || o->output || o->memory_timeline)
      return UsageError("--export-onnx/--export-safetensors do not combine with the plan options");
    return std::nullopt;
  }
  if (o->export_source) return UsageError("--export-source goes with --export-onnx or --export-safetensors");
  if (o->plan.empty()) return UsageError("no plan given");
  if (o->memory_timeline && (o->json || o->graph || o->schedule || o->format || o->output))
    return UsageError("--memory-timeline writes its own file; it does not combine with --json, --graph, --format, --schedule or -o");
  if (o->format) o->graph = true;
  if (o->json && o->graph) return UsageError("--json is for the summary; it does not combine with --graph/--format");
  if (o->schedule && (o->json || o->graph))
    return UsageError("--schedule is for the text summary; --json always holds the whole schedule, and --graph has none");
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

// One export: `flag` names it in messages, `job` is (checkpoint, output file).
dsc::Status Export(const Options& o, const std::string& flag, const std::pair<std::string, std::string>& job) {
  namespace fs = std::filesystem;
  const auto& [ckpt_arg, out] = job;
  const std::string what = flag + " " + out;
  const fs::path out_dir = fs::path(out).parent_path();
  std::error_code ec;
  if (!out_dir.empty() && !fs::is_directory(out_dir, ec))
    return dsc::NotFound(what, ": the folder ", out_dir.string(), " does not exist");

  std::string note;
  ASSIGN_OR_RETURN(const std::string ckpt_path, dsc::ResolveCheckpoint(ckpt_arg, &note));
  if (!note.empty()) std::cerr << "dsinspect: note: " << note << "\n";
  ASSIGN_OR_RETURN(const dsc::Checkpoint ckpt, dsc::Checkpoint::Open(ckpt_path));
  const dsc::CheckpointMeta& meta = ckpt.manifest().meta;

  const std::string source = o.export_source.value_or(meta.source_model);
  const std::string source_from = o.export_source ? "--export-source" : "the model " + ckpt_path + " records";
  const bool have_source = !source.empty() && fs::is_regular_file(source, ec);
  const bool onnx = flag == "--export-onnx";
  if (!have_source && (onnx || o.export_source))
    return dsc::NotFound(what, ": the source model ", source.empty() ? "(none recorded)" : "'" + source + "'", " (",
                         source_from, ") is not a readable file; give --export-source MODEL.onnx");
  std::map<std::string, dsc::DType> dtypes;
  if (have_source) {
    ASSIGN_OR_RETURN(dtypes, dsc::OnnxInitializerDTypes(source));
  } else {
    std::cerr << "dsinspect: note: " << what << ": the source model "
              << (source.empty() ? "is not recorded" : "'" + source + "' is not a readable file")
              << ", so the weights keep the checkpoint's dtypes (--export-source MODEL.onnx converts them to "
                 "the model's)\n";
  }
  dsc::StatusOr<std::map<std::string, dsc::Tensor>> weights = dsc::TrainedWeightsFromCheckpoint(ckpt, dtypes);
  if (!weights.ok()) return weights.status().WithContext(what);
  if (onnx) {
    RETURN_IF_ERROR(dsc::ExportTrainedOnnx(source, *weights, out, dsc::ExportOptions{}).WithContext(what));
  } else {
    const std::map<std::string, std::string> metadata = {
        {"dsc.checkpoint", ckpt.manifest().tag}, {"dsc.step", std::to_string(meta.step)},
        {"dsc.plan_hash", meta.plan_hash}, {"dsc.source_model", have_source ? source : ""}};
    RETURN_IF_ERROR(dsc::ExportSafetensors(*weights, out, metadata).WithContext(what));
  }
  std::cout << "dsinspect: wrote " << out << ": " << weights->size() << " tensors of " << ckpt_path << " (step "
            << meta.step << ")\n";
  return dsc::Status::OK();
}

int RunExports(const Options& o) {
  if (o.export_onnx)
    if (dsc::Status s = Export(o, "--export-onnx", *o.export_onnx); !s.ok()) return Fail(s);
  if (o.export_safetensors)
    if (dsc::Status s = Export(o, "--export-safetensors", *o.export_safetensors); !s.ok()) return Fail(s);
  return 0;
}

// Writes `text` to `path` and says so on standard output.
int WriteOutput(const std::string& path, const std::string& text, const std::string& what) {
  if (dsc::Status s = dsc::WriteFileAtomically(path, text); !s.ok()) return Fail(s);
  std::cout << "dsinspect: wrote " << path << " (" << what << ")\n";
  return 0;
}

int Run(const Options& o) {
  if (o.plot_metrics) {
    dsc::StatusOr<std::string> svg = dsc::PlotMetricsSvg(o.plot_metrics->first);
    if (!svg.ok()) return Fail(svg.status());
    return WriteOutput(o.plot_metrics->second, *svg, "metrics of " + o.plot_metrics->first);
  }
  if (o.exporting()) return RunExports(o);
  dsc::StatusOr<dsc::Plan> plan = dsc::ReadPlan(o.plan);
  if (!plan.ok()) return Fail(plan.status());

  if (o.program && !plan->FindProgram(*o.program)) {
    std::string names;
    for (const dsc::PlanProgram& p : plan->programs) names += (names.empty() ? "" : ", ") + p.name;
    return Fail(dsc::NotFound(o.plan, " has no program '", *o.program, "' (it has: ", names.empty() ? "none" : names, ")"));
  }

  if (o.memory_timeline) {
    dsc::StatusOr<nlohmann::json> timeline = dsc::MemoryTimeline(*plan, o.program.value_or(""));
    if (!timeline.ok()) return Fail(timeline.status().WithContext(o.plan));
    const bool json = o.memory_timeline->ends_with(".json");
    return WriteOutput(*o.memory_timeline,
                       json ? timeline->dump(1) + "\n" : dsc::RenderMemoryTimelineSvg(*timeline, o.plan),
                       std::string("memory timeline") + (json ? " data" : "") + " of " + o.plan);
  }

  if (!o.graph) {
    nlohmann::json summary = dsc::SummarizePlan(*plan, o.program.value_or(""));
    dsc::SummaryTextOptions text;
    text.full_schedule = o.schedule;
    return Emit(o, o.json ? summary.dump(2) + "\n" : dsc::RenderSummaryText(summary, o.plan, text));
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

int DsinspectMain(int argc, char** argv) {
  return dsc::RunTool("dsinspect", [&] {
    Options o;
    if (std::optional<int> rc = ParseArgs(argc, argv, &o)) return *rc;
    return Run(o);
  });
}
