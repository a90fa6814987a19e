// The NVMe swap file (runtime/nvme_swap.h): what is written reads back byte for byte under every
// combination of the aio keys, with transfers split into many requests and several in flight at
// once; it starts as zeros, leaves nothing behind, and refuses what it cannot do.
#include <gtest/gtest.h>

#include <cstdint>
#include <filesystem>
#include <numeric>
#include <vector>

#include "runtime/nvme_swap.h"
#include "tests/testutil/test_util.h"

namespace dsc {
namespace {

std::vector<uint8_t> Pattern(size_t n, uint8_t seed) {
  std::vector<uint8_t> v(n);
  for (size_t i = 0; i < n; ++i) v[i] = static_cast<uint8_t>(seed + i * 7 + i / 251);
  return v;
}

struct IoCase {
  int64_t block_size, queue_depth, threads;
  bool single_submit, overlap_events;
};

class NvmeSwapRoundTrip : public ::testing::TestWithParam<IoCase> {};

TEST_P(NvmeSwapRoundTrip, WritesReadBackAcrossRequestsAndTransfersInFlight) {
  const IoCase& c = GetParam();
  testing::TempDir tmp;
  const std::string dir = tmp.File("nvme/sub");  // created when missing
  // Sizes that are not multiples of the block size or of the 4096-byte slot alignment.
  const std::vector<SwapSlot> slots = {{"a", 10000}, {"b", 4096}, {"c", 1}, {"d", 70001}};
  SwapIoOptions io{c.block_size, c.queue_depth, c.threads, c.single_submit, c.overlap_events};
  StatusOr<std::unique_ptr<NvmeSwapFile>> f = NvmeSwapFile::Create(dir, 3, slots, io);
  ASSERT_TRUE(f.ok()) << f.status().ToString();
  EXPECT_EQ((*f)->file_bytes(), 23u * 4096);  // 3 + 1 + 1 + 18 slots of 4096 bytes
  // Zeros before anything is written.
  std::vector<uint8_t> zeros(70001, 0xff);
  ASSERT_TRUE((*f)->Read("d", zeros.data(), zeros.size()).ok());
  EXPECT_EQ(std::accumulate(zeros.begin(), zeros.end(), 0), 0);
  // Every write in flight at once, then waited for in another order.
  std::vector<std::vector<uint8_t>> data;
  std::vector<std::unique_ptr<CommHandle>> writes;
  for (size_t i = 0; i < slots.size(); ++i) {
    data.push_back(Pattern(slots[i].bytes, static_cast<uint8_t>(i + 1)));
    StatusOr<std::unique_ptr<CommHandle>> h = (*f)->StartWrite(slots[i].name, data[i].data(), data[i].size());
    ASSERT_TRUE(h.ok()) << h.status().ToString();
    writes.push_back(std::move(*h));
  }
  for (size_t i = writes.size(); i-- > 0;) {
    ASSERT_TRUE(writes[i]->Progress().ok());
    ASSERT_TRUE(writes[i]->Wait().ok());
  }
  std::vector<std::vector<uint8_t>> back;
  std::vector<std::unique_ptr<CommHandle>> reads;
  for (size_t i = 0; i < slots.size(); ++i) {
    back.emplace_back(slots[i].bytes, 0);
    StatusOr<std::unique_ptr<CommHandle>> h = (*f)->StartRead(slots[i].name, back[i].data(), back[i].size());
    ASSERT_TRUE(h.ok()) << h.status().ToString();
    reads.push_back(std::move(*h));
  }
  for (auto& h : reads) ASSERT_TRUE(h->Wait().ok());
  for (size_t i = 0; i < slots.size(); ++i) EXPECT_EQ(back[i], data[i]) << slots[i].name;
  // A prefix (a shard's real elements) leaves the rest as it was.
  std::vector<uint8_t> head(100, 0xab), whole(10000);
  ASSERT_TRUE((*f)->Write("a", head.data(), head.size()).ok());
  ASSERT_TRUE((*f)->Read("a", whole.data(), whole.size()).ok());
  EXPECT_EQ(whole[99], 0xab);
  EXPECT_EQ(whole[100], data[0][100]);
  EXPECT_EQ((*f)->bytes_written(), 10000u + 4096 + 1 + 70001 + 100);
  // A handle dropped before its Wait still completes its transfer first.
  {
    StatusOr<std::unique_ptr<CommHandle>> h = (*f)->StartRead("d", back[3].data(), back[3].size());
    ASSERT_TRUE(h.ok());
  }
  EXPECT_EQ(back[3], data[3]);
  // The file has no name: nothing is left in the folder, even while it is open.
  EXPECT_TRUE(std::filesystem::is_empty(dir));
}

INSTANTIATE_TEST_SUITE_P(AioKeys, NvmeSwapRoundTrip,
                         ::testing::Values(IoCase{1048576, 8, 1, false, true},  // DeepSpeed's defaults
                                           IoCase{1000, 2, 1, false, true},     // many requests, few in flight
                                           IoCase{4096, 3, 2, true, true},      // single_submit
                                           IoCase{777, 4, 1, false, false},     // batches without overlap
                                           IoCase{509, 1, 1, true, false}));    // one small request at a time

TEST(NvmeSwap, RefusesWhatItCannotDo) {
  testing::TempDir tmp;
  SwapIoOptions io;
  io.block_size = 0;
  StatusOr<std::unique_ptr<NvmeSwapFile>> bad = NvmeSwapFile::Create(tmp.path(), 0, {{"a", 8}}, io);
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("aio.block_size"), std::string::npos) << bad.status().message();
  io = SwapIoOptions{};
  io.queue_depth = 0;
  bad = NvmeSwapFile::Create(tmp.path(), 0, {{"a", 8}}, io);
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("aio.queue_depth"), std::string::npos) << bad.status().message();
  StatusOr<std::unique_ptr<NvmeSwapFile>> f = NvmeSwapFile::Create(tmp.path(), 0, {{"a", 8}}, SwapIoOptions{});
  ASSERT_TRUE(f.ok()) << f.status().ToString();
  char buf[16];
  EXPECT_FALSE((*f)->Read("b", buf, 8).ok());
  EXPECT_FALSE((*f)->Read("a", buf, 16).ok());  // more than the state holds
}

}  // namespace
}  // namespace dsc
