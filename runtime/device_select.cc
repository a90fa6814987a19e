// Which device a rank computes on: --device, the launcher's local rank, and the GPUs it sees.
#include <cstdlib>

#include "kernels/cpu/simd.h"
#include "runtime/device.h"

namespace dsc {

int LocalRank() {
  for (const char* var : {"LOCAL_RANK", "OMPI_COMM_WORLD_LOCAL_RANK", "MPI_LOCALRANKID", "SLURM_LOCALID"}) {
    const char* v = std::getenv(var);
    if (!v || !*v) continue;
    char* end = nullptr;
    const long r = std::strtol(v, &end, 10);
    if (*end == '\0' && r >= 0 && r < (1 << 20)) return static_cast<int>(r);
  }
  return 0;
}

namespace {

// A bad DSC_CPU_ISA is reported here, before any kernel is created (every kernel's Init would
// report it too, but as a fault of the plan's first node).
StatusOr<std::unique_ptr<Device>> CpuDevice(int threads) {
  RETURN_IF_ERROR(cpu::SelectedIsa().status());
  return CreateCpuDevice(threads);
}

}  // namespace

StatusOr<std::unique_ptr<Device>> CreateDevice(const std::string& kind, int threads) {
  if (kind == "cpu") return CpuDevice(threads);
  if (kind != "cuda" && !kind.empty()) return InvalidArgument("--device ", kind, ": unknown device (accepted: cpu, cuda)");
  std::string why;
  const int gpus = CudaDeviceCount(&why);
  if (kind.empty() && gpus == 0) return CpuDevice(threads);
  if (!CudaBackendBuilt())
    return FailedPrecondition("--device cuda: the CUDA backend is not built into this dsrun (nvcc was not found when "
                              "it was configured); use --device cpu");
  if (gpus == 0) return FailedPrecondition("--device cuda: no CUDA GPU is visible to this process: ", why);
  return CreateCudaDevice(LocalRank() % gpus);
}

}  // namespace dsc
