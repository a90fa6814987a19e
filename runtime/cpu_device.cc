// The CPU device: aligned host allocations, synchronous copies, OpenMP/BLAS thread control.
#include <omp.h>

#include <atomic>
#include <cstdlib>
#include <cstring>

#include "kernels/cpu/blas.h"
#include "kernels/cpu/onednn.h"
#include "kernels/cpu/simd.h"
#include "runtime/device.h"

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
    for (void* p : counter_.Live()) std::free(p);
  }
  DeviceKind kind() const override { return DeviceKind::kCpu; }

  StatusOr<void*> Allocate(size_t bytes) override {
    // A buffer of a page or more starts on a page: the arena holds the buffers that NVMe swap
    // transfers read and write with O_DIRECT (ir/swap_ops.h, kSwapBufferAlignment).
    const size_t align = bytes >= 4096 ? 4096 : 64;
    size_t rounded = (std::max<size_t>(bytes, 1) + align - 1) / align * align;
    void* p = std::aligned_alloc(align, rounded);
    if (!p) return OutOfRange("out of host memory allocating ", bytes, " bytes");
    counter_.Added(p, rounded);
    return p;
  }
  void Free(void* ptr) override {
    if (ptr && counter_.Removed(ptr)) std::free(ptr);
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
  // "cpu (OpenBLAS 0.3.34.481.3, SkylakeX kernels, oneDNN 2.6.3 (avx512_core_bf16), avx512 loops,
  // 2 threads)": which GEMM, convolution and elementwise code (kernels/cpu/simd.h, DSC_CPU_ISA) a
  // run gets is the first thing to know about its speed.
  std::string name() const override {
    const int threads = openblas_get_num_threads();
    const StatusOr<cpu::Isa> isa = cpu::SelectedIsa();
    return StrCat("cpu (", cpu::BlasDescription(), ", ", cpu::OnednnDescription(), ", ",
                  isa.ok() ? cpu::IsaName(*isa) : "invalid DSC_CPU_ISA", " loops, ", threads,
                  threads == 1 ? " thread)" : " threads)");
  }
  size_t allocated_bytes() const override { return counter_.allocated(); }
  size_t peak_allocated_bytes() const override { return counter_.peak(); }

 private:
  static Status Copy(void* dst, const void* src, size_t n) {
    if (n && dst != src) std::memmove(dst, src, n);
    return Status::OK();
  }
  CpuStream stream_;
  AllocationCounter counter_;
};

}  // namespace

std::unique_ptr<Device> CreateCpuDevice(int threads) { return std::make_unique<CpuDevice>(threads); }

}  // namespace dsc
