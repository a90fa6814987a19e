// The NVMe swap file (runtime/nvme_swap.h): what is written reads back byte for byte under every
// combination of the aio keys, with transfers split into many requests and several in flight at
// once, through O_DIRECT on the local disk (buffers in place and bounced) and buffered on tmpfs;
// it starts as zeros, leaves nothing behind, keeps the states out of the page cache, and refuses
// what it cannot do.
#include <fcntl.h>
#include <linux/magic.h>
#include <sys/mman.h>
#include <sys/vfs.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <numeric>
#include <tuple>
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

bool OnTmpfs(const std::string& dir) {
  struct statfs fs {};
  return ::statfs(dir.c_str(), &fs) == 0 && fs.f_type == TMPFS_MAGIC;
}

// A temporary folder in /dev/shm (tmpfs), removed with its contents.
class ShmDir {
 public:
  ShmDir() {
    std::string tmpl = "/dev/shm/dsc_test_XXXXXX";
    if (OnTmpfs("/dev/shm") && mkdtemp(tmpl.data())) path_ = tmpl;
  }
  ~ShmDir() {
    std::error_code ec;
    if (!path_.empty()) std::filesystem::remove_all(path_, ec);
  }
  const std::string& path() const { return path_; }  // empty: no tmpfs at /dev/shm

 private:
  std::string path_;
};

// The swap file's descriptor in this process (it has no name: "DIR/#INODE (deleted)") and its
// open flags as the kernel holds them (/proc/self/fdinfo); -1 when there is none.
long OpenFlagsOfFileIn(const std::string& dir, int* fd_out = nullptr) {
  for (const auto& e : std::filesystem::directory_iterator("/proc/self/fd")) {
    std::error_code ec;
    const std::string target = std::filesystem::read_symlink(e.path(), ec).string();
    if (ec || target.rfind(dir + "/", 0) != 0) continue;
    std::ifstream info("/proc/self/fdinfo/" + e.path().filename().string());
    for (std::string key; info >> key;) {
      if (key != "flags:") continue;
      std::string octal;
      info >> octal;
      if (fd_out) *fd_out = std::stoi(e.path().filename().string());
      return std::stol(octal, nullptr, 8);
    }
  }
  return -1;
}

// `n` bytes at `misalign` bytes past a page: in place for O_DIRECT when 0.
class Buffer {
 public:
  Buffer(size_t n, size_t misalign) : base_(static_cast<uint8_t*>(std::aligned_alloc(4096, (n + misalign) / 4096 * 4096 + 4096))), n_(n) {
    data_ = base_ + misalign;
  }
  ~Buffer() { std::free(base_); }
  uint8_t* data() { return data_; }
  std::vector<uint8_t> bytes() const { return std::vector<uint8_t>(data_, data_ + n_); }
  void Fill(const std::vector<uint8_t>& v) { std::memcpy(data_, v.data(), v.size()); }
  size_t size() const { return n_; }

 private:
  uint8_t* base_;
  uint8_t* data_;
  size_t n_;
};

struct IoCase {
  int64_t block_size, queue_depth, threads;
  bool single_submit, overlap_events;
};

// The aio keys x the folder (the local disk: O_DIRECT; /dev/shm: buffered) x the buffers' place
// (0: on a page, read and written in place with O_DIRECT; 64: bounced).
class NvmeSwapRoundTrip : public ::testing::TestWithParam<std::tuple<IoCase, bool, size_t>> {};

TEST_P(NvmeSwapRoundTrip, WritesReadBackAcrossRequestsAndTransfersInFlight) {
  const auto& [c, on_shm, misalign] = GetParam();
  testing::TempDir disk;
  ShmDir shm;
  if (on_shm && shm.path().empty()) GTEST_SKIP() << "/dev/shm is not a tmpfs here";
  const std::string dir = (on_shm ? shm.path() : disk.path()) + "/nvme/sub";  // created when missing
  // Sizes that are not multiples of the block size or of the 4096-byte slot alignment.
  const std::vector<SwapSlot> slots = {{"a", 10000}, {"b", 4096}, {"c", 1}, {"d", 70001}};
  SwapIoOptions io{c.block_size, c.queue_depth, c.threads, c.single_submit, c.overlap_events};
  StatusOr<std::unique_ptr<NvmeSwapFile>> f = NvmeSwapFile::Create(dir, 3, slots, io);
  ASSERT_TRUE(f.ok()) << f.status().ToString();
  EXPECT_EQ((*f)->file_bytes(), 23u * 4096);  // 3 + 1 + 1 + 18 slots of 4096 bytes
  // Zeros before anything is written.
  Buffer zeros(70001, misalign);
  std::memset(zeros.data(), 0xff, zeros.size());
  ASSERT_TRUE((*f)->Read("d", zeros.data(), zeros.size()).ok());
  const std::vector<uint8_t> z = zeros.bytes();
  EXPECT_EQ(std::accumulate(z.begin(), z.end(), 0), 0);
  // Every write in flight at once, then waited for in another order.
  std::vector<std::unique_ptr<Buffer>> data;
  std::vector<std::unique_ptr<CommHandle>> writes;
  for (size_t i = 0; i < slots.size(); ++i) {
    data.push_back(std::make_unique<Buffer>(slots[i].bytes, misalign));
    data[i]->Fill(Pattern(slots[i].bytes, static_cast<uint8_t>(i + 1)));
    StatusOr<std::unique_ptr<CommHandle>> h = (*f)->StartWrite(slots[i].name, data[i]->data(), data[i]->size());
    ASSERT_TRUE(h.ok()) << h.status().ToString();
    writes.push_back(std::move(*h));
  }
  for (size_t i = writes.size(); i-- > 0;) {
    ASSERT_TRUE(writes[i]->Progress().ok());
    ASSERT_TRUE(writes[i]->Wait().ok());
  }
  std::vector<std::unique_ptr<Buffer>> back;
  std::vector<std::unique_ptr<CommHandle>> reads;
  for (size_t i = 0; i < slots.size(); ++i) {
    back.push_back(std::make_unique<Buffer>(slots[i].bytes, misalign));
    StatusOr<std::unique_ptr<CommHandle>> h = (*f)->StartRead(slots[i].name, back[i]->data(), back[i]->size());
    ASSERT_TRUE(h.ok()) << h.status().ToString();
    reads.push_back(std::move(*h));
  }
  for (auto& h : reads) ASSERT_TRUE(h->Wait().ok());
  for (size_t i = 0; i < slots.size(); ++i) EXPECT_EQ(back[i]->bytes(), data[i]->bytes()) << slots[i].name;
  // A prefix (a shard's real elements) leaves the rest as it was, also inside its last block.
  std::vector<uint8_t> head(100, 0xab), whole(10000);
  ASSERT_TRUE((*f)->Write("a", head.data(), head.size()).ok());
  ASSERT_TRUE((*f)->Read("a", whole.data(), whole.size()).ok());
  EXPECT_EQ(whole[99], 0xab);
  const std::vector<uint8_t> a = data[0]->bytes();
  EXPECT_TRUE(std::equal(whole.begin() + 100, whole.end(), a.begin() + 100));
  EXPECT_EQ((*f)->bytes_written(), 10000u + 4096 + 1 + 70001 + 100);
  // A handle dropped before its Wait still completes its transfer first.
  {
    StatusOr<std::unique_ptr<CommHandle>> h = (*f)->StartRead("d", back[3]->data(), back[3]->size());
    ASSERT_TRUE(h.ok());
  }
  EXPECT_EQ(back[3]->bytes(), data[3]->bytes());
  // The file has no name: nothing is left in the folder, even while it is open.
  EXPECT_TRUE(std::filesystem::is_empty(dir));
}

INSTANTIATE_TEST_SUITE_P(AioKeys, NvmeSwapRoundTrip,
                         ::testing::Combine(::testing::Values(IoCase{1048576, 8, 1, false, true},  // DeepSpeed's defaults
                                                              IoCase{1000, 2, 1, false, true},     // many requests, few in flight
                                                              IoCase{4096, 3, 2, true, true},      // single_submit
                                                              IoCase{777, 4, 1, false, false},     // batches without overlap
                                                              IoCase{509, 1, 1, true, false}),     // one small request at a time
                                            ::testing::Bool(), ::testing::Values(size_t{0}, size_t{64})),
                         [](const ::testing::TestParamInfo<std::tuple<IoCase, bool, size_t>>& info) {
                           // Named by value: the default name prints the struct's bytes, padding included.
                           const IoCase& c = std::get<0>(info.param);
                           return "block" + std::to_string(c.block_size) + "_qd" + std::to_string(c.queue_depth) + "_t" +
                                  std::to_string(c.threads) + (c.single_submit ? "_single" : "") +
                                  (c.overlap_events ? "_overlap" : "") + (std::get<1>(info.param) ? "_shm" : "_disk") +
                                  "_off" + std::to_string(std::get<2>(info.param));
                         });

// On the local disk the file is open with O_DIRECT, as DeepSpeed's aio opens its files, and what
// is written is not in the page cache afterwards.
TEST(NvmeSwap, OpensWithODirectOnTheLocalDisk) {
  testing::TempDir tmp;
  if (OnTmpfs(tmp.path())) GTEST_SKIP() << tmp.path() << " is on tmpfs here: no direct I/O to test";
  const std::vector<SwapSlot> slots = {{"m", 1 << 20}};
  StatusOr<std::unique_ptr<NvmeSwapFile>> f = NvmeSwapFile::Create(tmp.path(), 0, slots, SwapIoOptions{});
  ASSERT_TRUE(f.ok()) << f.status().ToString();
  EXPECT_TRUE((*f)->direct_io()) << (*f)->direct_io_note();
  EXPECT_EQ((*f)->direct_io_note(), "");
  EXPECT_EQ((*f)->alignment() % 512, 0u);
  int fd = -1;
  const long flags = OpenFlagsOfFileIn(tmp.path(), &fd);
  ASSERT_GE(flags, 0) << "no open file under " << tmp.path();
  EXPECT_NE(flags & O_DIRECT, 0) << std::oct << flags;
  Buffer m(1 << 20, 0);
  m.Fill(Pattern(1 << 20, 9));
  ASSERT_TRUE((*f)->Write("m", m.data(), m.size()).ok());
  void* map = ::mmap(nullptr, 1 << 20, PROT_READ, MAP_SHARED, fd, 0);
  ASSERT_NE(map, MAP_FAILED);
  std::vector<unsigned char> resident(256);
  ASSERT_EQ(::mincore(map, 1 << 20, resident.data()), 0);
  ::munmap(map, 1 << 20);
  EXPECT_EQ(std::accumulate(resident.begin(), resident.end(), 0, [](int s, unsigned char r) { return s + (r & 1); }), 0)
      << "pages of the swapped state are in the page cache";
}

// On tmpfs (/dev/shm) the file is buffered (its pages are memory whatever the flags), and the note
// dsrun prints says so, naming the folder and the rank.
TEST(NvmeSwap, FallsBackToBufferedIoOnTmpfs) {
  ShmDir shm;
  if (shm.path().empty()) GTEST_SKIP() << "/dev/shm is not a tmpfs here";
  StatusOr<std::unique_ptr<NvmeSwapFile>> f = NvmeSwapFile::Create(shm.path(), 5, {{"a", 8}}, SwapIoOptions{}, "offload_param.nvme_path");
  ASSERT_TRUE(f.ok()) << f.status().ToString();
  EXPECT_FALSE((*f)->direct_io());
  const std::string& note = (*f)->direct_io_note();
  for (const std::string& part : {std::string("rank 5"), shm.path(), std::string("offload_param.nvme_path"),
                                   std::string("buffered I/O, not O_DIRECT"), std::string("tmpfs")})
    EXPECT_NE(note.find(part), std::string::npos) << part << " not in: " << note;
  const long flags = OpenFlagsOfFileIn(shm.path());
  ASSERT_GE(flags, 0);
  EXPECT_EQ(flags & O_DIRECT, 0) << std::oct << flags;
}

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
