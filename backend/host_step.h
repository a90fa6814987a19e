// Where a rank that computes on a GPU keeps each state when the optimizer is offloaded
// (zero_optimization.offload_optimizer): the step program runs on the host, so a state only it
// uses lives in host memory, a state both programs use lives on the device with a host mirror,
// and around each step the mirrors the step needs are copied in and its writes copied back.
// Derived from the two programs' graphs (which inputs each reads and writes), never from names;
// the runtime (runtime/trainer.cc) copies exactly these bytes and the plan's report
// (backend/plan_summary.cc, "places") prints them.
//
//   ASSIGN_OR_RETURN(HostStepLayout l, HostStepLayoutOf(plan));
//   l.place.at("w::exp_avg") == StatePlace::kHost; l.to_host: the gradient accumulators
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "ir/module.h"
#include "ir/status.h"

namespace dsc {

enum class StatePlace {
  kDevice,    // on the compute device only (used by the micro-step only, or by neither program)
  kHost,      // in host memory only (used by the step only: optimizer states, fp32 master weights)
  kMirrored,  // on the device, with a host mirror the step program reads and writes
};

struct HostStepLayout {
  std::map<std::string, StatePlace> place;  // every resident state of the plan (swapped ones: none)
  // Mirrored states copied device -> host before each step: those the step reads and the
  // micro-step writes (the others' mirrors are current: only the step and whole-state loads,
  // which write both copies, change them).
  std::vector<std::string> to_host;
  // Mirrored states copied host -> device after each step: those it writes other than by ZeroFill.
  std::vector<std::string> to_device;
  // Mirrored states the step only zero-fills: zeroed on the device instead of copied.
  std::vector<std::string> zero_on_device;
  int64_t host_bytes = 0;    // host-only states and mirrors
  int64_t mirror_bytes = 0;  // of host_bytes, the mirrors (a CPU rank needs none)
  int64_t device_bytes = 0;  // states on the device (mirrored ones included)
  int64_t to_host_bytes = 0, to_device_bytes = 0;  // per optimizer step
};

// The layout for `plan`'s micro_step and step programs; an error when it has no such programs.
StatusOr<HostStepLayout> HostStepLayoutOf(const Module& plan);

}  // namespace dsc
