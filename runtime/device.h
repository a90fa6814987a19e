// The device interface the executor runs on: memory, streams and copies, shaped for an
// asynchronous device (CUDA) although the CPU device completes everything immediately.
#pragma once

#include <cstddef>
#include <memory>

#include "ir/status.h"
#include "kernels/kernel.h"

namespace dsc {

// An ordered queue of work on a device; CPU work is synchronous, so its stream is trivial.
class Stream {
 public:
  virtual ~Stream() = default;
  virtual Status Synchronize() = 0;
};

class Device {
 public:
  virtual ~Device() = default;
  virtual DeviceKind kind() const = 0;
  // 64-byte aligned; error (naming the size) when the device is out of memory.
  virtual StatusOr<void*> Allocate(size_t bytes) = 0;
  virtual void Free(void* ptr) = 0;
  virtual Stream* default_stream() = 0;
  // Copies are enqueued on `stream` (default stream when null) and complete in stream order.
  virtual Status CopyHostToDevice(void* dst, const void* src, size_t bytes, Stream* stream = nullptr) = 0;
  virtual Status CopyDeviceToHost(void* dst, const void* src, size_t bytes, Stream* stream = nullptr) = 0;
  virtual Status CopyDeviceToDevice(void* dst, const void* src, size_t bytes, Stream* stream = nullptr) = 0;
  virtual Status Memset(void* dst, int value, size_t bytes, Stream* stream = nullptr) = 0;
  // Bytes currently allocated and the high-water mark, for the metrics.
  virtual size_t allocated_bytes() const = 0;
  virtual size_t peak_allocated_bytes() const = 0;
};

// The host CPU. `threads` bounds the kernels' OpenMP threads and the BLAS (0 = all cores).
std::unique_ptr<Device> CreateCpuDevice(int threads = 0);

}  // namespace dsc
