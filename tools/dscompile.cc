// dscompile: compiles an ONNX model and a DeepSpeed config into a training plan.
#include <filesystem>
#include <iostream>
#include <sstream>

#include "backend/flops.h"
#include "backend/plan_file.h"
#include "frontend/config/ds_config.h"
#include "frontend/onnx_import.h"
#include "frontend/supported_ops.h"
#include "kernels/kernel.h"
#include "passes/memory_plan.h"
#include "passes/pass_manager.h"
#include "passes/rematerialize.h"
#include "runtime/lr_schedule.h"
#include "tools/activation_budget.h"
#include "tools/cli_args.h"
#include "tools/tool_mains.h"

namespace dsc {
namespace {

constexpr const char* kUsage = R"(usage: dscompile MODEL.onnx --config CFG.json [options]
       dscompile --config CFG.json [--world-size N] --explain-config
       dscompile --config CFG.json --lr-schedule N

Compiles MODEL.onnx (a forward graph whose single scalar float output is the loss) and a
DeepSpeed JSON config into a training plan for dsrun.

Trainable parameters are PyTorch's: the list the model carries (written by
tools/export_for_training.py, or torch.export's graph signature in torch.onnx.export(dynamo=True)
files); without one, every float initializer with more than one element on a gradient path to the
loss (a single-element one may be a constant or buffer as well as a parameter, so it stays constant,
with a warning naming it). --trainable replaces the choice, --add-trainable adds to it, --freeze
removes from it.

options:
  -o PLAN                   output plan (default: MODEL's folder, MODEL.dsplan); the initial
                            values go next to it, into PLAN.weights/ (a step-0 checkpoint
                            dsrun loads; keep the two together). Weights of 4 KiB or more that
                            are the model's bytes unchanged are not copied: the checkpoint
                            refers to MODEL.onnx (or its external-data files) by absolute path,
                            size and checksums, so keep those too (a changed file is refused)
  --copy-weights            write every initial value into PLAN.weights/, so the plan and its
                            folder move to another machine without the model
  --config CFG.json         DeepSpeed config (required)
  --world-size N            number of ranks the plan is for (default 1)
  --strict-config           unknown config keys DeepSpeed ignores (top level, plain-dict
                            sections such as optimizer, data_types) are errors, not warnings
  --explain-config          print the fully resolved config as JSON and exit (no model needed);
                            warnings on stderr list every setting a compile would refuse
                            (DeepSpeed accepts it, dscompile does not implement it)
  --no-decay-bias-norm      no weight decay on parameters with fewer than 2 dimensions (biases,
                            LayerNorm/RMSNorm/BatchNorm scales; embeddings and weight matrices
                            keep the optimizer's), as the config's "dscompile":
                            {"no_decay_bias_norm": true}; the config's parameter_groups take
                            precedence (docs/config.md, "Parameter groups")
  --lr-schedule N           print the learning rate of optimizer steps 1..N ("step lr") and exit
  --dim NAME=VALUE          bind a symbolic dimension (repeatable); the batch dimension (dim 0
                            of every input) takes train_micro_batch_size_per_gpu; a symbolic
                            sequence length of LSTM/GRU/RNN must be bound (they are unrolled)
  --loss NAME               the graph output to minimise (default: the single scalar float output)
  --trainable NAME|REGEX    train exactly the matching float initializers (repeatable; full-match
                            regex), overriding the parameter list the model carries
  --add-trainable NAME|REGEX
                            train the matching float initializers besides the chosen parameters
                            (repeatable; full-match regex): a learnable scalar such as nn.PReLU()'s
                            slope in a file without a parameter list
  --freeze NAME|REGEX       keep matching initializers fixed (repeatable; full-match regex)
  --passes=a,b,c            run exactly these passes instead of the default pipeline
  --list-passes             print the pass names of the default pipeline and exit
  --list-ops                print the supported ONNX operators (compute, or folded to constants)
  --stop-after-pass-num=N   run only the first N passes (to bisect a bad pass)
  --dump-dir DIR            write NN-<pass>.onnx.txt and NN-<pass>.onnx after every pass
  --print-ir-after=PASS|all print the IR after the named pass(es) on stdout (repeatable)
  --time-passes             print each pass's wall time and the process's CPU time during it
  --activation-budget SIZE  keep the activation arena within SIZE bytes per rank (units B, KB,
                            MB, GB, KiB, MiB, GiB) with the least recomputation: compiles
                            without activation checkpointing, then with 2, 3, ... segments,
                            and keeps the first plan that fits (its config records the
                            number_checkpoints chosen); fails naming the smallest arena found.
                            Not with the config's activation_checkpointing.number_checkpoints
  --no-memory-aliasing      plan the activation arena without aliasing: Reshape, Flatten,
                            Squeeze, Unsqueeze, Identity, StopGradient and contiguous Slices
                            copy their input, elementwise ops never write over an input that
                            dies there (for comparing; dsinspect shows the arena with and
                            without aliasing)
  --disable-fuse-rewrite NAME
                            leave one of the fuse pass's rewrites out (repeatable or comma-
                            separated; the table at the top of passes/fuse.cc names them:
                            cancel-transposes, transpose-into-gemm, transpose-into-matmul,
                            transposed-gemm, loss-casts, cast-into-update, refresh-into-update),
                            to compare a plan with and without it
  --flops                   print the plan's static FLOPs and bytes per program and op kind
                            (counted from the shapes; the rules are in backend/flops.h), the
                            count dsrun --profile and flops_profiler divide by the time
  -q, --quiet               no progress output
  -h, --help                this text
)";

const std::vector<FlagSpec> kFlags = {
    {"-o", true},          {"--config", true},       {"--world-size", true},   {"--strict-config", false},
    {"--explain-config", false}, {"--no-decay-bias-norm", false}, {"--lr-schedule", true}, {"--dim", true, true},  {"--loss", true},
    {"--freeze", true, true}, {"--trainable", true, true}, {"--add-trainable", true, true}, {"--passes", true},     {"--list-passes", false}, {"--list-ops", false}, {"--stop-after-pass-num", true},
    {"--dump-dir", true},  {"--print-ir-after", true, true}, {"--time-passes", false}, {"--flops", false}, {"--copy-weights", false}, {"-q", false},
    {"--no-memory-aliasing", false}, {"--activation-budget", true}, {"--disable-fuse-rewrite", true, true},
    {"--quiet", false},    {"-h", false},            {"--help", false}};

std::vector<std::string> Split(const std::string& s, char sep) {
  std::vector<std::string> out;
  std::stringstream ss(s);
  std::string item;
  while (std::getline(ss, item, sep))
    if (!item.empty()) out.push_back(item);
  return out;
}

StatusOr<std::map<std::string, int64_t>> ParseDims(const std::vector<std::string>& specs) {
  std::map<std::string, int64_t> dims;
  for (const std::string& s : specs) {
    auto eq = s.find('=');
    if (eq == std::string::npos || eq == 0) return InvalidArgument("--dim ", s, ": expected NAME=VALUE");
    try {
      size_t pos = 0;
      int64_t v = std::stoll(s.substr(eq + 1), &pos);
      if (pos != s.size() - eq - 1) throw std::invalid_argument(s);
      dims[s.substr(0, eq)] = v;
    } catch (const std::exception&) {
      return InvalidArgument("--dim ", s, ": VALUE must be an integer");
    }
  }
  return dims;
}

StatusOr<DsConfig> LoadConfig(const ParsedArgs& args, int world_size, bool verbose) {
  if (!args.Has("--config")) return InvalidArgument("--config CFG.json is required (see --help)");
  ConfigOptions opts;
  opts.world_size = world_size;
  opts.strict = args.Has("--strict-config");
  std::vector<std::string> warnings;
  StatusOr<DsConfig> cfg = LoadDsConfig(args.Get("--config"), opts, &warnings);
  // The same as the config's "dscompile": {"no_decay_bias_norm": true}; the plan's config records it.
  if (cfg.ok() && args.Has("--no-decay-bias-norm")) cfg->dscompile.no_decay_bias_norm = true;
  if (verbose || !cfg.ok())
    for (const auto& w : warnings) std::cerr << "dscompile: warning: " << w << "\n";
  return cfg;
}

// Every node must get a CPU kernel (registered, and accepting the node's attributes and shapes):
// a plan that would stop at dsrun's first step is refused here, listing every failure at once.
Status CheckKernelsExist(const Module& m) {
  std::string missing;
  int count = 0;
  for (const PlanProgram& p : m.programs)
    for (const auto& n : p.graph->nodes()) {
      StatusOr<std::unique_ptr<OpKernel>> k = KernelRegistry::Global().Create(*n, DeviceKind::kCpu);
      if (k.ok()) continue;
      missing += StrCat("\n  program ", p.name, ": ", k.status().message());
      ++count;
    }
  if (count == 0) return Status::OK();
  return Unimplemented(count, " node", count == 1 ? " has" : "s have", " no CPU kernel for ",
                       count == 1 ? "its" : "their", " attributes and shapes:",
                       missing);
}

std::string DefaultPlanPath(const std::string& model) {
  std::filesystem::path p(model);
  return (p.parent_path() / (p.stem().string() + ".dsplan")).string();
}

// Imports the model and runs the pipeline into `plan` (programs and state).
StatusOr<std::vector<PassRecord>> BuildPrograms(const std::string& model_path, const std::vector<PassId>& pipeline,
                                                const PassContext& ctx, const PipelineOptions& popts, Plan* plan) {
  ImportOptions import;
  import.dims = ctx.dims;
  ASSIGN_OR_RETURN(std::unique_ptr<Graph> graph, ImportOnnxFile(model_path, import));
  if (ctx.log)
    *ctx.log << "dscompile: imported " << model_path << ": " << graph->num_nodes() << " nodes, "
             << graph->initializers().size() << " initializers, " << graph->inputs().size() << " inputs\n";
  plan->programs.push_back(PlanProgram{"train", std::move(graph)});
  return RunPipeline(*plan, pipeline, ctx, popts);
}

// --activation-budget: compiles quietly with candidate segment counts (activation_budget.h) and
// sets the config's activation checkpointing to the choice.
Status ApplyActivationBudget(const std::string& text, const std::string& model_path,
                             const std::vector<PassId>& pipeline, const PassContext& ctx, DsConfig* cfg) {
  ASSIGN_OR_RETURN(const int64_t budget, ParseByteSize(text, "--activation-budget"));
  const auto& ac = cfg->activation_checkpointing;
  if (ac.number_checkpoints && *ac.number_checkpoints >= 1)
    return InvalidArgument("--activation-budget chooses activation_checkpointing.number_checkpoints, which the config "
                           "sets to ", *ac.number_checkpoints, ": give one or the other");
  std::ostream quiet(nullptr);
  auto trial = [&](int64_t segments) -> StatusOr<BudgetTrial> {
    DsConfig c = *cfg;
    c.activation_checkpointing.present = segments > 0;
    if (segments > 0) c.activation_checkpointing.number_checkpoints = segments;
    PassContext tctx = ctx;
    tctx.config = &c;
    tctx.log = nullptr;
    tctx.warn = &quiet;  // the final compile prints the warnings once
    Plan plan;
    RETURN_IF_ERROR(BuildPrograms(model_path, pipeline, tctx, PipelineOptions{}, &plan).status());
    BudgetTrial t;
    for (const PlanProgram& p : plan.programs) {
      auto meta = p.graph->metadata.find(kMemoryPlanKey);
      if (meta == p.graph->metadata.end()) return FailedPrecondition("--activation-budget needs the memory-plan pass");
      ASSIGN_OR_RETURN(const MemoryPlan mp, MemoryPlanFromJson(meta->second));
      t.arena_bytes = std::max(t.arena_bytes, mp.arena_bytes);
      if (auto segs = p.graph->metadata.find(kRematSegmentsKey); segs != p.graph->metadata.end()) {
        const nlohmann::json j = nlohmann::json::parse(segs->second, nullptr, false);
        if (j.is_array()) t.segments_made = std::max<int64_t>(t.segments_made, static_cast<int64_t>(j.size()));
      }
    }
    return t;
  };
  ASSIGN_OR_RETURN(const std::optional<int64_t> chosen, ChooseCheckpointsForBudget(budget, trial, ctx.log));
  cfg->activation_checkpointing.present = chosen.has_value();
  cfg->activation_checkpointing.number_checkpoints = chosen;
  if (ctx.log)
    *ctx.log << "dscompile: --activation-budget: "
             << (chosen ? StrCat("activation checkpointing with ", *chosen, " segments")
                        : std::string("no activation checkpointing needed"))
             << "\n";
  return Status::OK();
}

Status Compile(const ParsedArgs& args, int argc, char** argv) {
  bool quiet = args.Has("-q") || args.Has("--quiet");
  std::ostream* progress = quiet ? nullptr : &std::cerr;
  ASSIGN_OR_RETURN(int64_t world_size, args.GetInt("--world-size", 1));
  if (world_size < 1) return InvalidArgument("--world-size must be at least 1");

  if (args.Has("--explain-config") || args.Has("--lr-schedule")) {
    if (!args.positional.empty()) return InvalidArgument("--explain-config and --lr-schedule take no model");
    ASSIGN_OR_RETURN(DsConfig cfg, LoadConfig(args, static_cast<int>(world_size), true));
    if (args.Has("--explain-config")) {
      std::cout << ResolvedConfigJson(cfg).dump(2) << "\n";
      if (std::string groups = DescribeParameterGroups(cfg.dscompile, cfg.optimizer); !groups.empty()) {
        std::cerr << "dscompile: parameter groups, first match wins (dsinspect shows each parameter's after a compile):\n";
        std::istringstream lines(groups);
        for (std::string line; std::getline(lines, line);) std::cerr << "  " << line << "\n";
      }
      for (const std::string& r : CompileTimeRefusals(cfg))
        std::cerr << "dscompile: warning: will be refused at compile time: " << r << "\n";
    }
    if (args.Has("--lr-schedule")) {
      // dsrun would never run this config, so there is no schedule to show.
      RETURN_IF_ERROR(RefuseUnsupported(cfg));
      ASSIGN_OR_RETURN(int64_t n, args.GetInt("--lr-schedule", 0));
      if (n < 1) return InvalidArgument("--lr-schedule N needs N >= 1");
      ASSIGN_OR_RETURN(std::string lines, FormatLrSchedule(cfg, static_cast<int>(n)));
      std::cout << lines;
    }
    return Status::OK();
  }

  if (args.positional.size() != 1)
    return InvalidArgument(args.positional.empty() ? "no model given" : "more than one model given",
                           " (usage: dscompile MODEL.onnx --config CFG.json; see --help)");
  const std::string model_path = args.positional[0];
  ASSIGN_OR_RETURN(DsConfig cfg, LoadConfig(args, static_cast<int>(world_size), !quiet));
  // RunPipeline refuses these too; refusing before the import spares reading a large model.
  RETURN_IF_ERROR(RefuseUnsupported(cfg));

  PassContext ctx;
  ctx.config = &cfg;
  ctx.micro_batch = ResolvedConfigJson(cfg).value("train_micro_batch_size_per_gpu", int64_t{0});
  ASSIGN_OR_RETURN(ctx.dims, ParseDims(args.All("--dim")));
  ctx.loss = args.Get("--loss");
  ctx.freeze = args.All("--freeze");
  ctx.trainable = args.All("--trainable");
  ctx.add_trainable = args.All("--add-trainable");
  ctx.warn = &std::cerr;
  ctx.world_size = static_cast<int>(world_size);
  ctx.memory_aliasing = !args.Has("--no-memory-aliasing");
  for (const std::string& r : args.All("--disable-fuse-rewrite"))
    for (const std::string& name : Split(r, ',')) ctx.fuse_disabled.push_back(name);
  RETURN_IF_ERROR(CheckFuseRewriteNames(ctx.fuse_disabled));
  ctx.log = progress;

  std::vector<PassId> pipeline = DefaultPipeline();
  if (args.Has("--passes")) {
    pipeline.clear();
    for (const std::string& name : Split(args.Get("--passes"), ',')) {
      ASSIGN_OR_RETURN(PassId id, PassIdFromName(name));
      pipeline.push_back(id);
    }
  }
  PipelineOptions popts;
  popts.dump_dir = args.Get("--dump-dir");
  for (const std::string& p : args.All("--print-ir-after"))
    for (const std::string& name : Split(p, ',')) {
      if (name != "all") RETURN_IF_ERROR(PassIdFromName(name).status().WithContext("--print-ir-after"));
      popts.print_after.insert(name);
    }
  ASSIGN_OR_RETURN(int64_t stop, args.GetInt("--stop-after-pass-num", -1));
  popts.stop_after_pass_num = static_cast<int>(stop);
  popts.time_passes = args.Has("--time-passes");
  popts.out = &std::cout;

  if (args.Has("--activation-budget"))
    RETURN_IF_ERROR(ApplyActivationBudget(args.Get("--activation-budget"), model_path, pipeline, ctx, &cfg));
  // After the budget, so the plan records the checkpointing it chose.
  const nlohmann::json resolved = ResolvedConfigJson(cfg);
  Plan plan;
  ASSIGN_OR_RETURN(std::vector<PassRecord> ran, BuildPrograms(model_path, pipeline, ctx, popts, &plan));

  // Absolute, so that exports from the plan's checkpoints find the model from any folder.
  std::error_code abs_error;
  plan.source_model = std::filesystem::absolute(model_path, abs_error).string();
  if (abs_error) plan.source_model = model_path;
  plan.config = resolved;
  plan.world_size = static_cast<int>(world_size);
  for (int i = 0; i < argc; ++i) plan.command_line.push_back(argv[i]);
  plan.pipeline = std::move(ran);
  // Partial pipelines (--passes, --stop-after-pass-num) make plans to read, not to run.
  if (plan.FindProgram("micro_step") && plan.FindProgram("step")) RETURN_IF_ERROR(CheckKernelsExist(plan));
  const std::string out = args.Get("-o", DefaultPlanPath(model_path));
  RETURN_IF_ERROR(WritePlan(plan, out, WritePlanOptions{.copy_weights = args.Has("--copy-weights")}));
  if (args.Has("--flops")) std::cout << FormatStaticFlops(plan);
  if (progress)
    *progress << "dscompile: wrote " << out << " (" << plan.programs.size() << " program"
              << (plan.programs.size() == 1 ? "" : "s") << ", " << plan.state.size() << " state tensors)"
              << (plan.initial_state ? StrCat(" and its initial values to ", out, ".weights") : "") << "\n";
  return Status::OK();
}

}  // namespace
}  // namespace dsc

int DscompileMain(int argc, char** argv) {
  using namespace dsc;
  return RunTool("dscompile", [&] {
    int exit_code = 0;
    std::optional<ParsedArgs> args = ParseCommandLine("dscompile", argc, argv, kFlags, kUsage, &exit_code);
    if (!args) return exit_code;
    if (args->Has("--list-ops")) {
      std::cout << "default-domain opsets " << kMinOpset << " to " << MaxOpset() << "; " << SupportedOps().size()
                << " operators (folded: shape-only, must become constants; decomposed: imported as other supported ops):\n";
      for (const auto& [op, kind] : SupportedOps()) std::cout << "  " << op << "  " << kind << "\n";
      return 0;
    }
    if (args->Has("--list-passes")) {
      for (PassId id : DefaultPipeline()) std::cout << PassName(id) << "\n";
      return 0;
    }
    Status s = Compile(*args, argc, argv);
    if (!s.ok()) {
      std::cerr << "dscompile: error: " << s.message() << "\n";
      return 1;
    }
    return 0;
  });
}
