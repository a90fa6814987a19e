// The training loop.
#include "runtime/trainer.h"

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iomanip>
#include <iostream>
#include <cstddef>
#include <limits>
#include <optional>
#include <set>
#include <sstream>
#include <sys/resource.h>

#include <nlohmann/json.hpp>

#include "backend/export_onnx.h"
#include "backend/export_safetensors.h"
#include "backend/host_step.h"
#include "backend/plan_summary.h"
#include "frontend/config/ds_config.h"
#include "ir/dsc_ops.h"
#include "ir/swap_ops.h"
#include "passes/precision_policy.h"  // OnebitCallsBeforeTraining, WrapperCallsBeforeTraining
#include "runtime/comms_logger.h"
#include "runtime/communicator.h"
#include "runtime/cuda_backend.h"
#include "runtime/data_loader.h"
#include "runtime/device.h"
#include "runtime/executor.h"
#include "runtime/loss_scaler.h"
#include "runtime/lr_schedule.h"
#include "runtime/profiler.h"
#include "runtime/state_store.h"
#include "runtime/trainer_checkpoint.h"
#include "runtime/training_monitor.h"

namespace dsc {
namespace {

bool HasInput(const Graph& g, const char* name) {
  const Value* v = g.FindValue(name);
  return v && v->is_graph_input();
}
bool HasOutput(const Graph& g, const char* name) {
  const Value* v = g.FindValue(name);
  return v && v->is_graph_output();
}

// The first state of kind gradient: where --debug-inject-overflow writes its inf.
const StateInfo* FirstGradient(const Plan& plan) {
  for (const StateInfo& s : plan.state)
    if (s.kind == StateKind::kGradient) return &s;
  return nullptr;
}

// The debugging options fit the plan and the job (checked before the ranks agree to start).
Status CheckDebugOptions(const Plan& plan, const TrainOptions& opts, int world) {
  if (opts.inject_overflow.empty()) return Status::OK();
  const PlanProgram* step = plan.FindProgram("step");
  if (!step || !HasOutput(*step->graph, ops::kOverflowOutput))
    return FailedPrecondition("--debug-inject-overflow: the plan has no ", ops::kOverflowOutput,
                              " output, so it never checks gradients for inf/NaN (only fp16, amp and bf16 plans "
                              "with check_grad_overflow do); an injected inf would only poison the run");
  if (!FirstGradient(plan)) return FailedPrecondition("--debug-inject-overflow: the plan has no gradient accumulator");
  for (const OverflowInjection& i : opts.inject_overflow)
    if (i.rank >= world)
      return InvalidArgument("--debug-inject-overflow: step ", i.step, "@", i.rank, " names rank ", i.rank,
                             " but the job has ", world, " rank", world == 1 ? "" : "s");
  return Status::OK();
}

// +inf into element 0 of `v`, in its dtype.
Status WriteInf(Device* device, const TensorView& v) {
  if (v.numel() < 1) return Internal("the gradient accumulator to poison is empty");
  const float f = std::numeric_limits<float>::infinity();
  const uint16_t half_inf = 0x7C00, bf16_inf = 0x7F80;
  const double d = std::numeric_limits<double>::infinity();
  switch (v.dtype) {
    case DType::kFloat32: return device->CopyHostToDevice(v.ptr, &f, sizeof f);
    case DType::kFloat16: return device->CopyHostToDevice(v.ptr, &half_inf, sizeof half_inf);
    case DType::kBFloat16: return device->CopyHostToDevice(v.ptr, &bf16_inf, sizeof bf16_inf);
    case DType::kFloat64: return device->CopyHostToDevice(v.ptr, &d, sizeof d);
    default: return Internal("the gradient accumulator has the non-float dtype ", DTypeName(v.dtype));
  }
}

// This process's peak resident set so far: VmHWM (the high-water mark of this address space, so
// what the launcher or a --nproc parent used before exec does not count), else ru_maxrss. The
// kernel's resident count lags behind each thread's page faults (per-thread counters folded in
// every 64 faults), and the allocator hands pages back with madvise, so one reading can fall a
// few pages below an earlier one: the peak reported is the largest reading so far.
int64_t PeakResidentBytes() {
  static std::atomic<int64_t> largest{0};
  int64_t now = -1;
  std::ifstream status("/proc/self/status");
  for (std::string line; now < 0 && std::getline(status, line);)
    if (line.rfind("VmHWM:", 0) == 0) now = std::stoll(line.substr(6)) * 1024;  // "VmHWM:  1234 kB"
  if (now < 0) {
    rusage usage{};
    now = getrusage(RUSAGE_SELF, &usage) == 0 ? static_cast<int64_t>(usage.ru_maxrss) * 1024 : 0;
  }
  int64_t seen = largest.load();
  while (now > seen && !largest.compare_exchange_weak(seen, now)) {
  }
  return std::max(now, seen);
}

std::string FormatScale(double scale) {
  std::ostringstream os;
  os.precision(12);
  os << scale;
  return os.str();
}

// The model the plan was compiled from: --export-onnx writes the trained weights into a copy of it.
std::string ExportSource(const Plan& plan, const TrainOptions& opts) {
  return opts.export_source.empty() ? plan.source_model : opts.export_source;
}

// The parameters, master weights and buffers of every rank, consolidated (ZeRO shards all-gathered
// through the job's communicator: every rank takes part), then written by rank 0 into the source
// model as ONNX.
Status ExportTrainedModel(const Plan& plan, const StateStore& state, Communicator* comm,
                          const TrainOptions& opts, int64_t step) {
  std::map<std::string, Tensor> full;
  for (const StateInfo& s : plan.state) {
    if (s.kind != StateKind::kParameter && s.kind != StateKind::kMaster && s.kind != StateKind::kBuffer) continue;
    const TensorView* v = state.Describe(s.name);  // master weights may be in the swap file
    if (!v) return Internal("state '", s.name, "' has no buffer");
    Tensor local(v->dtype, v->dims);
    RETURN_IF_ERROR(state.CopyToHost(s.name, local.raw()));
    if (s.shard_of_numel == 0) {
      full.emplace(s.name, std::move(local));
      continue;
    }
    // The gathered chunks hold the full tensor, then padding.
    const std::vector<int64_t> dims = plan.FullShape(s);
    const int world = comm ? comm->size() : 1;
    Tensor gathered(v->dtype, {v->numel() * world});
    if (comm) {
      ASSIGN_OR_RETURN(std::unique_ptr<CommHandle> h, comm->AllGather(local.raw(), gathered.raw(), v->numel(), v->dtype));
      RETURN_IF_ERROR(h->Wait());
    } else {
      gathered = std::move(local);
    }
    Tensor t(v->dtype, dims);
    if (gathered.nbytes() < t.nbytes())
      return Internal("state '", s.name, "': its ", world, " shards hold fewer than its ", s.shard_of_numel, " elements");
    std::memcpy(t.raw(), gathered.raw(), t.nbytes());
    full.emplace(s.name, std::move(t));
  }
  if (comm && comm->rank() != 0) return Status::OK();
  // The source model's dtypes (a half model's fp32 masters go back to fp16); a safetensors-only
  // export without a readable source keeps the state's dtypes.
  const std::string source = ExportSource(plan, opts);
  std::map<std::string, DType> dtypes;
  if (!opts.export_onnx.empty() || std::filesystem::is_regular_file(source)) {
    ASSIGN_OR_RETURN(dtypes, OnnxInitializerDTypes(source));
  } else if (opts.progress) {
    *opts.progress << "dsrun: note: the source model " << source
                   << " is not readable: --export-safetensors keeps the state's dtypes\n";
  }
  ASSIGN_OR_RETURN(auto weights, TrainedWeightsFromState(plan, full, dtypes));
  if (!opts.export_onnx.empty()) {
    RETURN_IF_ERROR(ExportTrainedOnnx(source, weights, opts.export_onnx, ExportOptions{})
                        .WithContext(StrCat("--export-onnx ", opts.export_onnx)));
    if (opts.progress) *opts.progress << "dsrun: wrote the trained model to " << opts.export_onnx << "\n";
  }
  if (!opts.export_safetensors.empty()) {
    RETURN_IF_ERROR(ExportSafetensors(weights, opts.export_safetensors,
                                      {{"dsc.source_model", source}, {"dsc.step", StrCat(step)}})
                        .WithContext(StrCat("--export-safetensors ", opts.export_safetensors)));
    if (opts.progress) *opts.progress << "dsrun: wrote the trained weights to " << opts.export_safetensors << "\n";
  }
  return Status::OK();
}

// The folders of the rank's swap files: offload_param's nvme_path for the parameter chunks and
// offload_optimizer's for the rest, either standing in for the other when only one is set.
StatusOr<SwapFolders> SwapFoldersOf(const ZeroConfig& z) {
  const std::string pkey = "zero_optimization.offload_param.nvme_path",
                    okey = "zero_optimization.offload_optimizer.nvme_path";
  const std::string* param =
      z.offload_param && z.offload_param->device == "nvme" && z.offload_param->nvme_path ? &*z.offload_param->nvme_path
                                                                                         : nullptr;
  const std::string* other = z.offload_optimizer && z.offload_optimizer->device == "nvme" &&
                                     z.offload_optimizer->nvme_path
                                 ? &*z.offload_optimizer->nvme_path
                                 : nullptr;
  if (!param && !other)
    return FailedPrecondition("the plan swaps state to NVMe but its config has no ", okey, " or ", pkey);
  return SwapFolders{param ? *param : *other, param ? pkey : okey, other ? *other : *param, other ? okey : pkey};
}

// The reserved scalar inputs: set on the host, uploaded to one device buffer before each run.
class Scalars {
 public:
  explicit Scalars(Device* device) : device_(device) {}
  ~Scalars() { device_->Free(buf_); }
  Status Init() {
    ASSIGN_OR_RETURN(buf_, device_->Allocate(sizeof(host_)));
    return Upload();
  }
  float lr = 0, beta1 = 0, loss_scale = 1;
  int64_t step = 1;
  // The device view of a reserved scalar input, or null when `name` is not one.
  std::optional<TensorView> View(const std::string& name) const {
    uint8_t* base = static_cast<uint8_t*>(buf_);
    if (name == ops::kLrInput) return TensorView{DType::kFloat32, {}, base + offsetof(Host, lr)};
    if (name == ops::kStepInput) return TensorView{DType::kInt64, {}, base + offsetof(Host, step)};
    if (name == ops::kBeta1Input) return TensorView{DType::kFloat32, {}, base + offsetof(Host, beta1)};
    if (name == ops::kLossScaleInput) return TensorView{DType::kFloat32, {}, base + offsetof(Host, loss_scale)};
    return std::nullopt;
  }
  // Stream-ordered before the next program run reads them.
  Status Upload() {
    host_ = Host{step, lr, beta1, loss_scale};
    return device_->CopyHostToDevice(buf_, &host_, sizeof(host_));
  }

 private:
  struct Host {
    int64_t step;
    float lr, beta1, loss_scale;
  };
  Device* device_;
  void* buf_ = nullptr;
  Host host_{};
};

// Binds every input of `g` that is state or a reserved scalar; returns the others (data inputs).
// `step`: the step program, which binds the states' host copies when it runs on the host.
StatusOr<std::vector<DataInput>> BindProgram(const Graph& g, ProgramExecutor* ex, const StateStore& state,
                                             const Scalars& scalars, bool step) {
  std::vector<DataInput> data;
  for (const Value* in : g.inputs()) {
    if (const TensorView* v = step ? state.FindForStep(in->name()) : state.Find(in->name())) {
      RETURN_IF_ERROR(ex->Bind(in->name(), *v));
      continue;
    }
    if (std::optional<TensorView> scalar = scalars.View(in->name())) {
      RETURN_IF_ERROR(ex->Bind(in->name(), *scalar));
      continue;
    }
    std::vector<int64_t> dims;
    for (const Dim& d : *in->type.shape) dims.push_back(d.value);
    data.push_back(DataInput{in->name(), in->type.dtype, dims});
  }
  return data;
}

// The micro-step's data inputs in device memory. On the CPU the loader's host tensors are bound
// as they are; on a GPU each batch is uploaded into buffers of its own, stream-ordered after the
// micro-step that read the previous one, so the host fills the next batch while the GPU computes.
class BatchBuffers {
 public:
  explicit BatchBuffers(Device* device) : device_(device) {}
  ~BatchBuffers() {
    for (auto& [name, view] : views_) device_->Free(view.ptr);
  }
  Status Bind(ProgramExecutor* ex, std::map<std::string, Tensor>& batch) {
    for (auto& [name, t] : batch) {
      TensorView v{t.dtype(), t.dims(), t.raw()};
      if (device_->kind() != DeviceKind::kCpu) {
        ASSIGN_OR_RETURN(v.ptr, device_->Allocate(t.nbytes()));
        views_[name] = v;
      }
      RETURN_IF_ERROR(ex->Bind(name, v));
    }
    return Status::OK();
  }
  Status Upload(const std::map<std::string, Tensor>& batch) {
    for (const auto& [name, t] : batch) {
      auto it = views_.find(name);
      if (it != views_.end()) RETURN_IF_ERROR(device_->CopyHostToDevice(it->second.ptr, t.raw(), t.nbytes()));
    }
    return Status::OK();
  }

 private:
  Device* device_;
  std::map<std::string, TensorView> views_;
};

// The optimizer call DeepSpeed's fp16/bf16 wrapper makes in its constructor at ZeRO 0
// (WrapperCallsBeforeTraining; the 1-bit family counts it in its nodes instead): the step program
// once on the fresh state, whose gradient accumulators are still zero, with the lr and betas the
// optimizer was built with (DeepSpeed builds the LR scheduler after the wrapper) and dsc::step 1.
// The wrapper steps only the fp32 masters, so the half parameters are put back afterwards. The
// optimizer's later calls then count from 2, as its bias corrections and step counts do.
Status CheckConstructorCall(const DsConfig& cfg, const Graph& step) {
  const OptimizerConfig& o = cfg.optimizer;
  // Cycled betas are in the plan: beta2 is OneCycle's 0.99 attribute; zero gradients make the
  // betas matter only where weight decay is added to the gradient (L2) of an optimizer with betas.
  const bool decoupled = o.implementation == "FusedAdam" ? o.adam_w_mode
                         : o.implementation == "torch.optim.NAdam" || o.implementation == "torch.optim.RAdam"
                             ? o.decoupled_weight_decay
                             : o.implementation != "torch.optim.Adam" && o.implementation != "torch.optim.Adamax";
  bool decays = o.weight_decay != 0;
  for (const ParameterGroupSpec& g : cfg.dscompile.parameter_groups) decays = decays || g.weight_decay.value_or(0) != 0;
  if (HasInput(step, ops::kBeta1Input) && decays && !decoupled)
    return Unimplemented("scheduler.params.cycle_momentum with ", o.implementation, "'s L2 weight_decay at ZeRO 0 in ",
                         cfg.fp16.enabled ? "fp16" : "bf16",
                         ": DeepSpeed's wrapper calls step() once before OneCycle sets the betas, with the "
                         "optimizer's own beta2, which this plan does not keep; set cycle_momentum false or "
                         "use zero_optimization.stage >= 1");
  return Status::OK();
}

Status RunConstructorCall(const Plan& plan, const DsConfig& cfg, ProgramExecutor* step_ex, Scalars* scalars,
                          StateStore* state, const RunOptions& run) {
  std::vector<std::pair<const StateInfo*, std::vector<uint8_t>>> params;
  for (const StateInfo& s : plan.state) {
    if (s.kind != StateKind::kParameter) continue;
    const TensorView* v = state->Describe(s.name);
    if (!v) return Internal("state '", s.name, "' has no buffer");
    params.emplace_back(&s, std::vector<uint8_t>(v->nbytes()));
    RETURN_IF_ERROR(state->CopyToHost(s.name, params.back().second.data()));
  }
  const OptimizerConfig& o = cfg.optimizer;
  scalars->lr = static_cast<float>(o.lr);
  scalars->beta1 = static_cast<float>(o.betas[0]);
  scalars->loss_scale = 1.0f;
  scalars->step = 1;
  RETURN_IF_ERROR(scalars->Upload());
  RETURN_IF_ERROR(step_ex->Run(run).WithContext("the fp16/bf16 wrapper's constructor call of optimizer.step()"));
  for (auto& [s, bytes] : params) RETURN_IF_ERROR(state->CopyFromHost(s->name, bytes.data(), bytes.size()));
  return Status::OK();
}

Status MetricsWriteError(const std::string& path) {
  return DataLoss("--metrics ", path, ": cannot write: ", std::strerror(errno ? errno : EIO));
}

StatusOr<float> ReadScalar(Device* device, const TensorView* v, const std::string& what) {
  if (!v || v->dtype != DType::kFloat32 || v->numel() != 1) return Internal("the plan has no float scalar ", what);
  float x = 0;
  RETURN_IF_ERROR(device->CopyDeviceToHost(&x, v->ptr, sizeof(float)));
  return x;
}

// Every rank saw its own micro-batches: the step's loss is the mean over all of them. The same
// all-reduce gathers each rank's overflow verdict (slot 1 + rank), which must agree: the plan
// derives it from the global norm, so a disagreement is a bug, reported with the ranks on each side.
Status ReduceLossAndVerdict(Communicator* comm, bool checks_overflow, bool overflow, int64_t step, double* loss_sum) {
  const int world = comm->size();
  std::vector<double> buf(checks_overflow ? 1 + world : 1, 0.0);
  buf[0] = *loss_sum;
  if (checks_overflow) buf[1 + comm->rank()] = overflow ? 1.0 : 0.0;
  ASSIGN_OR_RETURN(auto h, comm->AllReduce(buf.data(), static_cast<int64_t>(buf.size()), DType::kFloat64, ReduceOp::kSum));
  RETURN_IF_ERROR(h->Wait());
  *loss_sum = buf[0] / world;
  if (!checks_overflow) return Status::OK();
  std::string yes, no;
  for (int r = 0; r < world; ++r) {
    std::string& list = buf[1 + r] != 0 ? yes : no;
    list += StrCat(list.empty() ? "" : ", ", r);
  }
  if (!yes.empty() && !no.empty())
    return Internal("step ", step, ": the ranks disagree on the gradient overflow check: rank(s) ", yes,
                    " found inf/NaN, rank(s) ", no, " did not; the plan computes it from the global norm, so this is "
                    "a bug in the plan or a collective");
  return Status::OK();
}

// Whether the step program runs on the host (backend/host_step.h): on a GPU rank whose config
// offloads the optimizer, or on a CPU rank with --debug-host-step, which splits it the same way to
// test it there. What the split does not do is refused, naming the key.
// (Optimizer offload acts at ZeRO 1-3 only: at stage 0 the config warns that it has no effect.)
Status CheckHostStepOption(const DsConfig& cfg, const TrainOptions& opts) {
  if (opts.debug_host_step && !(cfg.zero.enabled() && cfg.zero.optimizer_offloaded()))
    return InvalidArgument("--debug-host-step: the plan's config offloads no optimizer states ",
                           "(zero_optimization.offload_optimizer.device is \"none\", or ZeRO stage 0), so a GPU "
                           "rank would run its step on the device: there is no split to test");
  return Status::OK();
}
StatusOr<bool> StepRunsOnHost(const DsConfig& cfg, const Device& device, const TrainOptions& opts) {
  RETURN_IF_ERROR(CheckHostStepOption(cfg, opts));
  const bool offloaded = cfg.zero.enabled() && cfg.zero.optimizer_offloaded();
  if (opts.debug_host_step && device.kind() != DeviceKind::kCpu)
    return InvalidArgument("--debug-host-step is for CPU ranks: a rank on ", device.name(),
                           " with optimizer offload runs its step program on the host already");
  const bool on_host = offloaded && (device.kind() != DeviceKind::kCpu || opts.debug_host_step);
  if (on_host && cfg.zero.offload_optimizer->ratio < 1.0)
    return Unimplemented("zero_optimization.offload_optimizer.ratio ", cfg.zero.offload_optimizer->ratio,
                         ": partial optimizer offload (a share of the states and their update kept on the GPU) is "
                         "not implemented; set it to 1, or run this plan with --device cpu");
  return on_host;
}

// The config of a plan that can train on this job's ranks.
StatusOr<DsConfig> RunnableConfig(const Plan& plan, const TrainOptions& opts) {
  if (!plan.FindProgram("micro_step") || !plan.FindProgram("step"))
    return FailedPrecondition("the plan has no micro_step/step programs: it was compiled with an explicit --passes or "
                              "--stop-after-pass-num; recompile with dscompile's default pipeline to train");
  const int world = opts.comm ? opts.comm->size() : 1;
  if (plan.world_size != world)
    return FailedPrecondition("the plan was compiled for ", plan.world_size, " ranks but runs on ", world);
  ConfigOptions copts;
  copts.world_size = plan.world_size;
  std::vector<std::string> warnings;
  return ParseDsConfigJson(plan.config, copts, &warnings, "the plan's config");
}

DataLoaderOptions LoaderOptions(const DsConfig& cfg, const TrainOptions& opts) {
  DataLoaderOptions dopts;
  dopts.train_batch_size = cfg.train_batch_size;
  dopts.micro_batch = cfg.train_micro_batch_size_per_gpu;
  dopts.gradient_accumulation_steps = cfg.gradient_accumulation_steps;
  dopts.shuffle = opts.shuffle;
  dopts.seed = opts.seed.value_or(cfg.seed);
  dopts.rank = opts.comm ? opts.comm->rank() : 0;
  dopts.world_size = opts.comm ? opts.comm->size() : 1;
  return dopts;
}

// The checkpoint options fit the config (checked before the ranks agree to start).
Status CheckCheckpointOptions(const DsConfig& cfg, const TrainOptions& opts) {
  if (opts.save_every < 0) return InvalidArgument("--save-every must be >= 1");
  if ((opts.save_every > 0 || opts.save_at_end) && opts.save_dir.empty())
    return InvalidArgument("--save-every and --save-at-end need --save-dir DIR");
  if ((!opts.save_dir.empty() || !opts.resume_from.empty()) && cfg.checkpoint.use_node_local_storage)
    return Unimplemented("checkpoint.use_node_local_storage is true, which dsrun does not support: its checkpoints ",
                         "are one folder that every rank writes its own file into and reads any slice from (a ",
                         "shared filesystem); set it to false");
  return Status::OK();
}

// checkpoint.tag_validation (DeepSpeed's _checkpoint_tag_validation): every rank must name the
// same tag. Fail: an error; Warn: a warning on rank 0; Ignore: no check.
Status ValidateTagAcrossRanks(const DsConfig& cfg, Communicator* comm, const std::string& tag, const char* what,
                              std::ostream* progress) {
  if (!comm || comm->size() == 1 || !cfg.checkpoint.tag_validation_enabled()) return Status::OK();
  ASSIGN_OR_RETURN(const std::vector<double> hashes,
                   GatherOnePerRank(comm, static_cast<double>(Crc32c(tag.data(), tag.size()))));
  if (std::all_of(hashes.begin(), hashes.end(), [&](double x) { return x == hashes[0]; })) return Status::OK();
  std::string differ;
  for (int r = 1; r < comm->size(); ++r)
    if (hashes[static_cast<size_t>(r)] != hashes[0]) differ += StrCat(differ.empty() ? "" : ", ", r);
  const std::string msg = StrCat(what, ": the ranks do not agree on the checkpoint tag (rank ", comm->rank(),
                                 " has '", tag, "'; rank(s) ", differ, " differ from rank 0)");
  if (cfg.checkpoint.tag_validation_fail()) return FailedPrecondition(msg, " [checkpoint.tag_validation: Fail]");
  if (progress) *progress << "dsrun: warning: " << msg << " [checkpoint.tag_validation: Warn]\n";
  return Status::OK();
}

// Top-level config keys whose resolved values differ between two configs, for a resume's note.
std::string ConfigDifferences(const nlohmann::json& a, const nlohmann::json& b) {
  std::string out;
  std::set<std::string> keys;
  for (const auto& [k, v] : a.items()) keys.insert(k);
  for (const auto& [k, v] : b.items()) keys.insert(k);
  for (const std::string& k : keys)
    if (!a.contains(k) || !b.contains(k) || a[k] != b[k]) out += StrCat(out.empty() ? "" : ", ", k);
  return out;
}

}  // namespace

StatusOr<std::vector<OverflowInjection>> ParseOverflowInjection(const std::string& spec) {
  std::vector<OverflowInjection> out;
  std::stringstream in(spec);
  for (std::string item; std::getline(in, item, ',');) {
    const size_t at = item.find('@');
    OverflowInjection i;
    ASSIGN_OR_RETURN(std::vector<int64_t> step, ParseStepList(item.substr(0, at), "--debug-inject-overflow"));
    i.step = step.at(0);
    if (i.step < 1) return InvalidArgument("--debug-inject-overflow: steps count from 1, got '", item, "'");
    if (at != std::string::npos) {
      const std::string r = item.substr(at + 1);
      char* end = nullptr;
      errno = 0;
      const long rank = r.empty() ? -1 : std::strtol(r.c_str(), &end, 10);
      if (r.empty() || *end != '\0' || errno != 0 || rank < 0 || rank > 1 << 20)
        return InvalidArgument("--debug-inject-overflow: expected STEP or STEP@RANK, got '", item, "'");
      i.rank = static_cast<int>(rank);
    }
    out.push_back(i);
  }
  if (out.empty() || spec.back() == ',')
    return InvalidArgument("--debug-inject-overflow: expected a comma-separated list of STEP or STEP@RANK, got '", spec, "'");
  return out;
}

StatusOr<std::vector<int64_t>> ParseStepList(const std::string& spec, const std::string& flag) {
  std::vector<int64_t> out;
  std::stringstream in(spec);
  for (std::string item; std::getline(in, item, ',');) {
    char* end = nullptr;
    errno = 0;
    const long long v = item.empty() ? -1 : std::strtoll(item.c_str(), &end, 10);
    if (item.empty() || *end != '\0' || errno != 0 || v < 0)
      return InvalidArgument(flag, ": expected a comma-separated list of step numbers, got '", spec, "'");
    out.push_back(v);
  }
  if (out.empty() || spec.back() == ',')
    return InvalidArgument(flag, ": expected a comma-separated list of step numbers, got '", spec, "'");
  return out;
}

Status PrepareResume(const std::string& path, TrainOptions* opts, std::vector<std::string>* notes) {
  std::string note;
  ASSIGN_OR_RETURN(std::string dir, ResolveCheckpoint(path, &note));
  if (!note.empty() && notes) notes->push_back(note);
  ASSIGN_OR_RETURN(Checkpoint ckpt, Checkpoint::Open(dir));
  ASSIGN_OR_RETURN(TrainerPosition pos, TrainerPositionFromJson(ckpt.manifest().meta.trainer_state, dir));
  if (opts->seed && *opts->seed != pos.seed)
    return InvalidArgument("--seed ", *opts->seed, " contradicts the checkpoint ", dir, ", which trained with seed ",
                           pos.seed, ": the data order and dropout masks would not continue; drop --seed");
  if (!opts->shuffle && pos.shuffle)
    return InvalidArgument("--no-shuffle contradicts the checkpoint ", dir,
                           ", which trained on shuffled data: the data order would not continue; drop --no-shuffle");
  opts->seed = pos.seed;
  opts->shuffle = pos.shuffle;
  opts->resume_from = dir;
  return Status::OK();
}

StatusOr<DataLoader> OpenTrainingData(const Plan& plan, const TrainOptions& opts) {
  ASSIGN_OR_RETURN(DsConfig cfg, RunnableConfig(plan, opts));
  RETURN_IF_ERROR(CheckDebugOptions(plan, opts, opts.comm ? opts.comm->size() : 1));
  if (!opts.export_onnx.empty()) {
    // Before training, so that a wrong path does not cost the run.
    const std::string source = ExportSource(plan, opts);
    if (!std::filesystem::is_regular_file(source))
      return InvalidArgument("--export-onnx: the source model ", source, " (",
                             opts.export_source.empty() ? "the path the plan recorded" : "--export-source",
                             ") is not a readable file; give --export-source MODEL.onnx");
    RETURN_IF_ERROR(CheckOnnxExportable(plan, source).WithContext("--export-onnx"));
  }
  for (const auto& [flag, path] : {std::pair<const char*, const std::string&>{"--export-onnx", opts.export_onnx},
                                   {"--export-safetensors", opts.export_safetensors}}) {
    const std::filesystem::path out_dir = std::filesystem::path(path).parent_path();
    if (!path.empty() && !out_dir.empty() && !std::filesystem::is_directory(out_dir))
      return InvalidArgument(flag, " ", path, ": the folder ", out_dir.string(), " does not exist");
  }
  RETURN_IF_ERROR(CheckCheckpointOptions(cfg, opts));
  RETURN_IF_ERROR(CheckHostStepOption(cfg, opts));
  // The micro-step's data inputs: what BindProgram leaves unbound (neither state nor a scalar).
  std::vector<DataInput> inputs;
  for (const Value* in : plan.FindProgram("micro_step")->graph->inputs()) {
    if (plan.FindState(in->name()) || ops::ReservedScalarDType(in->name()) != DType::kUndefined) continue;
    std::vector<int64_t> dims;
    for (const Dim& d : *in->type.shape) dims.push_back(d.value);
    inputs.push_back(DataInput{in->name(), in->type.dtype, dims});
  }
  return DataLoader::Open(opts.data_dir, inputs, LoaderOptions(cfg, opts));
}

StatusOr<TrainSummary> Train(const Plan& plan, const TrainOptions& opts, DataLoader loader) {
  ASSIGN_OR_RETURN(DsConfig cfg, RunnableConfig(plan, opts));
  const PlanProgram* micro = plan.FindProgram("micro_step");
  const PlanProgram* step = plan.FindProgram("step");
  const int rank = opts.comm ? opts.comm->rank() : 0;
  const int world = opts.comm ? opts.comm->size() : 1;
  RETURN_IF_ERROR(CheckDebugOptions(plan, opts, world));
  ASSIGN_OR_RETURN(LrSchedule schedule, LrSchedule::Create(cfg));
  // The loss scale the config asks for, and whether the plan applies it and checks for overflow.
  ASSIGN_OR_RETURN(LossScaler scaler, LossScaler::ForTraining(cfg));
  const bool scales_loss = HasInput(*micro->graph, ops::kLossScaleInput) || HasInput(*step->graph, ops::kLossScaleInput);
  const bool checks_overflow = HasOutput(*step->graph, ops::kOverflowOutput);
  if (!scales_loss && (scaler.dynamic() || scaler.exact_scale() != 1.0))
    return FailedPrecondition("the config scales the loss (", scaler.Describe(), ") but the plan has no ",
                              ops::kLossScaleInput, " input; recompile it with this dscompile");
  if (scaler.dynamic() && !checks_overflow)
    return FailedPrecondition("the config asks for dynamic loss scaling but the plan's step has no ",
                              ops::kOverflowOutput, " output to adapt the scale to; recompile it with this dscompile");

  std::unique_ptr<Device> own_device;
  Device* device = opts.device;
  if (!device) {
    own_device = CreateCpuDevice(opts.threads);
    device = own_device.get();
  }
  // Optimizer offload compiles to the plan without offload ("cpu") or with swap ops ("nvme"): on a
  // CPU rank the states are in host memory already. A GPU rank runs the step program on the host
  // (backend/host_step.h), as --debug-host-step makes a CPU rank do to test it.
  ASSIGN_OR_RETURN(const bool host_step, StepRunsOnHost(cfg, *device, opts));
  if (device->kind() == DeviceKind::kCuda && cfg.zero.stage == 3 && cfg.zero.param_offloaded())
    return Unimplemented("zero_optimization.offload_param.device \"", cfg.zero.offload_param->device,
                         "\": offloading the parameters of a rank that computes on a CUDA device is not "
                         "implemented; run this plan with --device cpu, or compile it without offload_param");
  // The collectives' communicator: the job's own on CPUs; on GPUs one that moves device buffers
  // (NCCL across distinct GPUs, host staging when ranks share one).
  Communicator* kernel_comm = opts.comm;
  std::unique_ptr<Communicator> gpu_comm;
  if (device->kind() == DeviceKind::kCuda && opts.comm) {
    ASSIGN_OR_RETURN(const CudaBackendApi* cuda, LoadCudaBackend());
    ASSIGN_OR_RETURN(gpu_comm, cuda->create_gpu_communicator(opts.comm, device->cuda_resources()));
    kernel_comm = gpu_comm.get();
  }
  RETURN_IF_ERROR(CheckCheckpointOptions(cfg, opts));
  // The step program's device and communicator: the compute device's, or with the step on the host
  // a CPU device of its own whose collectives move host buffers through the job's communicator.
  std::unique_ptr<Device> host_device;
  Device* step_device = device;
  Communicator* step_comm = kernel_comm;
  HostStepLayout layout;
  if (host_step) {
    ASSIGN_OR_RETURN(layout, HostStepLayoutOf(plan));
    host_device = CreateCpuDevice(opts.threads);
    step_device = host_device.get();
    step_comm = opts.comm;
  }
  // offload_optimizer.pin_memory: the host copies page-locked, as the compute device allocates them
  // (a CPU device's host memory is its own; nothing to pin).
  const bool pinned = host_step && cfg.zero.offload_optimizer->pin_memory && device->kind() != DeviceKind::kCpu;
  StateStore state(device);
  if (host_step) state.PlaceForHostStep(layout, host_device.get(), pinned);
  RETURN_IF_ERROR(state.Allocate(plan));
  if (!ops::SwappedStates(plan).empty()) {
    // The plan swaps optimizer states, master weights or parameter chunks (offload_optimizer or
    // offload_param device "nvme"; a file per rank and folder): the files, before any initial
    // value or checkpoint is written into them.
    ASSIGN_OR_RETURN(SwapFolders folders, SwapFoldersOf(cfg.zero));
    RETURN_IF_ERROR(state.OpenSwap(folders, rank, SwapIoOptionsFrom(cfg.aio)));
    // Every rank: each may have its own disk under the same nvme_path. One write per line, so
    // the ranks' lines on a shared stderr do not interleave.
    for (const std::string& note : state.SwapIoNotes()) std::cerr << StrCat("dsrun: note: ", note, "\n") << std::flush;
  }
  // The position a resume starts from; a fresh run starts at the zero position.
  TrainerPosition start_pos;
  start_pos.lr_last_batch_iteration = schedule.last_batch_iteration();
  std::vector<std::string> notes;
  if (opts.resume_from.empty() && plan.initial_state) {
    RETURN_IF_ERROR(state.InitFromPlan(plan, rank));
  } else if (opts.resume_from.empty()) {
    // A plan file: its initial values are a step-0 checkpoint, loaded as a resume loads.
    ASSIGN_OR_RETURN(Checkpoint init, OpenInitialValues(plan));
    RETURN_IF_ERROR(LoadStateTensors(plan, init, rank, &state, nullptr, LoadMode::kInitialValues));
  } else {
    RETURN_IF_ERROR(ValidateTagAcrossRanks(cfg, opts.comm, opts.resume_from, "--resume", opts.progress));
    ASSIGN_OR_RETURN(Checkpoint ckpt, Checkpoint::Open(opts.resume_from));
    const CheckpointManifest& m = ckpt.manifest();
    ASSIGN_OR_RETURN(start_pos, TrainerPositionFromJson(m.meta.trainer_state, ckpt.dir()));
    RETURN_IF_ERROR(LoadStateTensors(plan, ckpt, rank, &state, &notes));
    // DeepSpeed compares the optimizer's calls, one more than the steps under fp16/bf16.
    RETURN_IF_ERROR(ResetOnebitLambBeforeFreeze(plan, cfg.optimizer.freeze_step,
                                                cfg.optimizer.implementation == "OnebitLamb",
                                                start_pos.applied_steps + OnebitCallsBeforeTraining(cfg), &state,
                                                &notes));
    const DataLoaderOptions want = LoaderOptions(cfg, opts);
    if (start_pos.seed != want.seed || start_pos.shuffle != want.shuffle)
      return FailedPrecondition("resuming from ", ckpt.dir(), ": its data seed/shuffling (", start_pos.seed, ", ",
                                start_pos.shuffle, ") are not this run's (", want.seed, ", ", want.shuffle,
                                "); PrepareResume sets them");
    if (start_pos.num_samples != loader.num_samples())
      return FailedPrecondition("resuming from ", ckpt.dir(), ": it trained on ", start_pos.num_samples,
                                " samples per epoch, --data ", opts.data_dir, " has ", loader.num_samples(),
                                ": the data order would not continue");
    if (start_pos.train_batch_size != cfg.train_batch_size)
      return FailedPrecondition("resuming from ", ckpt.dir(), ": it trained with train_batch_size ",
                                start_pos.train_batch_size, ", this plan's is ", cfg.train_batch_size,
                                ": the data position would not continue");
    schedule.set_last_batch_iteration(start_pos.lr_last_batch_iteration);
    ASSIGN_OR_RETURN(std::string scaler_note, scaler.RestoreState(start_pos.loss_scaler, ckpt.dir()));
    if (!scaler_note.empty()) notes.push_back(scaler_note);
    if (m.meta.plan_hash != PlanHash(plan)) {
      const std::string differ = ConfigDifferences(m.meta.config, plan.config);
      notes.push_back(StrCat("the checkpoint was saved by another plan (on ", m.world_size, " rank",
                             m.world_size == 1 ? "" : "s", differ.empty() ? "" : "; config differs in: " + differ, ")"));
    }
  }
  // The scalars each program reads, in its device's memory (one set when both run on one device).
  Scalars scalars(device);
  RETURN_IF_ERROR(scalars.Init());
  std::optional<Scalars> host_scalars;
  if (host_step) RETURN_IF_ERROR(host_scalars.emplace(step_device).Init());
  Scalars& step_scalars = host_step ? *host_scalars : scalars;
  ASSIGN_OR_RETURN(std::unique_ptr<ProgramExecutor> micro_ex, ProgramExecutor::Create(*micro->graph, device));
  ASSIGN_OR_RETURN(std::unique_ptr<ProgramExecutor> step_ex, ProgramExecutor::Create(*step->graph, step_device));
  micro_ex->comm_state().set_swap_space(state.swap());
  step_ex->comm_state().set_swap_space(state.swap());
  ASSIGN_OR_RETURN(std::vector<DataInput> inputs, BindProgram(*micro->graph, micro_ex.get(), state, scalars, false));
  ASSIGN_OR_RETURN(std::vector<DataInput> step_data,
                   BindProgram(*step->graph, step_ex.get(), state, step_scalars, true));
  if (!step_data.empty()) return Internal("the step program reads '", step_data[0].name, "', which is neither state nor a scalar");
  const DataLoaderOptions dopts = LoaderOptions(cfg, opts);
  const bool same_inputs = std::equal(inputs.begin(), inputs.end(), loader.inputs().begin(), loader.inputs().end(),
                                      [](const DataInput& a, const DataInput& b) { return a.name == b.name; });
  if (!same_inputs) return Internal("the training data was opened for other inputs than the micro_step program reads");
  std::map<std::string, Tensor> batch;
  RETURN_IF_ERROR(loader.Fill(0, 0, &batch));
  BatchBuffers batch_buffers(device);
  RETURN_IF_ERROR(batch_buffers.Bind(micro_ex.get(), batch));
  // Each micro-step's loss, copied out of the arena (device memory) and read once per step.
  const int64_t gas = cfg.gradient_accumulation_steps;
  ASSIGN_OR_RETURN(void* losses_dev, device->Allocate(static_cast<size_t>(gas) * sizeof(float)));
  struct FreeLater {
    Device* d;
    void* p;
    ~FreeLater() { d->Free(p); }
  } free_losses{device, losses_dev};
  std::vector<float> losses(static_cast<size_t>(gas));
  // Every rank computes the same loss and metrics; one copy of each is enough.
  const bool lead_rank = !opts.comm || opts.comm->rank() == 0;
  std::ostream* const progress = lead_rank ? opts.progress : nullptr;
  if (progress && loader.num_samples() % cfg.train_batch_size != 0)
    *progress << "dsrun: note: " << loader.num_samples() % cfg.train_batch_size
              << " samples per epoch do not fill a batch and are skipped (plans have static batch shapes)\n";
  if (progress)
    for (const std::string& n : loader.notes()) *progress << "dsrun: note: " << n << "\n";
  if (progress && scales_loss) *progress << "dsrun: loss scale: " << scaler.Describe() << "\n";
  if (progress) *progress << "dsrun: device " << device->name() << "\n";
  if (progress && host_step)
    *progress << "dsrun: optimizer offload: the step program runs on the host (" << step_device->name() << "), "
              << HumanBytes(state.host_bytes()) << " of state in " << (pinned ? "pinned " : "")
              << "host memory; per step " << HumanBytes(layout.to_host_bytes) << " device -> host, "
              << HumanBytes(layout.to_device_bytes) << " host -> device\n";

  const int64_t total = opts.steps >= 0 ? opts.steps : std::max<int64_t>(opts.epochs, 1) * loader.steps_per_epoch();
  if (progress) {
    if (!opts.resume_from.empty())
      *progress << "dsrun: resumed from " << opts.resume_from << " after step " << start_pos.step << "\n";
    for (const std::string& n : notes) *progress << "dsrun: note: " << n << "\n";
    if (start_pos.step >= total)
      *progress << "dsrun: the checkpoint is at step " << start_pos.step << ", the run ends at step " << total
                << ": nothing to train\n";
  }
  const int64_t print_every = cfg.steps_per_print.value_or(10);
  std::unique_ptr<TrainingProfiler> profiler;
  if (lead_rank) {
    const ProfileOptions popts{opts.profile, opts.profile_json, &std::cout, progress, start_pos.step + 1,
                               total, print_every, device->kind() != DeviceKind::kCpu};
    ASSIGN_OR_RETURN(profiler, TrainingProfiler::Create(plan, cfg, popts));
  }
  // DeepSpeed's tensorboard and csv_monitor sections: rank 0 writes them, like the metrics.
  std::unique_ptr<TrainingMonitor> monitor;
  if (lead_rank) {
    ASSIGN_OR_RETURN(monitor, TrainingMonitor::Create(cfg));
    if (monitor && progress)
      for (const std::string& where : monitor->Describe()) *progress << "dsrun: " << where << "\n";
  }
  // comms_logger: every rank's communicator records the plan's collectives (only they: the log is
  // attached while the programs run); rank 0 prints.
  std::unique_ptr<CommsLogger> comms_log;
  if (cfg.comms_logger.enabled && kernel_comm)
    comms_log = std::make_unique<CommsLogger>(cfg.comms_logger, kernel_comm->size(), lead_rank ? &std::cout : nullptr);
  // The communicators the plan's collectives go through: the micro-step's, and the step's when it
  // runs on the host with another one.
  std::vector<Communicator*> plan_comms;
  for (Communicator* c : {kernel_comm, step_comm})
    if (c && std::find(plan_comms.begin(), plan_comms.end(), c) == plan_comms.end()) plan_comms.push_back(c);
  auto set_log = [&](CollectiveLog* log) {
    for (Communicator* c : plan_comms) c->set_collective_log(log);
  };
  // A step that fails leaves the log attached: detach it before it goes, as the communicator stays.
  struct DetachLog {
    std::vector<Communicator*> comms;
    ~DetachLog() {
      for (Communicator* c : comms) c->set_collective_log(nullptr);
    }
  } detach_log{comms_log ? plan_comms : std::vector<Communicator*>{}};
  const std::string loss_name = micro->graph->training.loss;
  std::ostream* const metrics = lead_rank ? opts.metrics : nullptr;
  TrainSummary summary;
  summary.resumed_from = start_pos.step;
  summary.skipped_steps = start_pos.skipped_steps;
  const auto start = std::chrono::steady_clock::now();
  const int threads = opts.threads;
  // The communicator's counters where the plan's traffic of the current step starts.
  std::map<std::string, int64_t> sent_before, calls_before;
  auto sum_over_comms = [&](std::map<std::string, int64_t> (Communicator::*counter)() const) {
    std::map<std::string, int64_t> sum;
    for (Communicator* c : plan_comms)
      for (const auto& [kind, n] : (c->*counter)()) sum[kind] += n;
    return sum;
  };
  auto count_from_here = [&] {
    sent_before = sum_over_comms(&Communicator::bytes_sent);
    calls_before = sum_over_comms(&Communicator::calls);
  };
  count_from_here();
  // Stage 3 gathers parameters in buckets: the metrics then report the most gathered elements
  // alive at once in a step (the runtime's side of stage3_max_live_parameters).
  auto gathers = [](const Graph& g) {
    for (const auto& n : g.nodes())
      if (n->domain() == kDscDomain && n->op_type() == ops::kAllGatherStart) return true;
    return false;
  };
  const bool gathers_buckets = gathers(*micro->graph) || gathers(*step->graph);
  const TensorView* const poison = FirstGradient(plan) ? state.Find(FirstGradient(plan)->name) : nullptr;
  // The optimizer calls before training that dsc::step counts (the 1-bit nodes count their own).
  const int64_t init_calls = WrapperCallsBeforeTraining(cfg) - OnebitCallsBeforeTraining(cfg);
  if (init_calls > 0) RETURN_IF_ERROR(CheckConstructorCall(cfg, *step->graph));
  if (init_calls > 0 && opts.resume_from.empty()) {
    if (progress)
      *progress << "dsrun: before training, optimizer.step() once on zero gradients with the optimizer's lr "
                << cfg.optimizer.lr << ", as DeepSpeed's " << (cfg.fp16.enabled ? "fp16" : "bf16")
                << " wrapper does at ZeRO 0 (docs/config.md)\n";
    RETURN_IF_ERROR(RunConstructorCall(plan, cfg, step_ex.get(), &step_scalars, &state,
                                       RunOptions{dopts.seed, 0, threads, step_comm, 0, nullptr, nullptr, 1}));
    count_from_here();
  }
  auto dump_due = [&](int64_t n) {
    if (opts.dump_state_dir.empty()) return false;
    if (opts.dump_state_steps.empty()) return n > 0;
    return std::find(opts.dump_state_steps.begin(), opts.dump_state_steps.end(), n) != opts.dump_state_steps.end();
  };
  auto dump = [&](int64_t n) {
    char sub[64];
    std::snprintf(sub, sizeof sub, "/step-%06lld/rank-%d", static_cast<long long>(n), rank);
    return state.Dump(plan, opts.dump_state_dir + sub);
  };
  // The state a run starts from: step 0's, or on a resume the loaded one when the list names its step.
  if (start_pos.step == 0 ? dump_due(0) : !opts.dump_state_steps.empty() && dump_due(start_pos.step))
    RETURN_IF_ERROR(dump(start_pos.step));
  // Optimizer updates applied so far: the 1-based dsc::step of the next update counts only these.
  int64_t applied = start_pos.applied_steps;
  int64_t last_saved = opts.resume_from.empty() ? -1 : start_pos.step;
  // A checkpoint after step `n` (every rank, collectively).
  auto save = [&](int64_t n) -> Status {
    TrainerPosition pos;
    pos.step = n;
    pos.applied_steps = applied;
    pos.skipped_steps = summary.skipped_steps;
    pos.lr_last_batch_iteration = schedule.last_batch_iteration();
    pos.loss_scaler = scaler.SaveState();
    pos.seed = dopts.seed;
    pos.shuffle = dopts.shuffle;
    pos.num_samples = loader.num_samples();
    pos.train_batch_size = cfg.train_batch_size;
    CheckpointMeta meta;
    meta.step = n;
    meta.plan_hash = PlanHash(plan);
    meta.source_model = plan.source_model;
    meta.config = plan.config;
    meta.trainer_state = TrainerPositionJson(pos);
    RETURN_IF_ERROR(ValidateTagAcrossRanks(cfg, opts.comm, StepTag(n), "saving a checkpoint", progress));
    RETURN_IF_ERROR(SaveTrainingCheckpoint(plan, state, opts.comm, opts.save_dir, meta));
    last_saved = n;
    // The save's agreements are not training traffic: the next step's counts start after them.
    count_from_here();
    if (progress) *progress << "dsrun: saved checkpoint " << opts.save_dir << "/" << StepTag(n) << "\n";
    return Status::OK();
  };
  // The end-of-run summary's split of the steps' wall time (TrainSummary).
  double data_s = 0, program_s = 0, comm_s = 0;
  auto seconds_since = [](std::chrono::steady_clock::time_point t) {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - t).count();
  };
  for (int64_t s = start_pos.step; s < total; ++s) {
    const auto t0 = std::chrono::steady_clock::now();
    const double used_scale = scaler.exact_scale();
    scalars.loss_scale = scaler.scale();
    RETURN_IF_ERROR(scalars.Upload());
    micro_ex->comm_state().ResetPeak();
    step_ex->comm_state().ResetPeak();
    if (comms_log) set_log(comms_log.get());
    for (int64_t m = 0; m < gas; ++m) {
      const auto data_t0 = std::chrono::steady_clock::now();
      if (s > 0 || m > 0) RETURN_IF_ERROR(loader.Fill(s, m, &batch));
      RETURN_IF_ERROR(batch_buffers.Upload(batch));
      data_s += seconds_since(data_t0);
      const auto run_t0 = std::chrono::steady_clock::now();
      RETURN_IF_ERROR(micro_ex->Run(RunOptions{dopts.seed, s + 1, threads, kernel_comm, loader.first_sample(m),
                                               profiler ? profiler->Times(kMicroStepProgram, s + 1) : nullptr,
                                               &comm_s, applied + 1 + init_calls})
                          .WithContext(StrCat("step ", s + 1)));
      program_s += seconds_since(run_t0);
      const TensorView* loss_view = micro_ex->Output(loss_name);
      if (!loss_view || loss_view->dtype != DType::kFloat32 || loss_view->numel() != 1)
        return Internal("the plan has no float scalar loss");
      RETURN_IF_ERROR(device->CopyDeviceToDevice(static_cast<float*>(losses_dev) + m, loss_view->ptr, sizeof(float)));
    }
    RETURN_IF_ERROR(device->CopyDeviceToHost(losses.data(), losses_dev, losses.size() * sizeof(float)));
    double loss_sum = 0;
    for (float l : losses) loss_sum += l;
    for (const OverflowInjection& i : opts.inject_overflow)
      if (i.step == s + 1 && i.rank == rank) RETURN_IF_ERROR(WriteInf(device, *poison));
    const double lr = schedule.lr();
    step_scalars.lr = static_cast<float>(lr);
    step_scalars.step = applied + 1 + init_calls;
    step_scalars.loss_scale = scaler.scale();
    if (auto b1 = schedule.beta1()) step_scalars.beta1 = static_cast<float>(*b1);
    RETURN_IF_ERROR(step_scalars.Upload());
    const auto step_t0 = std::chrono::steady_clock::now();
    // The step on the host: the mirrors it reads brought up to date, its writes copied back after,
    // whole and synchronously (no overlap with the update).
    const int64_t moved_up = state.moved_to_host(), moved_down = state.moved_to_device();
    if (host_step) {
      RETURN_IF_ERROR(device->Synchronize());
      RETURN_IF_ERROR(state.MirrorToHost(layout.to_host).WithContext(StrCat("step ", s + 1)));
    }
    RETURN_IF_ERROR(step_ex->Run(RunOptions{dopts.seed, s + 1, threads, step_comm, 0,
                                            profiler ? profiler->Times(kStepProgram, s + 1) : nullptr, &comm_s,
                                            applied + 1 + init_calls})
                        .WithContext(StrCat("step ", s + 1)));
    if (host_step) {
      RETURN_IF_ERROR(state.MirrorToDevice(layout.to_device).WithContext(StrCat("step ", s + 1)));
      RETURN_IF_ERROR(state.ZeroOnDevice(layout.zero_on_device).WithContext(StrCat("step ", s + 1)));
    }
    program_s += seconds_since(step_t0);
    ASSIGN_OR_RETURN(float grad_norm, ReadScalar(step_device, step_ex->Output(ops::kGradNormOutput), "grad norm"));
    bool overflow = false;
    if (checks_overflow) {
      const TensorView* flag = step_ex->Output(ops::kOverflowOutput);
      if (!flag || flag->dtype != DType::kBool || flag->numel() != 1)
        return Internal("the plan's ", ops::kOverflowOutput, " output is not a bool scalar");
      uint8_t byte = 0;
      RETURN_IF_ERROR(step_device->CopyDeviceToHost(&byte, flag->ptr, 1));
      overflow = byte != 0;
    }
    if (comms_log) {
      for (Communicator* c : plan_comms) RETURN_IF_ERROR(c->FlushCollectiveLog());
      set_log(nullptr);
    }
    // The plan's traffic this step, counted before the trainer's own loss reduction (which the
    // plan does not hold, so dsinspect's per-step figures and these agree).
    nlohmann::json step_sent = nlohmann::json::object(), step_calls = nlohmann::json::object();
    if (kernel_comm) {
      for (const auto& [kind, total_bytes] : sum_over_comms(&Communicator::bytes_sent))
        step_sent[kind] = total_bytes - sent_before[kind];
      for (const auto& [kind, total_calls] : sum_over_comms(&Communicator::calls))
        step_calls[kind] = total_calls - calls_before[kind];
    }
    if (world > 1) RETURN_IF_ERROR(ReduceLossAndVerdict(opts.comm, checks_overflow, overflow, s + 1, &loss_sum));
    // Every rank's peak resident memory for rank 0's metrics line, gathered before the traffic
    // counters restart (it is the trainer's collective, like the loss reduction, not the plan's).
    // Every rank joins it when metrics are written: the path is set on every rank, the stream on 0.
    std::vector<double> peak_resident;
    if (!opts.metrics_path.empty()) {
      const auto mine = static_cast<double>(PeakResidentBytes());  // exact: below 2^53 bytes
      if (world > 1) {
        ASSIGN_OR_RETURN(peak_resident, GatherOnePerRank(opts.comm, mine));
      } else {
        peak_resident = {mine};
      }
    }
    count_from_here();
    const bool skipped = overflow;
    // DeepSpeed steps the LR schedule only when optimizer.overflow is false. Under amp its optimizer
    // is apex's patched torch optimizer, which has no such attribute: the schedule advances on a
    // step apex skipped, while the skipped optimizer.step() leaves Adam's step count alone.
    schedule.Step(skipped && !cfg.amp.enabled);
    if (skipped) {
      ++summary.skipped_steps;
    } else {
      ++applied;
    }
    // DeepSpeed raises inside optimizer.step() when the scale cannot drop further; the metrics and
    // progress of that step are still written below, then the run ends with that error.
    const Status scale_update = scaler.Update(overflow, s + 1);
    if (dump_due(s + 1)) RETURN_IF_ERROR(dump(s + 1));
    const double step_time = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    const double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    const double loss = loss_sum / static_cast<double>(cfg.gradient_accumulation_steps);
    if (s == start_pos.step) summary.first_loss = loss;
    summary.last_loss = loss;
    if (metrics) {
      // JSON has no inf/NaN: a non-finite norm (an overflow step) is written as null.
      const nlohmann::json norm = std::isfinite(grad_norm) ? nlohmann::json(grad_norm) : nlohmann::json(nullptr);
      nlohmann::json line = {{"step", s + 1},
                             {"epoch", s / loader.steps_per_epoch()},
                             {"loss", loss},
                             {"lr", lr},
                             {"grad_norm", norm},
                             {"loss_scale", used_scale},
                             {"skipped", skipped},
                             {"skipped_steps", summary.skipped_steps},
                             {"samples_per_s", static_cast<double>(cfg.train_batch_size) / step_time},
                             {"step_time_s", step_time},
                             {"elapsed_s", elapsed},
                             {"peak_allocated_bytes", device->peak_allocated_bytes()},
                             {"peak_resident_bytes", nlohmann::json::array()},
                             {"memory",
                              {{"parameters", state.bytes("parameter")},
                               {"gradients", state.bytes("gradient")},
                               {"optimizer_states", state.bytes("optimizer")},
                               {"master_weights", state.bytes("master")},
                               {"model_states", state.bytes("parameter") + state.bytes("gradient") +
                                                    state.bytes("optimizer") + state.bytes("master")},
                               {"buffers", state.bytes("buffer")},
                               {"parameters_on_nvme", state.swapped_bytes("parameter")},
                               {"optimizer_states_on_nvme", state.swapped_bytes("optimizer")},
                               {"master_weights_on_nvme", state.swapped_bytes("master")},
                               {"activations_peak", std::max(micro_ex->arena_bytes(), step_ex->arena_bytes())}}}};
      // cpu_checkpointing: the host arena the executors allocated for the checkpoints.
      if (const size_t host = std::max(micro_ex->host_arena_bytes(), step_ex->host_arena_bytes()))
        line["memory"]["activations_host"] = host;
      if (host_step) {
        // What the step on the host holds in host memory and what this step copied (the plan's
        // memory.gpu_rank says the same).
        line["host_step"] = {{"host_state_bytes", state.host_bytes()},
                             {"host_mirror_bytes", state.mirror_bytes()},
                             {"host_peak_allocated_bytes", step_device->peak_allocated_bytes()},
                             {"device_to_host_bytes", state.moved_to_host() - moved_up},
                             {"host_to_device_bytes", state.moved_to_device() - moved_down}};
      }
      for (double bytes : peak_resident) line["peak_resident_bytes"].push_back(static_cast<int64_t>(bytes));
      if (kernel_comm) {
        // Bytes this rank sent during the step, per collective kind (model in communicator.h).
        line["bytes_sent"] = step_sent;
        // Collectives the plan issued during the step, per kind: one per bucket.
        line["collectives"] = step_calls;
      }
      if (gathers_buckets)
        line["gathered_peak"] =
            std::max(micro_ex->comm_state().gathered_peak(), step_ex->comm_state().gathered_peak());
      // Flushed per step, so a full disk stops the run at the step it hits, not silently at exit.
      *metrics << line.dump() << "\n" << std::flush;
      if (!*metrics) return MetricsWriteError(opts.metrics_path);
    }
    if (monitor) RETURN_IF_ERROR(monitor->Write(StepEvents(cfg, s + 1, loss, lr, used_scale)));
    if (progress && (skipped || (s + 1) % print_every == 0 || s == 0 || s + 1 == total)) {
      *progress << "step " << std::setw(6) << s + 1 << "  loss " << std::fixed << std::setprecision(4) << loss
                << "  lr " << std::scientific << std::setprecision(3) << lr << "  grad_norm " << std::fixed
                << std::setprecision(3) << grad_norm;
      if (scales_loss) *progress << "  scale " << FormatScale(used_scale);
      *progress << "  " << std::setprecision(1) << static_cast<double>(cfg.train_batch_size) / step_time
                << " samples/s  elapsed " << std::setprecision(1) << elapsed << " s" << std::defaultfloat;
      if (skipped) {
        *progress << "  [skipped: inf/NaN gradients";
        if (scaler.exact_scale() != used_scale)
          *progress << "; loss scale " << FormatScale(used_scale) << " -> " << FormatScale(scaler.exact_scale());
        *progress << "]";
      }
      *progress << "\n";
    }
    if (profiler) RETURN_IF_ERROR(profiler->EndStep(s + 1, step_time));
    // A skipped step's loss is the forward's, which loss scaling cannot repair: stop on it too.
    Status stop = !scale_update.ok()       ? scale_update
                  : !std::isfinite(loss) ? FailedPrecondition("step ", s + 1, ": the loss is ", loss, "; stopping")
                                         : Status::OK();
    if (!stop.ok()) {
      // Every rank stops here at the same step (same loss, same verdict). Meeting first lets rank 0
      // finish this step's metrics and progress before another rank's error aborts the job.
      if (world > 1) RETURN_IF_ERROR(opts.comm->Barrier());
      return stop;
    }
    if (opts.save_every > 0 && (s + 1) % opts.save_every == 0) RETURN_IF_ERROR(save(s + 1));
  }
  if (opts.save_at_end && last_saved != std::max(total, start_pos.step)) RETURN_IF_ERROR(save(std::max(total, start_pos.step)));
  if (profiler) RETURN_IF_ERROR(profiler->Finish());
  if (comms_log && lead_rank) comms_log->PrintSummary(std::cout, std::max<int64_t>(0, total - start_pos.step));
  summary.steps = std::max(total, start_pos.step);
  summary.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  summary.train_batch_size = cfg.train_batch_size;
  // A token model reads integer ids shaped [micro batch, sequence]: tokens per sample = the sequence.
  for (const DataInput& in : loader.inputs()) {
    if (IsFloat(in.dtype) || in.dims.size() < 2) continue;
    summary.tokens_per_sample = 1;
    for (size_t d = 1; d < in.dims.size(); ++d) summary.tokens_per_sample *= in.dims[d];
    break;
  }
  summary.device = device->kind() == DeviceKind::kCpu ? "cpu" : "cuda";
  summary.device_async = device->kind() != DeviceKind::kCpu;
  summary.data_seconds = data_s;
  summary.comm_seconds = comm_s;
  summary.compute_seconds = std::max(0.0, program_s - comm_s);
  const nlohmann::json planned = SummarizePlan(plan)["memory"];
  for (const char* kind : {"parameters", "gradients", "optimizer_states", "master_weights", "buffers",
                           "activations_peak", "activations_host", "communication_buffers"})
    if (planned.contains(kind)) summary.memory_planned[kind] = planned[kind];
  summary.memory_allocated = {{"parameters", state.bytes("parameter")},
                              {"gradients", state.bytes("gradient")},
                              {"optimizer_states", state.bytes("optimizer")},
                              {"master_weights", state.bytes("master")},
                              {"buffers", state.bytes("buffer")},
                              {"activations_peak", std::max(micro_ex->arena_bytes(), step_ex->arena_bytes())}};
  if (const size_t host = std::max(micro_ex->host_arena_bytes(), step_ex->host_arena_bytes()))
    summary.memory_allocated["activations_host"] = host;
  summary.peak_allocated_bytes = device->peak_allocated_bytes();
  summary.peak_resident_bytes = PeakResidentBytes();
  if (!opts.export_onnx.empty() || !opts.export_safetensors.empty())
    RETURN_IF_ERROR(ExportTrainedModel(plan, state, opts.comm, opts, summary.steps));
  return summary;
}

StatusOr<TrainSummary> Train(const Plan& plan, const TrainOptions& opts) {
  ASSIGN_OR_RETURN(DataLoader data, OpenTrainingData(plan, opts));
  return Train(plan, opts, std::move(data));
}

}  // namespace dsc
