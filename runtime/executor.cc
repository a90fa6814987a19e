// Program execution: kernels created once, values placed in the arena by the memory plan; nodes
// the plan made views (passes/memory_plan.h) are not run.
#include "runtime/executor.h"

#include <chrono>
#include <cstring>
#include <optional>

#include "ir/dsc_ops.h"
#include "passes/memory_plan.h"

namespace dsc {

struct ProgramExecutor::Step {
  const Node* node;
  std::unique_ptr<OpKernel> kernel;
  std::vector<const TensorView*> inputs;
  std::vector<TensorView*> outputs;
  bool view = false;  // the plan placed the output on its input's bytes: nothing to compute
  bool collective = false;  // issues or waits for a collective (RunOptions::comm_seconds)
};

// The collective ops of ir/dsc_ops.h: synchronous ones, the Start of a bucketed one, and its Wait.
static bool IsCollectiveNode(const Node& n) {
  if (n.domain() != kDscDomain) return false;
  const std::string& op = n.op_type();
  return op == ops::kAllReduce || op == ops::kReduceScatter || op == ops::kAllGather || op == ops::kAllGatherInPlace ||
         !ops::KindOfStart(op).empty() || op == ops::kCollectiveWait || op == ops::kCompressedAllReduce;
}

ProgramExecutor::~ProgramExecutor() {
  comm_state_.Clear();  // collectives write into the arena until they finish
  if (device_) {
    device_->Free(arena_);
    device_->Free(constants_);
    if (host_arena_) device_->FreeHost(host_arena_);
  }
}

static std::vector<int64_t> StaticDims(const Value* v) { return DimValues(*v->type.shape); }

StatusOr<std::unique_ptr<ProgramExecutor>> ProgramExecutor::Create(const Graph& g, Device* device) {
  std::unique_ptr<ProgramExecutor> ex(new ProgramExecutor());
  ex->device_ = device;

  // The recorded plan is used when it covers this graph exactly; otherwise plan afresh.
  MemoryPlan plan;
  bool have_plan = false;
  auto meta = g.metadata.find(kMemoryPlanKey);
  if (meta != g.metadata.end()) {
    StatusOr<MemoryPlan> recorded = MemoryPlanFromJson(meta->second);
    if (recorded.ok()) {
      size_t outputs = 0;
      bool covers = true;
      for (const auto& n : g.nodes())
        for (const Value* v : n->outputs()) {
          ++outputs;
          covers = covers && (recorded->slots.count(v->name()) || recorded->host_slots.count(v->name()));
        }
      if (covers && outputs == recorded->slots.size() + recorded->host_slots.size()) {
        plan = std::move(*recorded);
        have_plan = true;
      }
    }
  }
  if (!have_plan) {
    ASSIGN_OR_RETURN(plan, ComputeMemoryPlan(g));
  }
  ex->arena_bytes_ = static_cast<size_t>(plan.arena_bytes);
  ASSIGN_OR_RETURN(ex->arena_, device->Allocate(ex->arena_bytes_));
  uint8_t* arena = static_cast<uint8_t*>(ex->arena_);
  ex->host_arena_bytes_ = static_cast<size_t>(plan.host_arena_bytes);
  if (!plan.host_slots.empty()) {
    ASSIGN_OR_RETURN(ex->host_arena_, device->AllocateHost(ex->host_arena_bytes_));
  }
  uint8_t* host_arena = static_cast<uint8_t*>(ex->host_arena_);

  // Constants: one device block, copied once.
  size_t const_bytes = 0;
  for (const Value* v : g.initializers()) const_bytes += (v->initializer().nbytes() + 63) / 64 * 64;
  ASSIGN_OR_RETURN(ex->constants_, device->Allocate(const_bytes));
  uint8_t* cursor = static_cast<uint8_t*>(ex->constants_);
  for (const Value* v : g.initializers()) {
    const Tensor& t = v->initializer();
    RETURN_IF_ERROR(device->CopyHostToDevice(cursor, t.raw(), t.nbytes()));
    ex->values_[v->name()] = TensorView{t.dtype(), t.dims(), cursor};
    cursor += (t.nbytes() + 63) / 64 * 64;
  }
  for (const Value* v : g.inputs()) {
    if (!v->type.shape || !IsStatic(*v->type.shape))
      return FailedPrecondition("graph input '", v->name(), "' has no static shape");
    ex->values_[v->name()] = TensorView{v->type.dtype, StaticDims(v), nullptr};
    ex->bound_[v->name()] = false;
  }
  for (const auto& n : g.nodes())
    for (const Value* v : n->outputs()) {
      auto host = plan.host_slots.find(v->name());
      ex->values_[v->name()] = host != plan.host_slots.end()
                                   ? TensorView{v->type.dtype, StaticDims(v), host_arena + host->second.offset}
                                   : TensorView{v->type.dtype, StaticDims(v), arena + plan.slots.at(v->name()).offset};
    }

  // A view's kernel is skipped, so its output must really be its input's bytes at the view's offset.
  auto is_view = [&](const Node& n) -> StatusOr<bool> {
    if (n.num_outputs() != 1) return false;
    auto alias = plan.aliases.find(n.output(0)->name());
    if (alias == plan.aliases.end() || alias->second.kind != MemoryPlan::AliasKind::kView) return false;
    std::optional<int64_t> offset = ViewOffset(n);
    auto in = offset ? plan.slots.find(n.input(0)->name()) : plan.slots.end();
    if (!offset || alias->second.of != n.input(0)->name() || in == plan.slots.end() ||
        plan.slots.at(n.output(0)->name()).offset != in->second.offset + *offset)
      return FailedPrecondition("the memory plan makes '", n.output(0)->name(), "' a view of '", alias->second.of,
                                "', which ", n.Describe(), " does not produce");
    return true;
  };
  std::string missing;
  for (const auto& n : g.nodes()) {
    StatusOr<std::unique_ptr<OpKernel>> k = KernelRegistry::Global().Create(*n, device->kind());
    if (!k.ok()) {
      missing += "\n  " + k.status().message();
      continue;
    }
    ASSIGN_OR_RETURN(bool view, is_view(*n));
    Step step{n.get(), std::move(*k), {}, {}, view, IsCollectiveNode(*n)};
    for (const Value* v : n->inputs()) step.inputs.push_back(v ? &ex->values_.at(v->name()) : nullptr);
    for (const Value* v : n->outputs()) step.outputs.push_back(&ex->values_.at(v->name()));
    ex->steps_.push_back(std::move(step));
  }
  if (!missing.empty()) return Unimplemented("the program needs kernels that do not exist:", missing);
  for (const Value* v : g.outputs()) ex->outputs_.push_back(v->name());
  return ex;
}

Status ProgramExecutor::Bind(const std::string& input, const TensorView& view) {
  auto it = bound_.find(input);
  if (it == bound_.end()) return InvalidArgument("the program has no input '", input, "'");
  TensorView& slot = values_.at(input);
  if (slot.dtype != view.dtype || slot.dims != view.dims) {
    std::string want, got;
    for (int64_t d : slot.dims) want += StrCat(want.empty() ? "" : ",", d);
    for (int64_t d : view.dims) got += StrCat(got.empty() ? "" : ",", d);
    return InvalidArgument("input '", input, "' expects ", DTypeName(slot.dtype), "[", want, "], got ",
                           DTypeName(view.dtype), "[", got, "]");
  }
  slot.ptr = view.ptr;
  it->second = true;
  return Status::OK();
}

Status ProgramExecutor::Run(const RunOptions& opts) {
  for (const auto& [name, bound] : bound_)
    if (!bound) return FailedPrecondition("program input '", name, "' is not bound");
  Status st = RunSteps(opts);
  if (st.ok()) st = comm_state_.CheckIdle();
  // A failed run leaves nothing in flight for the next one (or for the buffers' next users).
  if (!st.ok()) comm_state_.Clear();
  return st;
}

Status ProgramExecutor::RunSteps(const RunOptions& opts) {
  KernelContext ctx;
  ctx.seed = opts.seed;
  ctx.step = opts.step;
  ctx.optimizer_step = opts.optimizer_step;
  ctx.first_sample = opts.first_sample;
  ctx.num_threads = opts.num_threads;
  ctx.comm = opts.comm;
  ctx.cuda = device_->cuda_resources();
  ctx.comm_state = &comm_state_;
  std::vector<NodeTime>* const times = opts.node_times;
  const bool sync = times && device_->kind() != DeviceKind::kCpu;
  if (times) {
    times->resize(steps_.size());
    if (sync) RETURN_IF_ERROR(device_->Synchronize());
  }
  for (size_t i = 0; i < steps_.size(); ++i) {
    Step& s = steps_[i];
    ctx.inputs = s.inputs;
    ctx.outputs = s.outputs;
    Status st;
    if (s.view) {
      if (times) ++(*times)[i].calls;
      continue;
    }
    if (!times && opts.comm_seconds && s.collective) {
      const auto t0 = std::chrono::steady_clock::now();
      st = s.kernel->Compute(ctx);
      *opts.comm_seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    } else if (!times) {
      st = s.kernel->Compute(ctx);
    } else {
      const auto t0 = std::chrono::steady_clock::now();
      st = s.kernel->Compute(ctx);
      if (st.ok() && sync) st = device_->Synchronize();
      NodeTime& t = (*times)[i];
      const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      t.seconds += seconds;
      if (opts.comm_seconds && s.collective) *opts.comm_seconds += seconds;
      ++t.calls;
    }
    if (!st.ok()) return st.WithContext(s.node->Describe());
    // The progress engine of non-blocking collectives (communicator.h): one test per node.
    if (!comm_state_.empty()) RETURN_IF_ERROR(comm_state_.Progress());
  }
  return Status::OK();
}

const TensorView* ProgramExecutor::Output(const std::string& name) const {
  for (const std::string& o : outputs_)
    if (o == name) return &values_.at(name);
  return nullptr;
}

StatusOr<std::map<std::string, Tensor>> RunGraphOnCpu(const Graph& g, const std::map<std::string, Tensor*>& inputs,
                                                      const RunOptions& opts) {
  static std::unique_ptr<Device> cpu = CreateCpuDevice();
  ASSIGN_OR_RETURN(std::unique_ptr<ProgramExecutor> ex, ProgramExecutor::Create(g, cpu.get()));
  for (const auto& [name, t] : inputs)
    RETURN_IF_ERROR(ex->Bind(name, TensorView{t->dtype(), t->dims(), t->raw()}));
  RETURN_IF_ERROR(ex->Run(opts));
  std::map<std::string, Tensor> out;
  for (const Value* v : g.outputs()) {
    const TensorView* view = ex->Output(v->name());
    Tensor t(view->dtype, view->dims);
    RETURN_IF_ERROR(cpu->CopyDeviceToHost(t.raw(), view->ptr, t.nbytes()));
    out.emplace(v->name(), std::move(t));
  }
  return out;
}

}  // namespace dsc
