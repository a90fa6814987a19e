// The CUDA device: device memory through cudaMalloc, a compute and a communication stream, the
// cuBLASLt handle and workspace the GEMM kernels use, page-locked host buffers.
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <unordered_map>

#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/cuda_resources.h"
#include "runtime/device.h"

namespace dsc {
namespace {

class CudaStream : public Stream {
 public:
  explicit CudaStream(cudaStream_t s) : s_(s) {}
  Status Synchronize() override {
    DSC_CUDA_CHECK(cudaStreamSynchronize(s_));
    return Status::OK();
  }
  cudaStream_t get() const { return s_; }

 private:
  cudaStream_t s_;
};

constexpr size_t kLtWorkspaceBytes = size_t{32} << 20;  // what cuBLASLt's fastest Hopper kernels ask for

class CudaDevice : public Device {
 public:
  ~CudaDevice() override {
    // Pending work first: freeing memory a kernel still uses would be a use-after-free on the GPU.
    cudaSetDevice(res_.device);
    cudaDeviceSynchronize();
    for (void* p : counter_.Live()) cudaFree(p);
    for (void* p : host_) cudaFreeHost(p);
    if (res_.scratch) cudaFree(res_.scratch);
    if (res_.gemm_pad) cudaFree(res_.gemm_pad);
    if (res_.lt_workspace) cudaFree(res_.lt_workspace);
    if (res_.lt) cublasLtDestroy(res_.lt);
    if (res_.comm) cudaStreamDestroy(res_.comm);
    if (res_.compute) cudaStreamDestroy(res_.compute);
  }

  Status Init(int ordinal) {
    res_.device = ordinal;
    DSC_CUDA_CHECK(cudaSetDevice(ordinal));
    cudaDeviceProp prop{};
    DSC_CUDA_CHECK(cudaGetDeviceProperties(&prop, ordinal));
    name_ = StrCat("cuda:", ordinal, " (", prop.name, ")");
    res_.sm_count = prop.multiProcessorCount;
    res_.cc_major = prop.major;
    res_.cc_minor = prop.minor;
    res_.max_shared_per_block = prop.sharedMemPerBlock;
    res_.max_shared_optin = prop.sharedMemPerBlockOptin;
    if (prop.major < 8)
      return FailedPrecondition(name_, " has compute capability ", prop.major, ".", prop.minor,
                                "; the CUDA backend is built for 8.0 (A100) and newer");
    const char* tf32 = std::getenv("DSC_ALLOW_TF32");
    res_.allow_tf32 = tf32 && std::strcmp(tf32, "1") == 0;
    DSC_CUDA_CHECK(cudaStreamCreateWithFlags(&res_.compute, cudaStreamNonBlocking));
    DSC_CUDA_CHECK(cudaStreamCreateWithFlags(&res_.comm, cudaStreamNonBlocking));
    DSC_CUBLAS_CHECK(cublasLtCreate(&res_.lt));
    DSC_CUDA_CHECK(cudaMalloc(&res_.lt_workspace, kLtWorkspaceBytes));
    res_.lt_workspace_bytes = kLtWorkspaceBytes;
    stream_ = std::make_unique<CudaStream>(res_.compute);
    return Status::OK();
  }

  DeviceKind kind() const override { return DeviceKind::kCuda; }
  std::string name() const override { return name_; }
  cuda::Resources* cuda_resources() override { return &res_; }

  StatusOr<void*> Allocate(size_t bytes) override {
    void* p = nullptr;
    const size_t rounded = (std::max<size_t>(bytes, 1) + 255) / 256 * 256;
    const cudaError_t e = cudaMalloc(&p, rounded);
    if (e != cudaSuccess) {
      cudaGetLastError();  // clear it: out of memory is not sticky
      size_t free_b = 0, total_b = 0;
      cudaMemGetInfo(&free_b, &total_b);
      return OutOfRange(name_, ": out of GPU memory allocating ", bytes, " bytes (", free_b, " of ", total_b,
                        " bytes free; this process holds ", counter_.allocated(), "): ", cudaGetErrorString(e));
    }
    counter_.Added(p, rounded);
    return p;
  }
  void Free(void* ptr) override {
    if (ptr && counter_.Removed(ptr)) cudaFree(ptr);  // orders itself after the work that may still read it
  }
  StatusOr<void*> AllocateHost(size_t bytes) override {
    void* p = nullptr;
    DSC_CUDA_CHECK(cudaMallocHost(&p, std::max<size_t>(bytes, 1)));
    std::lock_guard<std::mutex> lock(mu_);
    host_.push_back(p);
    return p;
  }
  void FreeHost(void* ptr) override {
    if (!ptr) return;
    std::lock_guard<std::mutex> lock(mu_);
    for (auto it = host_.begin(); it != host_.end(); ++it)
      if (*it == ptr) {
        host_.erase(it);
        cudaStreamSynchronize(res_.compute);  // a copy from it may be in flight
        cudaFreeHost(ptr);
        return;
      }
  }
  Stream* default_stream() override { return stream_.get(); }

  Status CopyHostToDevice(void* dst, const void* src, size_t n, Stream* s) override {
    if (!n) return Status::OK();
    // From pageable memory the runtime stages the source before returning; from page-locked memory
    // it does not, so the source must stay put until the stream reaches the copy.
    DSC_CUDA_CHECK(cudaMemcpyAsync(dst, src, n, cudaMemcpyHostToDevice, StreamOf(s)));
    if (!IsPinned(src)) return Status::OK();
    DSC_CUDA_CHECK(cudaStreamSynchronize(StreamOf(s)));
    return Status::OK();
  }
  Status CopyDeviceToHost(void* dst, const void* src, size_t n, Stream* s) override {
    if (!n) return Status::OK();
    DSC_CUDA_CHECK(cudaMemcpyAsync(dst, src, n, cudaMemcpyDeviceToHost, StreamOf(s)));
    DSC_CUDA_CHECK(cudaStreamSynchronize(StreamOf(s)));
    return Status::OK();
  }
  Status CopyDeviceToDevice(void* dst, const void* src, size_t n, Stream* s) override {
    if (!n || dst == src) return Status::OK();
    DSC_CUDA_CHECK(cudaMemcpyAsync(dst, src, n, cudaMemcpyDeviceToDevice, StreamOf(s)));
    return Status::OK();
  }
  Status Memset(void* dst, int value, size_t n, Stream* s) override {
    if (!n) return Status::OK();
    DSC_CUDA_CHECK(cudaMemsetAsync(dst, value, n, StreamOf(s)));
    return Status::OK();
  }
  Status Synchronize() override {
    DSC_CUDA_CHECK(cudaStreamSynchronize(res_.comm));
    DSC_CUDA_CHECK(cudaStreamSynchronize(res_.compute));
    return Status::OK();
  }
  size_t allocated_bytes() const override { return counter_.allocated(); }
  size_t peak_allocated_bytes() const override { return counter_.peak(); }

 private:
  cudaStream_t StreamOf(Stream* s) const {
    return s ? static_cast<CudaStream*>(s)->get() : res_.compute;
  }
  bool IsPinned(const void* p) {
    std::lock_guard<std::mutex> lock(mu_);
    for (void* h : host_)
      if (h == p) return true;
    cudaPointerAttributes attr{};
    if (cudaPointerGetAttributes(&attr, p) != cudaSuccess) {
      cudaGetLastError();
      return false;
    }
    return attr.type == cudaMemoryTypeHost;
  }

  cuda::Resources res_;
  std::string name_;
  std::unique_ptr<CudaStream> stream_;
  std::mutex mu_;
  std::vector<void*> host_;  // page-locked blocks (guarded by mu_)
  AllocationCounter counter_;
};

}  // namespace

namespace cuda_backend {

// What CudaDeviceCount and CreateCudaDevice (runtime/device.h) do once the module is loaded.
int DeviceCount(std::string* why) {
  int n = 0;
  const cudaError_t e = cudaGetDeviceCount(&n);
  if (e != cudaSuccess) {
    cudaGetLastError();
    if (why) *why = StrCat(cudaGetErrorName(e), ": ", cudaGetErrorString(e));
    return 0;
  }
  if (n == 0 && why) *why = "cudaGetDeviceCount found none (CUDA_VISIBLE_DEVICES may hide them)";
  return n;
}

StatusOr<std::unique_ptr<Device>> CreateDevice(int ordinal) {
  std::string why;
  const int n = DeviceCount(&why);
  if (n == 0) return FailedPrecondition("no CUDA GPU is visible to this process: ", why);
  if (ordinal < 0 || ordinal >= n) return InvalidArgument("GPU ", ordinal, " does not exist (", n, " visible)");
  auto d = std::make_unique<CudaDevice>();
  RETURN_IF_ERROR(d->Init(ordinal));
  return std::unique_ptr<Device>(std::move(d));
}

}  // namespace cuda_backend
}  // namespace dsc
