// The training loop dsrun drives: state buffers, the micro-step and step programs, data,
// learning-rate schedule, loss scale and overflow skips, metrics and progress.
//
// Mixed precision: when a program reads dsc::loss_scale the loop binds the scale the LossScaler
// (runtime/loss_scaler.h) holds for this step; when the step program outputs dsc::overflow the
// loop reads it after the step (the updates were already skipped inside the graph), checks that
// every rank reached the same verdict, and on an overflow neither steps the LR schedule nor
// counts the step in dsc::step (the count of applied updates, like torch Adam's state['step']).
// Under amp the LR schedule advances anyway, as in DeepSpeed, whose engine cannot see apex's skip.
#pragma once

#include <cstdint>
#include <optional>
#include <ostream>
#include <string>
#include <vector>

#include "backend/plan.h"
#include "runtime/data_loader.h"

namespace dsc {

class Communicator;

// Debugging (dsrun --debug-inject-overflow): before the step program of 1-based optimizer step
// `step`, rank `rank` writes +inf into element 0 of the first gradient accumulator (the first
// state of kind gradient in the plan's table), so the plan's overflow check fires.
struct OverflowInjection {
  int64_t step = 0;
  int rank = 0;
};

// "3,5@1,7": comma-separated steps (>= 1), each optionally "@RANK" (default rank 0).
StatusOr<std::vector<OverflowInjection>> ParseOverflowInjection(const std::string& spec);
// "0,3,4": comma-separated steps (>= 0; 0 = the initial state, before step 1).
StatusOr<std::vector<int64_t>> ParseStepList(const std::string& spec, const std::string& flag);

class Device;

struct TrainOptions {
  std::string data_dir;
  int64_t steps = -1;   // optimizer steps; -1: from epochs
  int64_t epochs = -1;  // -1 with steps -1: one epoch
  bool shuffle = true;
  std::optional<uint64_t> seed;  // default: the config's seed
  // One JSON object per step and line, written by rank 0 (not owned; null = none). dsrun opens it
  // during setup, so a path that cannot be written fails before the ranks agree to start.
  std::ostream* metrics = nullptr;
  std::string metrics_path;  // what write errors call it
  int threads = 0;               // 0 = all cores
  // Where the programs run (not owned); null: a CPU device with `threads`. On a CUDA device the
  // collectives go through a GPU communicator built on `comm` (runtime/gpu_communicator.h).
  Device* device = nullptr;
  std::ostream* progress = nullptr;
  // The ranks this run trains on (not owned; null = one rank). Only rank 0 writes progress
  // lines and the metrics file.
  Communicator* comm = nullptr;
  // Debugging only (see OverflowInjection); plans without a dsc::overflow output are refused.
  std::vector<OverflowInjection> inject_overflow;
  // Debugging only (dsrun --debug-dump-state DIR): every state tensor of every rank as it stands
  // after the listed steps (0: before step 1; empty list: after every step), written as
  // DIR/step-NNNNNN/rank-R/NAME.npy. A ZeRO shard is written as the rank holds it (its padded
  // chunk); bf16 tensors are written widened to float32 (exact); characters of NAME other than
  // letters, digits and "._:-" are written as %XX.
  std::string dump_state_dir;
  std::vector<int64_t> dump_state_steps;
  // Testing only (dsrun --debug-host-step): a CPU rank whose config offloads the optimizer runs
  // its step program on a second CPU device, with the states placed and mirrored as a GPU rank
  // places them (backend/host_step.h); refused without offload_optimizer.
  bool debug_host_step = false;
  // After the last step: the source model with the trained weights (fp32 masters, else the
  // parameters, and BatchNorm statistics; ZeRO shards gathered from every rank) as ONNX, written
  // by rank 0 (backend/export_onnx.h). `export_source` empty: the path the plan recorded.
  std::string export_onnx;
  std::string export_source;
  // After the last step: the same consolidated weights as safetensors under the ONNX initializer
  // names (PyTorch's state_dict names for PyTorch exports), written by rank 0.
  std::string export_safetensors;
  // Checkpoints (runtime/trainer_checkpoint.h), saved at optimizer-step boundaries only: into
  // save_dir/global_stepN after every save_every-th step (0: never) and, with save_at_end, after
  // the last. resume_from (a checkpoint folder; see PrepareResume) continues a run where its
  // checkpoint stopped: the weights, optimizer states, loss scaler, LR schedule, counters and the
  // data and dropout position. `steps` and `epochs` still count from the start of the first run.
  std::string save_dir;
  int64_t save_every = 0;
  bool save_at_end = false;
  std::string resume_from;
  // dsrun --profile (runtime/profiler.h): rank 0 times every node of every step and prints the
  // per-program tables on standard output after the last step (the first step apart, as warm-up);
  // profile_json: the same report as JSON. The config's wall_clock_breakdown and flops_profiler
  // use the same timing without this switch.
  bool profile = false;
  std::string profile_json;
};

// For a resume from `path` (DIR, whose `latest` names the tag, or DIR/TAG): resolves it into
// opts->resume_from and takes the checkpoint's data seed and shuffling, which place the data order
// and dropout masks (an explicit --seed or --no-shuffle that contradicts them is an error).
// `notes` receives why `latest` was not used, when it was not.
Status PrepareResume(const std::string& path, TrainOptions* opts, std::vector<std::string>* notes);

struct TrainSummary {
  int64_t steps = 0;         // the step the run ended at (counting from the first run's start)
  int64_t resumed_from = 0;  // the step the run started after (0: not resumed)
  int64_t skipped_steps = 0;  // overflow steps whose updates were skipped
  double first_loss = 0, last_loss = 0;
  double seconds = 0;
  // For the end-of-run summary (runtime/run_summary.h), rank 0's view of this run's steps.
  int64_t train_batch_size = 0;
  int64_t tokens_per_sample = 0;  // a token model's sequence length (integer data input [N, T]); 0: not one
  std::string device;             // "cpu" | "cuda"
  bool device_async = false;      // a GPU: the times below are the host's, kernels run asynchronously
  // Wall time of the steps split by what the host was doing: reading and uploading batches,
  // running the programs outside collective nodes, inside collective nodes (issuing, waiting);
  // the rest of `seconds` is idle or trainer work (loss and overflow agreement between ranks,
  // metrics, monitors, checkpoints).
  double data_seconds = 0, compute_seconds = 0, comm_seconds = 0;
  // Per-rank bytes by kind: what the plan says (SummarizePlan's memory: parameters, gradients,
  // optimizer_states, master_weights, buffers, activations_peak, communication_buffers) and what
  // the run allocated for the same kinds; the device's peak allocation and the process's peak
  // resident set.
  nlohmann::json memory_planned = nlohmann::json::object();
  nlohmann::json memory_allocated = nlohmann::json::object();
  int64_t peak_allocated_bytes = 0, peak_resident_bytes = 0;
};

// The data a run trains on, opened and checked against the plan's micro_step inputs. dsrun opens it
// before its ranks agree on setup, so a rank that cannot read its data ends the whole job at once
// with its own message instead of leaving the others waiting in the first collective.
StatusOr<DataLoader> OpenTrainingData(const Plan& plan, const TrainOptions& opts);

// Trains on `data`, which OpenTrainingData opened for the same plan and options.
StatusOr<TrainSummary> Train(const Plan& plan, const TrainOptions& opts, DataLoader data);

// Both at once, for a single process with no ranks to agree with (fuzz/fuzz_plan.cc, tests).
StatusOr<TrainSummary> Train(const Plan& plan, const TrainOptions& opts);

}  // namespace dsc
