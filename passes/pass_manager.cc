// Pipeline execution.
#include "passes/pass_manager.h"

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iomanip>

#include "ir/onnx_convert.h"
#include "ir/text.h"
#include "ir/verifier.h"

namespace dsc {
namespace {

Status WriteFile(const std::filesystem::path& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  if (!out) return InvalidArgument("cannot write ", path.string());
  return Status::OK();
}

Status Dump(const Graph& g, const PipelineOptions& opts, int index, const std::string& name) {
  char prefix[16];
  std::snprintf(prefix, sizeof(prefix), "%02d-", index);
  std::filesystem::path base = std::filesystem::path(opts.dump_dir) / (prefix + name);
  PrintOptions popts;
  popts.elide_above = opts.dump_elide_above;
  RETURN_IF_ERROR(WriteFile(base.string() + ".onnx.txt", PrintGraph(g, popts)));
  return WriteFile(base.string() + ".onnx", GraphToOnnx(g).SerializeAsString());
}

}  // namespace

StatusOr<std::vector<PassRecord>> RunPipeline(Graph& g, const std::vector<PassId>& pipeline,
                                              const PassContext& ctx, const PipelineOptions& opts) {
  if (!opts.dump_dir.empty()) {
    std::error_code ec;
    std::filesystem::create_directories(opts.dump_dir, ec);
    if (ec) return InvalidArgument("--dump-dir ", opts.dump_dir, ": ", ec.message());
    RETURN_IF_ERROR(Dump(g, opts, 0, "input"));
  }
  VerifyOptions verify;
  RETURN_IF_ERROR(VerifyGraph(g, verify).WithContext("the imported graph fails verification"));
  std::vector<PassRecord> records;
  int index = 0;
  for (PassId id : pipeline) {
    if (opts.stop_after_pass_num >= 0 && index >= opts.stop_after_pass_num) break;
    ++index;
    std::unique_ptr<Pass> pass = CreatePass(id);
    auto start = std::chrono::steady_clock::now();
    StatusOr<bool> changed = pass->Run(g, ctx);
    double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    if (!changed.ok()) return changed.status().WithContext(StrCat("pass ", index, " '", pass->name(), "'"));
    records.push_back(PassRecord{pass->name(), *changed, seconds});
    if (pass->establishes_static_shapes()) {
      verify.require_types = true;
      verify.require_static_shapes = true;
    }
    Status v = VerifyGraph(g, verify);
    if (!v.ok())
      return Internal("the graph fails verification after pass ", index, " '", pass->name(), "': ", v.message(),
                      " (rerun with --dump-dir to see the graph before and after)");
    if (!opts.dump_dir.empty()) RETURN_IF_ERROR(Dump(g, opts, index, pass->name()));
    if (opts.out && (opts.print_after.count("all") || opts.print_after.count(pass->name()))) {
      PrintOptions popts;
      popts.elide_above = opts.dump_elide_above;
      *opts.out << "// ----- IR after pass " << index << " '" << pass->name() << "'"
                << (*changed ? "" : " (unchanged)") << "\n"
                << PrintGraph(g, popts) << "\n";
    }
    if (opts.out && opts.time_passes)
      *opts.out << "pass " << std::setw(2) << index << " " << std::left << std::setw(18) << pass->name()
                << std::right << std::fixed << std::setprecision(3) << std::setw(9) << seconds * 1e3 << " ms"
                << (*changed ? "  changed" : "") << "\n";
  }
  return records;
}

}  // namespace dsc
