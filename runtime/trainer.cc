// The training loop.
#include "runtime/trainer.h"

#include <cerrno>
#include <chrono>
#include <cstring>
#include <cmath>
#include <iomanip>

#include <nlohmann/json.hpp>

#include "frontend/config/ds_config.h"
#include "ir/dsc_ops.h"
#include "runtime/communicator.h"
#include "runtime/data_loader.h"
#include "runtime/device.h"
#include "runtime/executor.h"
#include "runtime/lr_schedule.h"

namespace dsc {
namespace {

// One device buffer per state tensor, initialised from the plan.
class StateStore {
 public:
  StateStore(Device* device) : device_(device) {}
  ~StateStore() {
    for (auto& [n, v] : views_) device_->Free(v.ptr);
  }
  // A sharded tensor (ZeRO) takes this rank's chunk of its initial value, zero-padded.
  Status Init(const Plan& plan, int rank) {
    for (const StateInfo& s : plan.state) {
      TensorView v{s.dtype, s.dims, nullptr};
      ASSIGN_OR_RETURN(v.ptr, device_->Allocate(v.nbytes()));
      views_[s.name] = v;
      bytes_by_kind_[StateKindName(s.kind)] += static_cast<int64_t>(v.nbytes());
      RETURN_IF_ERROR(device_->Memset(v.ptr, 0, v.nbytes()));
      if (s.zero_init) continue;
      const Value* init = plan.initial_state ? plan.initial_state->FindValue(s.name) : nullptr;
      const size_t elem = DTypeSize(s.dtype);
      const size_t full = s.shard_of_numel > 0 ? static_cast<size_t>(s.shard_of_numel) * elem : v.nbytes();
      if (!init || !init->is_initializer() || init->initializer().nbytes() != full)
        return DataLoss("the plan's initial value of state '", s.name, "' is missing or has the wrong size");
      size_t offset = 0, bytes = v.nbytes();
      if (s.shard_of_numel > 0) {
        offset = std::min(full, static_cast<size_t>(rank) * v.nbytes());
        bytes = std::min(v.nbytes(), full - offset);
      }
      RETURN_IF_ERROR(device_->CopyHostToDevice(v.ptr, init->initializer().raw() + offset, bytes));
    }
    return Status::OK();
  }
  const TensorView* Find(const std::string& name) const {
    auto it = views_.find(name);
    return it == views_.end() ? nullptr : &it->second;
  }
  // Bytes actually allocated for state, by kind ("parameter", "gradient", "optimizer", "buffer").
  int64_t bytes(const char* kind) const {
    auto it = bytes_by_kind_.find(kind);
    return it == bytes_by_kind_.end() ? 0 : it->second;
  }

 private:
  Device* device_;
  std::map<std::string, TensorView> views_;
  std::map<std::string, int64_t> bytes_by_kind_;
};

struct Scalars {
  Tensor lr{DType::kFloat32, {}};
  Tensor step{DType::kInt64, {}};
  Tensor beta1{DType::kFloat32, {}};
};

// Binds every input of `g` that is state or a reserved scalar; returns the others (data inputs).
StatusOr<std::vector<DataInput>> BindProgram(const Graph& g, ProgramExecutor* ex, const StateStore& state,
                                             Scalars* scalars) {
  std::vector<DataInput> data;
  for (const Value* in : g.inputs()) {
    if (const TensorView* v = state.Find(in->name())) {
      RETURN_IF_ERROR(ex->Bind(in->name(), *v));
      continue;
    }
    Tensor* scalar = in->name() == ops::kLrInput      ? &scalars->lr
                     : in->name() == ops::kStepInput  ? &scalars->step
                     : in->name() == ops::kBeta1Input ? &scalars->beta1
                                                      : nullptr;
    if (scalar) {
      RETURN_IF_ERROR(ex->Bind(in->name(), TensorView{scalar->dtype(), scalar->dims(), scalar->raw()}));
      continue;
    }
    std::vector<int64_t> dims;
    for (const Dim& d : *in->type.shape) dims.push_back(d.value);
    data.push_back(DataInput{in->name(), in->type.dtype, dims});
  }
  return data;
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

}  // namespace

StatusOr<DataLoader> OpenTrainingData(const Plan& plan, const TrainOptions& opts) {
  ASSIGN_OR_RETURN(DsConfig cfg, RunnableConfig(plan, opts));
  // The micro-step's data inputs: what BindProgram leaves unbound (neither state nor a scalar).
  std::vector<DataInput> inputs;
  for (const Value* in : plan.FindProgram("micro_step")->graph->inputs()) {
    if (plan.FindState(in->name()) || in->name() == ops::kLrInput || in->name() == ops::kStepInput ||
        in->name() == ops::kBeta1Input)
      continue;
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
  ASSIGN_OR_RETURN(LrSchedule schedule, LrSchedule::Create(cfg));

  std::unique_ptr<Device> device = CreateCpuDevice(opts.threads);
  StateStore state(device.get());
  RETURN_IF_ERROR(state.Init(plan, rank));
  Scalars scalars;
  ASSIGN_OR_RETURN(std::unique_ptr<ProgramExecutor> micro_ex, ProgramExecutor::Create(*micro->graph, device.get()));
  ASSIGN_OR_RETURN(std::unique_ptr<ProgramExecutor> step_ex, ProgramExecutor::Create(*step->graph, device.get()));
  ASSIGN_OR_RETURN(std::vector<DataInput> inputs, BindProgram(*micro->graph, micro_ex.get(), state, &scalars));
  ASSIGN_OR_RETURN(std::vector<DataInput> step_data, BindProgram(*step->graph, step_ex.get(), state, &scalars));
  if (!step_data.empty()) return Internal("the step program reads '", step_data[0].name, "', which is neither state nor a scalar");

  const DataLoaderOptions dopts = LoaderOptions(cfg, opts);
  const bool same_inputs = std::equal(inputs.begin(), inputs.end(), loader.inputs().begin(), loader.inputs().end(),
                                      [](const DataInput& a, const DataInput& b) { return a.name == b.name; });
  if (!same_inputs) return Internal("the training data was opened for other inputs than the micro_step program reads");
  std::map<std::string, Tensor> batch;
  RETURN_IF_ERROR(loader.Fill(0, 0, &batch));
  for (auto& [name, t] : batch) RETURN_IF_ERROR(micro_ex->Bind(name, TensorView{t.dtype(), t.dims(), t.raw()}));
  // Every rank computes the same loss and metrics; one copy of each is enough.
  const bool lead_rank = !opts.comm || opts.comm->rank() == 0;
  std::ostream* const progress = lead_rank ? opts.progress : nullptr;
  if (progress && loader.num_samples() % cfg.train_batch_size != 0)
    *progress << "dsrun: note: " << loader.num_samples() % cfg.train_batch_size
              << " samples per epoch do not fill a batch and are skipped (plans have static batch shapes)\n";

  const int64_t total = opts.steps >= 0 ? opts.steps : std::max<int64_t>(opts.epochs, 1) * loader.steps_per_epoch();
  const int64_t print_every = cfg.steps_per_print.value_or(10);
  const std::string loss_name = micro->graph->training.loss;
  std::ostream* const metrics = lead_rank ? opts.metrics : nullptr;
  TrainSummary summary;
  const auto start = std::chrono::steady_clock::now();
  const int threads = opts.threads;
  std::map<std::string, int64_t> sent_before;
  if (opts.comm) sent_before = opts.comm->bytes_sent();
  for (int64_t s = 0; s < total; ++s) {
    const auto t0 = std::chrono::steady_clock::now();
    double loss_sum = 0;
    for (int64_t m = 0; m < cfg.gradient_accumulation_steps; ++m) {
      RETURN_IF_ERROR(loader.Fill(s, m, &batch));
      RETURN_IF_ERROR(micro_ex->Run(RunOptions{dopts.seed, s + 1, threads, opts.comm, loader.first_sample(m)})
                          .WithContext(StrCat("step ", s + 1)));
      ASSIGN_OR_RETURN(float loss, ReadScalar(device.get(), micro_ex->Output(loss_name), "loss"));
      loss_sum += loss;
    }
    const double lr = schedule.lr();
    *scalars.lr.data<float>() = static_cast<float>(lr);
    *scalars.step.data<int64_t>() = s + 1;
    if (auto b1 = schedule.beta1()) *scalars.beta1.data<float>() = static_cast<float>(*b1);
    RETURN_IF_ERROR(step_ex->Run(RunOptions{dopts.seed, s + 1, threads, opts.comm}).WithContext(StrCat("step ", s + 1)));
    ASSIGN_OR_RETURN(float grad_norm, ReadScalar(device.get(), step_ex->Output(ops::kGradNormOutput), "grad norm"));
    schedule.Step(/*skipped=*/false);
    const double step_time = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    const double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    // Every rank saw its own micro-batches: the step's loss is the mean over all of them.
    if (world > 1) {
      ASSIGN_OR_RETURN(auto h, opts.comm->AllReduce(&loss_sum, 1, DType::kFloat64, ReduceOp::kAvg));
      RETURN_IF_ERROR(h->Wait());
    }
    const double loss = loss_sum / static_cast<double>(cfg.gradient_accumulation_steps);
    if (s == 0) summary.first_loss = loss;
    summary.last_loss = loss;
    if (metrics) {
      nlohmann::json line = {{"step", s + 1},
                             {"epoch", s / loader.steps_per_epoch()},
                             {"loss", loss},
                             {"lr", lr},
                             {"grad_norm", grad_norm},
                             {"loss_scale", 1.0},
                             {"skipped", false},
                             {"samples_per_s", static_cast<double>(cfg.train_batch_size) / step_time},
                             {"step_time_s", step_time},
                             {"elapsed_s", elapsed},
                             {"peak_allocated_bytes", device->peak_allocated_bytes()},
                             {"memory",
                              {{"parameters", state.bytes("parameter")},
                               {"gradients", state.bytes("gradient")},
                               {"optimizer_states", state.bytes("optimizer")},
                               {"buffers", state.bytes("buffer")},
                               {"activations_peak", std::max(micro_ex->arena_bytes(), step_ex->arena_bytes())}}}};
      if (opts.comm) {
        // Bytes this rank sent during the step, per collective kind (model in communicator.h).
        nlohmann::json sent = nlohmann::json::object();
        for (const auto& [kind, total_bytes] : opts.comm->bytes_sent()) {
          sent[kind] = total_bytes - sent_before[kind];
          sent_before[kind] = total_bytes;
        }
        line["bytes_sent"] = sent;
      }
      // Flushed per step, so a full disk stops the run at the step it hits, not silently at exit.
      *metrics << line.dump() << "\n" << std::flush;
      if (!*metrics) return MetricsWriteError(opts.metrics_path);
    }
    if (progress && ((s + 1) % print_every == 0 || s == 0 || s + 1 == total))
      *progress << "step " << std::setw(6) << s + 1 << "  loss " << std::fixed << std::setprecision(4) << loss
                << "  lr " << std::scientific << std::setprecision(3) << lr << "  grad_norm " << std::fixed
                << std::setprecision(3) << grad_norm << "  " << std::setprecision(1)
                << static_cast<double>(cfg.train_batch_size) / step_time << " samples/s  elapsed "
                << std::setprecision(1) << elapsed << " s" << std::defaultfloat << "\n";
    if (!std::isfinite(loss)) return FailedPrecondition("step ", s + 1, ": the loss is ", loss, "; stopping");
  }
  summary.steps = total;
  summary.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return summary;
}

StatusOr<TrainSummary> Train(const Plan& plan, const TrainOptions& opts) {
  ASSIGN_OR_RETURN(DataLoader data, OpenTrainingData(plan, opts));
  return Train(plan, opts, std::move(data));
}

}  // namespace dsc
