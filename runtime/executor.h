// Runs one program (a graph) on a device: one kernel per node, created once; intermediate
// values live in one arena laid out by the memory plan (a view's output is its input's bytes, so
// its kernel is skipped; an in-place kernel gets an output pointer equal to an input's), ToHost
// outputs in a second one of host memory (Device::AllocateHost: page-locked on CUDA); graph
// inputs are bound to buffers the caller owns (state tensors, data batches, scalars) and may be
// updated in place by training ops.
//
//   ASSIGN_OR_RETURN(auto exec, ProgramExecutor::Create(graph, device));
//   RETURN_IF_ERROR(exec->Bind("x", TensorView{DType::kFloat32, {4, 32}, x_ptr}));
//   RETURN_IF_ERROR(exec->Run(RunOptions{.seed = 1, .step = 1}));
//   const TensorView* loss = exec->Output("loss");
#pragma once

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "ir/graph.h"
#include "kernels/common/comm_state.h"
#include "kernels/kernel.h"
#include "runtime/device.h"

namespace dsc {

// One node's share of the runs it was timed in (dsrun --profile, runtime/profiler.h).
struct NodeTime {
  int64_t calls = 0;
  double seconds = 0;
};

struct RunOptions {
  uint64_t seed = 0;
  int64_t step = 1;
  int num_threads = 1;
  Communicator* comm = nullptr;  // collectives' group; null = one rank
  int64_t first_sample = 0;      // of the micro-batch in the step's global batch (KernelContext)
  // When set, every node's Compute is timed with the host's steady clock and added to its entry
  // (resized to the program's nodes, in order). On a GPU the device is synchronized before the
  // first node and after every node, so each kernel's time is its own (and the run is serialized).
  std::vector<NodeTime>* node_times = nullptr;
  // When set, the host's seconds inside collective nodes (issuing them, and waiting in
  // CollectiveWait or a synchronous collective) are added here: the end-of-run summary's
  // communication time. Two clock reads per collective node; other nodes are not timed.
  double* comm_seconds = nullptr;
  int64_t optimizer_step = 0;  // KernelContext::optimizer_step: what dsc::step holds this run
};

class ProgramExecutor {
 public:
  // Every value must have a static shape; every node a kernel for the device (all missing
  // kernels are listed in one error).
  static StatusOr<std::unique_ptr<ProgramExecutor>> Create(const Graph& g, Device* device);
  ~ProgramExecutor();

  // Binds a graph input to caller-owned device memory (shape and dtype must match exactly).
  Status Bind(const std::string& input, const TensorView& view);
  // All inputs must be bound. Runs every node in order. Bucketed collectives in flight are let
  // progress after every node; a Start never waited for by the end is an error naming it (and,
  // like any failed run, leaves no collective in flight: their handles wait as they are dropped).
  Status Run(const RunOptions& opts);
  // A graph output's buffer after Run (device memory; valid until the next Run).
  const TensorView* Output(const std::string& name) const;
  size_t arena_bytes() const { return arena_bytes_; }
  // The host arena's bytes (cpu_checkpointing's checkpoints; 0 without).
  size_t host_arena_bytes() const { return host_arena_bytes_; }
  // The program's collectives in flight and its live gathered parameter elements (stage 3): the
  // trainer reads and resets the peak per step.
  const CommState& comm_state() const { return comm_state_; }
  CommState& comm_state() { return comm_state_; }

 private:
  struct Step;
  ProgramExecutor() = default;
  Status RunSteps(const RunOptions& opts);
  Device* device_ = nullptr;
  std::vector<Step> steps_;
  std::map<std::string, TensorView> values_;  // every value's view (arena, constants, bound inputs)
  std::map<std::string, bool> bound_;
  std::vector<std::string> outputs_;
  void* arena_ = nullptr;
  void* constants_ = nullptr;
  void* host_arena_ = nullptr;
  size_t arena_bytes_ = 0;
  size_t host_arena_bytes_ = 0;
  CommState comm_state_;
};

// Convenience for tests and small tools: runs `g` once on the CPU with host tensors bound as its
// inputs (not copied: in-place training ops update them) and returns every graph output by name.
StatusOr<std::map<std::string, Tensor>> RunGraphOnCpu(const Graph& g, const std::map<std::string, Tensor*>& inputs,
                                                      const RunOptions& opts = {});

}  // namespace dsc
