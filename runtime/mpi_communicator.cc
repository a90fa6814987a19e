// The MPI communicator: non-blocking MPI collectives (rings of point-to-point messages for large
// buffers) behind the Communicator interface, with errors returned as Status (MPI_ERRORS_RETURN)
// and a watchdog on every wait.
#include <chrono>
#include <algorithm>
#include <climits>
#include <cstdlib>
#include <cstring>
#include <memory>
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

// A collective as issued, for comms_logger: its record (latency still 0) and when it started.
struct Issued {
  CollectiveRecord rec;
  std::chrono::steady_clock::time_point at;
};

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

// A collective that completes by polling: Wait() calls Test() until it reports done (with the
// watchdog), then runs the Finish.
class PolledHandle : public CommHandle {
 public:
  PolledHandle(MpiCommunicator* comm, const char* kind, Finish finish)
      : comm_(comm), kind_(kind), finish_(std::move(finish)) {}
  Status Wait() override;
  // Between nodes: one test, so the collective moves on while the rank computes. The finishing
  // work (the average, the copy out) stays in Wait().
  Status Progress() override {
    if (done_ || waited_) return Status::OK();
    RETURN_IF_ERROR(Test());
    NoteDone();
    return Status::OK();
  }
  // comms_logger: Wait() records the collective in `log` (the communicator's, attached at issue).
  void Track(CollectiveLog* log, const Issued& issued) {
    log_ = log;
    issued_ = issued;
  }

 protected:
  // Advances the collective without blocking and sets done_ once it completed; an error marks
  // the communicator broken.
  virtual Status Test() = 0;
  // For destructors of subclasses, whose Test() must not run after they are gone.
  void WaitIfNotWaited() {
    if (!waited_) (void)Wait();
  }
  Status Failed(int rc, const char* call);
  // The latency ends when a test first sees the collective complete.
  void NoteDone() {
    if (done_ && log_ && issued_.rec.latency_s == 0)
      issued_.rec.latency_s =
          std::max(1e-9, std::chrono::duration<double>(std::chrono::steady_clock::now() - issued_.at).count());
  }

  MpiCommunicator* comm_;
  const char* kind_;
  Finish finish_;
  bool done_ = false;
  bool waited_ = false;
  CollectiveLog* log_ = nullptr;
  Issued issued_;
};

// One MPI non-blocking collective.
class MpiHandle : public PolledHandle {
 public:
  MpiHandle(MpiCommunicator* comm, const char* kind, MPI_Request req, Finish finish)
      : PolledHandle(comm, kind, std::move(finish)), req_(req) {}
  ~MpiHandle() override { WaitIfNotWaited(); }

 private:
  // One MPI_Test: done once MPI says the collective completed (the request is then
  // MPI_REQUEST_NULL, so it is not tested again).
  Status Test() override {
    int done = 0;
    if (const int rc = MPI_Test(&req_, &done, MPI_STATUS_IGNORE); rc != MPI_SUCCESS) return Failed(rc, "MPI_Test");
    done_ = done != 0;
    return Status::OK();
  }

  MPI_Request req_;
};

// How `count` elements split into n ring blocks: as evenly as possible, the first count % n
// blocks one element longer (a reduce-scatter's or all-gather's blocks are all equal).
struct Blocks {
  int64_t count;
  int n;
  int64_t Offset(int b) const { return b * (count / n) + std::min<int64_t>(b, count % n); }
  int64_t Length(int b) const { return count / n + (b < count % n ? 1 : 0); }
};

// out[i] = a[i] + b[i] in the dtype (halves: round(float(a) + float(b)), communicator.h); out may be b.
void Combine(const void* a, const void* b, void* out, int64_t n, DType dtype) {
  auto add = [&](auto zero) {
    using T = decltype(zero);
    const T* x = static_cast<const T*>(a);
    const T* y = static_cast<const T*>(b);
    T* z = static_cast<T*>(out);
    for (int64_t i = 0; i < n; ++i) z[i] = x[i] + y[i];
  };
  switch (dtype) {
    case DType::kFloat32: add(float{}); break;
    case DType::kFloat64: add(double{}); break;
    case DType::kInt32: add(uint32_t{}); break;  // wraps like MPI_SUM, without signed overflow
    case DType::kInt64: add(uint64_t{}); break;
    case DType::kFloat16:
    case DType::kBFloat16: {
      const bool bf16 = dtype == DType::kBFloat16;
      const uint16_t* x = static_cast<const uint16_t*>(a);
      const uint16_t* y = static_cast<const uint16_t*>(b);
      uint16_t* z = static_cast<uint16_t*>(out);
      for (int64_t i = 0; i < n; ++i) z[i] = half::Round(half::Load(x, i, bf16) + half::Load(y, i, bf16), bf16);
      break;
    }
    default: break;  // CheckCollectiveArgs admits no other dtype to a reduction
  }
}

// A ring collective over point-to-point messages (communicator.h, MpiCommunicatorOptions). The
// blocks are cut into segments of at most `seg` elements; for each segment in turn:
//   reduce (all_reduce, reduce_scatter), steps k = 0 … n-2: rank r sends its partial sum of block
//     r-k-1 to r+1 and receives the partial of block r-k-2 from r-1, adding its own input to it;
//     after the last step it holds the whole sum of block r (the sums of a block follow one chain,
//     so there is one result per block);
//   gather (all_reduce, all_gather), steps k = 0 … n-2: rank r sends block r-k to r+1 and
//     receives block r-k-1 from r-1 straight into the result.
// One step's send and receive are in flight at a time; Test() finishes a step and posts the next.
// Every rank walks the same steps and the messages of one collective carry their own tag, so
// several rings in flight at once do not match each other's messages.
class RingHandle : public PolledHandle {
 public:
  enum class Op { kAllReduce, kReduceScatter, kAllGather };
  struct Args {
    Op op;
    // all_reduce: the buffer, in place. reduce_scatter: `in` the n blocks (equal to `out` in MPI's
    // in-place form: the result then goes to the first block), `out` rank r's block. all_gather:
    // `out` the n blocks, the rank's own already in place.
    const char* in;
    char* out;
    Blocks blocks;
    DType dtype;
    int64_t seg;  // elements per segment
    int tag;
  };
  RingHandle(MpiCommunicator* comm, const char* kind, MPI_Comm mpi, int rank, Args args, Finish finish)
      : PolledHandle(comm, kind, std::move(finish)), mpi_(mpi), rank_(rank), a_(args) {
    n_ = a_.blocks.n;
    esize_ = static_cast<int64_t>(DTypeSize(a_.dtype));
    int64_t longest = a_.blocks.Length(0);
    segments_ = longest == 0 ? 0 : (longest + a_.seg - 1) / a_.seg;
    const bool reduces = a_.op != Op::kAllGather, gathers = a_.op != Op::kReduceScatter;
    steps_per_segment_ = (reduces ? n_ - 1 : 0) + (gathers ? n_ - 1 : 0);
    // The reduce phase receives into a temporary; reduce_scatter's read-only input also needs a
    // second one to send the running sum from while the next partial arrives.
    const int64_t tmp_elems = reduces ? std::min(a_.seg, longest) : 0;
    const int buffers = a_.op == Op::kReduceScatter && !InPlace() && n_ > 2 ? 2 : 1;
    for (int i = 0; i < buffers && tmp_elems > 0; ++i)
      tmp_[i] = std::make_unique_for_overwrite<char[]>(static_cast<size_t>(tmp_elems * esize_));
  }
  ~RingHandle() override { WaitIfNotWaited(); }

  // Posts the first step (or completes at once when there is nothing to send).
  Status Start() { return Advance(); }

 private:
  struct Range {
    int64_t offset = 0, length = 0;  // elements
  };
  bool InPlace() const { return a_.op != Op::kAllGather && a_.in == a_.out; }
  int Mod(int b) const { return ((b % n_) + n_) % n_; }
  // Segment j of block b.
  Range Segment(int b, int64_t j) const {
    const int64_t len = a_.blocks.Length(b), start = std::min(len, j * a_.seg);
    return {a_.blocks.Offset(b) + start, std::min(len, start + a_.seg) - start};
  }
  // Where the reduce phase keeps its running sums in place: all_reduce's buffer, or
  // reduce_scatter's in its in-place form; nullptr when the input is read-only.
  char* Accumulator() const { return a_.op == Op::kAllReduce || InPlace() ? a_.out : nullptr; }
  const char* Input(int64_t offset) const { return a_.in + offset * esize_; }

  Status Post(const void* send, int64_t send_elems, void* recv, int64_t recv_elems) {
    reqs_[0] = reqs_[1] = MPI_REQUEST_NULL;
    const int next = (rank_ + 1) % n_, prev = (rank_ + n_ - 1) % n_;
    // Segments are at most INT_MAX bytes (CreateMpiCommunicator checks the option).
    if (recv_elems > 0)
      if (const int rc = MPI_Irecv(recv, static_cast<int>(recv_elems * esize_), MPI_BYTE, prev, a_.tag, mpi_, &reqs_[0]);
          rc != MPI_SUCCESS)
        return Failed(rc, "MPI_Irecv");
    if (send_elems > 0)
      if (const int rc = MPI_Isend(send, static_cast<int>(send_elems * esize_), MPI_BYTE, next, a_.tag, mpi_, &reqs_[1]);
          rc != MPI_SUCCESS)
        return Failed(rc, "MPI_Isend");
    return Status::OK();
  }

  // Posts step `step_` (skipping steps with nothing to move); done_ after the last.
  Status Advance() {
    for (; step_ < segments_ * steps_per_segment_; ++step_) {
      const int64_t j = step_ / steps_per_segment_;
      int k = static_cast<int>(step_ % steps_per_segment_);
      const int r = rank_;
      if (a_.op != Op::kAllGather && k < n_ - 1) {  // reduce
        const Range s = Segment(Mod(r - k - 1), j), v = Segment(Mod(r - k - 2), j);
        if (s.length == 0 && v.length == 0) continue;
        const char* from = Accumulator() ? a_.out + s.offset * esize_
                           : k == 0      ? Input(s.offset)
                                         : tmp_[(k - 1) % 2].get();
        return Post(from, s.length, tmp_[Accumulator() ? 0 : k % 2].get(), v.length);
      }
      if (a_.op != Op::kAllGather) k -= n_ - 1;
      const Range s = Segment(Mod(r - k), j), v = Segment(Mod(r - k - 1), j);  // gather
      if (s.length == 0 && v.length == 0) continue;
      return Post(a_.out + s.offset * esize_, s.length, a_.out + v.offset * esize_, v.length);
    }
    done_ = true;
    return Status::OK();
  }

  // The local work after step `step_` completed: add the rank's input to the partial received.
  void FinishStep() {
    const int64_t j = step_ / steps_per_segment_;
    const int k = static_cast<int>(step_ % steps_per_segment_);
    if (a_.op == Op::kAllGather || k >= n_ - 1) return;
    const Range v = Segment(Mod(rank_ - k - 2), j);
    if (char* acc = Accumulator()) {
      char* mine = acc + v.offset * esize_;
      Combine(tmp_[0].get(), mine, mine, v.length, a_.dtype);
      // MPI's in-place reduce-scatter leaves the result in the first block. Segment j of every
      // block is finished with once its last step is, so block 0's segment j is free to take it.
      if (InPlace() && k == n_ - 2 && rank_ != 0) {
        const Range first = Segment(0, j);
        std::memmove(acc + first.offset * esize_, mine, static_cast<size_t>(v.length * esize_));
      }
      return;
    }
    char* partial = tmp_[k % 2].get();
    if (k == n_ - 2) {  // the whole sum of the rank's block: into its result (which may be its input)
      char* out = a_.out + (v.offset - a_.blocks.Offset(rank_)) * esize_;
      Combine(partial, Input(v.offset), out, v.length, a_.dtype);
    } else {
      Combine(partial, Input(v.offset), partial, v.length, a_.dtype);
    }
  }

  // Finishes every step that completed and posts the next, until one is still in flight.
  Status Test() override {
    while (!done_) {
      int flag = 0;
      if (const int rc = MPI_Testall(2, reqs_, &flag, MPI_STATUSES_IGNORE); rc != MPI_SUCCESS)
        return Failed(rc, "MPI_Testall");
      if (!flag) return Status::OK();
      FinishStep();
      ++step_;
      RETURN_IF_ERROR(Advance());
    }
    return Status::OK();
  }

  MPI_Comm mpi_;
  int rank_;
  Args a_;
  int n_ = 0;
  int64_t esize_ = 0, segments_ = 0, steps_per_segment_ = 0, step_ = 0;
  std::unique_ptr<char[]> tmp_[2];
  MPI_Request reqs_[2] = {MPI_REQUEST_NULL, MPI_REQUEST_NULL};
};

class MpiCommunicator : public Communicator {
 public:
  MpiCommunicator(MPI_Comm comm, int rank, int size, double timeout_s, bool owns_mpi, MpiCommunicatorOptions options)
      : comm_(comm), rank_(rank), size_(size), timeout_s_(timeout_s), owns_mpi_(owns_mpi), options_(options) {}
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
    const int64_t bytes = count * static_cast<int64_t>(DTypeSize(dtype));
    const Issued issued = Issue("all_reduce", bytes, AllReduceBytesSent(bytes, size_));
    if (Ring(bytes)) {
      Count("all_reduce");
      bytes_["all_reduce"] += AllReduceBytesSent(bytes, size_);
      return StartRing("all_reduce", RingHandle::Op::kAllReduce, buf, buf, count, dtype, Average(buf, count, dtype, op),
                       issued);
    }
    ASSIGN_OR_RETURN(MpiType t, ToMpi("all_reduce", count, dtype, rank_));
    MPI_Request req;
    DSC_MPI_CHECK(rank_, MPI_Iallreduce(MPI_IN_PLACE, buf, t.count, t.type, SumOp(dtype), comm_, &req));
    Count("all_reduce");
    bytes_["all_reduce"] += AllReduceBytesSent(bytes, size_);
    return Handle("all_reduce", req, Average(buf, count, dtype, op), issued);
  }

  StatusOr<std::unique_ptr<CommHandle>> ReduceScatter(const void* send, void* recv, int64_t recv_count, DType dtype,
                                                      ReduceOp op) override {
    RETURN_IF_ERROR(Usable("reduce_scatter"));
    RETURN_IF_ERROR(CheckCollectiveArgs("reduce_scatter", send, recv, recv_count, dtype, true, op).WithContext(Who()));
    const size_t block = static_cast<size_t>(recv_count) * DTypeSize(dtype);
    Finish finish = Average(recv, recv_count, dtype, op);
    const Issued issued = Issue("reduce_scatter", static_cast<int64_t>(block),
                                ReduceScatterBytesSent(static_cast<int64_t>(block) * size_, size_));
    if (Ring(static_cast<int64_t>(block) * size_)) {
      Count("reduce_scatter");
      bytes_["reduce_scatter"] += ReduceScatterBytesSent(static_cast<int64_t>(block) * size_, size_);
      char* out = static_cast<char*>(recv);
      // The ring writes the result in place of the rank's own input block, or apart from the
      // input; any other overlap goes through a staging copy.
      if (send != recv && send != out - rank_ * block && Overlap(send, block * size_, recv, block)) {
        finish.staging.resize(block);
        finish.result = out = finish.staging.data();
        finish.copy_to = recv;
      }
      return StartRing("reduce_scatter", RingHandle::Op::kReduceScatter, send, out, recv_count * size_, dtype,
                       std::move(finish), issued);
    }
    ASSIGN_OR_RETURN(MpiType t, ToMpi("reduce_scatter", recv_count, dtype, rank_));
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
    return Handle("reduce_scatter", req, std::move(finish), issued);
  }

  StatusOr<std::unique_ptr<CommHandle>> AllGather(const void* send, void* recv, int64_t send_count,
                                                  DType dtype) override {
    RETURN_IF_ERROR(Usable("all_gather"));
    RETURN_IF_ERROR(CheckCollectiveArgs("all_gather", send, recv, send_count, dtype, false).WithContext(Who()));
    const size_t block = static_cast<size_t>(send_count) * DTypeSize(dtype);
    const Issued issued = Issue("all_gather", static_cast<int64_t>(block),
                                AllGatherBytesSent(static_cast<int64_t>(block) * size_, size_));
    if (Ring(static_cast<int64_t>(block) * size_)) {
      Count("all_gather");
      bytes_["all_gather"] += AllGatherBytesSent(static_cast<int64_t>(block) * size_, size_);
      char* own = static_cast<char*>(recv) + rank_ * block;
      if (send != own) std::memmove(own, send, block);  // memmove: `send` may overlap `recv`
      return StartRing("all_gather", RingHandle::Op::kAllGather, recv, static_cast<char*>(recv), send_count * size_,
                       dtype, Finish{}, issued);
    }
    ASSIGN_OR_RETURN(MpiType t, ToMpi("all_gather", send_count, dtype, rank_));
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
    return Handle("all_gather", req, std::move(finish), issued);
  }

  StatusOr<std::unique_ptr<CommHandle>> Broadcast(void* buf, int64_t count, DType dtype, int root) override {
    RETURN_IF_ERROR(Usable("broadcast"));
    RETURN_IF_ERROR(CheckCollectiveArgs("broadcast", buf, buf, count, dtype, false).WithContext(Who()));
    if (root < 0 || root >= size_)
      return InvalidArgument(Who(), ": broadcast: root ", root, " is not a rank of ", size_);
    const int64_t bytes = count * static_cast<int64_t>(DTypeSize(dtype));
    const Issued issued = Issue("broadcast", bytes, BroadcastBytesSent(bytes, size_, root == rank_));
    ASSIGN_OR_RETURN(MpiType t, ToMpi("broadcast", count, dtype, rank_));
    MPI_Request req;
    DSC_MPI_CHECK(rank_, MPI_Ibcast(buf, t.count, t.type, root, comm_, &req));
    Count("broadcast");
    bytes_["broadcast"] += BroadcastBytesSent(bytes, size_, root == rank_);
    return Handle("broadcast", req, Finish{}, issued);
  }

  // MPI's own algorithm always: all_to_all carries 1-bit compressed signs (the CompressedAllReduce
  // kernel), a thirty-second of a gradient, so no ring is needed to bound memory.
  StatusOr<std::unique_ptr<CommHandle>> AllToAll(const void* send, void* recv, int64_t block_count,
                                                 DType dtype) override {
    RETURN_IF_ERROR(Usable("all_to_all"));
    RETURN_IF_ERROR(CheckCollectiveArgs("all_to_all", send, recv, block_count, dtype, false).WithContext(Who()));
    const size_t block = static_cast<size_t>(block_count) * DTypeSize(dtype);
    const int64_t all = static_cast<int64_t>(block) * size_;
    const Issued issued = Issue("all_to_all", all, AllToAllBytesSent(all, size_));
    ASSIGN_OR_RETURN(MpiType t, ToMpi("all_to_all", block_count, dtype, rank_));
    Finish finish;
    const void* from = send;
    if (send == recv) {
      from = MPI_IN_PLACE;
    } else if (Overlap(send, static_cast<size_t>(all), recv, static_cast<size_t>(all))) {  // MPI forbids it
      finish.staging.assign(static_cast<const char*>(send), static_cast<const char*>(send) + all);
      from = finish.staging.data();
    }
    MPI_Request req;
    DSC_MPI_CHECK(rank_, MPI_Ialltoall(from, t.count, t.type, recv, t.count, t.type, comm_, &req));
    Count("all_to_all");
    bytes_["all_to_all"] += AllToAllBytesSent(all, size_);
    return Handle("all_to_all", req, std::move(finish), issued);
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
  // comms_logger's record of a collective issued now (communicator.h CollectiveRecord).
  static Issued Issue(const char* kind, int64_t msg_bytes, int64_t bytes_sent) {
    return Issued{CollectiveRecord{kind, msg_bytes, bytes_sent, 0.0}, std::chrono::steady_clock::now()};
  }
  // Handles record in the attached log, if any (with one rank nothing is counted or recorded).
  void Track(PolledHandle* h, const Issued& issued) {
    if (collective_log() && size_ > 1) h->Track(collective_log(), issued);
  }
  StatusOr<std::unique_ptr<CommHandle>> Handle(const char* kind, MPI_Request req, Finish finish, const Issued& issued) {
    auto h = std::make_unique<MpiHandle>(this, kind, req, std::move(finish));
    Track(h.get(), issued);
    return std::unique_ptr<CommHandle>(std::move(h));
  }
  // Whether a collective whose whole buffer has `bytes` takes the ring (MpiCommunicatorOptions).
  bool Ring(int64_t bytes) const { return size_ > 1 && bytes > 0 && bytes >= options_.ring_min_bytes; }
  StatusOr<std::unique_ptr<CommHandle>> StartRing(const char* kind, RingHandle::Op op, const void* in, void* out,
                                                  int64_t count, DType dtype, Finish finish, const Issued& issued) {
    const int64_t seg = std::max<int64_t>(1, options_.ring_segment_bytes / static_cast<int64_t>(DTypeSize(dtype)));
    // Every rank numbers its rings alike (same collectives, same order); the tag keeps the
    // messages of rings in flight together apart. MPI guarantees tags up to 32767.
    const int tag = static_cast<int>(rings_++ % 32768);
    RingHandle::Args args{op, static_cast<const char*>(in), static_cast<char*>(out), Blocks{count, size_}, dtype,
                          seg, tag};
    auto h = std::make_unique<RingHandle>(this, kind, comm_, rank_, args, std::move(finish));
    Track(h.get(), issued);
    RETURN_IF_ERROR(h->Start());
    return std::unique_ptr<CommHandle>(std::move(h));
  }

  MPI_Comm comm_;
  int rank_, size_;
  double timeout_s_;
  bool owns_mpi_;
  MpiCommunicatorOptions options_;
  int64_t rings_ = 0;
  bool broken_ = false;
  MPI_Op f16_sum_ = MPI_OP_NULL, bf16_sum_ = MPI_OP_NULL;
  std::map<std::string, int64_t> bytes_ = ZeroCollectiveCounts();
  std::map<std::string, int64_t> calls_ = bytes_;
};

Status PolledHandle::Failed(int rc, const char* call) {
  comm_->MarkBroken();
  return MpiError(rc, call, __FILE__, __LINE__, comm_->rank()).WithContext(StrCat("collective ", kind_));
}

// Test() in a loop rather than MPI_Wait, so a rank that died or hangs turns into an error here
// after the timeout instead of a job that waits for ever. Polling yields the core first (ranks
// may outnumber cores), then sleeps up to 1 ms; Open MPI progresses the collective inside MPI_Test.
Status PolledHandle::Wait() {
  if (waited_) return Status::OK();
  waited_ = true;
  const int rank = comm_->rank();
  const auto start = std::chrono::steady_clock::now();
  const auto deadline = start + std::chrono::duration<double>(comm_->timeout_s());
  auto nap = std::chrono::microseconds(20);
  for (int polls = 0; !done_; ++polls) {
    RETURN_IF_ERROR(Test());
    NoteDone();
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
  if (log_) {
    NoteDone();  // done before Wait() began (a test in Progress() or the ring's Start())
    log_->Record(issued_.rec);
  }
  return Status::OK();
}

}  // namespace

StatusOr<std::unique_ptr<Communicator>> CreateMpiCommunicator(const MpiCommunicatorOptions& options) {
  int rank = LauncherRank();
  if (options.ring_min_bytes < 0 || options.ring_segment_bytes < 1 || options.ring_segment_bytes > INT_MAX)
    return InvalidArgument("rank ", rank, ": ring_min_bytes ", options.ring_min_bytes, " must be >= 0 and ",
                           "ring_segment_bytes ", options.ring_segment_bytes, " in [1, ", INT_MAX, "]");
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
  auto result = std::make_unique<MpiCommunicator>(comm, rank, size, timeout_s, !initialized, options);
  RETURN_IF_ERROR(result->CreateOps());
  // A launcher from a different MPI than the one linked makes every process a singleton.
  if (const int launched = LauncherWorldSize(); launched > 0 && launched != size)
    return FailedPrecondition("rank ", rank, ": the launcher started ", launched, " ranks but MPI sees ", size,
                              "; was dsrun started by another MPI's mpirun? (dsrun links Open MPI)");
  return std::unique_ptr<Communicator>(std::move(result));
}

}  // namespace dsc
