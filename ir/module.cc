// Module lookups and state registration.
#include "ir/module.h"

namespace dsc {

const char* StateKindName(StateKind k) {
  switch (k) {
    case StateKind::kParameter: return "parameter";
    case StateKind::kGradient: return "gradient";
    case StateKind::kOptimizer: return "optimizer";
    case StateKind::kBuffer: return "buffer";
    case StateKind::kMaster: return "master";
    case StateKind::kCompressionError: return "compression_error";
  }
  return "?";
}

StatusOr<StateKind> StateKindFromName(const std::string& name) {
  for (StateKind k : {StateKind::kParameter, StateKind::kGradient, StateKind::kOptimizer, StateKind::kBuffer,
                      StateKind::kMaster, StateKind::kCompressionError})
    if (name == StateKindName(k)) return k;
  return InvalidArgument("unknown state kind '", name, "'");
}

const PlanProgram* Module::FindProgram(const std::string& name) const {
  for (const auto& p : programs)
    if (p.name == name) return &p;
  return nullptr;
}

PlanProgram* Module::FindProgram(const std::string& name) {
  for (auto& p : programs)
    if (p.name == name) return &p;
  return nullptr;
}

const StateInfo* Module::FindState(const std::string& name) const {
  for (const auto& s : state)
    if (s.name == name) return &s;
  return nullptr;
}

std::vector<int64_t> Module::FullShape(const StateInfo& s) const {
  if (s.shard_of_numel == 0) return s.dims;
  if (!s.full_dims.empty()) return s.full_dims;
  auto numel = [](const std::vector<int64_t>& dims) {
    int64_t n = 1;
    for (int64_t d : dims) n *= d;
    return n;
  };
  if (initial_state) {
    const Value* init = initial_state->FindValue(s.name);
    if (init && init->is_initializer() && init->initializer().numel() == s.shard_of_numel)
      return init->initializer().dims();
  }
  if (!s.owner.empty() && s.owner != s.name) {
    if (const StateInfo* owner = FindState(s.owner)) {
      std::vector<int64_t> dims = FullShape(*owner);
      if (numel(dims) == s.shard_of_numel) return dims;
    }
  }
  return {s.shard_of_numel};
}

Status Module::AddState(StateInfo info, const Tensor* init) {
  if (FindState(info.name)) return Internal("state tensor '", info.name, "' is declared twice");
  info.zero_init = init == nullptr;
  if (init) {
    if (!initial_state) {
      initial_state = std::make_unique<Graph>();
      initial_state->name = "initial_state";
    }
    initial_state->AddInitializer(info.name, *init);
  }
  state.push_back(std::move(info));
  return Status::OK();
}

}  // namespace dsc
