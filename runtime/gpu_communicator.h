// The communicator CUDA kernels run on: the Communicator interface (runtime/communicator.h) on
// device buffers, built from the job's MPI communicator and this rank's CUDA resources.
//
//   ASSIGN_OR_RETURN(std::unique_ptr<Communicator> gpu, CreateGpuCommunicator(mpi.get(), res));
//   ASSIGN_OR_RETURN(auto h, gpu->AllReduce(device_grad, n, DType::kBFloat16, ReduceOp::kAvg));
//   RETURN_IF_ERROR(h->Wait());  // later work on res->compute runs after the all-reduce
//
// Which one CreateGpuCommunicator returns:
//   - one rank (or no host communicator): a local one; gathers and scatters copy on res->compute.
//   - every rank on its own GPU (GPU UUIDs exchanged through the host communicator): NCCL
//     (runtime/nccl_communicator.cc), bootstrapped over the host communicator. Collectives run on
//     res->comm after the work already queued on res->compute (an event), and Wait() makes
//     res->compute wait for the collective (another event): the host never blocks, so a
//     collective issued early overlaps compute.
//   - ranks sharing a GPU (NCCL refuses that), or DSC_GPU_COMM=staged: the host communicator
//     with the data staged through page-locked host memory (runtime/staged_communicator.cc):
//     slow, but multi-rank GPU runs can be tested on one GPU.
// Every collective follows the argument checks and the bytes model of communicator.h; float16/
// bfloat16 sums round like the interface says (NCCL: each pairwise sum round(float(a)+float(b));
// kAvg divides the sum afterwards, round(float(s) / size), not NCCL's pre-multiplied average).
//
// The host communicator is not owned: it must outlive the GPU one (Abort() ends the job through
// it, Barrier() is its barrier). CUDA kernels must not pass res->Scratch() memory they do not own
// across a collective; the communicators never use the scratch buffer themselves.
#pragma once

#include <cstdint>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "ir/status.h"
#include "runtime/communicator.h"

namespace dsc {
namespace cuda {
struct Resources;  // kernels/cuda/cuda_resources.h
}

// `host` may be null (a single rank); `res` is this rank's CUDA device (its ordinal is current
// on this thread when the communicator is used).
StatusOr<std::unique_ptr<Communicator>> CreateGpuCommunicator(Communicator* host, cuda::Resources* res);

// The three implementations, for tests and for CreateGpuCommunicator. The NCCL one needs every
// rank on a distinct GPU; the staged one works with any placement.
StatusOr<std::unique_ptr<Communicator>> CreateGpuLocalCommunicator(Communicator* host, cuda::Resources* res);
StatusOr<std::unique_ptr<Communicator>> CreateNcclCommunicator(Communicator* host, cuda::Resources* res);
StatusOr<std::unique_ptr<Communicator>> CreateStagedCommunicator(Communicator* host, cuda::Resources* res);

namespace gpucomm {

// What each rank tells the others before choosing: its GPU's UUID and its host name, in a fixed
// record so one AllGather of bytes exchanges them.
inline constexpr size_t kUuidBytes = 16;
inline constexpr size_t kHostBytes = 64;
inline constexpr size_t kRecordBytes = kUuidBytes + kHostBytes;

struct RankGpu {
  std::string uuid;  // kUuidBytes raw bytes
  std::string host;  // truncated to kHostBytes - 1 characters
};

inline void EncodeRankGpu(const RankGpu& r, char* out) {
  std::memset(out, 0, kRecordBytes);
  std::memcpy(out, r.uuid.data(), r.uuid.size() < kUuidBytes ? r.uuid.size() : kUuidBytes);
  std::memcpy(out + kUuidBytes, r.host.data(), r.host.size() < kHostBytes - 1 ? r.host.size() : kHostBytes - 1);
}

inline RankGpu DecodeRankGpu(const char* in) {
  RankGpu r;
  r.uuid.assign(in, kUuidBytes);
  r.host.assign(in + kUuidBytes, strnlen(in + kUuidBytes, kHostBytes));
  return r;
}

enum class Kind { kLocal, kNccl, kStaged };

inline const char* KindName(Kind k) { return k == Kind::kLocal ? "local" : k == Kind::kNccl ? "nccl" : "staged"; }

// The communicator for a job whose ranks use `gpus` (rank order). `force` is DSC_GPU_COMM's value
// ("", "nccl" or "staged"; anything else is an error). A shared GPU is named in `why` (when not
// null) so a caller may say why collectives are staged; "nccl" with a shared GPU is an error.
inline StatusOr<Kind> Choose(const std::vector<RankGpu>& gpus, const std::string& force, std::string* why) {
  if (!force.empty() && force != "nccl" && force != "staged")
    return InvalidArgument("DSC_GPU_COMM='", force, "': expected \"nccl\" or \"staged\"");
  if (gpus.size() <= 1) return Kind::kLocal;
  for (size_t i = 0; i < gpus.size(); ++i)
    for (size_t j = i + 1; j < gpus.size(); ++j)
      if (gpus[i].uuid == gpus[j].uuid) {
        const std::string reason = StrCat("ranks ", i, " and ", j, " share a GPU (on ", gpus[i].host, ")");
        if (why) *why = reason;
        if (force == "nccl") return FailedPrecondition("DSC_GPU_COMM=nccl: ", reason, "; NCCL needs one GPU per rank");
        return Kind::kStaged;
      }
  if (force == "staged") {
    if (why) *why = "DSC_GPU_COMM=staged";
    return Kind::kStaged;
  }
  return Kind::kNccl;
}

}  // namespace gpucomm
}  // namespace dsc
