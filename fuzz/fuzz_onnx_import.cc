// libFuzzer target: ONNX bytes through import and, when they import, the rest of what dscompile
// does with them (default pipeline, kernel choice, plan serialization), in memory.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <iostream>
#include <map>
#include <string>
#include <vector>

#include "backend/plan_file.h"
#include "frontend/config/ds_config.h"
#include "frontend/onnx_import.h"
#include "frontend/onnx_wire.h"
#include "kernels/kernel.h"
#include "onnx/onnx_pb.h"
#include "passes/pass_manager.h"

namespace {

using namespace dsc;

// The model fixes the micro batch when its inputs have a static dim 0; a config that disagrees
// would stop every input at `specialize`, before the passes worth fuzzing.
int64_t MicroBatchOf(const Graph& g) {
  for (const Value* in : g.inputs())
    if (in->type.shape && !in->type.shape->empty() && (*in->type.shape)[0].is_static()) {
      const int64_t b = (*in->type.shape)[0].value;
      return b >= 1 && b <= 64 ? b : 2;
    }
  return 2;
}

// Every other symbolic input dim gets a small size, as a user's --dim would.
std::map<std::string, int64_t> SmallDims(const Graph& g) {
  std::map<std::string, int64_t> dims;
  for (const Value* in : g.inputs())
    if (in->type.shape)
      for (size_t i = 1; i < in->type.shape->size(); ++i)
        if (const std::string& s = (*in->type.shape)[i].symbol; !s.empty()) dims[s] = 3;
  return dims;
}

// Three small configs that between them reach accumulation, clipping, SGD and every ZeRO
// rewrite; which one an input gets is a function of its bytes, so a reproducer stays one.
StatusOr<DsConfig> ConfigFor(const std::string& bytes, int64_t micro, int* world_size) {
  unsigned variant = 0;
  for (unsigned char c : bytes) variant = variant * 31 + c;
  variant %= 3;
  *world_size = variant == 0 ? 1 : 2;
  const int64_t accum = variant == 1 ? 2 : 1;
  nlohmann::json cfg = {{"train_micro_batch_size_per_gpu", micro},
                        {"gradient_accumulation_steps", accum},
                        {"train_batch_size", micro * accum * *world_size},
                        {"gradient_clipping", variant == 2 ? 0.0 : 1.0},
                        {"zero_optimization", {{"stage", variant == 0 ? 0 : variant == 1 ? 2 : 3}}}};
  // SGD only without ZeRO, which refuses optimizers DeepSpeed has not tested with it.
  cfg["optimizer"] = variant == 0 ? nlohmann::json{{"type", "SGD"}, {"params", {{"lr", 0.1}, {"momentum", 0.9}}}}
                                  : nlohmann::json{{"type", "AdamW"}, {"params", {{"lr", 1e-3}}}};
  ConfigOptions opts;
  opts.world_size = *world_size;
  std::vector<std::string> warnings;
  return ParseDsConfigJson(cfg, opts, &warnings, "fuzz-config");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string bytes(reinterpret_cast<const char*>(data), size);
  {
    // The file import's wire-format cut of raw_data (onnx_wire.h) must accept exactly what
    // protobuf accepts, and leave a message protobuf parses the same way.
    onnx::ModelProto whole, cut;
    const bool whole_ok = whole.ParseFromString(bytes);
    StatusOr<StrippedModel> s = StripInitializerData(data, static_cast<int64_t>(size), 16);
    const bool cut_ok = s.ok() && cut.ParseFromString(s->bytes);
    if (cut_ok != whole_ok) {
      std::cerr << "fuzz_onnx_import: protobuf " << (whole_ok ? "parses" : "refuses") << " the bytes, but "
                << (s.ok() ? "not" : "") << " what the raw_data cut keeps of them"
                << (s.ok() ? "" : ": " + s.status().message()) << "\n";
      std::abort();
    }
  }
  StatusOr<std::unique_ptr<Graph>> graph = ImportOnnxBytes(bytes, "", "fuzz.onnx");
  if (!graph.ok()) return 0;

  int world_size = 1;
  StatusOr<DsConfig> cfg = ConfigFor(bytes, MicroBatchOf(**graph), &world_size);
  if (!cfg.ok()) {
    std::cerr << "fuzz_onnx_import: the fixed config does not parse: " << cfg.status().message() << "\n";
    std::abort();
  }
  PassContext ctx;
  ctx.config = &*cfg;
  ctx.micro_batch = cfg->train_micro_batch_size_per_gpu;
  ctx.dims = SmallDims(**graph);
  ctx.world_size = world_size;
  Plan plan;
  plan.programs.push_back(PlanProgram{"train", std::move(*graph)});
  StatusOr<std::vector<PassRecord>> ran = RunPipeline(plan, DefaultPipeline(), ctx, PipelineOptions{});
  if (std::getenv("DSC_FUZZ_VERBOSE"))  // for triage: how far an input got
    std::cerr << "fuzz_onnx_import: pipeline: " << (ran.ok() ? "ok" : ran.status().message()) << "\n";
  if (!ran.ok()) return 0;

  // dscompile's kernel check: creating a kernel validates the node's attributes and shapes, and
  // dscompile writes no plan when one fails (its message names the node).
  for (const PlanProgram& p : plan.programs)
    for (const auto& n : p.graph->nodes())
      if (!KernelRegistry::Global().Create(*n, DeviceKind::kCpu).ok()) return 0;

  plan.config = ResolvedConfigJson(*cfg);
  plan.world_size = world_size;
  plan.pipeline = std::move(*ran);
  StatusOr<std::string> file = SerializePlan(plan);
  if (!file.ok()) return 0;
  // What dscompile writes, dsrun and dsinspect must read back.
  StatusOr<Plan> back = ParsePlan(*file, "fuzz.dsplan");
  if (!back.ok()) {
    std::cerr << "fuzz_onnx_import: a plan the pipeline produced does not load: " << back.status().message() << "\n";
    std::abort();
  }
  return 0;
}
