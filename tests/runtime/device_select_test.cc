// Which device --device picks, the launcher's local rank, and the messages without a GPU.
#include <gtest/gtest.h>

#include <cstdlib>

#include "kernels/cpu/blas.h"
#include "kernels/cpu/onednn.h"
#include "kernels/cpu/simd.h"
#include "runtime/device.h"

namespace dsc {
namespace {

class ScopedEnv {
 public:
  ScopedEnv(const char* name, const char* value) : name_(name) {
    if (const char* old = std::getenv(name)) old_ = old;
    if (value) setenv(name, value, 1);
    else unsetenv(name);
  }
  ~ScopedEnv() {
    if (old_.empty()) unsetenv(name_);
    else setenv(name_, old_.c_str(), 1);
  }

 private:
  const char* name_;
  std::string old_;
};

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
