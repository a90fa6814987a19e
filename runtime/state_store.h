// The training state on a device: one buffer per state tensor of a plan (parameters, master
// weights, gradient accumulators, optimizer states, buffers), each rank holding its ZeRO chunks.
#pragma once

#include <cstdint>
#include <map>
#include <string>

#include "backend/plan.h"
#include "runtime/device.h"

namespace dsc {

class StateStore {
 public:
  explicit StateStore(Device* device) : device_(device) {}
  StateStore(const StateStore&) = delete;
  StateStore& operator=(const StateStore&) = delete;
  ~StateStore();

  // Allocates every state tensor, zero-filled (ZeRO chunks include their zero padding).
  Status Allocate(const Plan& plan);
  // Fills the non-zero-initialised tensors from the plan's in-memory initial values; a sharded
  // tensor (ZeRO) takes this rank's chunk of its initial value.
  Status InitFromPlan(const Plan& plan, int rank);
  // Every state tensor of this rank as .npy under `dir` (dsrun --debug-dump-state).
  Status Dump(const Plan& plan, const std::string& dir) const;

  const TensorView* Find(const std::string& name) const;
  Device* device() const { return device_; }
  // Bytes actually allocated for state, by kind ("parameter", "gradient", "optimizer", "buffer").
  int64_t bytes(const char* kind) const;

 private:
  Device* device_;
  std::map<std::string, TensorView> views_;
  std::map<std::string, int64_t> bytes_by_kind_;
};

// A state name as a file name: letters, digits and "._:-" stay, the rest (a "/" in an exported
// name, say) becomes %XX, so every name maps to one file and back.
std::string FileNameFor(const std::string& name);

}  // namespace dsc
