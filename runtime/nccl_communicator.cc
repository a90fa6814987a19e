// The NCCL communicator (one GPU per rank) and CreateGpuCommunicator, which exchanges the ranks'
// GPU UUIDs over the host communicator and picks the NCCL, staged or local communicator
// (runtime/gpu_communicator.h).
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <iostream>
#include <vector>

#include <cuda_runtime_api.h>
#include <nccl.h>

#include "kernels/cuda/comm_kernels.h"
#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/cuda_resources.h"
#include "runtime/gpu_communicator.h"

namespace dsc {
namespace {

bool Overlap(const void* a, size_t a_bytes, const void* b, size_t b_bytes) {
  auto pa = reinterpret_cast<uintptr_t>(a), pb = reinterpret_cast<uintptr_t>(b);
  return a_bytes > 0 && b_bytes > 0 && pa < pb + b_bytes && pb < pa + a_bytes;
}

// NCCL's element type and count for a buffer: reductions need the real type; moving data only
// needs bytes, which covers every dtype (bool, int8, ...).
struct NcclBuffer {
  ncclDataType_t type;
  size_t count;
};

NcclBuffer ToNccl(DType dtype, int64_t count) {
  switch (dtype) {
    case DType::kFloat32: return {ncclFloat32, static_cast<size_t>(count)};
    case DType::kFloat64: return {ncclFloat64, static_cast<size_t>(count)};
    case DType::kFloat16: return {ncclFloat16, static_cast<size_t>(count)};
    case DType::kBFloat16: return {ncclBfloat16, static_cast<size_t>(count)};
    case DType::kInt32: return {ncclInt32, static_cast<size_t>(count)};
    case DType::kInt64: return {ncclInt64, static_cast<size_t>(count)};
    default: return {ncclUint8, static_cast<size_t>(count) * DTypeSize(dtype)};
  }
}

class NcclCommunicator;

// A collective queued on the comm stream; `done` is recorded after it. Wait() makes the compute
// stream wait for `done` and returns at once.
class NcclHandle : public CommHandle {
 public:
  NcclHandle(NcclCommunicator* comm, const char* kind, cudaEvent_t done) : comm_(comm), kind_(kind), done_(done) {}
  ~NcclHandle() override {
    if (!waited_) (void)Wait();
  }
  Status Wait() override;

 private:
  NcclCommunicator* comm_;
  const char* kind_;
  cudaEvent_t done_;
  bool waited_ = false;
};

class NcclCommunicator : public Communicator {
 public:
  NcclCommunicator(Communicator* host, cuda::Resources* res) : host_(host), res_(res) {}
  ~NcclCommunicator() override {
    if (comm_) {
      if (broken_) {
        ncclCommAbort(comm_);
      } else {
        cudaStreamSynchronize(res_->comm);
        ncclCommDestroy(comm_);
      }
    }
    if (ready_) cudaEventDestroy(ready_);
    for (const Timed& t : timed_) {
      cudaEventDestroy(t.start);
      cudaEventDestroy(t.end);
    }
    if (start_) cudaEventDestroy(start_);
  }

  // Rank 0 makes the NCCL id and broadcasts it (with whether that worked, so a failure there
  // fails every rank instead of leaving them in the broadcast); every rank joins.
  Status Init() {
    rank_ = host_->rank();
    size_ = host_->size();
    DSC_CUDA_CHECK(cudaSetDevice(res_->device));
    DSC_CUDA_CHECK(cudaEventCreateWithFlags(&ready_, cudaEventDisableTiming));
    struct {
      ncclUniqueId id;
      int32_t ok;
    } boot{};
    Status made;
    if (rank_ == 0) {
      made = [&]() -> Status {
        DSC_NCCL_CHECK(ncclGetUniqueId(&boot.id));
        return Status::OK();
      }();
      boot.ok = made.ok() ? 1 : 0;
    }
    ASSIGN_OR_RETURN(auto h, host_->Broadcast(&boot, sizeof(boot), DType::kUInt8, 0));
    RETURN_IF_ERROR(h->Wait());
    if (!made.ok()) return made.WithContext(Who());
    if (!boot.ok) return Internal(Who(), ": rank 0 could not create the NCCL id");
    Status s = [&]() -> Status {
      DSC_NCCL_CHECK(ncclCommInitRank(&comm_, size_, boot.id, rank_));
      return Status::OK();
    }();
    if (!s.ok()) {
      comm_ = nullptr;
      return s.WithContext(Who());
    }
    return Status::OK();
  }

  int rank() const override { return rank_; }
  int size() const override { return size_; }
  cudaStream_t compute() const { return res_->compute; }

  StatusOr<std::unique_ptr<CommHandle>> AllReduce(void* buf, int64_t count, DType dtype, ReduceOp op) override {
    RETURN_IF_ERROR(Usable("all_reduce"));
    RETURN_IF_ERROR(CheckCollectiveArgs("all_reduce", buf, buf, count, dtype, true, op).WithContext(Who()));
    const NcclBuffer t = ToNccl(dtype, count);
    RETURN_IF_ERROR(Run([&]() -> Status {
      DSC_NCCL_CHECK(ncclAllReduce(buf, buf, t.count, t.type, ncclSum, comm_, res_->comm));
      return Average(buf, count, dtype, op);
    }));
    Count("all_reduce");
    const int64_t bytes = count * static_cast<int64_t>(DTypeSize(dtype));
    bytes_["all_reduce"] += AllReduceBytesSent(bytes, size_);
    return End({"all_reduce", bytes, AllReduceBytesSent(bytes, size_), 0.0});
  }

  StatusOr<std::unique_ptr<CommHandle>> ReduceScatter(const void* send, void* recv, int64_t recv_count, DType dtype,
                                                      ReduceOp op) override {
    RETURN_IF_ERROR(Usable("reduce_scatter"));
    RETURN_IF_ERROR(CheckCollectiveArgs("reduce_scatter", send, recv, recv_count, dtype, true, op).WithContext(Who()));
    const NcclBuffer t = ToNccl(dtype, recv_count);
    const size_t block = static_cast<size_t>(recv_count) * DTypeSize(dtype);
    const char* own_block = static_cast<const char*>(send) + static_cast<size_t>(rank_) * block;
    RETURN_IF_ERROR(Run([&]() -> Status {
      // NCCL's in place is recv = send + rank·block; any other overlap (the interface's send ==
      // recv, MPI's in place) lands in a stream-ordered temporary first.
      if (own_block != recv && Overlap(send, block * size_, recv, block)) {
        void* tmp = nullptr;
        DSC_CUDA_CHECK(cudaMallocAsync(&tmp, block, res_->comm));
        DSC_NCCL_CHECK(ncclReduceScatter(send, tmp, t.count, t.type, ncclSum, comm_, res_->comm));
        DSC_CUDA_CHECK(cudaMemcpyAsync(recv, tmp, block, cudaMemcpyDeviceToDevice, res_->comm));
        DSC_CUDA_CHECK(cudaFreeAsync(tmp, res_->comm));
      } else {
        DSC_NCCL_CHECK(ncclReduceScatter(send, recv, t.count, t.type, ncclSum, comm_, res_->comm));
      }
      return Average(recv, recv_count, dtype, op);
    }));
    Count("reduce_scatter");
    bytes_["reduce_scatter"] += ReduceScatterBytesSent(static_cast<int64_t>(block) * size_, size_);
    return End({"reduce_scatter", static_cast<int64_t>(block),
                ReduceScatterBytesSent(static_cast<int64_t>(block) * size_, size_), 0.0});
  }

  StatusOr<std::unique_ptr<CommHandle>> AllGather(const void* send, void* recv, int64_t send_count,
                                                  DType dtype) override {
    RETURN_IF_ERROR(Usable("all_gather"));
    RETURN_IF_ERROR(CheckCollectiveArgs("all_gather", send, recv, send_count, dtype, false).WithContext(Who()));
    const NcclBuffer t = ToNccl(dtype, send_count);
    const size_t block = static_cast<size_t>(send_count) * DTypeSize(dtype);
    const char* own_block = static_cast<const char*>(recv) + static_cast<size_t>(rank_) * block;
    RETURN_IF_ERROR(Run([&]() -> Status {
      if (send != own_block && Overlap(send, block, recv, block * size_)) {  // NCCL forbids it: send a copy
        void* tmp = nullptr;
        DSC_CUDA_CHECK(cudaMallocAsync(&tmp, block, res_->comm));
        DSC_CUDA_CHECK(cudaMemcpyAsync(tmp, send, block, cudaMemcpyDeviceToDevice, res_->comm));
        DSC_NCCL_CHECK(ncclAllGather(tmp, recv, t.count, t.type, comm_, res_->comm));
        DSC_CUDA_CHECK(cudaFreeAsync(tmp, res_->comm));
      } else {
        DSC_NCCL_CHECK(ncclAllGather(send, recv, t.count, t.type, comm_, res_->comm));
      }
      return Status::OK();
    }));
    Count("all_gather");
    bytes_["all_gather"] += AllGatherBytesSent(static_cast<int64_t>(block) * size_, size_);
    return End({"all_gather", static_cast<int64_t>(block), AllGatherBytesSent(static_cast<int64_t>(block) * size_, size_),
                0.0});
  }

  // Grouped point-to-point (NCCL has no all-to-all of its own); in place goes through a
  // stream-ordered copy of the send buffer.
  StatusOr<std::unique_ptr<CommHandle>> AllToAll(const void* send, void* recv, int64_t block_count,
                                                 DType dtype) override {
    RETURN_IF_ERROR(Usable("all_to_all"));
    RETURN_IF_ERROR(CheckCollectiveArgs("all_to_all", send, recv, block_count, dtype, false).WithContext(Who()));
    const NcclBuffer t = ToNccl(dtype, block_count);
    const size_t block = static_cast<size_t>(block_count) * DTypeSize(dtype);
    const size_t all = block * static_cast<size_t>(size_);
    RETURN_IF_ERROR(Run([&]() -> Status {
      const char* from = static_cast<const char*>(send);
      void* tmp = nullptr;
      if (Overlap(send, all, recv, all)) {
        DSC_CUDA_CHECK(cudaMallocAsync(&tmp, all, res_->comm));
        DSC_CUDA_CHECK(cudaMemcpyAsync(tmp, send, all, cudaMemcpyDeviceToDevice, res_->comm));
        from = static_cast<const char*>(tmp);
      }
      DSC_NCCL_CHECK(ncclGroupStart());
      for (int r = 0; r < size_; ++r) {
        DSC_NCCL_CHECK(ncclSend(from + r * block, t.count, t.type, r, comm_, res_->comm));
        DSC_NCCL_CHECK(ncclRecv(static_cast<char*>(recv) + r * block, t.count, t.type, r, comm_, res_->comm));
      }
      DSC_NCCL_CHECK(ncclGroupEnd());
      if (tmp) DSC_CUDA_CHECK(cudaFreeAsync(tmp, res_->comm));
      return Status::OK();
    }));
    Count("all_to_all");
    bytes_["all_to_all"] += AllToAllBytesSent(static_cast<int64_t>(all), size_);
    return End({"all_to_all", static_cast<int64_t>(all), AllToAllBytesSent(static_cast<int64_t>(all), size_), 0.0});
  }

  StatusOr<std::unique_ptr<CommHandle>> Broadcast(void* buf, int64_t count, DType dtype, int root) override {
    RETURN_IF_ERROR(Usable("broadcast"));
    RETURN_IF_ERROR(CheckCollectiveArgs("broadcast", buf, buf, count, dtype, false).WithContext(Who()));
    if (root < 0 || root >= size_) return InvalidArgument(Who(), ": broadcast: root ", root, " is not a rank of ", size_);
    const NcclBuffer t = ToNccl(dtype, count);
    RETURN_IF_ERROR(Run([&]() -> Status {
      DSC_NCCL_CHECK(ncclBroadcast(buf, buf, t.count, t.type, root, comm_, res_->comm));
      return Status::OK();
    }));
    Count("broadcast");
    const int64_t bytes = count * static_cast<int64_t>(DTypeSize(dtype));
    bytes_["broadcast"] += BroadcastBytesSent(bytes, size_, root == rank_);
    return End({"broadcast", bytes, BroadcastBytesSent(bytes, size_, root == rank_), 0.0});
  }

  Status Barrier() override { return host_->Barrier(); }
  // comms_logger: each timed collective's comm-stream time, between the CUDA events Run() and End()
  // recorded around it, once the end event has completed.
  Status FlushCollectiveLog() override {
    std::vector<Timed> timed;
    timed.swap(timed_);
    Status status;
    for (const Timed& t : timed) {
      if (status.ok()) {
        status = [&]() -> Status {
          DSC_CUDA_CHECK(cudaEventSynchronize(t.end));
          float ms = 0;
          DSC_CUDA_CHECK(cudaEventElapsedTime(&ms, t.start, t.end));
          CollectiveRecord rec = t.rec;
          rec.latency_s = static_cast<double>(ms) / 1e3;
          if (CollectiveLog* log = collective_log()) log->Record(rec);
          return Status::OK();
        }();
      }
      cudaEventDestroy(t.start);
      cudaEventDestroy(t.end);
    }
    return status.WithContext(Who());
  }
  std::map<std::string, int64_t> bytes_sent() const override { return bytes_; }
  std::map<std::string, int64_t> calls() const override { return calls_; }

  [[noreturn]] void Abort(const std::string& message, int exit_code) override {
    if (comm_) ncclCommAbort(comm_);  // frees this rank's GPU from collectives that will never end
    comm_ = nullptr;
    host_->Abort(message, exit_code);
    std::_Exit(exit_code);  // Abort does not return; the compiler cannot see it through the virtual call
  }

  // An error NCCL found while running collectives (a peer died, a network error).
  Status AsyncError(const char* kind) {
    ncclResult_t async = ncclSuccess;
    const ncclResult_t r = ncclCommGetAsyncError(comm_, &async);
    const ncclResult_t bad = r != ncclSuccess ? r : async;
    if (bad == ncclSuccess || bad == ncclInProgress) return Status::OK();
    broken_ = true;
    return cuda::NcclError(static_cast<int>(bad), ncclGetErrorString(bad), "ncclCommGetAsyncError", __FILE__, __LINE__)
        .WithContext(StrCat(Who(), ": collective ", kind));
  }

 private:
  std::string Who() const { return StrCat("rank ", rank_); }
  void Count(const char* kind) {
    if (size_ > 1) ++calls_[kind];
  }
  Status Usable(const char* kind) const {
    if (broken_ || !comm_)
      return FailedPrecondition(Who(), ": ", kind, ": the communicator is unusable after a failed collective");
    return Status::OK();
  }

  // The collective queued by `body` on the comm stream, after the compute stream's work so far.
  template <typename F>
  Status Run(F&& body) {
    Status s = [&]() -> Status {
      DSC_CUDA_CHECK(cudaEventRecord(ready_, res_->compute));
      DSC_CUDA_CHECK(cudaStreamWaitEvent(res_->comm, ready_, 0));
      if (collective_log() && size_ > 1) {  // comms_logger: the collective's start on the comm stream
        DSC_CUDA_CHECK(cudaEventCreate(&start_));
        DSC_CUDA_CHECK(cudaEventRecord(start_, res_->comm));
      }
      return body();
    }();
    if (!s.ok()) {
      broken_ = true;  // ranks may now disagree on which collectives were issued
      return s.WithContext(Who());
    }
    return Status::OK();
  }

  // kAvg: the sum divided afterwards, in the buffer's dtype (communicator.h); NCCL's ncclAvg
  // pre-multiplies floats by 1/size, which rounds differently.
  Status Average(void* buf, int64_t count, DType dtype, ReduceOp op) {
    if (op != ReduceOp::kAvg) return Status::OK();
    return cuda::DivideInPlace(buf, count, dtype, size_, res_->comm);
  }

  StatusOr<std::unique_ptr<CommHandle>> End(const CollectiveRecord& rec) {
    const char* kind = rec.kind;
    cudaEvent_t done{};
    Status s = [&]() -> Status {
      if (start_) {  // timed: `done` doubles as the end event FlushCollectiveLog reads
        DSC_CUDA_CHECK(cudaEventCreate(&done));
        DSC_CUDA_CHECK(cudaEventRecord(done, res_->comm));
        cudaEvent_t end{};
        DSC_CUDA_CHECK(cudaEventCreate(&end));
        DSC_CUDA_CHECK(cudaEventRecord(end, res_->comm));
        timed_.push_back(Timed{rec, start_, end});
        start_ = nullptr;
        return Status::OK();
      }
      DSC_CUDA_CHECK(cudaEventCreateWithFlags(&done, cudaEventDisableTiming));
      DSC_CUDA_CHECK(cudaEventRecord(done, res_->comm));
      return Status::OK();
    }();
    if (!s.ok()) {
      if (done) cudaEventDestroy(done);
      broken_ = true;
      return s.WithContext(StrCat(Who(), ": collective ", kind));
    }
    return std::unique_ptr<CommHandle>(std::make_unique<NcclHandle>(this, kind, done));
  }

  Communicator* host_;
  cuda::Resources* res_;
  ncclComm_t comm_ = nullptr;
  cudaEvent_t ready_ = nullptr;
  // comms_logger's timings: the start event of the collective being queued, and those queued
  // but not yet read.
  struct Timed {
    CollectiveRecord rec;
    cudaEvent_t start, end;
  };
  cudaEvent_t start_ = nullptr;
  std::vector<Timed> timed_;
  int rank_ = 0, size_ = 1;
  bool broken_ = false;
  std::map<std::string, int64_t> bytes_ = ZeroCollectiveCounts();
  std::map<std::string, int64_t> calls_ = bytes_;
};

Status NcclHandle::Wait() {
  if (waited_) return Status::OK();
  waited_ = true;
  const cudaError_t e = cudaStreamWaitEvent(comm_->compute(), done_, 0);
  cudaEventDestroy(done_);  // released once the event completes; the wait above already holds it
  if (e != cudaSuccess)
    return cuda::CudaError(e, "cudaStreamWaitEvent(compute, done)", __FILE__, __LINE__)
        .WithContext(StrCat("collective ", kind_));
  return comm_->AsyncError(kind_);
}

StatusOr<gpucomm::RankGpu> ThisRankGpu(const cuda::Resources& res) {
  cudaDeviceProp prop{};
  DSC_CUDA_CHECK(cudaGetDeviceProperties(&prop, res.device));
  gpucomm::RankGpu r;
  r.uuid.assign(prop.uuid.bytes, gpucomm::kUuidBytes);
  char host[gpucomm::kHostBytes] = {};
  if (gethostname(host, sizeof(host) - 1) != 0) std::strcpy(host, "?");
  r.host = host;
  return r;
}

}  // namespace

StatusOr<std::unique_ptr<Communicator>> CreateNcclCommunicator(Communicator* host, cuda::Resources* res) {
  if (!res) return InvalidArgument("a GPU communicator needs the CUDA device's resources");
  if (!host) return InvalidArgument("the NCCL communicator is bootstrapped over a host communicator");
  auto c = std::make_unique<NcclCommunicator>(host, res);
  RETURN_IF_ERROR(c->Init());
  return std::unique_ptr<Communicator>(std::move(c));
}

StatusOr<std::unique_ptr<Communicator>> CreateGpuCommunicator(Communicator* host, cuda::Resources* res) {
  if (!res) return InvalidArgument("a GPU communicator needs the CUDA device's resources");
  if (!host || host->size() == 1) return CreateGpuLocalCommunicator(host, res);
  const int rank = host->rank(), size = host->size();
  ASSIGN_OR_RETURN(gpucomm::RankGpu me, ThisRankGpu(*res));
  std::vector<char> records(gpucomm::kRecordBytes * static_cast<size_t>(size));
  char* mine = records.data() + gpucomm::kRecordBytes * static_cast<size_t>(rank);
  gpucomm::EncodeRankGpu(me, mine);
  {
    ASSIGN_OR_RETURN(auto h, host->AllGather(mine, records.data(), gpucomm::kRecordBytes, DType::kUInt8));
    RETURN_IF_ERROR(h->Wait());
  }
  std::vector<gpucomm::RankGpu> gpus;
  for (int r = 0; r < size; ++r)
    gpus.push_back(gpucomm::DecodeRankGpu(records.data() + gpucomm::kRecordBytes * static_cast<size_t>(r)));
  const char* force = std::getenv("DSC_GPU_COMM");
  std::string why;
  ASSIGN_OR_RETURN(gpucomm::Kind kind, gpucomm::Choose(gpus, force ? force : "", &why));
  switch (kind) {
    case gpucomm::Kind::kLocal: return CreateGpuLocalCommunicator(host, res);
    case gpucomm::Kind::kNccl: return CreateNcclCommunicator(host, res);
    case gpucomm::Kind::kStaged: return CreateStagedCommunicator(host, res);
  }
  return Internal("unknown GPU communicator kind");
}

}  // namespace dsc
