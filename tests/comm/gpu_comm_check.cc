// The GPU communicator under mpirun, on a CUDA machine: every collective on device buffers must
// give the bits the MPI communicator gives on host copies of the same data (all_reduce,
// reduce_scatter, all_gather apart and in place, broadcast, all_to_all apart and in place). With ranks sharing a
// GPU (e.g. `mpirun -np 3` on one GPU) this checks the staged communicator, with one GPU per rank
// NCCL, with -np 1 the local one; DSC_GPU_COMM=staged forces staging. Prints "every GPU collective
// matches" on success; exits non-zero naming the first mismatch otherwise.
//
// It reaches the GPU as dsrun does, through the CUDA module (runtime/cuda_backend.h; found at
// $DSC_CUDA_BACKEND, e.g. a bundle's lib/libdsc_cuda.so): its device for memory and copies, its
// communicators. So the check links no CUDA code and travels small.
//
//   DSC_CUDA_BACKEND=build/runtime/libdsc_cuda.so mpirun -np 2 build/tests/comm/gpu_comm_check
#include <cstdio>
#include <cstdlib>
#include <algorithm>
#include <cstring>
#include <map>
#include <string>
#include <vector>

#include "runtime/communicator.h"
#include "runtime/cuda_backend.h"
#include "runtime/device.h"

namespace dsc {
namespace {

struct Case {
  DType dtype;
  ReduceOp op;
};

// Rank r's value i: small integers (exact in every dtype, sums too), as raw bytes of `dtype`.
std::vector<char> Data(DType dtype, int64_t n, int rank) {
  std::vector<char> out(static_cast<size_t>(n) * DTypeSize(dtype));
  for (int64_t i = 0; i < n; ++i) {
    const double v = static_cast<double>((rank + 1) * (i % 7) - 3 * (i % 3));
    char* at = out.data() + static_cast<size_t>(i) * DTypeSize(dtype);
    switch (dtype) {
      case DType::kFloat32: { float f = static_cast<float>(v); std::memcpy(at, &f, 4); break; }
      case DType::kFloat64: std::memcpy(at, &v, 8); break;
      case DType::kFloat16: { uint16_t h = FloatToHalf(static_cast<float>(v)); std::memcpy(at, &h, 2); break; }
      case DType::kBFloat16: { uint16_t h = FloatToBFloat16(static_cast<float>(v)); std::memcpy(at, &h, 2); break; }
      case DType::kInt64: { int64_t x = static_cast<int64_t>(v); std::memcpy(at, &x, 8); break; }
      default: { int32_t x = static_cast<int32_t>(v); std::memcpy(at, &x, 4); break; }
    }
  }
  return out;
}

class Checker {
 public:
  Checker(Communicator* host, Communicator* gpu, Device* device) : host_(host), gpu_(gpu), device_(device) {}

  Status Run() {
    const int n = host_->size(), r = host_->rank();
    for (int64_t count : {int64_t{1}, int64_t{1000}, int64_t{4099}}) {
      for (Case c : {Case{DType::kFloat32, ReduceOp::kSum}, Case{DType::kFloat32, ReduceOp::kAvg},
                     Case{DType::kBFloat16, ReduceOp::kSum}, Case{DType::kBFloat16, ReduceOp::kAvg},
                     Case{DType::kFloat16, ReduceOp::kAvg}, Case{DType::kFloat64, ReduceOp::kSum},
                     Case{DType::kInt64, ReduceOp::kSum}, Case{DType::kInt32, ReduceOp::kSum}}) {
        const std::string what = StrCat(DTypeName(c.dtype), " ", ReduceOpName(c.op), " x", count);
        const size_t es = DTypeSize(c.dtype), bytes = static_cast<size_t>(count) * es;
        // all_reduce
        std::vector<char> want = Data(c.dtype, count, r);
        RETURN_IF_ERROR(Host(host_->AllReduce(want.data(), count, c.dtype, c.op)));
        ASSIGN_OR_RETURN(std::vector<char> got, OnDevice(Data(c.dtype, count, r), bytes, [&](char* d) {
          return gpu_->AllReduce(d, count, c.dtype, c.op);
        }));
        RETURN_IF_ERROR(Same(got, want, "all_reduce " + what));
        expect_["all_reduce"] += AllReduceBytesSent(static_cast<int64_t>(bytes), n);
        // reduce_scatter: send n·count elements, receive count
        std::vector<char> send = Data(c.dtype, count * n, r), recv(bytes);
        RETURN_IF_ERROR(Host(host_->ReduceScatter(send.data(), recv.data(), count, c.dtype, c.op)));
        ASSIGN_OR_RETURN(got, OnDevice(Data(c.dtype, count * n, r), bytes * n + bytes, [&](char* d) {
          return gpu_->ReduceScatter(d, d + bytes * n, count, c.dtype, c.op);
        }, bytes * n));
        RETURN_IF_ERROR(Same(got, recv, "reduce_scatter " + what));
        expect_["reduce_scatter"] += ReduceScatterBytesSent(static_cast<int64_t>(bytes) * n, n);
      }
      // all_gather, separate and in place, of an odd-sized dtype too; broadcast from the last rank
      for (DType t : {DType::kFloat32, DType::kBFloat16, DType::kInt64}) {
        const std::string what = StrCat(DTypeName(t), " x", count);
        const size_t bytes = static_cast<size_t>(count) * DTypeSize(t);
        std::vector<char> mine = Data(t, count, r), want(bytes * n);
        RETURN_IF_ERROR(Host(host_->AllGather(mine.data(), want.data(), count, t)));
        std::vector<char> init(bytes * n + bytes, 0);
        std::memcpy(init.data() + bytes * n, mine.data(), bytes);
        ASSIGN_OR_RETURN(std::vector<char> got, OnDevice(init, init.size(), [&](char* d) {
          return gpu_->AllGather(d + bytes * n, d, count, t);
        }));
        got.resize(bytes * n);
        RETURN_IF_ERROR(Same(got, want, "all_gather " + what));
        std::vector<char> in_place(bytes * n, 0);
        std::memcpy(in_place.data() + bytes * r, mine.data(), bytes);
        ASSIGN_OR_RETURN(got, OnDevice(in_place, in_place.size(), [&](char* d) {
          return gpu_->AllGather(d + bytes * r, d, count, t);
        }));
        RETURN_IF_ERROR(Same(got, want, "in-place all_gather " + what));
        expect_["all_gather"] += 2 * AllGatherBytesSent(static_cast<int64_t>(bytes) * n, n);
        std::vector<char> b = Data(t, count, r);
        RETURN_IF_ERROR(Host(host_->Broadcast(b.data(), count, t, n - 1)));
        ASSIGN_OR_RETURN(got, OnDevice(Data(t, count, r), bytes, [&](char* d) {
          return gpu_->Broadcast(d, count, t, n - 1);
        }));
        RETURN_IF_ERROR(Same(got, b, "broadcast " + what));
        expect_["broadcast"] += BroadcastBytesSent(static_cast<int64_t>(bytes), n, r == n - 1);
        // all_to_all of n blocks of `count`, apart and in place (1-bit Adam's signs are bytes)
        for (DType a : {t, DType::kUInt8}) {
          const size_t ab = static_cast<size_t>(count) * DTypeSize(a) * n;
          std::vector<char> x = Data(a == DType::kUInt8 ? DType::kInt32 : a, count * n, r);
          x.resize(ab);  // uint8: the first bytes of the int32 data, different on every rank
          std::vector<char> a_want(ab);
          RETURN_IF_ERROR(Host(host_->AllToAll(x.data(), a_want.data(), count, a)));
          std::vector<char> init(2 * ab, 0);
          std::memcpy(init.data(), x.data(), ab);
          ASSIGN_OR_RETURN(got, OnDevice(init, init.size(), [&](char* d) {
            return gpu_->AllToAll(d, d + ab, count, a);
          }, ab));
          RETURN_IF_ERROR(Same(got, a_want, StrCat("all_to_all ", DTypeName(a), " x", count)));
          ASSIGN_OR_RETURN(got, OnDevice(x, ab, [&](char* d) { return gpu_->AllToAll(d, d, count, a); }));
          RETURN_IF_ERROR(Same(got, a_want, StrCat("in-place all_to_all ", DTypeName(a), " x", count)));
          expect_["all_to_all"] += 2 * AllToAllBytesSent(static_cast<int64_t>(ab), n);
        }
      }
    }
    for (const auto& [kind, want] : expect_)
      if (gpu_->bytes_sent()[kind] != want)
        return Internal("rank ", r, ": bytes_sent ", kind, " = ", gpu_->bytes_sent()[kind], ", the model says ", want);
    return gpu_->Barrier();
  }

 private:
  static Status Host(StatusOr<std::unique_ptr<CommHandle>> h) {
    if (!h.ok()) return h.status();
    return (*h)->Wait();
  }
  // `init` copied to a device buffer of `size` bytes (the rest 0xff) on the compute stream, the
  // collective issued right after (no host sync: the communicator must order itself after the
  // copy), its result read back from `result_offset` on the compute stream after Wait().
  template <typename F>
  StatusOr<std::vector<char>> OnDevice(const std::vector<char>& init, size_t size, F collective,
                                       size_t result_offset = 0) {
    ASSIGN_OR_RETURN(void* buffer, device_->Allocate(size));
    char* d = static_cast<char*>(buffer);
    Status s = device_->Memset(d, 0xff, size);
    if (s.ok()) s = device_->CopyHostToDevice(d, init.data(), init.size());
    if (s.ok()) s = Host(collective(d));
    std::vector<char> out(size - result_offset);
    if (s.ok()) s = device_->CopyDeviceToHost(out.data(), d + result_offset, out.size());
    device_->Free(d);
    if (!s.ok()) return s;
    return out;
  }
  Status Same(const std::vector<char>& got, const std::vector<char>& want, const std::string& what) const {
    const size_t n = std::min(got.size(), want.size());
    if (got.size() != want.size()) return Internal("rank ", host_->rank(), ": ", what, ": size ", got.size(), " vs ", want.size());
    for (size_t i = 0; i < n; ++i)
      if (got[i] != want[i]) return Internal("rank ", host_->rank(), ": ", what, ": byte ", i, " differs from MPI's");
    return Status::OK();
  }

  Communicator* host_;
  Communicator* gpu_;
  Device* device_;
  std::map<std::string, int64_t> expect_ = ZeroCollectiveCounts();
};

Status Main() {
  ASSIGN_OR_RETURN(std::unique_ptr<Communicator> host, CreateMpiCommunicator());
  ASSIGN_OR_RETURN(const CudaBackendApi* cuda, LoadCudaBackend());
  std::string why;
  const int devices = cuda->device_count(&why);
  if (devices == 0) return FailedPrecondition("no CUDA device: ", why);
  Status s;
  {
    ASSIGN_OR_RETURN(std::unique_ptr<Device> device, cuda->create_device(host->rank() % devices));
    ASSIGN_OR_RETURN(std::unique_ptr<Communicator> gpu,
                     cuda->create_gpu_communicator(host.get(), device->cuda_resources()));
    Checker check(host.get(), gpu.get(), device.get());
    s = check.Run();
    if (s.ok()) s = device->Synchronize();
    if (s.ok() && host->rank() == 0) std::printf("every GPU collective matches (%d ranks, %d GPUs)\n", host->size(), devices);
  }
  if (!s.ok()) host->Abort(s.ToString(), 1);
  return s;
}

}  // namespace
}  // namespace dsc

int main() {
  dsc::Status s = dsc::Main();
  if (!s.ok()) {
    std::fprintf(stderr, "%s\n", s.ToString().c_str());
    return 1;
  }
  return 0;
}
