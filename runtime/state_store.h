// The training state on a device: one buffer per state tensor of a plan (parameters, master
// weights, gradient accumulators, optimizer states, buffers), each rank holding its ZeRO chunks.
// States the plan swaps to NVMe (ir/swap_ops.h) have no buffer: their bytes live in the rank's
// swap files (runtime/nvme_swap.h), which OpenSwap creates. When the step program runs on the host
// (optimizer offload on a GPU rank, backend/host_step.h), PlaceForHostStep puts the states only the
// step uses in host memory and gives the ones both programs use a host mirror. Describe, CopyToHost
// and CopyFromHost reach every state wherever it is (checkpoints, dumps); the device copy of a
// mirrored state is the authoritative one between steps.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "backend/host_step.h"
#include "backend/plan.h"
#include "runtime/device.h"
#include "runtime/nvme_swap.h"

namespace dsc {

// Where the swapped states live: a folder for the parameter chunks (offload_param's nvme_path)
// and one for the rest (offload_optimizer's), each with the config key that named it.
struct SwapFolders {
  std::string params, params_key, others, others_key;
};

class StateStore {
 public:
  explicit StateStore(Device* device) : device_(device) {}
  StateStore(const StateStore&) = delete;
  StateStore& operator=(const StateStore&) = delete;
  ~StateStore();

  // Before Allocate: the step program runs on `host` (a CPU device) and `layout` says which states
  // live in host memory (kHost) or have a host mirror (kMirrored). Their host buffers come from
  // the compute device's AllocateHost when `pinned` (page-locked on CUDA: offload_optimizer's
  // pin_memory), else from `host`. `host` outlives the store.
  void PlaceForHostStep(HostStepLayout layout, Device* host, bool pinned);
  // Allocates every state tensor but the swapped ones, zero-filled (ZeRO chunks include their zero
  // padding).
  Status Allocate(const Plan& plan);
  // Creates the swap files of the swapped states (zeros): the parameter chunks' under
  // folders.params, the rest (optimizer states, master weights) under folders.others; one file
  // when the folders are the same. A no-op when nothing is swapped.
  Status OpenSwap(const SwapFolders& folders, int rank, const SwapIoOptions& io);
  // The swap space the swap kernels use (CommState::set_swap_space), each state in its file; null
  // when nothing is swapped.
  SwapSpace* swap() { return files_.empty() ? nullptr : &router_; }
  // Why a swap file uses buffered I/O instead of O_DIRECT, one line per such file (for stderr).
  std::vector<std::string> SwapIoNotes() const;
  // Fills the non-zero-initialised tensors from the plan's in-memory initial values; a sharded
  // tensor (ZeRO) takes this rank's chunk of its initial value.
  Status InitFromPlan(const Plan& plan, int rank);
  // Every state tensor of this rank as .npy under `dir` (dsrun --debug-dump-state).
  Status Dump(const Plan& plan, const std::string& dir) const;

  // The buffer of a resident state on the compute device (what the micro-step binds); null for a
  // swapped or host-only one or an unknown name.
  const TensorView* Find(const std::string& name) const;
  // The buffer the step program binds: the host copy (host-only or mirror) when it runs on the
  // host, else Find's.
  const TensorView* FindForStep(const std::string& name) const;
  // Around a step program on the host (HostStepLayout's lists): the device copies of `names` into
  // their mirrors, the mirrors onto the device, or the device copies zeroed.
  Status MirrorToHost(const std::vector<std::string>& names);
  Status MirrorToDevice(const std::vector<std::string>& names);
  Status ZeroOnDevice(const std::vector<std::string>& names);
  // Dtype and shape of any state (ptr null when swapped); null for an unknown name.
  const TensorView* Describe(const std::string& name) const;
  // The whole state to host memory, or its first `bytes` from host memory (a shard's real elements).
  Status CopyToHost(const std::string& name, void* dst) const;
  Status CopyFromHost(const std::string& name, const void* src, size_t bytes);
  Device* device() const { return device_; }
  // Bytes actually allocated for state, by kind ("parameter", "gradient", "optimizer", "buffer").
  int64_t bytes(const char* kind) const;
  // Bytes of state kept in the swap files instead, by kind.
  int64_t swapped_bytes(const char* kind) const;
  // Bytes of state in host memory besides the device (host-only states and mirrors; 0 without
  // PlaceForHostStep), and of those the mirrors.
  int64_t host_bytes() const { return host_bytes_; }
  int64_t mirror_bytes() const { return mirror_bytes_; }
  // Bytes MirrorToHost and MirrorToDevice have copied so far.
  int64_t moved_to_host() const { return moved_to_host_; }
  int64_t moved_to_device() const { return moved_to_device_; }

 private:
  // Each swapped state's calls go to its file.
  class Router : public SwapSpace {
   public:
    std::map<std::string, NvmeSwapFile*> file_of;
    StatusOr<NvmeSwapFile*> For(const std::string& name) const;
    StatusOr<std::unique_ptr<CommHandle>> StartRead(const std::string& name, void* dst, size_t bytes) override;
    StatusOr<std::unique_ptr<CommHandle>> StartWrite(const std::string& name, const void* src, size_t bytes) override;
  };

  StatusOr<void*> AllocateOnHost(size_t bytes);
  void FreeOnHost(void* p);
  // The host copy of a state: its only buffer, or its mirror; null when it has none.
  const TensorView* FindOnHost(const std::string& name) const;

  Device* device_;
  Device* host_ = nullptr;  // set by PlaceForHostStep
  bool pinned_ = false;
  HostStepLayout layout_;
  std::map<std::string, TensorView> views_;       // on the device
  std::map<std::string, TensorView> host_views_;  // in host memory: host-only states and mirrors
  int64_t host_bytes_ = 0, mirror_bytes_ = 0, moved_to_host_ = 0, moved_to_device_ = 0;
  std::map<std::string, TensorView> swapped_;  // ptr null: the bytes are in a swap file
  std::vector<std::string> swap_order_;        // plan order: the files' layout
  std::set<std::string> swapped_params_;       // of swap_order_, the parameter chunks
  std::map<std::string, int64_t> bytes_by_kind_, swapped_by_kind_;
  std::vector<std::unique_ptr<NvmeSwapFile>> files_;
  Router router_;
};

// A state name as a file name: letters, digits and "._:-" stay, the rest (a "/" in an exported
// name, say) becomes %XX, so every name maps to one file and back.
std::string FileNameFor(const std::string& name);

}  // namespace dsc
