// Pipeline execution.
#include "passes/pass_manager.h"

#include <algorithm>
#include <chrono>
#include <ctime>
#include <cstdio>
#include <filesystem>
#include <iomanip>

#include "frontend/config/ds_config.h"
#include "ir/file_write.h"
#include "ir/onnx_convert.h"
#include "ir/text.h"
#include "passes/optimizer.h"
#include "passes/precision_policy.h"

namespace dsc {
namespace {

Status WriteDump(const std::string& path, const std::string& bytes) {
  return WriteFileAtomically(path, bytes).WithContext("--dump-dir");
}

Status Dump(const Module& m, const PipelineOptions& opts, int index, const std::string& name) {
  char prefix[16];
  std::snprintf(prefix, sizeof(prefix), "%02d-", index);
  std::filesystem::path base = std::filesystem::path(opts.dump_dir) / (prefix + name);
  RETURN_IF_ERROR(WriteDump(base.string() + ".onnx.txt", PrintModule(m, opts.dump_elide_above)));
  for (const PlanProgram& p : m.programs) {
    std::string suffix = m.programs.size() == 1 ? "" : "." + p.name;
    RETURN_IF_ERROR(WriteDump(base.string() + suffix + ".onnx", GraphToOnnx(*p.graph).SerializeAsString()));
  }
  return Status::OK();
}

// CPU time of the whole process (every thread): unlike wall time, it does not grow when other
// programs share the cores, so scaling measurements on a busy machine read it.
double ProcessCpuSeconds() {
  timespec t{};
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
  return static_cast<double>(t.tv_sec) + static_cast<double>(t.tv_nsec) * 1e-9;
}

}  // namespace

std::string PrintModule(const Module& m, int64_t elide_above) {
  PrintOptions popts;
  popts.elide_above = elide_above;
  if (m.programs.size() == 1) return PrintGraph(*m.programs[0].graph, popts);
  std::string out;
  for (const PlanProgram& p : m.programs) out += "# ===== program " + p.name + "\n" + PrintGraph(*p.graph, popts);
  return out;
}

Status VerifyModule(const Module& m, const VerifyOptions& opts) {
  for (const PlanProgram& p : m.programs) {
    Status s = VerifyGraph(*p.graph, opts);
    if (!s.ok()) return m.programs.size() > 1 ? s.WithContext(StrCat("program '", p.name, "'")) : s;
  }
  return Status::OK();
}

std::vector<std::string> CompileTimeRefusals(const DsConfig& config) {
  std::vector<std::string> refusals = config.unsupported;
  if (!config.optimizer.present()) {
    refusals.push_back("optimizer: no optimizer.type; DeepSpeed then trains only with a client optimizer, which a "
                       "plan cannot have (the optimizer pass refuses it)");
  } else if (std::none_of(refusals.begin(), refusals.end(), [](const std::string& r) { return r.rfind("optimizer", 0) == 0; })) {
    // Already listed under optimizer.* otherwise: the pass would never run.
    if (Status s = CheckOptimizerLowerable(config); !s.ok()) refusals.push_back(s.message());
  }
  if (StatusOr<PrecisionMode> mode = ResolvePrecision(config); !mode.ok()) {
    // Its messages name the source first ("ds.json: amp.master_weights: ..."): keep the path on.
    const std::string& m = mode.status().message();
    const std::string prefix = config.source + ": ";
    refusals.push_back(m.rfind(prefix, 0) == 0 ? m.substr(prefix.size()) : m);
  }
  return refusals;
}

StatusOr<std::vector<PassRecord>> RunPipeline(Module& g, const std::vector<PassId>& pipeline,
                                              const PassContext& ctx, const PipelineOptions& opts) {
  // Parsing keeps what DeepSpeed accepts and dscompile does not implement, for --explain-config;
  // compiling starts by refusing it, so no such setting is ever ignored.
  if (ctx.config) RETURN_IF_ERROR(RefuseUnsupported(*ctx.config));
  if (!opts.dump_dir.empty()) {
    std::error_code ec;
    std::filesystem::create_directories(opts.dump_dir, ec);
    if (ec) return InvalidArgument("--dump-dir ", opts.dump_dir, ": ", ec.message());
    RETURN_IF_ERROR(Dump(g, opts, 0, "input"));
  }
  VerifyOptions verify;
  RETURN_IF_ERROR(VerifyModule(g, verify).WithContext("the imported graph fails verification"));
  std::vector<PassRecord> records;
  int index = 0;
  for (PassId id : pipeline) {
    if (opts.stop_after_pass_num >= 0 && index >= opts.stop_after_pass_num) break;
    ++index;
    std::unique_ptr<Pass> pass = CreatePass(id);
    auto start = std::chrono::steady_clock::now();
    const double cpu_start = ProcessCpuSeconds();
    StatusOr<bool> changed = pass->Run(g, ctx);
    double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    const double cpu_seconds = ProcessCpuSeconds() - cpu_start;
    if (!changed.ok()) return changed.status().WithContext(StrCat("pass ", index, " '", pass->name(), "'"));
    records.push_back(PassRecord{pass->name(), *changed, seconds});
    if (pass->establishes_static_shapes()) {
      verify.require_types = true;
      verify.require_static_shapes = true;
    }
    Status v = VerifyModule(g, verify);
    if (!v.ok())
      return Internal("the graph fails verification after pass ", index, " '", pass->name(), "': ", v.message(),
                      " (rerun with --dump-dir to see the graph before and after)");
    if (!opts.dump_dir.empty()) RETURN_IF_ERROR(Dump(g, opts, index, pass->name()));
    if (opts.out && (opts.print_after.count("all") || opts.print_after.count(pass->name())))
      *opts.out << "# ----- IR after pass " << index << " '" << pass->name() << "'"
                << (*changed ? "" : " (unchanged)") << "\n"
                << PrintModule(g, opts.dump_elide_above) << "\n";
    if (opts.out && opts.time_passes)
      *opts.out << "pass " << std::setw(2) << index << " " << std::left << std::setw(18) << pass->name()
                << std::right << std::fixed << std::setprecision(3) << std::setw(9) << seconds * 1e3 << " ms"
                << std::setw(10) << cpu_seconds * 1e3 << " ms cpu" << (*changed ? "  changed" : "") << "\n";
  }
  return records;
}

}  // namespace dsc
