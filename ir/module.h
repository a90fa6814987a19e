// A module: the programs of a training plan (e.g. "micro_step" and "step") plus the persistent
// state they share by name (parameters, gradient accumulators, optimizer states, buffers).
//
// Programs refer to state through graph inputs named like the state tensor; the runtime binds
// them to one buffer per state tensor, so an update by one program is seen by the next.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "ir/graph.h"

namespace dsc {

struct PlanProgram {
  std::string name;
  std::unique_ptr<Graph> graph;
};

// kMaster: the fp32 master weights of a half-precision model (owner = the parameter); the ZeRO
// paper counts them with the optimizer states (K = 12 for Adam).
// kCompressionError: a 1-bit optimizer's error feedback (CompressedAllReduce's worker and server
// errors; with 0/1 Adam also its momentum accumulator and lr sum), different on every rank, zero
// at the start and never checkpointed: DeepSpeed resets them when it loads a checkpoint.
enum class StateKind { kParameter, kGradient, kOptimizer, kBuffer, kMaster, kCompressionError };
// "parameter", "gradient", "optimizer", "buffer", "master", "compression_error"
const char* StateKindName(StateKind k);
StatusOr<StateKind> StateKindFromName(const std::string& name);

// One persistent tensor. Its initial value is the initializer of the same name in the module's
// `initial_state` graph, or zeros when `zero_init` (so Adam moments cost no plan bytes).
struct StateInfo {
  std::string name;
  StateKind kind = StateKind::kParameter;
  std::string owner;  // for gradients and optimizer states: the parameter they belong to
  DType dtype = DType::kFloat32;
  std::vector<int64_t> dims;
  bool zero_init = false;
  // ZeRO: > 0 when this tensor holds one rank's chunk (`dims` = [ceil(shard_of_numel / world)])
  // of a tensor of shard_of_numel elements; the runtime takes the rank's chunk of the initial value.
  int64_t shard_of_numel = 0;
  // The whole tensor's shape when this is a shard and the plan file recorded it (plans read from a
  // file hold no initial values to take it from); empty otherwise. Module::FullShape reads it.
  std::vector<int64_t> full_dims = {};
};

struct Module {
  std::vector<PlanProgram> programs;
  std::vector<StateInfo> state;
  // Initial values of the state tensors that are not zero-initialised (initializers only).
  std::unique_ptr<Graph> initial_state;

  const PlanProgram* FindProgram(const std::string& name) const;
  PlanProgram* FindProgram(const std::string& name);
  const StateInfo* FindState(const std::string& name) const;
  // The shape of the whole tensor `s` holds: its dims, or for a ZeRO shard its recorded full_dims,
  // else its initial value's shape, else its owner's, else the flat element count.
  std::vector<int64_t> FullShape(const StateInfo& s) const;
  // Adds a state tensor; `init` null means zero-initialised. Names must be unique.
  Status AddState(StateInfo info, const Tensor* init);
};

}  // namespace dsc
