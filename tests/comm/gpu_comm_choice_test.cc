// The GPU-free part of runtime/gpu_communicator.h: the per-rank GPU record exchanged before the
// communicator is chosen, and the choice between local, NCCL and host-staged collectives.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "runtime/gpu_communicator.h"

namespace dsc {
namespace {

using gpucomm::Kind;
using gpucomm::RankGpu;

RankGpu Gpu(char id, const std::string& host = "node0") { return RankGpu{std::string(gpucomm::kUuidBytes, id), host}; }

TEST(GpuCommRecord, RoundTripsUuidAndHost) {
  RankGpu r{std::string("\x00\x01\x02\x03\x04\x05\x06\x07\x08\x09\x0a\x0b\x0c\x0d\x0e\xff", 16), "gpu-node-17"};
  std::vector<char> buf(gpucomm::kRecordBytes, 'x');
  gpucomm::EncodeRankGpu(r, buf.data());
  RankGpu back = gpucomm::DecodeRankGpu(buf.data());
  EXPECT_EQ(back.uuid, r.uuid);  // raw bytes, zeros included
  EXPECT_EQ(back.host, r.host);
}

TEST(GpuCommRecord, TruncatesLongHostNames) {
  RankGpu r = Gpu('a', std::string(200, 'h'));
  std::vector<char> buf(gpucomm::kRecordBytes);
  gpucomm::EncodeRankGpu(r, buf.data());
  EXPECT_EQ(gpucomm::DecodeRankGpu(buf.data()).host, std::string(gpucomm::kHostBytes - 1, 'h'));
}

TEST(GpuCommChoice, OneRankIsLocal) {
  auto k = gpucomm::Choose({Gpu('a')}, "", nullptr);
  ASSERT_TRUE(k.ok());
  EXPECT_EQ(*k, Kind::kLocal);
  k = gpucomm::Choose({Gpu('a')}, "staged", nullptr);
  ASSERT_TRUE(k.ok());
  EXPECT_EQ(*k, Kind::kLocal);
}

TEST(GpuCommChoice, DistinctGpusUseNccl) {
  // The same UUID bytes on different hosts cannot happen; distinct UUIDs on one host are NCCL's case.
  auto k = gpucomm::Choose({Gpu('a'), Gpu('b'), Gpu('c', "node1"), Gpu('d', "node1")}, "", nullptr);
  ASSERT_TRUE(k.ok());
  EXPECT_EQ(*k, Kind::kNccl);
  EXPECT_STREQ(gpucomm::KindName(*k), "nccl");
}

TEST(GpuCommChoice, SharedGpuIsStagedAndNamed) {
  std::string why;
  auto k = gpucomm::Choose({Gpu('a'), Gpu('b'), Gpu('a')}, "", &why);
  ASSERT_TRUE(k.ok());
  EXPECT_EQ(*k, Kind::kStaged);
  EXPECT_NE(why.find("ranks 0 and 2 share a GPU"), std::string::npos) << why;
}

TEST(GpuCommChoice, ForcedKinds) {
  std::string why;
  auto staged = gpucomm::Choose({Gpu('a'), Gpu('b')}, "staged", &why);
  ASSERT_TRUE(staged.ok());
  EXPECT_EQ(*staged, Kind::kStaged);
  EXPECT_EQ(why, "DSC_GPU_COMM=staged");
  auto nccl = gpucomm::Choose({Gpu('a'), Gpu('b')}, "nccl", nullptr);
  ASSERT_TRUE(nccl.ok());
  EXPECT_EQ(*nccl, Kind::kNccl);
  auto refused = gpucomm::Choose({Gpu('a'), Gpu('a')}, "nccl", nullptr);
  ASSERT_FALSE(refused.ok());
  EXPECT_NE(refused.status().message().find("NCCL needs one GPU per rank"), std::string::npos);
  auto bad = gpucomm::Choose({Gpu('a'), Gpu('b')}, "mpi", nullptr);
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("DSC_GPU_COMM='mpi'"), std::string::npos);
}

}  // namespace
}  // namespace dsc
