// Runs a pipeline of passes with the verifier between them, dumps, IR printing and timing.
//
//   PipelineOptions opts; opts.dump_dir = "dumps";
//   ASSIGN_OR_RETURN(std::vector<PassRecord> ran, RunPipeline(module, DefaultPipeline(), ctx, opts));
#pragma once

#include <ostream>
#include <set>
#include <string>
#include <vector>

#include "ir/verifier.h"
#include "passes/pass.h"

namespace dsc {

// One pass run of the pipeline that produced a plan, in order.
struct PassRecord {
  std::string name;
  bool changed = false;
  double seconds = 0;
};

struct PipelineOptions {
  std::string dump_dir;              // NN-<pass>.onnx.txt and NN-<pass>[.PROGRAM].onnx per pass ("" = none)
  std::set<std::string> print_after; // pass names, or "all"
  int stop_after_pass_num = -1;      // run only passes 1..N (-1 = all)
  bool time_passes = false;          // report per-pass wall time on `out`
  int64_t dump_elide_above = 256;    // text dumps elide initializer data above this many elements
  std::ostream* out = nullptr;       // where --print-ir-after and --time-passes write
};

// Refuses a config with unsupported settings (RefuseUnsupported) before the first pass.
StatusOr<std::vector<PassRecord>> RunPipeline(Module& m, const std::vector<PassId>& pipeline,
                                              const PassContext& ctx, const PipelineOptions& opts);

// Everything compiling `config` with the default pipeline refuses, one "json.path: why" each:
// config.unsupported (RefuseUnsupported, before the first pass), then what the precision and
// optimizer passes cannot lower (a missing optimizer, an optimizer type without an update rule).
// --explain-config prints them as warnings after the resolved config.
std::vector<std::string> CompileTimeRefusals(const DsConfig& config);

// The IR text of every program (one program: its text alone; several: each under a
// "# ===== program NAME" line), as dumps and --print-ir-after show it.
std::string PrintModule(const Module& m, int64_t elide_above);
// Verifies every program.
Status VerifyModule(const Module& m, const VerifyOptions& opts);

}  // namespace dsc
