// Plan-level consistency checks run on every plan load (plan_verify.h says what and why).
#include "backend/plan_verify.h"

#include <algorithm>

#include <set>

#include "frontend/config/ds_config.h"
#include "ir/dsc_ops.h"
#include "ir/verifier.h"
#include "kernels/kernel.h"
#include "passes/memory_plan.h"

namespace dsc {
namespace {

// Static dims of a value the verifier has already required to be static.
std::vector<int64_t> StaticDims(const Value& v) { return DimValues(*v.type.shape); }

Status CheckStateTable(const Plan& plan) {
  std::set<std::string> names;
  for (const StateInfo& s : plan.state) {
    if (s.name.empty()) return InvalidArgument("a state tensor has an empty name");
    if (!names.insert(s.name).second) return InvalidArgument("state '", s.name, "' appears twice");
    StatusOr<int64_t> numel = NumElements(s.dims);
    if (!numel.ok()) return InvalidArgument("state '", s.name, "': ", numel.status().message());
    int64_t bytes = 0;
    if (__builtin_mul_overflow(*numel, static_cast<int64_t>(DTypeSize(s.dtype)), &bytes) || DTypeSize(s.dtype) == 0)
      return InvalidArgument("state '", s.name, "' has dtype ", DTypeName(s.dtype), " and shape ", DimsToString(s.dims),
                             ", which is not a storable tensor");
    int64_t full = *numel;
    if (s.shard_of_numel > 0) {
      const int64_t chunk = (s.shard_of_numel + plan.world_size - 1) / plan.world_size;
      if (s.dims != std::vector<int64_t>{chunk})
        return InvalidArgument("state '", s.name, "' is a shard of ", s.shard_of_numel, " elements over ",
                               plan.world_size, " ranks, so its shape must be [", chunk, "], not ", DimsToString(s.dims));
      full = s.shard_of_numel;
    }
    // Values in a step-0 checkpoint are checked against the table when dsrun loads them.
    if (s.zero_init || (!plan.initial_state && !plan.initial_values_dir.empty())) continue;
    const Value* init = plan.initial_state ? plan.initial_state->FindValue(s.name) : nullptr;
    if (!init || !init->is_initializer())
      return InvalidArgument("state '", s.name, "' has no initial value and is not zero-initialised");
    const Tensor& t = init->initializer();
    if (t.dtype() != s.dtype || t.numel() != full)
      return InvalidArgument("the initial value of state '", s.name, "' is ", DTypeName(t.dtype()), " with ", t.numel(),
                             " elements; the state table needs ", DTypeName(s.dtype), " with ", full);
  }
  return Status::OK();
}

Status CheckInputs(const Plan& plan, const PlanProgram& p, int64_t micro_batch) {
  for (const Value* in : p.graph->inputs()) {
    const std::vector<int64_t> dims = StaticDims(*in);
    const std::string what = StrCat("input '", in->name(), "' (", DTypeName(in->type.dtype), DimsToString(dims), ")");
    if (const StateInfo* s = plan.FindState(in->name())) {
      if (s->dtype != in->type.dtype || s->dims != dims)
        return InvalidArgument(what, " does not match its state tensor, ", DTypeName(s->dtype), DimsToString(s->dims));
      continue;
    }
    // The reserved scalars the trainer binds itself (ir/dsc_ops.h).
    if (const DType scalar = ops::ReservedScalarDType(in->name()); scalar != DType::kUndefined) {
      if (in->type.dtype != scalar || !dims.empty())
        return InvalidArgument(what, " is a reserved scalar and must be ", DTypeName(scalar), "[]");
      continue;
    }
    // Anything else is data the loader reads from NAME.npy, one micro-batch along dim 0.
    if (p.name != "micro_step")
      return InvalidArgument(what, " is neither state nor a reserved scalar (only micro_step reads data)");
    if (dims.empty() || dims[0] != micro_batch)
      return InvalidArgument(what, " is data, so its dim 0 must be the config's micro-batch size ", micro_batch);
  }
  return Status::OK();
}

Status CheckScalarOutput(const PlanProgram& p, const std::string& name, const char* what) {
  const Value* v = name.empty() ? nullptr : p.graph->FindValue(name);
  if (!v || !v->is_graph_output()) return InvalidArgument("has no ", what, " output", name.empty() ? "" : StrCat(" '", name, "'"));
  // One element in any rank, as select-loss accepts (a loss exported as float[1,1]) and dsrun reads.
  const std::vector<int64_t> dims = StaticDims(*v);
  if (v->type.dtype != DType::kFloat32 || std::any_of(dims.begin(), dims.end(), [](int64_t d) { return d != 1; }))
    return InvalidArgument("its ", what, " '", name, "' is ", TypeToString(v->type), ", not one float");
  return Status::OK();
}

// The executor places node outputs at a recorded plan's offsets without further checks.
Status CheckMemoryPlan(const Graph& g) {
  auto meta = g.metadata.find(kMemoryPlanKey);
  if (meta == g.metadata.end()) return Status::OK();
  StatusOr<MemoryPlan> mp = MemoryPlanFromJson(meta->second);
  if (!mp.ok()) return Status::OK();  // the executor plans afresh, as for a plan without one
  if (mp->arena_bytes < 0) return InvalidArgument("its memory plan has a negative arena size");
  for (const auto& n : g.nodes())
    for (const Value* v : n->outputs()) {
      auto slot = mp->slots.find(v->name());
      auto host = mp->host_slots.find(v->name());  // a ToHost output (cpu_checkpointing)
      if (slot == mp->slots.end() && host == mp->host_slots.end()) continue;
      if (host != mp->host_slots.end()) slot = host;
      const int64_t arena = host != mp->host_slots.end() ? mp->host_arena_bytes : mp->arena_bytes;
      StatusOr<int64_t> numel = NumElements(StaticDims(*v));
      int64_t bytes = 0, end = 0;
      const int64_t offset = slot->second.offset;
      if (!numel.ok() || __builtin_mul_overflow(*numel, static_cast<int64_t>(DTypeSize(v->type.dtype)), &bytes) ||
          offset < 0 || __builtin_add_overflow(offset, bytes, &end) || end > arena)
        return InvalidArgument("its memory plan puts '", v->name(), "' (", TypeToString(v->type), ") at offset ", offset,
                               ", outside the ", host != mp->host_slots.end() ? "host arena" : "arena", " of ", arena,
                               " bytes");
      // Kernels read floats and int64s in place: a slot off the planner's alignment is a misaligned load.
      if (offset % kArenaAlignment != 0)
        return InvalidArgument("its memory plan puts '", v->name(), "' at offset ", offset, ", not a multiple of ",
                               kArenaAlignment, " bytes");
    }
  return Status::OK();
}

Status CheckKernels(const Graph& g) {
  for (const auto& n : g.nodes()) {
    StatusOr<std::unique_ptr<OpKernel>> k = KernelRegistry::Global().Create(*n, DeviceKind::kCpu);
    if (!k.ok()) return k.status();
  }
  return Status::OK();
}

Status CheckRunnable(const Plan& plan) {
  ConfigOptions copts;
  copts.world_size = plan.world_size;
  std::vector<std::string> warnings;
  StatusOr<DsConfig> cfg = ParseDsConfigJson(plan.config, copts, &warnings, "its config");
  if (!cfg.ok()) return cfg.status();
  RETURN_IF_ERROR(RefuseUnsupported(*cfg));  // dscompile never writes such a plan
  for (const PlanProgram& p : plan.programs) {
    if (p.name != "micro_step" && p.name != "step") continue;
    Status s = CheckInputs(plan, p, cfg->train_micro_batch_size_per_gpu);
    if (s.ok() && p.name == "micro_step") s = CheckScalarOutput(p, p.graph->training.loss, "loss");
    if (s.ok() && p.name == "step") s = CheckScalarOutput(p, ops::kGradNormOutput, "gradient-norm");
    if (s.ok()) s = CheckMemoryPlan(*p.graph);
    if (s.ok()) s = CheckKernels(*p.graph);
    RETURN_IF_ERROR(s.WithContext(StrCat("program '", p.name, "'")));
  }
  return Status::OK();
}

}  // namespace

Status VerifyPlan(const Plan& plan) {
  if (plan.world_size < 1) return InvalidArgument("world_size is ", plan.world_size);
  // Plans cut short by --passes or --stop-after-pass-num are for reading: their graphs may still
  // have symbolic shapes. Plans to train must be fully typed and static, as the executor assumes.
  const bool runnable = plan.FindProgram("micro_step") && plan.FindProgram("step");
  VerifyOptions opts;
  opts.require_types = opts.require_static_shapes = runnable;
  for (const PlanProgram& p : plan.programs) {
    if (!p.graph) return InvalidArgument("program '", p.name, "' has no graph");
    RETURN_IF_ERROR(VerifyGraph(*p.graph, opts).WithContext(StrCat("program '", p.name, "'")));
  }
  if (plan.initial_state) RETURN_IF_ERROR(VerifyGraph(*plan.initial_state).WithContext("the initial state"));
  RETURN_IF_ERROR(CheckStateTable(plan));
  for (const PlanProgram& p : plan.programs)
    RETURN_IF_ERROR(VerifyBucketedCollectives(*p.graph, plan.world_size).WithContext(StrCat("program '", p.name, "'")));
  return runnable ? CheckRunnable(plan) : Status::OK();
}

}  // namespace dsc
