// The CUDA module's entry point: the table of what it offers the program that loads it.
#include "runtime/cuda_backend.h"
#include "runtime/device.h"
#include "runtime/gpu_communicator.h"

namespace dsc {
namespace cuda_backend {
// runtime/cuda_device.cc
int DeviceCount(std::string* why);
StatusOr<std::unique_ptr<Device>> CreateDevice(int ordinal);
}  // namespace cuda_backend
}  // namespace dsc

extern "C" const dsc::CudaBackendApi* dsc_cuda_backend_v1() {
  static const dsc::CudaBackendApi api{DSC_CUDA_ABI, &dsc::cuda_backend::DeviceCount,
                                       &dsc::cuda_backend::CreateDevice, &dsc::CreateGpuCommunicator};
  return &api;
}
