// Which device --device picks, the launcher's local rank, and the messages without a GPU.
#include <gtest/gtest.h>

#include <dlfcn.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>

#include "kernels/cpu/blas.h"
#include "kernels/cpu/onednn.h"
#include "kernels/cpu/simd.h"
#include "runtime/cuda_backend.h"
#include "runtime/device.h"
#include "tests/testutil/test_util.h"

namespace dsc {
namespace {

using testing::ScopedEnv;

TEST(DeviceSelect, CpuOnRequest) {
  StatusOr<std::unique_ptr<Device>> d = CreateDevice("cpu", 1);
  ASSERT_TRUE(d.ok()) << d.status().message();
  EXPECT_EQ((*d)->kind(), DeviceKind::kCpu);
  // The name carries the BLAS and its kernel set (dsrun prints it at startup).
  EXPECT_EQ((*d)->name(), StrCat("cpu (", cpu::BlasDescription(), ", ", cpu::OnednnDescription(), ", ",
                                  cpu::IsaName(*cpu::SelectedIsa()), " loops, 1 thread)"));
  EXPECT_EQ((*d)->cuda_resources(), nullptr);
}

TEST(DeviceSelect, UnknownDeviceNamesTheAcceptedOnes) {
  StatusOr<std::unique_ptr<Device>> d = CreateDevice("tpu", 1);
  ASSERT_FALSE(d.ok());
  EXPECT_NE(d.status().message().find("accepted: cpu, cuda"), std::string::npos) << d.status().message();
}

TEST(DeviceSelect, DefaultIsCudaOnlyWithAVisibleGpu) {
  std::string why;
  const int gpus = CudaDeviceCount(&why);
  StatusOr<std::unique_ptr<Device>> d = CreateDevice("", 1);
  ASSERT_TRUE(d.ok()) << d.status().message();
  EXPECT_EQ((*d)->kind(), gpus > 0 ? DeviceKind::kCuda : DeviceKind::kCpu);
  if (gpus == 0) {
    EXPECT_FALSE(why.empty());
  }
}

TEST(DeviceSelect, CudaWithoutAGpuSaysWhy) {
  if (CudaDeviceCount() > 0) GTEST_SKIP() << "a GPU is visible: nothing to refuse";
  StatusOr<std::unique_ptr<Device>> d = CreateDevice("cuda", 1);
  ASSERT_FALSE(d.ok());
  const std::string& m = d.status().message();
  const char* want = CudaBackendBuilt() ? "no CUDA GPU is visible" : "not built into this dsrun";
  EXPECT_NE(m.find(want), std::string::npos) << m;
}

bool Mapped(const std::string& library) {
  std::ifstream maps("/proc/self/maps");
  std::string line;
  while (std::getline(maps, line))
    if (line.find(library) != std::string::npos) return true;
  return false;
}

bool DriverInstalled() {
  void* h = dlopen("libcuda.so.1", RTLD_LAZY | RTLD_LOCAL);
  if (h) dlclose(h);
  return h != nullptr;
}

// A CPU host never maps the CUDA module or the libraries it needs (they cost each rank ~150 MB):
// asking how many GPUs there are, and the default device, stop at the missing driver.
TEST(DeviceSelectDeathTest, WithoutTheDriverNoCudaLibraryIsMapped) {
  if (DriverInstalled()) GTEST_SKIP() << "the NVIDIA driver is installed: the module may be loaded";
  EXPECT_EXIT(
      {
        std::string why;
        const int gpus = CudaDeviceCount(&why);
        StatusOr<std::unique_ptr<Device>> d = CreateDevice("", 1);
        const bool clean = gpus == 0 && d.ok() && !Mapped("libdsc_cuda") && !Mapped("libcublasLt") && !Mapped("libnccl");
        std::fprintf(stderr, "gpus %d, why: %s\n", gpus, why.c_str());
        std::_Exit(clean ? 0 : 1);
      },
      ::testing::ExitedWithCode(0), CudaBackendBuilt() ? "NVIDIA driver is not installed" : "not built");
}

// The module loads into a program without a GPU (binding every symbol it takes from the program),
// registers its kernels there, and says why it sees no GPU.
TEST(DeviceSelect, CudaModuleLoadsAndRegistersItsKernels) {
  if (!CudaBackendBuilt()) GTEST_SKIP() << "no CUDA backend in this build";
  StatusOr<const CudaBackendApi*> api = LoadCudaBackend();
  ASSERT_TRUE(api.ok()) << api.status().message();
  EXPECT_TRUE(Mapped("libdsc_cuda.so"));
  size_t cuda_kernels = 0;
  for (const KernelKey& k : KernelRegistry::Global().Keys()) cuda_kernels += k.device == DeviceKind::kCuda;
  EXPECT_GT(cuda_kernels, 100u);
  std::string why;
  const int gpus = (*api)->device_count(&why);
  if (gpus == 0) {
    EXPECT_FALSE(why.empty());
  }
  StatusOr<const CudaBackendApi*> again = LoadCudaBackend();
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(*again, *api);
}

// DSC_CUDA_BACKEND names the module: a missing file, or a library that is not ours, is refused by
// name (each in a fresh process: the first load is remembered).
TEST(DeviceSelectDeathTest, CudaModuleNamedByTheEnvironment) {
  if (!CudaBackendBuilt()) GTEST_SKIP() << "no CUDA backend in this build";
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  auto load_with = [](const char* path) {
    setenv("DSC_CUDA_BACKEND", path, 1);
    StatusOr<const CudaBackendApi*> api = LoadCudaBackend();
    std::fprintf(stderr, "%s\n", api.ok() ? "loaded" : api.status().message().c_str());
    std::_Exit(api.ok() ? 0 : 1);
  };
  EXPECT_EXIT(load_with("/nonexistent/libdsc_cuda.so"), ::testing::ExitedWithCode(1),
              "DSC_CUDA_BACKEND=/nonexistent/libdsc_cuda.so: no such file");
  Dl_info info{};
  ASSERT_NE(dladdr(reinterpret_cast<void*>(&dlopen), &info), 0);  // the C library's own file
  const std::string libc = info.dli_fname;
  EXPECT_EXIT(load_with(libc.c_str()), ::testing::ExitedWithCode(1), "is not a dscompile CUDA module");
}

TEST(DeviceSelect, LocalRankFromTheLauncher) {
  ScopedEnv a("LOCAL_RANK", nullptr), b("OMPI_COMM_WORLD_LOCAL_RANK", nullptr), c("MPI_LOCALRANKID", nullptr),
      d("SLURM_LOCALID", nullptr);
  EXPECT_EQ(LocalRank(), 0);
  {
    ScopedEnv slurm("SLURM_LOCALID", "3");
    EXPECT_EQ(LocalRank(), 3);
    ScopedEnv ompi("OMPI_COMM_WORLD_LOCAL_RANK", "5");
    EXPECT_EQ(LocalRank(), 5);  // Open MPI's before Slurm's: mpirun inside an allocation
    ScopedEnv torch("LOCAL_RANK", "junk");
    EXPECT_EQ(LocalRank(), 5);  // not a number: the next variable
  }
}

}  // namespace
}  // namespace dsc
