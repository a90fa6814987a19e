// The single-rank communicator, the bytes-sent model and the launcher environment probes.
#include "runtime/communicator.h"

#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <iostream>

namespace dsc {
namespace {

class DoneHandle : public CommHandle {
 public:
  Status Wait() override { return Status::OK(); }
};

StatusOr<std::unique_ptr<CommHandle>> Done() { return std::unique_ptr<CommHandle>(std::make_unique<DoneHandle>()); }

// With one rank every collective's result is its input: only moving data between distinct
// buffers is left to do (memmove on the host: an in-place gather passes overlapping pointers).
class LocalCommunicator : public Communicator {
 public:
  LocalCommunicator(LocalMove move, Communicator* host) : move_(std::move(move)), host_(host) {}
  int rank() const override { return 0; }
  int size() const override { return 1; }

  StatusOr<std::unique_ptr<CommHandle>> AllReduce(void* buf, int64_t count, DType dtype, ReduceOp op) override {
    RETURN_IF_ERROR(CheckCollectiveArgs("all_reduce", buf, buf, count, dtype, true, op));
    return Done();
  }
  StatusOr<std::unique_ptr<CommHandle>> ReduceScatter(const void* send, void* recv, int64_t recv_count, DType dtype,
                                                      ReduceOp op) override {
    RETURN_IF_ERROR(CheckCollectiveArgs("reduce_scatter", send, recv, recv_count, dtype, true, op));
    RETURN_IF_ERROR(Move(recv, send, static_cast<size_t>(recv_count) * DTypeSize(dtype)));
    return Done();
  }
  StatusOr<std::unique_ptr<CommHandle>> AllGather(const void* send, void* recv, int64_t send_count,
                                                  DType dtype) override {
    RETURN_IF_ERROR(CheckCollectiveArgs("all_gather", send, recv, send_count, dtype, false));
    RETURN_IF_ERROR(Move(recv, send, static_cast<size_t>(send_count) * DTypeSize(dtype)));
    return Done();
  }
  StatusOr<std::unique_ptr<CommHandle>> Broadcast(void* buf, int64_t count, DType dtype, int root) override {
    RETURN_IF_ERROR(CheckCollectiveArgs("broadcast", buf, buf, count, dtype, false));
    if (root != 0) return InvalidArgument("broadcast: root ", root, " is not a rank of a group of 1");
    return Done();
  }
  StatusOr<std::unique_ptr<CommHandle>> AllToAll(const void* send, void* recv, int64_t block_count,
                                                 DType dtype) override {
    RETURN_IF_ERROR(CheckCollectiveArgs("all_to_all", send, recv, block_count, dtype, false));
    RETURN_IF_ERROR(Move(recv, send, static_cast<size_t>(block_count) * DTypeSize(dtype)));
    return Done();
  }
  Status Barrier() override { return host_ ? host_->Barrier() : Status::OK(); }
  // One rank sends nothing and counts no calls.
  std::map<std::string, int64_t> bytes_sent() const override { return ZeroCollectiveCounts(); }
  std::map<std::string, int64_t> calls() const override { return ZeroCollectiveCounts(); }
  [[noreturn]] void Abort(const std::string& message, int exit_code) override {
    if (host_) host_->Abort(message, exit_code);
    std::cerr << message + "\n" << std::flush;
    std::exit(exit_code);
  }

 private:
  Status Move(void* dst, const void* src, size_t bytes) {
    if (bytes == 0 || dst == src) return Status::OK();
    if (move_) return move_(dst, src, bytes);
    std::memmove(dst, src, bytes);
    return Status::OK();
  }
  LocalMove move_;
  Communicator* host_;
};

}  // namespace

std::map<std::string, int64_t> ZeroCollectiveCounts() {
  return {{"all_reduce", 0}, {"reduce_scatter", 0}, {"all_gather", 0}, {"broadcast", 0}, {"all_to_all", 0}};
}

namespace {

// A positive integer from the environment, or 0 when unset or not a number.
int EnvInt(const char* name) {
  const char* v = std::getenv(name);
  if (!v || !*v) return 0;
  char* end = nullptr;
  long x = std::strtol(v, &end, 10);
  return (*end == '\0' && x > 0 && x < (1 << 30)) ? static_cast<int>(x) : 0;
}

bool EnvSet(const char* name) {
  const char* v = std::getenv(name);
  return v && *v;
}

}  // namespace

const char* ReduceOpName(ReduceOp op) { return op == ReduceOp::kSum ? "sum" : "avg"; }

Status CheckCollectiveArgs(const char* kind, const void* a, const void* b, int64_t count, DType dtype, bool reduction,
                           ReduceOp op) {
  if (count < 0) return InvalidArgument(kind, ": negative element count ", count);
  if (count > 0 && (!a || !b)) return InvalidArgument(kind, ": null buffer for ", count, " elements");
  if (dtype == DType::kUndefined) return InvalidArgument(kind, ": undefined dtype");
  if (reduction && dtype != DType::kFloat32 && dtype != DType::kFloat64 && dtype != DType::kFloat16 &&
      dtype != DType::kBFloat16 && dtype != DType::kInt32 && dtype != DType::kInt64)
    return Unimplemented(kind, ": reductions on ", DTypeName(dtype),
                         " are not supported (float, double, float16, bfloat16, int32 and int64 are)");
  if (reduction && op == ReduceOp::kAvg && !IsFloat(dtype))
    return InvalidArgument(kind, ": avg needs a floating dtype, not ", DTypeName(dtype));
  return Status::OK();
}


std::unique_ptr<Communicator> CreateLocalCommunicator() { return std::make_unique<LocalCommunicator>(nullptr, nullptr); }
std::unique_ptr<Communicator> CreateLocalCommunicator(LocalMove move, Communicator* host) {
  return std::make_unique<LocalCommunicator>(std::move(move), host);
}

bool LaunchedUnderMpi() {
  return EnvSet("OMPI_COMM_WORLD_SIZE") || EnvSet("PMI_SIZE") || EnvSet("PMIX_RANK") ||
         (EnvSet("SLURM_PROCID") && EnvSet("SLURM_NTASKS"));
}

int LauncherWorldSize() {
  if (!LaunchedUnderMpi()) return 1;
  for (const char* name : {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "SLURM_NTASKS"})
    if (int n = EnvInt(name)) return n;
  return 0;  // PMIx alone names the rank, not the size
}

StatusOr<double> CollectiveTimeoutSeconds() {
  const char* v = std::getenv("DSC_COLLECTIVE_TIMEOUT_S");
  if (!v || !*v) return 300.0;
  char* end = nullptr;
  errno = 0;
  double s = std::strtod(v, &end);
  if (errno != 0 || *end != '\0' || !std::isfinite(s) || s <= 0)
    return InvalidArgument("DSC_COLLECTIVE_TIMEOUT_S='", v, "': expected a positive number of seconds");
  return s;
}

StatusOr<std::vector<double>> GatherOnePerRank(Communicator* comm, double mine) {
  std::vector<double> all(static_cast<size_t>(comm->size()));
  ASSIGN_OR_RETURN(auto h, comm->AllGather(&mine, all.data(), 1, DType::kFloat64));
  RETURN_IF_ERROR(h->Wait());
  return all;
}

}  // namespace dsc
