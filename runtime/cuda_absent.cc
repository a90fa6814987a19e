// The CUDA entry points of a build without nvcc: no GPU is ever visible and --device cuda says why.
#include "runtime/device.h"

namespace dsc {

bool CudaBackendBuilt() { return false; }

int CudaDeviceCount(std::string* why) {
  if (why) *why = "the CUDA backend is not built into this program";
  return 0;
}

StatusOr<std::unique_ptr<Device>> CreateCudaDevice(int) {
  return FailedPrecondition("the CUDA backend is not built into this program (nvcc was not found when it was "
                            "configured)");
}

}  // namespace dsc
