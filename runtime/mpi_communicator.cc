// The MPI communicator: non-blocking MPI collectives behind the Communicator interface, with
// errors returned as Status (MPI_ERRORS_RETURN) and a watchdog on every wait.
#include <chrono>
#include <climits>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <sched.h>
#include <thread>
#include <vector>

// The C API is all we use; the deprecated C++ bindings only add link dependencies.
#ifndef OMPI_SKIP_MPICXX
#define OMPI_SKIP_MPICXX 1
#endif
#ifndef MPICH_SKIP_MPICXX
#define MPICH_SKIP_MPICXX 1
#endif
#include <mpi.h>

#include "kernels/cpu/half_convert.h"
#include "runtime/communicator.h"

namespace dsc {
namespace {

// The launcher's rank for messages written before MPI itself can say (-1 when unknown).
int LauncherRank() {
  for (const char* name : {"OMPI_COMM_WORLD_RANK", "PMI_RANK", "PMIX_RANK", "SLURM_PROCID"})
    if (const char* v = std::getenv(name); v && *v) return std::atoi(v);
  return -1;
}

Status MpiError(int rc, const char* call, const char* file, int line, int rank) {
  char text[MPI_MAX_ERROR_STRING] = {};
  int len = 0;
  if (MPI_Error_string(rc, text, &len) != MPI_SUCCESS) len = std::snprintf(text, sizeof(text), "error code %d", rc);
  // `call` is the whole expression; its function name is what a reader needs.
  std::string name(call);
  name = name.substr(0, name.find('('));
  const char* base = std::strrchr(file, '/');
  return Internal("rank ", rank, ": ", name, " failed at ", base ? base + 1 : file, ":", line, ": ",
                  std::string(text, static_cast<size_t>(len)));
}

}  // namespace
}  // namespace dsc

// Every MPI call goes through this: on failure, a Status naming the call, file, line and rank.
#define DSC_MPI_CHECK(rank, call)                                                                           \
  do {                                                                                                      \
    const int _dsc_mpi_rc = (call);                                                                         \
    if (_dsc_mpi_rc != MPI_SUCCESS) return ::dsc::MpiError(_dsc_mpi_rc, #call, __FILE__, __LINE__, (rank)); \
  } while (0)

// For destructors, which cannot return a Status: the same message, on stderr.
#define DSC_MPI_WARN(rank, call)                                                                     \
  do {                                                                                               \
    const int _dsc_mpi_rc = (call);                                                                  \
    if (_dsc_mpi_rc != MPI_SUCCESS)                                                                  \
      std::cerr << ::dsc::MpiError(_dsc_mpi_rc, #call, __FILE__, __LINE__, (rank)).message() + "\n"; \
  } while (0)

namespace dsc {
namespace {

struct MpiType {
  MPI_Datatype type;
  int count;
};

// Reductions need the element type; moving data only needs bytes, which covers every dtype.
// float16 and bfloat16 have no MPI type: they travel as 16-bit words and reduce with our own ops
// (HalfSumOps below).
StatusOr<MpiType> ToMpi(const char* kind, int64_t count, DType dtype, int rank) {
  MPI_Datatype t = MPI_DATATYPE_NULL;
  switch (dtype) {
    case DType::kFloat32: t = MPI_FLOAT; break;
    case DType::kFloat64: t = MPI_DOUBLE; break;
    case DType::kInt32: t = MPI_INT32_T; break;
    case DType::kInt64: t = MPI_INT64_T; break;
    case DType::kFloat16:
    case DType::kBFloat16: t = MPI_UINT16_T; break;
    default: break;
  }
  const int64_t n = t == MPI_DATATYPE_NULL ? count * static_cast<int64_t>(DTypeSize(dtype)) : count;
  if (n > INT_MAX)
    return Unimplemented("rank ", rank, ": ", kind, " of ", count, " ", DTypeName(dtype),
                         " elements exceeds MPI's int count; split the buffer");
  return MpiType{t == MPI_DATATYPE_NULL ? MPI_BYTE : t, static_cast<int>(n)};
}

bool Overlap(const void* a, size_t a_bytes, const void* b, size_t b_bytes) {
  auto pa = reinterpret_cast<uintptr_t>(a), pb = reinterpret_cast<uintptr_t>(b);
  return a_bytes > 0 && b_bytes > 0 && pa < pb + b_bytes && pb < pa + a_bytes;
}

template <typename T>
void Divide(void* buf, int64_t count, int by) {
  T* p = static_cast<T*>(buf);
  for (int64_t i = 0; i < count; ++i) p[i] /= static_cast<T>(by);
}

// kAvg on a reduced half buffer: round(float(s) / by), one rounding (communicator.h).
void DivideHalf(void* buf, int64_t count, int by, bool bf16) {
  uint16_t* p = static_cast<uint16_t*>(buf);
  const float d = static_cast<float>(by);
  for (int64_t i = 0; i < count; ++i) p[i] = half::Round(half::Load(p, i, bf16) / d, bf16);
}

// The MPI user operations that sum float16/bfloat16 words: inout = round(float(in) + float(inout)),
// nearest even (communicator.h). MPI calls them on every pair of partial results it combines.
template <bool kBf16>
void HalfSum(void* in, void* inout, int* len, MPI_Datatype*) {
  const uint16_t* a = static_cast<const uint16_t*>(in);
  uint16_t* b = static_cast<uint16_t*>(inout);
  const int64_t n = *len;
  for (int64_t i = 0; i < n; ++i) b[i] = half::Round(half::Load(a, i, kBf16) + half::Load(b, i, kBf16), kBf16);
}

class MpiCommunicator;

// What Wait() finishes after MPI completes: the kAvg division and the copy out of a staging
// buffer (used where the caller's buffers alias in a way MPI does not allow).
struct Finish {
  void* result = nullptr;  // where the reduction landed
  int64_t count = 0;
  DType dtype = DType::kUndefined;
  int divide_by = 0;  // 0: no average
  std::vector<char> staging;
  void* copy_to = nullptr;  // non-null: copy `count` elements from `result` (the staging) here
};

class MpiHandle : public CommHandle {
 public:
  MpiHandle(MpiCommunicator* comm, const char* kind, MPI_Request req, Finish finish)
      : comm_(comm), kind_(kind), req_(req), finish_(std::move(finish)) {}
  ~MpiHandle() override {
    if (!waited_) (void)Wait();
  }
  Status Wait() override;
  Status Progress() override;

 private:
  // One MPI_Test: done_ once MPI says the collective completed (the request is then
  // MPI_REQUEST_NULL, so it is not tested again); an error marks the communicator broken.
  Status Test();

  MpiCommunicator* comm_;
  const char* kind_;
  MPI_Request req_;
  Finish finish_;
  bool done_ = false;
  bool waited_ = false;
};

class MpiCommunicator : public Communicator {
 public:
  MpiCommunicator(MPI_Comm comm, int rank, int size, double timeout_s, bool owns_mpi)
      : comm_(comm), rank_(rank), size_(size), timeout_s_(timeout_s), owns_mpi_(owns_mpi) {}
  ~MpiCommunicator() override {
    // A collective that never completed keeps MPI_Finalize waiting for ever: end the job instead.
    if (broken_) Abort(StrCat("rank ", rank_, ": aborting the job: a collective failed or timed out"), 1);
    for (MPI_Op* op : {&f16_sum_, &bf16_sum_})
      if (*op != MPI_OP_NULL) DSC_MPI_WARN(rank_, MPI_Op_free(op));
    DSC_MPI_WARN(rank_, MPI_Comm_free(&comm_));
    if (owns_mpi_) DSC_MPI_WARN(rank_, MPI_Finalize());
  }

  int rank() const override { return rank_; }
  int size() const override { return size_; }
  double timeout_s() const { return timeout_s_; }

  // The half-precision sums (commutative: MPI may combine partial results in any order).
  Status CreateOps() {
    DSC_MPI_CHECK(rank_, MPI_Op_create(&HalfSum<false>, 1, &f16_sum_));
    DSC_MPI_CHECK(rank_, MPI_Op_create(&HalfSum<true>, 1, &bf16_sum_));
    return Status::OK();
  }
  void MarkBroken() { broken_ = true; }

  StatusOr<std::unique_ptr<CommHandle>> AllReduce(void* buf, int64_t count, DType dtype, ReduceOp op) override {
    RETURN_IF_ERROR(Usable("all_reduce"));
    RETURN_IF_ERROR(CheckCollectiveArgs("all_reduce", buf, buf, count, dtype, true, op).WithContext(Who()));
    ASSIGN_OR_RETURN(MpiType t, ToMpi("all_reduce", count, dtype, rank_));
    MPI_Request req;
    DSC_MPI_CHECK(rank_, MPI_Iallreduce(MPI_IN_PLACE, buf, t.count, t.type, SumOp(dtype), comm_, &req));
    Count("all_reduce");
    bytes_["all_reduce"] += AllReduceBytesSent(count * static_cast<int64_t>(DTypeSize(dtype)), size_);
    return Handle("all_reduce", req, Average(buf, count, dtype, op));
  }

  StatusOr<std::unique_ptr<CommHandle>> ReduceScatter(const void* send, void* recv, int64_t recv_count, DType dtype,
                                                      ReduceOp op) override {
    RETURN_IF_ERROR(Usable("reduce_scatter"));
    RETURN_IF_ERROR(CheckCollectiveArgs("reduce_scatter", send, recv, recv_count, dtype, true, op).WithContext(Who()));
    ASSIGN_OR_RETURN(MpiType t, ToMpi("reduce_scatter", recv_count, dtype, rank_));
    const size_t block = static_cast<size_t>(recv_count) * DTypeSize(dtype);
    Finish finish = Average(recv, recv_count, dtype, op);
    MPI_Request req;
    if (send == recv) {  // MPI's in place: input from recv (all blocks), result in its first block
      DSC_MPI_CHECK(rank_,
                    MPI_Ireduce_scatter_block(MPI_IN_PLACE, recv, t.count, t.type, SumOp(dtype), comm_, &req));
    } else if (Overlap(send, block * size_, recv, block)) {  // e.g. recv = send + rank·block
      finish.staging.resize(block);
      finish.result = finish.staging.data();
      finish.copy_to = recv;
      DSC_MPI_CHECK(rank_, MPI_Ireduce_scatter_block(send, finish.staging.data(), t.count, t.type, SumOp(dtype),
                                                     comm_, &req));
    } else {
      DSC_MPI_CHECK(rank_, MPI_Ireduce_scatter_block(send, recv, t.count, t.type, SumOp(dtype), comm_, &req));
    }
    Count("reduce_scatter");
    bytes_["reduce_scatter"] += ReduceScatterBytesSent(static_cast<int64_t>(block) * size_, size_);
    return Handle("reduce_scatter", req, std::move(finish));
  }

  StatusOr<std::unique_ptr<CommHandle>> AllGather(const void* send, void* recv, int64_t send_count,
                                                  DType dtype) override {
    RETURN_IF_ERROR(Usable("all_gather"));
    RETURN_IF_ERROR(CheckCollectiveArgs("all_gather", send, recv, send_count, dtype, false).WithContext(Who()));
    ASSIGN_OR_RETURN(MpiType t, ToMpi("all_gather", send_count, dtype, rank_));
    const size_t block = static_cast<size_t>(send_count) * DTypeSize(dtype);
    Finish finish;
    const void* from = send;
    if (send == static_cast<const char*>(recv) + rank_ * block) {
      from = MPI_IN_PLACE;
    } else if (Overlap(send, block, recv, block * size_)) {  // MPI forbids it: send a copy
      finish.staging.assign(static_cast<const char*>(send), static_cast<const char*>(send) + block);
      from = finish.staging.data();
    }
    MPI_Request req;
    DSC_MPI_CHECK(rank_, MPI_Iallgather(from, t.count, t.type, recv, t.count, t.type, comm_, &req));
    Count("all_gather");
    bytes_["all_gather"] += AllGatherBytesSent(static_cast<int64_t>(block) * size_, size_);
    return Handle("all_gather", req, std::move(finish));
  }

  StatusOr<std::unique_ptr<CommHandle>> Broadcast(void* buf, int64_t count, DType dtype, int root) override {
    RETURN_IF_ERROR(Usable("broadcast"));
    RETURN_IF_ERROR(CheckCollectiveArgs("broadcast", buf, buf, count, dtype, false).WithContext(Who()));
    if (root < 0 || root >= size_)
      return InvalidArgument(Who(), ": broadcast: root ", root, " is not a rank of ", size_);
    ASSIGN_OR_RETURN(MpiType t, ToMpi("broadcast", count, dtype, rank_));
    MPI_Request req;
    DSC_MPI_CHECK(rank_, MPI_Ibcast(buf, t.count, t.type, root, comm_, &req));
    Count("broadcast");
    bytes_["broadcast"] += BroadcastBytesSent(count * static_cast<int64_t>(DTypeSize(dtype)), size_, root == rank_);
    return Handle("broadcast", req, Finish{});
  }

  // Non-blocking underneath so the watchdog covers it like every other collective.
  Status Barrier() override {
    RETURN_IF_ERROR(Usable("barrier"));
    MPI_Request req;
    DSC_MPI_CHECK(rank_, MPI_Ibarrier(comm_, &req));
    MpiHandle h(this, "barrier", req, Finish{});
    return h.Wait();
  }

  std::map<std::string, int64_t> bytes_sent() const override { return bytes_; }
  std::map<std::string, int64_t> calls() const override { return calls_; }

  [[noreturn]] void Abort(const std::string& message, int exit_code) override {
    std::cerr << message + "\n" << std::flush;  // one write: other ranks print at the same time
    MPI_Abort(comm_, exit_code);
    std::_Exit(exit_code);  // MPI_Abort does not return; its declaration just does not say so
  }

 private:
  std::string Who() const { return StrCat("rank ", rank_); }
  MPI_Op SumOp(DType dtype) const {
    return dtype == DType::kFloat16 ? f16_sum_ : dtype == DType::kBFloat16 ? bf16_sum_ : MPI_SUM;
  }
  void Count(const char* kind) {
    if (size_ > 1) ++calls_[kind];
  }
  Status Usable(const char* kind) const {
    if (broken_)
      return FailedPrecondition(Who(), ": ", kind, ": the communicator is unusable after a failed collective");
    return Status::OK();
  }
  Finish Average(void* buf, int64_t count, DType dtype, ReduceOp op) const {
    Finish f;
    f.result = buf;
    f.count = count;
    f.dtype = dtype;
    f.divide_by = op == ReduceOp::kAvg ? size_ : 0;
    return f;
  }
  StatusOr<std::unique_ptr<CommHandle>> Handle(const char* kind, MPI_Request req, Finish finish) {
    return std::unique_ptr<CommHandle>(std::make_unique<MpiHandle>(this, kind, req, std::move(finish)));
  }

  MPI_Comm comm_;
  int rank_, size_;
  double timeout_s_;
  bool owns_mpi_;
  bool broken_ = false;
  MPI_Op f16_sum_ = MPI_OP_NULL, bf16_sum_ = MPI_OP_NULL;
  std::map<std::string, int64_t> bytes_ = {
      {"all_reduce", 0}, {"reduce_scatter", 0}, {"all_gather", 0}, {"broadcast", 0}};
  std::map<std::string, int64_t> calls_ = bytes_;
};

Status MpiHandle::Test() {
  int done = 0;
  const int rc = MPI_Test(&req_, &done, MPI_STATUS_IGNORE);
  if (rc != MPI_SUCCESS) {
    comm_->MarkBroken();
    return MpiError(rc, "MPI_Test", __FILE__, __LINE__, comm_->rank()).WithContext(StrCat("collective ", kind_));
  }
  done_ = done != 0;
  return Status::OK();
}

// Between nodes: one test, so Open MPI moves the collective on while the rank computes. The
// finishing work (the average, the copy out) stays in Wait().
Status MpiHandle::Progress() {
  if (done_ || waited_) return Status::OK();
  return Test();
}

// MPI_Test in a loop rather than MPI_Wait, so a rank that died or hangs turns into an error here
// after the timeout instead of a job that waits for ever. Polling yields the core first (ranks
// may outnumber cores), then sleeps up to 1 ms; Open MPI progresses the collective inside MPI_Test.
Status MpiHandle::Wait() {
  if (waited_) return Status::OK();
  waited_ = true;
  const int rank = comm_->rank();
  const auto start = std::chrono::steady_clock::now();
  const auto deadline = start + std::chrono::duration<double>(comm_->timeout_s());
  auto nap = std::chrono::microseconds(20);
  for (int polls = 0; !done_; ++polls) {
    RETURN_IF_ERROR(Test());
    if (done_) break;
    if (std::chrono::steady_clock::now() > deadline) {
      comm_->MarkBroken();
      return FailedPrecondition("rank ", rank, ": collective ", kind_, " timed out after ", comm_->timeout_s(),
                                " s (another rank died or hangs?)");
    }
    if (polls < 1000) {
      sched_yield();
    } else {
      std::this_thread::sleep_for(nap);
      nap = std::min(nap * 2, std::chrono::microseconds(1000));
    }
  }
  if (finish_.divide_by > 1) {
    switch (finish_.dtype) {
      case DType::kFloat32: Divide<float>(finish_.result, finish_.count, finish_.divide_by); break;
      case DType::kFloat64: Divide<double>(finish_.result, finish_.count, finish_.divide_by); break;
      case DType::kFloat16: DivideHalf(finish_.result, finish_.count, finish_.divide_by, false); break;
      case DType::kBFloat16: DivideHalf(finish_.result, finish_.count, finish_.divide_by, true); break;
      default: return Internal("rank ", rank, ": ", kind_, ": avg on ", DTypeName(finish_.dtype));
    }
  }
  if (finish_.copy_to)
    std::memcpy(finish_.copy_to, finish_.result, static_cast<size_t>(finish_.count) * DTypeSize(finish_.dtype));
  return Status::OK();
}

}  // namespace

StatusOr<std::unique_ptr<Communicator>> CreateMpiCommunicator() {
  int rank = LauncherRank();
  ASSIGN_OR_RETURN(double timeout_s, CollectiveTimeoutSeconds());
  int finalized = 0, initialized = 0;
  DSC_MPI_CHECK(rank, MPI_Finalized(&finalized));
  if (finalized)
    return FailedPrecondition("rank ", rank, ": MPI was finalized already; a process joins one MPI job once");
  DSC_MPI_CHECK(rank, MPI_Initialized(&initialized));
  int provided = 0;
  if (initialized) {
    DSC_MPI_CHECK(rank, MPI_Query_thread(&provided));
  } else {
    DSC_MPI_CHECK(rank, MPI_Init_thread(nullptr, nullptr, MPI_THREAD_FUNNELED, &provided));
  }
  if (provided < MPI_THREAD_FUNNELED)
    return FailedPrecondition("rank ", rank, ": the MPI library does not provide MPI_THREAD_FUNNELED");
  MPI_Comm comm;
  DSC_MPI_CHECK(rank, MPI_Comm_dup(MPI_COMM_WORLD, &comm));
  DSC_MPI_CHECK(rank, MPI_Comm_set_errhandler(comm, MPI_ERRORS_RETURN));
  int size = 0;
  DSC_MPI_CHECK(rank, MPI_Comm_rank(comm, &rank));
  DSC_MPI_CHECK(rank, MPI_Comm_size(comm, &size));
  auto result = std::make_unique<MpiCommunicator>(comm, rank, size, timeout_s, !initialized);
  RETURN_IF_ERROR(result->CreateOps());
  // A launcher from a different MPI than the one linked makes every process a singleton.
  if (const int launched = LauncherWorldSize(); launched > 0 && launched != size)
    return FailedPrecondition("rank ", rank, ": the launcher started ", launched, " ranks but MPI sees ", size,
                              "; was dsrun started by another MPI's mpirun? (dsrun links Open MPI)");
  return std::unique_ptr<Communicator>(std::move(result));
}

}  // namespace dsc
