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
  }
  return "?";
}

StatusOr<StateKind> StateKindFromName(const std::string& name) {
  for (StateKind k : {StateKind::kParameter, StateKind::kGradient, StateKind::kOptimizer, StateKind::kBuffer, StateKind::kMaster})
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
