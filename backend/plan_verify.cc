// Plan-level consistency checks run on every plan load (plan_verify.h says what and why).
#include "backend/plan_verify.h"

#include <algorithm>

#include <map>
#include <set>
#include <unordered_map>

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
      if (slot == mp->slots.end()) continue;
      StatusOr<int64_t> numel = NumElements(StaticDims(*v));
      int64_t bytes = 0, end = 0;
      const int64_t offset = slot->second.offset;
      if (!numel.ok() || __builtin_mul_overflow(*numel, static_cast<int64_t>(DTypeSize(v->type.dtype)), &bytes) ||
          offset < 0 || __builtin_add_overflow(offset, bytes, &end) || end > mp->arena_bytes)
        return InvalidArgument("its memory plan puts '", v->name(), "' (", TypeToString(v->type), ") at offset ", offset,
                               ", outside the arena of ", mp->arena_bytes, " bytes");
      // Kernels read floats and int64s in place: a slot off the planner's alignment is a misaligned load.
      if (offset % kArenaAlignment != 0)
        return InvalidArgument("its memory plan puts '", v->name(), "' at offset ", offset, ", not a multiple of ",
                               kArenaAlignment, " bytes");
    }
  return Status::OK();
}

// The bucketed collectives' contract (ir/dsc_ops.h), which the executor's table of collectives
// in flight and its count of live gathered parameters rely on: each Start's buffer B is read by
// exactly one CollectiveWait of its kind and bucket id (after the Start: VerifyGraph has checked
// the order), which unpacks one value per member; a bucket id is not reused while in flight;
// every value an AllGather Wait makes is released exactly once and read by nothing after its
// Release.
Status CheckCollectives(const Graph& g, int world_size) {
  std::map<int64_t, const Node*> in_flight;  // bucket id -> its Start, until its Wait
  std::unordered_map<const Value*, const Node*> released;  // gathered value -> its Release (null: not yet)
  auto is = [](const Node& n, const char* op) { return n.domain() == kDscDomain && n.op_type() == op; };
  for (const auto& node : g.nodes()) {
    const Node& n = *node;
    const std::string where = n.Describe();
    for (const Value* x : is(n, ops::kRelease) ? std::vector<Value*>{} : n.inputs()) {
      auto r = x ? released.find(x) : released.end();
      if (r != released.end() && r->second)
        return InvalidArgument(where, " reads '", x->name(), "' after ", r->second->Describe(), " released it");
    }
    if (n.domain() != kDscDomain) continue;
    const std::string kind = ops::KindOfStart(n.op_type());
    if (!kind.empty()) {
      if (!n.HasAttr("bucket") || !n.HasAttr("world"))
        return InvalidArgument(where, " needs the attributes bucket and world");
      if (n.GetInt("world", 0) != world_size)
        return InvalidArgument(where, " has world = ", n.GetInt("world", 0), " in a plan for ", world_size, " ranks");
      const int64_t id = n.GetInt("bucket", -1);
      if (auto f = in_flight.find(id); f != in_flight.end())
        return InvalidArgument(where, " starts bucket ", id, " while ", f->second->Describe(), " still has it in flight");
      for (const Value* x : n.inputs())
        if (!x || x->type.dtype != n.input(0)->type.dtype)
          return InvalidArgument(where, ": member '", x ? x->name() : "", "' is ",
                                 x ? DTypeName(x->type.dtype) : "omitted", ", not ", DTypeName(n.input(0)->type.dtype),
                                 " as the first member: a bucket holds one dtype");
      const Value* b = n.output(0);
      const Node* wait = nullptr;
      for (const Use& u : b->uses()) {
        if (!is(*u.node, ops::kCollectiveWait) || u.input_index != 0 || wait)
          return InvalidArgument(where, ": its buffer '", b->name(), "' is read by ", u.node->Describe(),
                                 "; only its one CollectiveWait may read it");
        wait = u.node;
      }
      if (!wait || b->is_graph_output())
        return InvalidArgument(where, ": its buffer '", b->name(), "' ", wait ? "is a graph output" : "is never waited for",
                               " (a CollectiveWait must read it)");
      const std::string wait_where = wait->Describe();
      if (wait->GetString("kind", "") != kind)
        return InvalidArgument(wait_where, " has kind '", wait->GetString("kind", ""), "' but waits for ", where);
      if (wait->GetInt("bucket", -1) != id)
        return InvalidArgument(wait_where, " has bucket ", wait->GetInt("bucket", -1), " but waits for bucket ", id, " (",
                               where, ")");
      const size_t k = n.num_inputs();
      if (kind == ops::kAllGatherInPlace) {
        bool same = wait->num_inputs() == k + 1 && wait->num_outputs() == 0;
        for (size_t i = 0; same && i < k; ++i) same = wait->input(i + 1) == n.input(i);
        if (!same)
          return InvalidArgument(wait_where, " must take the buffer and then the ", k, " state tensors of ", where,
                                 " in its order, and have no outputs");
      } else {
        if (wait->num_inputs() != 1 || wait->num_outputs() != k)
          return InvalidArgument(wait_where, " must read only the buffer and make one value per member of ", where, " (", k,
                                 "), not ", wait->num_outputs());
        for (size_t i = 0; i < k; ++i) {
          const Value* x = n.input(i);
          const Value* y = wait->output(i);
          if (y->type.dtype != x->type.dtype)
            return InvalidArgument(wait_where, " output '", y->name(), "' is ", DTypeName(y->type.dtype), ", not ",
                                   DTypeName(x->type.dtype), " as member '", x->name(), "'");
          if (!x->type.shape || !y->type.shape || !IsStatic(*x->type.shape) || !IsStatic(*y->type.shape)) continue;
          StatusOr<int64_t> sx = NumElements(StaticDims(*x)), sy = NumElements(StaticDims(*y));
          if (!sx.ok() || !sy.ok()) continue;  // VerifyGraph has refused sizes that overflow
          const int64_t nx = *sx, ny = *sy;
          const int64_t want = kind == ops::kReduceScatter ? ops::ChunkSize(nx, world_size) : nx;
          const bool ok = kind == ops::kAllGather ? ops::ChunkSize(ny, world_size) == nx : ny == want;
          if (!ok)
            return InvalidArgument(wait_where, " output '", y->name(), "' has ", ny, " elements, which does not fit member '",
                                   x->name(), "' (", nx, " elements) of a ", kind, " over ", world_size, " ranks");
        }
      }
      in_flight[id] = &n;
    } else if (n.op_type() == ops::kCollectiveWait) {
      const Node* start = n.num_inputs() ? n.input(0)->producer() : nullptr;
      if (!start || start->domain() != kDscDomain || ops::KindOfStart(start->op_type()).empty())
        return InvalidArgument(where, " waits for '", n.num_inputs() ? n.input(0)->name() : "", "', which no Start node made");
      in_flight.erase(start->GetInt("bucket", -1));
      if (n.GetString("kind", "") == ops::kAllGather)
        for (const Value* y : n.outputs()) released.emplace(y, nullptr);
    } else if (n.op_type() == ops::kRelease) {
      for (const Value* x : n.inputs()) {
        auto r = released.find(x);
        if (r == released.end())
          return InvalidArgument(where, " releases '", x ? x->name() : "", "', which is not an output of an AllGather CollectiveWait");
        if (r->second) return InvalidArgument(where, " releases '", x->name(), "' again (", r->second->Describe(), " did)");
        r->second = &n;
      }
    }
  }
  for (const auto& [v, release] : released)
    if (!release) return InvalidArgument("the gathered parameter '", v->name(), "' is never released");
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
    RETURN_IF_ERROR(CheckCollectives(*p.graph, plan.world_size).WithContext(StrCat("program '", p.name, "'")));
  return runnable ? CheckRunnable(plan) : Status::OK();
}

}  // namespace dsc
