// The device interface the executor runs on: memory, streams and copies, shaped for an
// asynchronous device (CUDA) although the CPU device completes everything immediately.
#pragma once

#include <algorithm>
#include <cstddef>
#include <mutex>
#include <unordered_map>
#include <vector>
#include <memory>
#include <string>

#include "ir/status.h"
#include "kernels/kernel.h"

namespace dsc {

// An ordered queue of work on a device; CPU work is synchronous, so its stream is trivial.
class Stream {
 public:
  virtual ~Stream() = default;
  virtual Status Synchronize() = 0;
};

// The blocks a device has handed out, the bytes they hold and the high-water mark (thread-safe).
class AllocationCounter {
 public:
  void Added(void* p, size_t bytes) {
    std::lock_guard<std::mutex> lock(mu_);
    sizes_[p] = bytes;
    allocated_ += bytes;
    peak_ = std::max(peak_, allocated_);
  }
  // Whether `p` was one of ours (then it is forgotten and the caller frees it).
  bool Removed(void* p) {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = sizes_.find(p);
    if (it == sizes_.end()) return false;
    allocated_ -= it->second;
    sizes_.erase(it);
    return true;
  }
  std::vector<void*> Live() const {
    std::lock_guard<std::mutex> lock(mu_);
    std::vector<void*> out;
    for (const auto& [p, n] : sizes_) out.push_back(p);
    return out;
  }
  size_t allocated() const { return allocated_; }
  size_t peak() const { return peak_; }

 private:
  mutable std::mutex mu_;
  std::unordered_map<void*, size_t> sizes_;
  size_t allocated_ = 0, peak_ = 0;
};

class Device {
 public:
  virtual ~Device() = default;
  virtual DeviceKind kind() const = 0;
  // 64-byte aligned; error (naming the size) when the device is out of memory.
  virtual StatusOr<void*> Allocate(size_t bytes) = 0;
  virtual void Free(void* ptr) = 0;
  virtual Stream* default_stream() = 0;
  // Copies are enqueued on `stream` (default stream when null) and complete in stream order; a
  // copy from the host may reuse its source once the call returns, and a copy to the host returns
  // when the bytes are there.
  virtual Status CopyHostToDevice(void* dst, const void* src, size_t bytes, Stream* stream = nullptr) = 0;
  virtual Status CopyDeviceToHost(void* dst, const void* src, size_t bytes, Stream* stream = nullptr) = 0;
  virtual Status CopyDeviceToDevice(void* dst, const void* src, size_t bytes, Stream* stream = nullptr) = 0;
  virtual Status Memset(void* dst, int value, size_t bytes, Stream* stream = nullptr) = 0;
  // Host memory the device copies from and to fastest (page-locked on CUDA), for batches and metrics.
  virtual StatusOr<void*> AllocateHost(size_t bytes) = 0;
  virtual void FreeHost(void* ptr) = 0;
  // Waits for every stream of the device.
  virtual Status Synchronize() = 0;
  // What CUDA kernels run with (KernelContext::cuda); null on the CPU.
  virtual cuda::Resources* cuda_resources() { return nullptr; }
  // A name for messages: "cpu", "cuda:0 (NVIDIA H100 80GB HBM3)".
  virtual std::string name() const = 0;
  // Bytes currently allocated and the high-water mark, for the metrics.
  virtual size_t allocated_bytes() const = 0;
  virtual size_t peak_allocated_bytes() const = 0;
};

// The host CPU. `threads` bounds the kernels' OpenMP threads and the BLAS (0 = all cores).
std::unique_ptr<Device> CreateCpuDevice(int threads = 0);

// Whether this build has the CUDA backend (nvcc was found when it was configured).
bool CudaBackendBuilt();
// CUDA GPUs visible to this process: 0 without the backend, without a driver or without a GPU;
// `why` (optional) receives the reason when it is 0.
int CudaDeviceCount(std::string* why = nullptr);
// GPU `ordinal` (0-based, of the visible ones); errors say why there is none.
StatusOr<std::unique_ptr<Device>> CreateCudaDevice(int ordinal);
// The device `--device` names: "cpu", "cuda", or "" for cuda when the backend is built and a GPU
// is visible, else cpu. A CUDA rank takes GPU (local rank mod visible GPUs), the local rank read
// from the launcher (LOCAL_RANK, OMPI_COMM_WORLD_LOCAL_RANK, SLURM_LOCALID).
StatusOr<std::unique_ptr<Device>> CreateDevice(const std::string& kind, int threads);
// This process's rank among the ranks of its node, from the launcher's environment (0 when unset).
int LocalRank();

}  // namespace dsc
