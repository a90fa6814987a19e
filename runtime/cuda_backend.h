// The CUDA backend's entry points, as a program sees them once the CUDA module is loaded.
//
// The CUDA device, its kernels and the GPU communicators live in libdsc_cuda.so, which links the
// CUDA runtime, cuBLASLt and NCCL. Programs (dsrun, the tests) do not link it: LoadCudaBackend()
// opens it the first time a run asks for a GPU, so a CPU run never maps those libraries (about
// 150 MB of each rank's resident memory). The module binds to the program's own copies of our
// code (the program exports its symbols), so its kernels register in the program's registry.
// A program that links the module's objects itself (tests/comm/gpu_comm_check) uses them instead.
#pragma once

#include <memory>
#include <string>

#include "ir/status.h"

namespace dsc {

class Communicator;
class Device;
namespace cuda {
struct Resources;  // kernels/cuda/cuda_resources.h
}

struct CudaBackendApi {
  // The build the module comes from (DSC_CUDA_ABI): a module of another build is refused, since
  // it would bind to a program whose classes may differ.
  const char* abi;
  // As CudaDeviceCount / CreateCudaDevice (runtime/device.h) and CreateGpuCommunicator
  // (runtime/gpu_communicator.h) say.
  int (*device_count)(std::string* why);
  StatusOr<std::unique_ptr<Device>> (*create_device)(int ordinal);
  StatusOr<std::unique_ptr<Communicator>> (*create_gpu_communicator)(Communicator* host, cuda::Resources* res);
};

// The module, loaded on first call (thread-safe; later calls return the same result). It is
// looked for at $DSC_CUDA_BACKEND when that is set, else as libdsc_cuda.so through the loader's
// search (RUNPATH, LD_LIBRARY_PATH, a bundle's --library-path), next to the program, and in the
// build tree. Errors name every place tried and why each failed.
StatusOr<const CudaBackendApi*> LoadCudaBackend();

}  // namespace dsc

// The module's one exported entry point (defined in runtime/cuda_backend_entry.cc).
extern "C" const dsc::CudaBackendApi* dsc_cuda_backend_v1();
