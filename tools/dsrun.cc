// dsrun: trains a plan compiled by dscompile.
#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iomanip>
#include <iostream>
#include <memory>

#include "backend/plan_file.h"
#include "runtime/communicator.h"
#include "runtime/device.h"
#include "runtime/launcher.h"
#include "runtime/run_summary.h"
#include "runtime/trainer.h"
#include "tools/cli_args.h"
#include "tools/tool_mains.h"

namespace dsc {
namespace {

constexpr const char* kUsage = R"(usage: dsrun PLAN --data DIR [--steps N | --epochs N] [options]

Trains PLAN (written by dscompile) on DIR, which holds one NAME.npy per model input with the
samples along dim 0. A step consumes train_batch_size samples; without --no-shuffle the order is
a seeded permutation per epoch.

options:
  --data DIR        training data (required)
  --steps N         optimizer steps to run
  --epochs N        epochs to run (default: 1 when --steps is not given)
  --no-shuffle      samples in file order
  --seed S          data-order and dropout seed (default: the config's "seed", 42)
  --metrics FILE    one JSON object per optimizer step (step, loss, lr, grad_norm, loss_scale,
                    skipped, skipped_steps, samples_per_s, step_time_s, elapsed_s, epoch, memory;
                    peak_resident_bytes, every rank's peak resident memory so far, by rank;
                    on several ranks bytes_sent and collectives, the plan's traffic per kind;
                    gathered_peak, the most stage-3 gathered parameter elements alive at once)
  --device D        where ranks compute: cuda (one GPU per rank: the launcher's local rank
                    modulo the visible GPUs) or cpu. Default: cuda when this dsrun has the
                    CUDA backend and a GPU is visible, else cpu. DSC_ALLOW_TF32=1 lets
                    float32 GEMMs use TF32 tensor cores
  --threads T       CPU threads for kernels and BLAS (default: all cores; with --nproc N,
                    the cores divided by N)
  --nproc N         train on N local ranks: dsrun restarts itself under mpirun (Open MPI).
                    Under mpirun or srun dsrun takes its rank and size from the launcher
                    instead. The plan must be compiled for N ranks (dscompile --world-size N).
  --export-onnx OUT write the trained model as ONNX after the last step: the model dscompile
                    compiled, with the trained weights (fp32 master weights, BatchNorm statistics)
                    as its initializers; external data in OUT.data above 2 GB
  --export-source M the ONNX model to write the weights into (default: the path the plan
                    recorded when it was compiled)
  --export-safetensors OUT
                    write the same trained weights after the last step as safetensors, under the
                    ONNX initializer names (PyTorch's state_dict names for PyTorch exports):
                    model.load_state_dict(safetensors.torch.load_file(OUT)) loads them
  --save-dir DIR    where checkpoints go: DIR/global_stepN/ (a manifest and one safetensors file
                    per rank) and DIR/latest naming the newest complete one. Checkpoints load at
                    any world size, ZeRO stage and precision. Saved at optimizer-step boundaries
                    only (gradient accumulators are zero there and are not saved). A save is
                    atomic: if a rank dies or fails mid-save, DIR/latest still names the newest
                    complete checkpoint; an unfinished save stays in DIR/.tmp-TAG/, is never
                    loaded, and the next save of that tag replaces it
  --save-every K    save after every K-th optimizer step (needs --save-dir)
  --save-at-end     save after the last step (needs --save-dir)
  --resume CKPT     continue the run a checkpoint stopped: CKPT is DIR (the tag DIR/latest names,
                    or the newest complete one) or DIR/global_stepN. Restores the weights,
                    optimizer states, loss scaler, LR schedule, step counters and the data order
                    and dropout position, exactly; --steps/--epochs still count from the first
                    run's start (resuming at step 15 with --steps 30 runs steps 16..30)
  --profile         time every node of every step (rank 0) and print, after the last step, per
                    program (micro_step, step): a table of op kinds (nodes, calls, total ms, %
                    of the program's time, FLOPs per run counted from the shapes, achieved
                    GFLOP/s, bytes read + written per run) and the 20 slowest nodes, with the
                    forward/backward/optimizer-step split (forward: the micro-step nodes the loss
                    depends on). The run's first step is the warm-up and is reported apart. Times
                    come from the host's steady clock around each kernel; on a GPU the device is
                    synchronized after every node while profiling, so kernels do not overlap
  --profile-json FILE
                    --profile, and the same report written to FILE as JSON (schema_version 1)
  -q, --quiet       no progress lines (nor wall_clock_breakdown lines, nor the end-of-run summary:
                    throughput, the time split into compute/communication/data/idle, memory per
                    rank by kind as planned and allocated)
  -h, --help        this text

The config's wall_clock_breakdown prints DeepSpeed's engine timers with each progress line (every
steps_per_print steps, the first and the last): "time (ms) | fwd_microstep | bwd_microstep |
step_microstep" (per micro-step) and "time (ms) | fwd | bwd | step" (the step's totals), from the
same node timing; flops_profiler prints the --profile tables of step profile_step (top_modules
slowest nodes when detailed) to output_file or standard output. tensorboard and csv_monitor write
DeepSpeed's Train/Samples/{train_loss,lr,loss_scale} after every step into output_path/job_name
(rank 0; an event file TensorBoard reads, one CSV file per tag), at x = samples seen.
comms_logger prints, after the run on standard output, DeepSpeed's table of the plan's collectives
(count, latency, algorithmic and bus bandwidth per kind and message size) and the bytes each kind
sent; with verbose, one line per collective as it finishes.

debugging options:
  --debug-inject-overflow SPEC
                    before the step program of the listed optimizer steps, write +inf into
                    element 0 of the first gradient accumulator, so the plan's overflow check
                    skips the step and adapts the loss scale. SPEC: comma-separated 1-based
                    steps, each optionally @RANK (default rank 0), e.g. 3,5@1. Only for plans
                    that check gradients for inf/NaN (fp16, amp, bf16 with check_grad_overflow)
  --debug-dump-state DIR
                    write every state tensor (parameters, master weights, gradients, optimizer
                    states, buffers) of every rank as DIR/step-NNNNNN/rank-R/NAME.npy after each
                    step listed by --debug-dump-steps (default: after every step). ZeRO shards
                    are written as the rank holds them; bf16 is widened to float32
  --debug-dump-steps LIST
                    comma-separated steps for --debug-dump-state; 0 is the initial state
                    (on a resume, the step resumed from is the state as loaded)
  --debug-host-step  a test aid for optimizer offload on CPU ranks: run the step program on a
                    second CPU device, with the states placed and copied as a GPU rank with
                    zero_optimization.offload_optimizer places them (optimizer states and fp32
                    masters in host memory only, the states both programs use on the device
                    with a host mirror, copied around each step); the losses and states are
                    those of the plain run. Refused unless the config offloads the optimizer

debugging environment:
  DSC_DEBUG_KILL_IN_SAVE=N@R
                    rank R raises SIGKILL at the N-th crash point it passes while saving,
                    counting across saves (rank 0 passes 11 per save, other ranks 4; the points
                    are listed in runtime/checkpoint_format.h), after printing which one
)";

const std::vector<FlagSpec> kFlags = {{"--data", true},     {"--steps", true},   {"--epochs", true},
                                      {"--no-shuffle", false}, {"--seed", true},  {"--metrics", true},
                                      {"--threads", true},  {"--nproc", true},   {"-q", false},
                                      {"--quiet", false},   {"-h", false},       {"--help", false},
                                      {"--debug-inject-overflow", true}, {"--debug-dump-state", true},
                                      {"--debug-dump-steps", true}, {"--debug-host-step", false}, {"--device", true},
                                      {"--export-onnx", true}, {"--export-source", true}, {"--export-safetensors", true},
                                      {"--save-dir", true}, {"--save-every", true}, {"--save-at-end", false},
                                      {"--resume", true}, {"--profile", false}, {"--profile-json", true}};

// The compute backend that --device asks for, checked before any relaunch under mpirun so that a
// wrong choice fails once, not once per rank.
Status CheckDevice(const ParsedArgs& args) {
  const std::string device = args.Get("--device");
  if (device.empty() || device == "cpu") return Status::OK();
  if (device != "cuda") return InvalidArgument("--device ", device, ": unknown device (accepted: cpu, cuda)");
  if (!CudaBackendBuilt())
    return FailedPrecondition("--device cuda: the CUDA backend is not built into this dsrun (nvcc was not found when "
                              "it was configured); use --device cpu");
  std::string why;
  if (LaunchedUnderMpi() || CudaDeviceCount(&why) > 0) return Status::OK();  // ranks elsewhere check their own
  return FailedPrecondition("--device cuda: no CUDA GPU is visible: ", why);
}

struct Job {
  Plan plan;
  TrainOptions opts;
  bool quiet = false;
  DataLoader data;
  std::unique_ptr<std::ofstream> metrics;  // rank 0's, when --metrics is given
  std::unique_ptr<Device> device;
};

// Everything before training: flags, the plan and its world size, this rank's data. No collectives
// happen here, so a rank that fails (unreadable data, say) reaches AgreeOnSetup with its error.
StatusOr<Job> Prepare(const ParsedArgs& args, Communicator* comm) {
  if (args.positional.size() != 1)
    return InvalidArgument(args.positional.empty() ? "no plan given" : "more than one plan given", " (see --help)");
  if (!args.Has("--data")) return InvalidArgument("--data DIR is required (see --help)");
  if (args.Has("--steps") && args.Has("--epochs")) return InvalidArgument("give --steps or --epochs, not both");
  TrainOptions opts;
  opts.data_dir = args.Get("--data");
  ASSIGN_OR_RETURN(opts.steps, args.GetInt("--steps", -1));
  ASSIGN_OR_RETURN(opts.epochs, args.GetInt("--epochs", -1));
  if (args.Has("--steps") && opts.steps < 1) return InvalidArgument("--steps must be at least 1");
  if (args.Has("--epochs") && opts.epochs < 1) return InvalidArgument("--epochs must be at least 1");
  opts.shuffle = !args.Has("--no-shuffle");
  if (args.Has("--seed")) {
    ASSIGN_OR_RETURN(int64_t seed, args.GetInt("--seed", 0));
    opts.seed = static_cast<uint64_t>(seed);
  }
  opts.metrics_path = args.Get("--metrics");
  ASSIGN_OR_RETURN(int64_t threads, args.GetInt("--threads", 0));
  if (threads < 0) return InvalidArgument("--threads must be >= 0");
  opts.threads = static_cast<int>(threads);
  const bool quiet = args.Has("-q") || args.Has("--quiet");
  opts.progress = quiet ? nullptr : &std::cerr;
  opts.comm = comm;
  if (args.Has("--debug-inject-overflow")) {
    ASSIGN_OR_RETURN(opts.inject_overflow, ParseOverflowInjection(args.Get("--debug-inject-overflow")));
  }
  opts.dump_state_dir = args.Get("--debug-dump-state");
  if (args.Has("--debug-dump-steps")) {
    if (opts.dump_state_dir.empty()) return InvalidArgument("--debug-dump-steps needs --debug-dump-state DIR");
    ASSIGN_OR_RETURN(opts.dump_state_steps, ParseStepList(args.Get("--debug-dump-steps"), "--debug-dump-steps"));
  }
  opts.debug_host_step = args.Has("--debug-host-step");
  opts.export_onnx = args.Get("--export-onnx");
  opts.export_source = args.Get("--export-source");
  opts.export_safetensors = args.Get("--export-safetensors");
  if (!opts.export_source.empty() && opts.export_onnx.empty() && opts.export_safetensors.empty())
    return InvalidArgument("--export-source needs --export-onnx OUT or --export-safetensors OUT");
  opts.save_dir = args.Get("--save-dir");
  ASSIGN_OR_RETURN(opts.save_every, args.GetInt("--save-every", 0));
  if (args.Has("--save-every") && opts.save_every < 1) return InvalidArgument("--save-every must be at least 1");
  opts.save_at_end = args.Has("--save-at-end");
  if (args.Has("--save-dir") && !args.Has("--save-every") && !opts.save_at_end)
    return InvalidArgument("--save-dir needs --save-every K or --save-at-end (when to save)");
  opts.profile = args.Has("--profile") || args.Has("--profile-json");
  opts.profile_json = args.Get("--profile-json");
  if (args.Has("--resume")) {
    std::vector<std::string> notes;
    RETURN_IF_ERROR(PrepareResume(args.Get("--resume"), &opts, &notes).WithContext("--resume"));
    if (!quiet && comm->rank() == 0)
      for (const std::string& n : notes) std::cerr << "dsrun: note: " << n << "\n";
  }
  ASSIGN_OR_RETURN(std::unique_ptr<Device> device, CreateDevice(args.Get("--device"), opts.threads));
  opts.device = device.get();
  ASSIGN_OR_RETURN(Plan plan, ReadPlan(args.positional[0]));
  if (plan.world_size != comm->size())
    return FailedPrecondition("the plan was compiled for ", plan.world_size, " ranks but dsrun runs on ", comm->size(),
                              " (use dscompile --world-size ", comm->size(), ")");
  ASSIGN_OR_RETURN(DataLoader data, OpenTrainingData(plan, opts));
  std::unique_ptr<std::ofstream> metrics;
  if (!opts.metrics_path.empty() && comm->rank() == 0) {
    errno = 0;
    metrics = std::make_unique<std::ofstream>(opts.metrics_path, std::ios::trunc);
    if (!*metrics)
      return InvalidArgument("--metrics ", opts.metrics_path, ": cannot open for writing: ", std::strerror(errno ? errno : EIO));
    opts.metrics = metrics.get();
  }
  return Job{std::move(plan), std::move(opts), quiet, std::move(data), std::move(metrics), std::move(device)};
}

// Ranks agree on whether every one of them is ready to train (one all-reduce of a flag), so a
// setup error, which usually hits every rank alike, ends the job cleanly with each rank's own
// message instead of a race between MPI_Abort and the other ranks' output.
Status AgreeOnSetup(Communicator* comm, const Status& mine) {
  if (comm->size() == 1) return mine;
  int64_t failed = mine.ok() ? 0 : 1;
  StatusOr<std::unique_ptr<CommHandle>> h = comm->AllReduce(&failed, 1, DType::kInt64, ReduceOp::kSum);
  RETURN_IF_ERROR(h.ok() ? (*h)->Wait() : h.status());
  if (!mine.ok()) return mine;
  if (failed > 0) return FailedPrecondition(failed, " of ", comm->size(), " ranks failed to start");
  return Status::OK();
}

// Prefixes the rank on a multi-rank run unless the message already starts with it.
std::string ErrorLine(const Communicator& comm, const Status& s) {
  const std::string rank = StrCat("rank ", comm.rank(), ": ");
  const bool named = comm.size() == 1 || s.message().rfind(rank, 0) == 0;
  return StrCat("dsrun: error: ", named ? "" : rank, s.message());
}

// The communicator for this process: a relaunch under mpirun for --nproc N (which does not
// return on success), the launcher's job when started by one, or a single local rank.
StatusOr<std::unique_ptr<Communicator>> Connect(const ParsedArgs& args, int argc, char** argv) {
  ASSIGN_OR_RETURN(int64_t nproc, args.GetInt("--nproc", 0));
  if (args.Has("--nproc") && nproc < 1) return InvalidArgument("--nproc must be at least 1");
  if (!LaunchedUnderMpi()) {
    if (nproc > 1) {
      ASSIGN_OR_RETURN(int64_t threads, args.GetInt("--threads", 0));
      const int per_rank = static_cast<int>(std::max<int64_t>(threads, 0));
      RETURN_IF_ERROR(RelaunchUnderMpirun(static_cast<int>(nproc), argc, argv, per_rank));
    }
    return CreateLocalCommunicator();
  }
  ASSIGN_OR_RETURN(std::unique_ptr<Communicator> comm, CreateMpiCommunicator());
  if (nproc > 0 && nproc != comm->size())
    return InvalidArgument("rank ", comm->rank(), ": --nproc ", nproc, " but the launcher started ", comm->size(),
                           " ranks (drop --nproc under mpirun or srun)");
  return comm;
}

}  // namespace
}  // namespace dsc

int DsrunMain(int argc, char** argv) {
  using namespace dsc;
  // Under mpirun each rank's stdout and stderr reach the user through the launcher as they are
  // written; a block-buffered stdout flushed mid-line would let another stream's line land inside
  // one of ours. Whole lines keep every printed line intact (set before anything is printed).
  std::setvbuf(stdout, nullptr, _IOLBF, BUFSIZ);
  // Outside the body so that it outlives the unwinding: an exception on one rank must end the
  // job rather than leave the other ranks waiting in a collective.
  std::unique_ptr<Communicator> comm;
  auto end_job = [&](const std::string& what) {
    if (comm && comm->size() > 1) comm->Abort(ErrorLine(*comm, Internal(what)), 1);
  };
  return RunTool("dsrun", [&] {
    int exit_code = 0;
    std::optional<ParsedArgs> args = ParseCommandLine("dsrun", argc, argv, kFlags, kUsage, &exit_code);
    if (!args) return exit_code;
    if (Status device = CheckDevice(*args); !device.ok()) {
      std::cerr << "dsrun: error: " << device.message() << "\n";
      return 1;
    }
    StatusOr<std::unique_ptr<Communicator>> connected = Connect(*args, argc, argv);
    if (!connected.ok()) {
      std::cerr << "dsrun: error: " << connected.status().message() << "\n";
      return 1;
    }
    comm = std::move(connected).value();
    Communicator& c = *comm;
    StatusOr<Job> job = Prepare(*args, &c);
    if (Status setup = AgreeOnSetup(&c, job.status()); !setup.ok()) {
      std::cerr << ErrorLine(c, setup) + "\n";  // one write, so ranks' lines do not interleave
      return 1;  // every rank returns here together: MPI finalizes normally
    }
    StatusOr<TrainSummary> s = Train(job->plan, job->opts, std::move(job->data));
    if (!s.ok()) {
      // The other ranks may be waiting for this one in a collective: end them all.
      if (c.size() > 1) c.Abort(ErrorLine(c, s.status()), 1);
      std::cerr << ErrorLine(c, s.status()) + "\n";
      return 1;
    }
    if (!job->quiet && c.rank() == 0)
      std::cerr << "dsrun: " << (s->resumed_from > 0 ? StrCat("steps ", s->resumed_from + 1, "..", s->steps) : StrCat(s->steps, " steps"))
                << (s->skipped_steps > 0 ? StrCat(" (", s->skipped_steps, " skipped: inf/NaN gradients)") : "")
                << " in " << std::fixed << std::setprecision(2) << s->seconds << " s; loss " << std::setprecision(4) << s->first_loss << " -> " << s->last_loss << "\n"
                << RenderRunSummary(*s);
    return 0;
  }, end_job);
}
