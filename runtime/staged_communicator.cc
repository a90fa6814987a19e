// The GPU communicators without NCCL (runtime/gpu_communicator.h): the single-rank one, whose
// collectives are device copies on the compute stream, and the staged one, which runs the host
// communicator on page-locked copies of the device buffers (ranks sharing a GPU).
#include <chrono>
#include <cstdlib>
#include <iostream>
#include <mutex>
#include <vector>

#include <cuda_runtime_api.h>

#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/cuda_resources.h"
#include "runtime/gpu_communicator.h"

namespace dsc {
namespace {

bool Overlap(const void* a, size_t a_bytes, const void* b, size_t b_bytes) {
  auto pa = reinterpret_cast<uintptr_t>(a), pb = reinterpret_cast<uintptr_t>(b);
  return a_bytes > 0 && b_bytes > 0 && pa < pb + b_bytes && pb < pa + a_bytes;
}

// dst = src on `stream`, device to device; a partial overlap goes through a stream-ordered
// temporary (cudaMemcpy does not move overlapping ranges).
Status DeviceMove(void* dst, const void* src, size_t bytes, cudaStream_t stream) {
  if (bytes == 0 || dst == src) return Status::OK();
  if (!Overlap(dst, bytes, src, bytes)) {
    DSC_CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice, stream));
    return Status::OK();
  }
  void* tmp = nullptr;
  DSC_CUDA_CHECK(cudaMallocAsync(&tmp, bytes, stream));
  DSC_CUDA_CHECK(cudaMemcpyAsync(tmp, src, bytes, cudaMemcpyDeviceToDevice, stream));
  DSC_CUDA_CHECK(cudaMemcpyAsync(dst, tmp, bytes, cudaMemcpyDeviceToDevice, stream));
  DSC_CUDA_CHECK(cudaFreeAsync(tmp, stream));
  return Status::OK();
}

[[noreturn]] void AbortThrough(Communicator* host, const std::string& message, int exit_code) {
  if (host) host->Abort(message, exit_code);
  std::cerr << message + "\n" << std::flush;
  std::exit(exit_code);
}

// Page-locked host buffers, reused: a buffer goes back to the pool when its collective's Wait()
// has queued the copy back to the device, with an event that says when that copy is done; it is
// handed out again only after that event.
class PinnedPool {
 public:
  struct Buffer {
    char* data = nullptr;
    size_t bytes = 0;
    cudaEvent_t free_after{};  // the last device copy out of it
  };
  ~PinnedPool() {
    for (Buffer& b : free_) {
      cudaEventSynchronize(b.free_after);
      cudaEventDestroy(b.free_after);
      cudaFreeHost(b.data);
    }
  }
  StatusOr<Buffer> Acquire(size_t bytes) {
    bytes = bytes == 0 ? 1 : bytes;
    {
      std::lock_guard<std::mutex> lock(mu_);
      for (size_t i = 0; i < free_.size(); ++i)
        if (free_[i].bytes >= bytes) {
          Buffer b = free_[i];
          free_.erase(free_.begin() + static_cast<std::ptrdiff_t>(i));
          DSC_CUDA_CHECK(cudaEventSynchronize(b.free_after));
          return b;
        }
    }
    Buffer b;
    DSC_CUDA_CHECK(cudaMallocHost(reinterpret_cast<void**>(&b.data), bytes));
    b.bytes = bytes;
    const cudaError_t e = cudaEventCreateWithFlags(&b.free_after, cudaEventDisableTiming);
    if (e != cudaSuccess) {
      cudaFreeHost(b.data);
      DSC_CUDA_CHECK(e);
    }
    return b;
  }
  // `b` is reusable once `stream` reaches this point.
  Status Release(Buffer b, cudaStream_t stream) {
    const cudaError_t e = cudaEventRecord(b.free_after, stream);
    std::lock_guard<std::mutex> lock(mu_);
    free_.push_back(b);  // kept even on error: the destructor frees it
    DSC_CUDA_CHECK(e);
    return Status::OK();
  }

 private:
  std::mutex mu_;
  std::vector<Buffer> free_;
};

// A staged collective: the host collective on the page-locked copy, then (in Wait) the copy of
// the result back to the device on res->compute.
class StagedHandle : public CommHandle {
 public:
  StagedHandle(std::unique_ptr<CommHandle> host, PinnedPool* pool, PinnedPool::Buffer buf, size_t from_offset,
               void* to, size_t bytes, cudaStream_t stream)
      : host_(std::move(host)), pool_(pool), buf_(buf), from_offset_(from_offset), to_(to), bytes_(bytes),
        stream_(stream) {}
  ~StagedHandle() override {
    if (!waited_) (void)Wait();
  }
  // comms_logger: Wait() records the collective in `log`, its latency ending when the host
  // collective finished.
  void Track(CollectiveLog* log, const CollectiveRecord& rec, std::chrono::steady_clock::time_point issued) {
    log_ = log;
    rec_ = rec;
    issued_ = issued;
  }
  Status Wait() override {
    if (waited_) return Status::OK();
    waited_ = true;
    Status s = host_->Wait();
    if (s.ok() && log_) {
      rec_.latency_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - issued_).count();
      log_->Record(rec_);
    }
    if (s.ok() && bytes_ > 0) s = Copy();
    Status r = pool_->Release(buf_, stream_);
    return s.ok() ? r : s;
  }
  // The host collective runs on the staged copy: let it advance (MPI progresses in MPI calls).
  Status Progress() override { return waited_ ? Status::OK() : host_->Progress(); }

 private:
  Status Copy() {
    DSC_CUDA_CHECK(cudaMemcpyAsync(to_, buf_.data + from_offset_, bytes_, cudaMemcpyHostToDevice, stream_));
    return Status::OK();
  }

  std::unique_ptr<CommHandle> host_;
  PinnedPool* pool_;
  PinnedPool::Buffer buf_;
  size_t from_offset_;
  void* to_;
  size_t bytes_;
  cudaStream_t stream_;
  bool waited_ = false;
  CollectiveLog* log_ = nullptr;
  CollectiveRecord rec_;
  std::chrono::steady_clock::time_point issued_;
};

// The host communicator on page-locked copies. Each collective waits for res->compute (the
// device data must be final), copies it to the host, and starts the host collective; Wait()
// finishes that and queues the copy back on res->compute. Bytes are counted here, by the model of
// communicator.h, not taken from the host communicator, which also carries the job's host-side
// collectives (and the GPU exchange that chose this communicator).
class StagedCommunicator : public Communicator {
 public:
  StagedCommunicator(Communicator* host, cuda::Resources* res) : host_(host), res_(res) {}
  int rank() const override { return host_->rank(); }
  int size() const override { return host_->size(); }

  StatusOr<std::unique_ptr<CommHandle>> AllReduce(void* buf, int64_t count, DType dtype, ReduceOp op) override {
    RETURN_IF_ERROR(CheckCollectiveArgs("all_reduce", buf, buf, count, dtype, true, op));
    const auto issued = std::chrono::steady_clock::now();
    const size_t bytes = static_cast<size_t>(count) * DTypeSize(dtype);
    ASSIGN_OR_RETURN(PinnedPool::Buffer b, Stage(buf, bytes, 0, bytes));
    auto h = host_->AllReduce(b.data, count, dtype, op);
    if (h.ok()) {
      Count("all_reduce");
      bytes_["all_reduce"] += AllReduceBytesSent(static_cast<int64_t>(bytes), size());
    }
    const auto n = static_cast<int64_t>(bytes);
    return Handle(std::move(h), b, 0, buf, bytes, {"all_reduce", n, AllReduceBytesSent(n, size()), 0.0}, issued);
  }
  StatusOr<std::unique_ptr<CommHandle>> ReduceScatter(const void* send, void* recv, int64_t recv_count, DType dtype,
                                                      ReduceOp op) override {
    RETURN_IF_ERROR(CheckCollectiveArgs("reduce_scatter", send, recv, recv_count, dtype, true, op));
    const auto issued = std::chrono::steady_clock::now();
    const size_t block = static_cast<size_t>(recv_count) * DTypeSize(dtype);
    const size_t all = block * static_cast<size_t>(size());
    ASSIGN_OR_RETURN(PinnedPool::Buffer b, Stage(send, all, 0, all + block));
    auto h = host_->ReduceScatter(b.data, b.data + all, recv_count, dtype, op);
    if (h.ok()) {
      Count("reduce_scatter");
      bytes_["reduce_scatter"] += ReduceScatterBytesSent(static_cast<int64_t>(all), size());
    }
    return Handle(std::move(h), b, all, recv, block,
                  {"reduce_scatter", static_cast<int64_t>(block), ReduceScatterBytesSent(static_cast<int64_t>(all), size()), 0.0},
                  issued);
  }
  StatusOr<std::unique_ptr<CommHandle>> AllGather(const void* send, void* recv, int64_t send_count,
                                                  DType dtype) override {
    RETURN_IF_ERROR(CheckCollectiveArgs("all_gather", send, recv, send_count, dtype, false));
    const auto issued = std::chrono::steady_clock::now();
    const size_t block = static_cast<size_t>(send_count) * DTypeSize(dtype);
    const size_t all = block * static_cast<size_t>(size());
    const size_t mine = block * static_cast<size_t>(rank());
    ASSIGN_OR_RETURN(PinnedPool::Buffer b, Stage(send, block, mine, all));
    auto h = host_->AllGather(b.data + mine, b.data, send_count, dtype);  // in place on the host
    if (h.ok()) {
      Count("all_gather");
      bytes_["all_gather"] += AllGatherBytesSent(static_cast<int64_t>(all), size());
    }
    return Handle(std::move(h), b, 0, recv, all,
                  {"all_gather", static_cast<int64_t>(block), AllGatherBytesSent(static_cast<int64_t>(all), size()), 0.0},
                  issued);
  }
  StatusOr<std::unique_ptr<CommHandle>> AllToAll(const void* send, void* recv, int64_t block_count,
                                                 DType dtype) override {
    RETURN_IF_ERROR(CheckCollectiveArgs("all_to_all", send, recv, block_count, dtype, false));
    const auto issued = std::chrono::steady_clock::now();
    const size_t all = static_cast<size_t>(block_count) * DTypeSize(dtype) * static_cast<size_t>(size());
    ASSIGN_OR_RETURN(PinnedPool::Buffer b, Stage(send, all, 0, all));
    auto h = host_->AllToAll(b.data, b.data, block_count, dtype);  // in place on the host
    if (h.ok()) {
      Count("all_to_all");
      bytes_["all_to_all"] += AllToAllBytesSent(static_cast<int64_t>(all), size());
    }
    const auto n = static_cast<int64_t>(all);
    return Handle(std::move(h), b, 0, recv, all, {"all_to_all", n, AllToAllBytesSent(n, size()), 0.0}, issued);
  }
  StatusOr<std::unique_ptr<CommHandle>> Broadcast(void* buf, int64_t count, DType dtype, int root) override {
    RETURN_IF_ERROR(CheckCollectiveArgs("broadcast", buf, buf, count, dtype, false));
    const auto issued = std::chrono::steady_clock::now();
    const size_t bytes = static_cast<size_t>(count) * DTypeSize(dtype);
    ASSIGN_OR_RETURN(PinnedPool::Buffer b, Stage(buf, rank() == root ? bytes : 0, 0, bytes));
    auto h = host_->Broadcast(b.data, count, dtype, root);
    if (h.ok()) {
      Count("broadcast");
      bytes_["broadcast"] += BroadcastBytesSent(static_cast<int64_t>(bytes), size(), root == rank());
    }
    const auto n = static_cast<int64_t>(bytes);
    return Handle(std::move(h), b, 0, buf, bytes, {"broadcast", n, BroadcastBytesSent(n, size(), root == rank()), 0.0},
                  issued);
  }
  Status Barrier() override { return host_->Barrier(); }
  std::map<std::string, int64_t> bytes_sent() const override { return bytes_; }
  std::map<std::string, int64_t> calls() const override { return calls_; }
  [[noreturn]] void Abort(const std::string& message, int exit_code) override {
    AbortThrough(host_, message, exit_code);
  }

 private:
  void Count(const char* kind) {
    if (size() > 1) ++calls_[kind];
  }
  // A page-locked buffer of `size` bytes holding the device's `bytes` at `offset`, once the
  // compute stream's work (which produces them) is done.
  StatusOr<PinnedPool::Buffer> Stage(const void* device, size_t bytes, size_t offset, size_t size) {
    ASSIGN_OR_RETURN(PinnedPool::Buffer b, pool_.Acquire(size));
    Status s = [&]() -> Status {
      if (bytes > 0)
        DSC_CUDA_CHECK(cudaMemcpyAsync(b.data + offset, device, bytes, cudaMemcpyDeviceToHost, res_->compute));
      DSC_CUDA_CHECK(cudaStreamSynchronize(res_->compute));
      return Status::OK();
    }();
    if (!s.ok()) {
      (void)pool_.Release(b, res_->compute);
      return s;
    }
    return b;
  }
  StatusOr<std::unique_ptr<CommHandle>> Handle(StatusOr<std::unique_ptr<CommHandle>> h, PinnedPool::Buffer b,
                                               size_t from_offset, void* to, size_t bytes, const CollectiveRecord& rec,
                                               std::chrono::steady_clock::time_point issued) {
    if (!h.ok()) {
      (void)pool_.Release(b, res_->compute);
      return h.status();
    }
    auto staged = std::make_unique<StagedHandle>(std::move(*h), &pool_, b, from_offset, to, bytes, res_->compute);
    if (collective_log() && size() > 1) staged->Track(collective_log(), rec, issued);
    return std::unique_ptr<CommHandle>(std::move(staged));
  }

  Communicator* host_;
  cuda::Resources* res_;
  PinnedPool pool_;
  std::map<std::string, int64_t> bytes_ = ZeroCollectiveCounts();
  std::map<std::string, int64_t> calls_ = bytes_;
};

}  // namespace

StatusOr<std::unique_ptr<Communicator>> CreateGpuLocalCommunicator(Communicator* host, cuda::Resources* res) {
  if (!res) return InvalidArgument("a GPU communicator needs the CUDA device's resources");
  if (host && host->size() != 1)
    return InvalidArgument("the single-rank GPU communicator was asked for a group of ", host->size());
  // Copies on res->compute, ordered with the kernels around them like every other device copy.
  return CreateLocalCommunicator(
      [res](void* dst, const void* src, size_t bytes) { return DeviceMove(dst, src, bytes, res->compute); }, host);
}

StatusOr<std::unique_ptr<Communicator>> CreateStagedCommunicator(Communicator* host, cuda::Resources* res) {
  if (!res) return InvalidArgument("a GPU communicator needs the CUDA device's resources");
  if (!host) return CreateGpuLocalCommunicator(host, res);
  return std::unique_ptr<Communicator>(std::make_unique<StagedCommunicator>(host, res));
}

}  // namespace dsc
