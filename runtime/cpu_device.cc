// The CPU device: aligned host allocations, synchronous copies, OpenMP/BLAS thread control.
#include <omp.h>

#include <atomic>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <unordered_map>

#include "runtime/device.h"

extern "C" void openblas_set_num_threads(int num_threads);

namespace dsc {
namespace {

class CpuStream : public Stream {
 public:
  Status Synchronize() override { return Status::OK(); }
};

class CpuDevice : public Device {
 public:
  explicit CpuDevice(int threads) {
    if (threads > 0) {
      omp_set_num_threads(threads);
      openblas_set_num_threads(threads);
    }
  }
  ~CpuDevice() override {
    for (auto& [p, n] : sizes_) std::free(p);
  }
  DeviceKind kind() const override { return DeviceKind::kCpu; }

  StatusOr<void*> Allocate(size_t bytes) override {
    size_t rounded = (std::max<size_t>(bytes, 1) + 63) / 64 * 64;
    void* p = std::aligned_alloc(64, rounded);
    if (!p) return OutOfRange("out of host memory allocating ", bytes, " bytes");
    std::lock_guard<std::mutex> lock(mu_);
    sizes_[p] = rounded;
    allocated_ += rounded;
    peak_ = std::max(peak_, allocated_);
    return p;
  }
  void Free(void* ptr) override {
    if (!ptr) return;
    std::lock_guard<std::mutex> lock(mu_);
    auto it = sizes_.find(ptr);
    if (it == sizes_.end()) return;
    allocated_ -= it->second;
    sizes_.erase(it);
    std::free(ptr);
  }
  Stream* default_stream() override { return &stream_; }
  Status CopyHostToDevice(void* dst, const void* src, size_t n, Stream*) override { return Copy(dst, src, n); }
  Status CopyDeviceToHost(void* dst, const void* src, size_t n, Stream*) override { return Copy(dst, src, n); }
  Status CopyDeviceToDevice(void* dst, const void* src, size_t n, Stream*) override { return Copy(dst, src, n); }
  Status Memset(void* dst, int value, size_t n, Stream*) override {
    if (n) std::memset(dst, value, n);
    return Status::OK();
  }
  StatusOr<void*> AllocateHost(size_t bytes) override { return Allocate(bytes); }
  void FreeHost(void* ptr) override { Free(ptr); }
  Status Synchronize() override { return Status::OK(); }
  std::string name() const override { return "cpu"; }
  size_t allocated_bytes() const override { return allocated_; }
  size_t peak_allocated_bytes() const override { return peak_; }

 private:
  static Status Copy(void* dst, const void* src, size_t n) {
    if (n && dst != src) std::memmove(dst, src, n);
    return Status::OK();
  }
  CpuStream stream_;
  std::mutex mu_;
  std::unordered_map<void*, size_t> sizes_;
  size_t allocated_ = 0, peak_ = 0;
};

}  // namespace

std::unique_ptr<Device> CreateCpuDevice(int threads) { return std::make_unique<CpuDevice>(threads); }

}  // namespace dsc
