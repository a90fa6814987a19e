// The communicator interface the ZeRO collective ops run on: one rank of a group of `size()`
// ranks, asynchronous collectives on device buffers, and bytes-sent accounting for the metrics.
// MPI implements it on CPUs (runtime/mpi_communicator.cc); NCCL will implement it on GPUs.
//
//   ASSIGN_OR_RETURN(std::unique_ptr<Communicator> comm, CreateMpiCommunicator());
//   ASSIGN_OR_RETURN(auto h, comm->AllReduce(grad, n, DType::kFloat32, ReduceOp::kAvg));
//   ...  // overlap other work
//   RETURN_IF_ERROR(h->Wait());
//
// Every rank must issue the same collectives in the same order with the same counts, dtypes and
// roots (as with MPI and NCCL); a mismatch is undefined behaviour, not an error we can detect.
//
// Bytes-sent model (per rank, what the ring / standard algorithms send; B = the bytes of the full
// buffer, N = size(); integer division, so every rank of a collective counts the same number):
//   all_reduce      2·(N-1)·B / N      B = count·dtype size (reduce-scatter, then all-gather)
//   reduce_scatter    (N-1)·B / N      B = N·recv_count·dtype size (the whole send buffer)
//   all_gather        (N-1)·B / N      B = N·send_count·dtype size (the whole receive buffer)
//   broadcast         B on the root, 0 elsewhere (the root sends the buffer once; forwarding
//                     by tree/pipeline algorithms is not counted)
//   all_to_all        (N-1)·B / N      B = N·block_count·dtype size (the whole send buffer: every
//                                      block but the rank's own leaves it)
// With N = 1 nothing is sent and every count stays 0 (calls() too: a collective of one rank is
// not counted as a call). The model counts what the algorithm must
// move, not what a particular MPI library happens to do, so the numbers match the compiler's
// per-step communication estimate (dsinspect) on every backend. Elements count at their own size:
// a float16/bfloat16 buffer counts 2 bytes per element (it travels as 16-bit values).
//
// float16/bfloat16 reductions travel and combine in their own dtype. Each combination of two
// partial results a and b (a rank's input is one) is round(float(a) + float(b)): the sum in
// float32, rounded to the buffer's dtype to nearest even (ties to even), as NCCL reduces half
// buffers. With 2 ranks the result is therefore round(x0 + x1), exact up to that one rounding;
// with more ranks the order and grouping of the partial sums is the MPI library's (or, on the
// MPI communicator's ring, a chain around the ring), and each partial sum is rounded, so the
// result may differ from the once-rounded float sum by those roundings (every rank still
// receives the same bits). kAvg divides the reduced half sum s in float32 and rounds once more:
// round(float(s) / size).
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "ir/dtype.h"
#include "ir/status.h"

namespace dsc {

enum class ReduceOp { kSum, kAvg };  // kAvg = sum, then scale by 1/size (floating dtypes only)

const char* ReduceOpName(ReduceOp op);

// One collective in flight. Its buffers must stay alive and untouched until Wait() returns, and
// the handle must not outlive its communicator. Wait() is called once; destroying a handle that
// was never waited on waits (errors are lost).
class CommHandle {
 public:
  virtual ~CommHandle() = default;
  // Errors name the rank and the collective; a collective that waits longer than the timeout
  // (DSC_COLLECTIVE_TIMEOUT_S, default 300 s) fails, and the communicator is unusable after it.
  virtual Status Wait() = 0;
  // Lets the collective advance without blocking; call it between pieces of other work while the
  // collective is in flight (the executor does, after every node). Open MPI advances a
  // non-blocking collective only inside MPI calls, so without it a collective issued early would
  // do most of its work in Wait(); this is the progress engine, with no thread of its own (MPI
  // stays MPI_THREAD_FUNNELED). Device communicators progress by themselves: the default does
  // nothing. Errors are those of Wait(); Wait() still finishes the collective afterwards.
  virtual Status Progress() { return Status::OK(); }
};

// One collective this rank finished, for comms_logger (runtime/comms_logger.h).
struct CollectiveRecord {
  const char* kind = "";  // all_reduce | reduce_scatter | all_gather | broadcast | all_to_all
  // The message size DeepSpeed's comms logger records and its bandwidth formulas take
  // (deepspeed/utils/comms_logging.py calc_bw_log): the buffer of an all_reduce or broadcast, one
  // rank's block of an all_gather or reduce_scatter (calc_bw_log multiplies those by size()).
  int64_t msg_bytes = 0;
  int64_t bytes_sent = 0;  // the bytes model above
  // From issuing the collective to its completion: on the MPI communicator, when an MPI test
  // first saw it complete (the executor tests between nodes, so this is the time in flight as the
  // rank saw it, at node granularity); on NCCL, the comm stream's own time between CUDA events
  // recorded around it; on the staged communicator, until Wait() returned.
  double latency_s = 0;
};

class CollectiveLog {
 public:
  virtual ~CollectiveLog() = default;
  virtual void Record(const CollectiveRecord& r) = 0;
};

class Communicator {
 public:
  virtual ~Communicator() = default;
  // Collectives issued while a log is attached (not owned; null detaches) are recorded in it when
  // they finish, at the latest in FlushCollectiveLog(). With size() == 1 nothing is recorded, as
  // nothing is counted.
  void set_collective_log(CollectiveLog* log) { log_ = log; }
  CollectiveLog* collective_log() const { return log_; }
  // Records what has finished but is not yet in the log (NCCL reads its CUDA event timings here,
  // waiting for the collectives issued so far); the others record as they finish.
  virtual Status FlushCollectiveLog() { return Status::OK(); }
  virtual int rank() const = 0;
  virtual int size() const = 0;

  // Reductions take kFloat32, kFloat64, kFloat16, kBFloat16, kInt32 and kInt64 (half rounding
  // as described above); gathers and broadcasts any dtype.
  // In place: buf holds `count` elements on every rank.
  virtual StatusOr<std::unique_ptr<CommHandle>> AllReduce(void* buf, int64_t count, DType dtype, ReduceOp op) = 0;
  // `send` holds size()·recv_count elements; rank r receives the reduction of block r.
  virtual StatusOr<std::unique_ptr<CommHandle>> ReduceScatter(const void* send, void* recv, int64_t recv_count,
                                                              DType dtype, ReduceOp op) = 0;
  // `recv` holds size()·send_count elements, block r from rank r. `send` may equal
  // recv + rank()·send_count (in place: the rank's own block is already where it belongs).
  virtual StatusOr<std::unique_ptr<CommHandle>> AllGather(const void* send, void* recv, int64_t send_count,
                                                          DType dtype) = 0;
  virtual StatusOr<std::unique_ptr<CommHandle>> Broadcast(void* buf, int64_t count, DType dtype, int root) = 0;
  // `send` and `recv` hold size()·block_count elements each: block r of `send` goes to rank r, and
  // block r of `recv` comes from rank r (send == recv: in place). Any dtype: it moves bytes.
  virtual StatusOr<std::unique_ptr<CommHandle>> AllToAll(const void* send, void* recv, int64_t block_count,
                                                         DType dtype) = 0;
  virtual Status Barrier() = 0;

  // Bytes this rank has sent since creation, by collective kind ("all_reduce", "reduce_scatter",
  // "all_gather", "broadcast", "all_to_all"; every key is always present), following the model above.
  virtual std::map<std::string, int64_t> bytes_sent() const = 0;
  // Collectives this rank has issued since creation, by the same kinds (every key always
  // present), counted when issued; with size() == 1 nothing is counted, like the bytes.
  virtual std::map<std::string, int64_t> calls() const = 0;

  // Ends every rank of the job after printing `message` on this rank: the error path of a rank
  // must not leave the others waiting in a collective. Single-rank: prints and exits.
  [[noreturn]] virtual void Abort(const std::string& message, int exit_code) = 0;

 private:
  CollectiveLog* log_ = nullptr;
};

// One value from every rank, in rank order (an all-gather of one double): how ranks compare
// verdicts or hashes with each other. Every rank must call it.
StatusOr<std::vector<double>> GatherOnePerRank(Communicator* comm, double mine);

// Size 1: reductions leave the buffer as it is, gathers copy, nothing is sent.
std::unique_ptr<Communicator> CreateLocalCommunicator();
// The same on another device's memory: `move` copies `bytes` from src to dst (the ranges may
// overlap: an in-place gather), and `host`, when given, is the job's own single-rank communicator,
// which barriers and aborts go through.
using LocalMove = std::function<Status(void* dst, const void* src, size_t bytes)>;
std::unique_ptr<Communicator> CreateLocalCommunicator(LocalMove move, Communicator* host);

// Large reductions and gathers on the MPI communicator run as rings of point-to-point messages
// (rank r sends to r+1), one segment of one block at a time: each block is summed along one chain
// of ranks, then passed around the ring, so every rank gets the same bits, and a rank's
// temporary memory is at most two segments. Open MPI's non-blocking collectives instead hold
// temporaries of the whole buffer on some ranks (libnbc's reduce-scatter reduces the whole
// buffer on rank 0), which at ZeRO-3 sizes outweigh the rank's own shard. Smaller collectives
// keep MPI's own algorithms (fewer rounds). The bytes sent are those of the model above.
struct MpiCommunicatorOptions {
  // all_reduce, reduce_scatter and all_gather whose whole buffer has at least this many bytes
  // take the ring (0: every one does, as the tests use it).
  int64_t ring_min_bytes = int64_t{1} << 20;
  // The largest message of a ring step, and the size of its temporaries (rounded down to whole
  // elements, at least one); at most INT_MAX.
  int64_t ring_segment_bytes = int64_t{8} << 20;
};

// Joins the job the launcher (mpirun, srun) started; call once per process, from the thread
// that will issue every collective (MPI_THREAD_FUNNELED). MPI is finalized when it is destroyed,
// unless a collective failed or timed out: then finalizing would hang, and it aborts the job.
StatusOr<std::unique_ptr<Communicator>> CreateMpiCommunicator(const MpiCommunicatorOptions& options = {});

// Whether this process was started by an MPI launcher (Open MPI, PMI/PMIx, Slurm).
bool LaunchedUnderMpi();
// The number of ranks the launcher started: 1 outside a launcher, 0 when it does not say.
int LauncherWorldSize();

// The bytes model above, shared by every implementation (and by the compiler's estimates).
// Inline so the compiler's accounting (dsinspect's communication per step) uses the same model.
inline int64_t AllReduceBytesSent(int64_t bytes, int size) { return size <= 1 ? 0 : 2 * (size - 1) * bytes / size; }
inline int64_t ReduceScatterBytesSent(int64_t full_bytes, int size) {
  return size <= 1 ? 0 : (size - 1) * full_bytes / size;
}
inline int64_t AllGatherBytesSent(int64_t full_bytes, int size) { return size <= 1 ? 0 : (size - 1) * full_bytes / size; }
inline int64_t BroadcastBytesSent(int64_t bytes, int size, bool is_root) { return size > 1 && is_root ? bytes : 0; }
inline int64_t AllToAllBytesSent(int64_t full_bytes, int size) { return size <= 1 ? 0 : (size - 1) * full_bytes / size; }

// Every collective kind the counters above key (bytes_sent(), calls()), each at 0.
std::map<std::string, int64_t> ZeroCollectiveCounts();

// Argument checks every implementation runs first, so errors read the same on every backend:
// count >= 0, non-null buffers when count > 0, a dtype the collective takes, kAvg on floats only.
Status CheckCollectiveArgs(const char* kind, const void* a, const void* b, int64_t count, DType dtype,
                           bool reduction, ReduceOp op = ReduceOp::kSum);

// The collective timeout in seconds from DSC_COLLECTIVE_TIMEOUT_S (default 300); an invalid
// value is an error naming the variable.
StatusOr<double> CollectiveTimeoutSeconds();

}  // namespace dsc
