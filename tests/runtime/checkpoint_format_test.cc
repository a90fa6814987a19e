// Checkpoint format: safetensors round trips and validation, re-slicing across shard layouts,
// corruption detection, and the commit protocol's failure cases.
#include "runtime/checkpoint_format.h"

#include <gtest/gtest.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <condition_variable>
#include <csignal>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <numeric>
#include <random>
#include <thread>

#include "runtime/safetensors.h"
#include "tests/testutil/test_util.h"

namespace dsc {
namespace {

namespace fs = std::filesystem;
using testing::ReadFileOrDie;
using testing::TempDir;
using testing::WriteFileOrDie;

std::vector<uint8_t> RandomBytes(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::vector<uint8_t> b(n);
  for (auto& x : b) x = static_cast<uint8_t>(rng());
  return b;
}

TEST(Crc32c, KnownValueAndTableMatchesHardware) {
  EXPECT_EQ(Crc32c("123456789", 9), 0xe3069283u);
  EXPECT_EQ(Crc32cPortable("123456789", 9), 0xe3069283u);
  EXPECT_EQ(Crc32c("", 0), 0u);
  const auto b = RandomBytes(1000, 1);
  for (size_t n : {1, 7, 8, 9, 63, 64, 999, 1000}) {
    EXPECT_EQ(Crc32c(b.data(), n), Crc32cPortable(b.data(), n)) << n;
    // Chaining equals one call.
    EXPECT_EQ(Crc32c(b.data() + n / 3, n - n / 3, Crc32c(b.data(), n / 3)), Crc32c(b.data(), n)) << n;
  }
}

// ---- safetensors ----

struct DTypeCase {
  DType dtype;
  std::vector<int64_t> shape;
};
const std::vector<DTypeCase> kDTypeCases = {
    {DType::kFloat32, {3, 5}}, {DType::kFloat16, {7}},  {DType::kBFloat16, {2, 3}}, {DType::kFloat64, {4}},
    {DType::kInt64, {2, 2}},   {DType::kInt32, {5}},    {DType::kInt16, {3}},      {DType::kInt8, {9}},
    {DType::kUInt8, {1, 1, 3}}, {DType::kBool, {6}},    {DType::kFloat32, {}},     {DType::kInt64, {0, 3}}};

TEST(Safetensors, RoundTripsEveryDType) {
  TempDir tmp;
  std::vector<std::vector<uint8_t>> data;
  SafetensorsWriter w;
  w.set_block_bytes(16);  // many blocks, blocks spanning tensors
  w.SetMetadata("hello", "world");
  for (size_t i = 0; i < kDTypeCases.size(); ++i) {
    const auto& c = kDTypeCases[i];
    auto bytes = RandomBytes(static_cast<size_t>(*NumBytes(c.shape, c.dtype)), static_cast<uint32_t>(i));
    if (c.dtype == DType::kBool)
      for (auto& x : bytes) x &= 1;
    data.push_back(std::move(bytes));
    ASSERT_TRUE(w.Add(StrCat("t", i), c.dtype, c.shape, data.back().data()).ok());
  }
  EXPECT_FALSE(w.Add("t0", DType::kFloat32, {1}, data[0].data()).ok());  // duplicate name
  const std::string path = tmp.File("a.safetensors");
  ASSERT_TRUE(w.Write(path).ok());
  EXPECT_FALSE(fs::exists(path + ".tmp"));
  
  auto f = SafetensorsFile::Open(path);
  ASSERT_TRUE(f.ok()) << f.status().ToString();
  EXPECT_EQ(f->metadata().at("hello"), "world");
  EXPECT_TRUE(f->has_checksums());
  EXPECT_EQ(f->raw_header().size() % 8, 0u);  // header padded: the data starts 8-aligned
  ASSERT_TRUE(f->VerifyData().ok());
  for (size_t i = 0; i < kDTypeCases.size(); ++i) {
    auto t = f->ReadTensor(StrCat("t", i));
    ASSERT_TRUE(t.ok()) << t.status().ToString();
    EXPECT_EQ(t->dtype(), kDTypeCases[i].dtype);
    EXPECT_EQ(t->dims(), kDTypeCases[i].shape);
    ASSERT_EQ(t->nbytes(), data[i].size());
    if (!data[i].empty()) {
      EXPECT_EQ(std::memcmp(t->raw(), data[i].data(), data[i].size()), 0) << i;
    }
  }
  // A byte range inside a tensor.
  const SafetensorsEntry* e = f->Find("t0");
  std::vector<uint8_t> part(20);
  ASSERT_TRUE(f->ReadBytes(*e, 13, 20, part.data()).ok());
  EXPECT_EQ(std::memcmp(part.data(), data[0].data() + 13, 20), 0);
  EXPECT_FALSE(f->ReadBytes(*e, 50, 20, part.data()).ok());
  EXPECT_FALSE(f->ReadTensor("nope").ok());
}

// Writes a safetensors file from a header JSON text and `data_bytes` zero bytes.
std::string HandMade(const TempDir& tmp, const std::string& header, size_t data_bytes) {
  std::string bytes(8, '\0');
  for (int i = 0; i < 8; ++i) bytes[static_cast<size_t>(i)] = static_cast<char>((header.size() >> (8 * i)) & 0xff);
  bytes += header + std::string(data_bytes, '\0');
  const std::string path = tmp.File("hand.safetensors");
  WriteFileOrDie(path, bytes);
  return path;
}

TEST(Safetensors, ValidatesTheHeader) {
  TempDir tmp;
  struct Case {
    const char* header;
    size_t data_bytes;
    const char* error;  // expected in the message, besides the file name
  };
  const Case cases[] = {
      {R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})", 8, ""},  // valid
      {R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})", 12, "trailing"},
      {R"({"a":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}})", 8, "\"a\""},
      {R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"U8","shape":[4],"data_offsets":[4,8]}})", 8, "\"b\""},
      {R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})", 12, "\"a\""},
      {R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})", 4, "\"a\""},
      {R"({"a":{"dtype":"Q4","shape":[2],"data_offsets":[0,8]}})", 8, "Q4"},
      {R"({"a":{"dtype":"F32","shape":[-2],"data_offsets":[0,8]}})", 8, "\"a\""},
      {R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8],"x":1}})", 8, "\"a\""},
      {R"({"__metadata__":{"k":1}})", 0, "__metadata__"},
      {R"([1,2])", 0, "JSON object"},
      {R"({"a":)", 0, "JSON object"},
  };
  for (const Case& c : cases) {
    const std::string path = HandMade(tmp, c.header, c.data_bytes);
    auto f = SafetensorsFile::Open(path);
    if (std::string(c.error).empty()) {
      EXPECT_TRUE(f.ok()) << c.header << ": " << f.status().ToString();
      continue;
    }
    ASSERT_FALSE(f.ok()) << c.header;
    EXPECT_NE(f.status().message().find(path), std::string::npos) << f.status().message();
    EXPECT_NE(f.status().message().find(c.error), std::string::npos) << f.status().message();
  }
  // Header length beyond the file.
  std::string bytes(8, '\0');
  bytes[0] = 100;
  WriteFileOrDie(tmp.File("short.safetensors"), bytes + "{}");
  auto f = SafetensorsFile::Open(tmp.File("short.safetensors"));
  ASSERT_FALSE(f.ok());
  EXPECT_NE(f.status().message().find("short.safetensors: header length 100"), std::string::npos) << f.status().message();
}

// The real `safetensors` package reads our files (skipped where it is not installed).
TEST(Safetensors, LoadsWithThePythonPackage) {
  const char* env = std::getenv("DSC_SAFETENSORS_PYTHON");
  const std::string python = env ? env : "/opt/torchenv/bin/python";
  if (::access(python.c_str(), X_OK) != 0 ||
      testing::RunCommand(testing::ShellQuote(python) + " -c 'import safetensors, numpy' 2>/dev/null").rc != 0)
    GTEST_SKIP() << python << " with safetensors and numpy is not available";
  TempDir tmp;
  std::vector<std::vector<uint8_t>> data;
  SafetensorsWriter w;
  w.SetMetadata("format", "pt");
  std::string expected;
  for (size_t i = 0; i < kDTypeCases.size(); ++i) {
    const auto& c = kDTypeCases[i];
    if (c.dtype == DType::kBFloat16) continue;  // numpy has no bfloat16
    Tensor t(c.dtype, c.shape);
    for (int64_t k = 0; k < t.numel(); ++k) t.SetFromInt(k, (k * 7 + static_cast<int64_t>(i)) % 5);
    data.emplace_back(t.raw(), t.raw() + t.nbytes());
    ASSERT_TRUE(w.Add(StrCat("t", i), c.dtype, c.shape, data.back().data()).ok());
    int64_t sum = 0;
    for (int64_t k = 0; k < t.numel(); ++k) sum += t.GetAsInt(k);
    expected += StrCat("t", i, " ", DimsToString(c.shape), " ", sum, "\n");
  }
  ASSERT_TRUE(w.Write(tmp.File("x.safetensors")).ok());
  const std::string script =
      "import sys\n"
      "from safetensors import safe_open\n"
      "with safe_open(sys.argv[1], framework='np') as f:\n"
      "  assert f.metadata()['format'] == 'pt'\n"
      "  for k in sorted(f.keys(), key=lambda s: int(s[1:])):\n"
      "    v = f.get_tensor(k)\n"
      "    print(k, '[' + ','.join(map(str, v.shape)) + ']', int(v.astype('int64').sum()))\n";
  WriteFileOrDie(tmp.File("check.py"), script);
  auto r = testing::RunCommand(testing::ShellQuote(python) + " " + tmp.File("check.py") + " " + tmp.File("x.safetensors"),
                               /*with_stderr=*/true);
  ASSERT_EQ(r.rc, 0) << r.output;
  EXPECT_EQ(r.output, expected);
}

// ---- checkpoints: several ranks as threads, agreeing through a local all-reduce ----

class LocalAgree {
 public:
  explicit LocalAgree(int n) : n_(n) {}
  Status Agree(int rank, bool ok) {
    std::unique_lock<std::mutex> lock(mu_);
    const int64_t gen = gen_;
    if (!ok && failed_ < 0) failed_ = rank;
    if (++arrived_ == n_) {
      result_ = failed_;
      failed_ = -1;
      arrived_ = 0;
      ++gen_;
      cv_.notify_all();
    } else {
      cv_.wait(lock, [&] { return gen_ != gen; });
    }
    return result_ < 0 ? Status::OK() : FailedPrecondition("rank ", result_, " failed");
  }

 private:
  const int n_;
  std::mutex mu_;
  std::condition_variable cv_;
  int arrived_ = 0, failed_ = -1, result_ = -1;
  int64_t gen_ = 0;
};

// Runs fn(rank, agree) on `world` threads; `fail_rank` reports failure at agree call `fail_call`.
std::vector<Status> RunRanks(int world, const std::function<Status(int, const AgreeFn&)>& fn, int fail_rank = -1,
                             int fail_call = -1) {
  LocalAgree local(world);
  std::vector<Status> out(static_cast<size_t>(world));
  std::vector<std::thread> threads;
  for (int r = 0; r < world; ++r) {
    threads.emplace_back([&, r] {
      int calls = 0;
      AgreeFn agree = [&, r](bool ok) { return local.Agree(r, ok && !(r == fail_rank && calls++ == fail_call)); };
      out[static_cast<size_t>(r)] = fn(r, agree);
    });
  }
  for (auto& t : threads) t.join();
  return out;
}

// The test model: "w" F32 [23] split unevenly over 3 ranks; "bias" F32 [2,3] whole on rank 0;
// "adam.step" I64 [5] split 2+3 over ranks 1 and 2; "empty" F32 [0] on rank 0.
constexpr int64_t kW = 23;
const int64_t kWCuts[] = {0, 5, 17, 23};

std::vector<float> WValues(float salt) {
  std::vector<float> w(kW);
  for (int64_t i = 0; i < kW; ++i) w[static_cast<size_t>(i)] = salt + 0.5f * static_cast<float>(i);
  return w;
}
const std::vector<float> kBias = {1, 2, 3, 4, 5, 6};
const std::vector<int64_t> kSteps = {10, 11, 12, 13, 14};

CheckpointMeta Meta(int64_t step) {
  CheckpointMeta m;
  m.step = step;
  m.plan_hash = "abc123";
  m.config = {{"train_batch_size", 8}, {"zero_optimization", {{"stage", 3}}}};
  m.trainer_state = {{"loss_scale", 65536.0}, {"data", {{"epoch", 1}, {"cursor", 24}}}};
  return m;
}

std::vector<Status> Save(const std::string& dir, int64_t step, float salt, int fail_rank = -1, int fail_call = -1,
                         int64_t block_bytes = 16) {
  const std::vector<float> w = WValues(salt);
  return RunRanks(
      3,
      [&](int rank, const AgreeFn& agree) -> Status {
        CheckpointWriter cw(dir, StepTag(step), rank, 3);
        cw.set_block_bytes(block_bytes);
        const int64_t lo = kWCuts[rank], hi = kWCuts[rank + 1];
        RETURN_IF_ERROR(cw.AddShard("w", TensorKind::kMaster, DType::kFloat32, {kW}, lo, hi - lo, w.data() + lo));
        if (rank == 0) {
          RETURN_IF_ERROR(cw.AddTensor("bias", TensorKind::kParameter, DType::kFloat32, {2, 3}, kBias.data()));
          RETURN_IF_ERROR(cw.AddTensor("empty", TensorKind::kBuffer, DType::kFloat32, {0}, nullptr));
        } else {
          const int64_t s = rank == 1 ? 0 : 2, n = rank == 1 ? 2 : 3;
          RETURN_IF_ERROR(cw.AddShard("adam.step", TensorKind::kOptimizer, DType::kInt64, {5}, s, n, kSteps.data() + s));
        }
        return cw.Commit(Meta(step), agree);
      },
      fail_rank, fail_call);
}

void ExpectAllOk(const std::vector<Status>& st) {
  for (size_t r = 0; r < st.size(); ++r) EXPECT_TRUE(st[r].ok()) << "rank " << r << ": " << st[r].ToString();
}

std::string Latest(const std::string& dir) { return ReadFileOrDie(dir + "/latest"); }

TEST(Checkpoint, ReadsAnyRangeWhateverTheShards) {
  TempDir tmp;
  ExpectAllOk(Save(tmp.path(), 7, 100.f));
  EXPECT_EQ(Latest(tmp.path()), "global_step7");
  EXPECT_FALSE(fs::exists(tmp.File(".tmp-global_step7")));
  auto path = ResolveCheckpoint(tmp.path());
  ASSERT_TRUE(path.ok()) << path.status().ToString();
  EXPECT_EQ(*path, tmp.File("global_step7"));
  auto ck = Checkpoint::Open(*path);
  ASSERT_TRUE(ck.ok()) << ck.status().ToString();
  const CheckpointManifest& m = ck->manifest();
  EXPECT_EQ(m.tag, "global_step7");
  EXPECT_EQ(m.meta.step, 7);
  EXPECT_EQ(m.meta.plan_hash, "abc123");
  EXPECT_EQ(m.world_size, 3);
  EXPECT_EQ(m.meta.config, Meta(7).config);
  EXPECT_EQ(m.meta.trainer_state, Meta(7).trainer_state);
  ASSERT_NE(m.Find("w"), nullptr);
  EXPECT_EQ(m.Find("w")->kind, TensorKind::kMaster);
  ASSERT_EQ(m.Find("w")->pieces.size(), 3u);
  EXPECT_EQ(m.Find("w")->pieces[1].file, "rank-1.safetensors");
  EXPECT_EQ(m.Find("w")->pieces[1].start, 5);
  EXPECT_EQ(m.Find("w")->pieces[1].count, 12);
  ASSERT_TRUE(ck->VerifyAll().ok());

  // Every range of "w", across every piece boundary.
  const std::vector<float> w = WValues(100.f);
  for (int64_t s = 0; s <= kW; ++s)
    for (int64_t n = 0; s + n <= kW; ++n) {
      std::vector<float> got(static_cast<size_t>(n) + 1, -1.f);
      ASSERT_TRUE(ck->ReadRange("w", s, n, got.data()).ok()) << s << "+" << n;
      for (int64_t i = 0; i < n; ++i) ASSERT_EQ(got[static_cast<size_t>(i)], w[static_cast<size_t>(s + i)]);
      ASSERT_EQ(got[static_cast<size_t>(n)], -1.f);  // nothing written past the range
    }
  // Loaded as 2 shards of another world size, and whole.
  std::vector<float> two(kW);
  ASSERT_TRUE(ck->ReadRange("w", 0, 12, two.data()).ok());
  ASSERT_TRUE(ck->ReadRange("w", 12, 11, two.data() + 12).ok());
  EXPECT_EQ(two, w);
  auto whole = ck->ReadTensor("w");
  ASSERT_TRUE(whole.ok());
  EXPECT_EQ(std::vector<float>(whole->data<float>(), whole->data<float>() + kW), w);
  auto bias = ck->ReadTensor("bias");
  ASSERT_TRUE(bias.ok());
  EXPECT_EQ(bias->dims(), (std::vector<int64_t>{2, 3}));
  EXPECT_EQ(std::vector<float>(bias->data<float>(), bias->data<float>() + 6), kBias);
  auto steps = ck->ReadTensor("adam.step");
  ASSERT_TRUE(steps.ok());
  EXPECT_EQ(steps->ToInt64Vector(), kSteps);
  auto empty = ck->ReadTensor("empty");
  ASSERT_TRUE(empty.ok());
  EXPECT_EQ(empty->numel(), 0);
  EXPECT_FALSE(ck->ReadRange("w", 20, 4, two.data()).ok());
  EXPECT_FALSE(ck->ReadRange("nope", 0, 1, two.data()).ok());
}

// Reads everything a loader could touch; the first error.
Status LoadAll(const std::string& dir) {
  ASSIGN_OR_RETURN(Checkpoint ck, Checkpoint::Open(dir));
  for (const CheckpointTensor& t : ck.manifest().tensors) RETURN_IF_ERROR(ck.ReadTensor(t.name).status());
  return ck.VerifyAll();
}

TEST(Checkpoint, DetectsEveryByteFlip) {
  TempDir tmp;
  ExpectAllOk(Save(tmp.path(), 3, 1.f));
  const std::string dir = tmp.File("global_step3");
  ASSERT_TRUE(LoadAll(dir).ok());
  // Every file of the checkpoint: the manifest and each rank's file (rank 0's holds whole tensors
  // and an empty one, the others shards).
  std::vector<std::string> names;
  for (const auto& e : fs::directory_iterator(dir)) names.push_back(e.path().filename().string());
  std::sort(names.begin(), names.end());
  ASSERT_EQ(names, (std::vector<std::string>{"manifest.json", "rank-0.safetensors", "rank-1.safetensors",
                                             "rank-2.safetensors"}));
  for (const std::string& name : names) {
    const std::string path = dir + "/" + name;
    const std::string good = ReadFileOrDie(path);
    std::fstream file(path, std::ios::in | std::ios::out | std::ios::binary);  // flipped in place: fast
    // 0x20 also turns a space into a '\0' and a digit into a non-digit; 0x01 turns a digit into
    // its neighbour ('4' <-> '5'), which still parses.
    for (const uint8_t mask : {uint8_t{0x20}, uint8_t{0x01}}) {
      for (size_t i = 0; i < good.size(); ++i) {
        file.seekp(static_cast<std::streamoff>(i));
        file.put(static_cast<char>(good[i] ^ mask));
        file.flush();
        const Status st = LoadAll(dir);
        file.seekp(static_cast<std::streamoff>(i));
        file.put(good[i]);
        file.flush();
        ASSERT_FALSE(st.ok()) << name << " byte " << i << " of " << good.size() << " ^ " << int{mask};
        ASSERT_NE(st.message().find(name), std::string::npos) << st.message();
      }
    }
    file.close();
    ASSERT_EQ(ReadFileOrDie(path), good);
  }
  ASSERT_TRUE(LoadAll(dir).ok());
}

TEST(Checkpoint, RefusesTruncatedAndMissingFiles) {
  TempDir tmp;
  ExpectAllOk(Save(tmp.path(), 3, 1.f));
  const std::string dir = tmp.File("global_step3");
  const std::string path = dir + "/rank-2.safetensors";
  const std::string good = ReadFileOrDie(path);
  WriteFileOrDie(path, good.substr(0, good.size() - 1));
  auto ck = Checkpoint::Open(dir);
  ASSERT_FALSE(ck.ok());
  EXPECT_NE(ck.status().message().find(path), std::string::npos) << ck.status().message();
  EXPECT_NE(ck.status().message().find("truncated"), std::string::npos) << ck.status().message();
  fs::remove(path);
  ck = Checkpoint::Open(dir);
  ASSERT_FALSE(ck.ok());
  EXPECT_NE(ck.status().message().find(path), std::string::npos) << ck.status().message();
}

// A step-0 checkpoint whose "w" and "bias" are bytes of another file (a model), at unaligned
// offsets, next to "extra" written into the rank file.
struct SourcedCheckpoint {
  std::string model, dir;
  int64_t w_offset = 13, bias_offset = 157;
};

SourcedCheckpoint SaveSourced(const TempDir& tmp) {
  SourcedCheckpoint c;
  c.model = fs::absolute(tmp.File("model.onnx")).string();
  std::string bytes(200, 'x');
  const std::vector<float> w = WValues(3.f);
  std::memcpy(bytes.data() + c.w_offset, w.data(), w.size() * 4);
  std::memcpy(bytes.data() + c.bias_offset, kBias.data(), kBias.size() * 4);
  WriteFileOrDie(c.model, bytes);
  CheckpointWriter cw(tmp.File("weights"), StepTag(0), 0, 1);
  cw.set_block_bytes(16);
  EXPECT_TRUE(cw.AddFileRegion("w", TensorKind::kParameter, DType::kFloat32, {kW}, {c.model, c.w_offset}).ok());
  EXPECT_TRUE(cw.AddFileRegion("bias", TensorKind::kParameter, DType::kFloat32, {2, 3}, {c.model, c.bias_offset}).ok());
  EXPECT_TRUE(cw.AddTensor("extra", TensorKind::kBuffer, DType::kInt64, {5}, kSteps.data()).ok());
  const Status st = cw.Commit(Meta(0), [](bool ok) { return ok ? Status::OK() : Internal("failed"); });
  EXPECT_TRUE(st.ok()) << st.ToString();
  c.dir = tmp.File("weights/global_step0");
  return c;
}

TEST(CheckpointSources, TensorsAreReadFromTheFileTheyReferTo) {
  TempDir tmp;
  const SourcedCheckpoint c = SaveSourced(tmp);
  // The rank file holds "extra" only: the weights are not copied.
  auto rank0 = SafetensorsFile::Open(c.dir + "/rank-0.safetensors");
  ASSERT_TRUE(rank0.ok()) << rank0.status().ToString();
  ASSERT_EQ(rank0->entries().size(), 1u);
  EXPECT_EQ(rank0->entries()[0].name, "extra");
  auto ck = Checkpoint::Open(c.dir);
  ASSERT_TRUE(ck.ok()) << ck.status().ToString();
  ASSERT_EQ(ck->manifest().sources.size(), 1u);
  const CheckpointSource& src = ck->manifest().sources.begin()->second;
  EXPECT_EQ(src.path, c.model);
  EXPECT_EQ(src.bytes, 200);
  EXPECT_EQ(src.block_crcs.size(), 13u);  // ceil(200 / 16)
  const CheckpointTensor* w = ck->manifest().Find("w");
  ASSERT_NE(w, nullptr);
  ASSERT_EQ(w->pieces.size(), 1u);
  EXPECT_EQ(w->pieces[0].offset, c.w_offset);
  EXPECT_TRUE(w->pieces[0].file.empty());
  const std::vector<float> want = WValues(3.f);
  for (int64_t s = 0; s <= kW; ++s)
    for (int64_t n = 0; s + n <= kW; ++n) {
      std::vector<float> got(static_cast<size_t>(n) + 1, -1.f);
      ASSERT_TRUE(ck->ReadRange("w", s, n, got.data()).ok()) << s << "+" << n;
      for (int64_t i = 0; i < n; ++i) ASSERT_EQ(got[static_cast<size_t>(i)], want[static_cast<size_t>(s + i)]);
      ASSERT_EQ(got[static_cast<size_t>(n)], -1.f);
    }
  auto bias = ck->ReadTensor("bias");
  ASSERT_TRUE(bias.ok()) << bias.status().ToString();
  EXPECT_EQ(bias->dims(), (std::vector<int64_t>{2, 3}));
  EXPECT_EQ(std::vector<float>(bias->data<float>(), bias->data<float>() + 6), kBias);
  EXPECT_EQ(ck->ReadTensor("extra")->ToInt64Vector(), kSteps);
  EXPECT_TRUE(ck->VerifyAll().ok());
}

TEST(CheckpointSources, EveryChangedByteOfTheSourceIsFound) {
  TempDir tmp;
  const SourcedCheckpoint c = SaveSourced(tmp);
  ASSERT_TRUE(LoadAll(c.dir).ok());
  const std::string good = ReadFileOrDie(c.model);
  std::fstream file(c.model, std::ios::in | std::ios::out | std::ios::binary);
  for (size_t i = 0; i < good.size(); ++i) {
    file.seekp(static_cast<std::streamoff>(i));
    file.put(static_cast<char>(good[i] ^ 0x01));
    file.flush();
    const Status st = LoadAll(c.dir);
    file.seekp(static_cast<std::streamoff>(i));
    file.put(good[i]);
    file.flush();
    ASSERT_FALSE(st.ok()) << "byte " << i;
    ASSERT_NE(st.message().find(c.model), std::string::npos) << st.message();
  }
  file.close();
  ASSERT_TRUE(LoadAll(c.dir).ok());
}

TEST(CheckpointSources, AMovedOrChangedSourceIsNamed) {
  TempDir tmp;
  const SourcedCheckpoint c = SaveSourced(tmp);
  const std::string good = ReadFileOrDie(c.model);
  WriteFileOrDie(c.model, good + "more");
  auto ck = Checkpoint::Open(c.dir);
  ASSERT_FALSE(ck.ok());
  EXPECT_NE(ck.status().message().find(c.model), std::string::npos) << ck.status().message();
  EXPECT_NE(ck.status().message().find("has changed"), std::string::npos) << ck.status().message();
  fs::remove(c.model);
  ck = Checkpoint::Open(c.dir);
  ASSERT_FALSE(ck.ok());
  EXPECT_NE(ck.status().message().find(c.model), std::string::npos) << ck.status().message();
  EXPECT_NE(ck.status().message().find("compile the plan again"), std::string::npos) << ck.status().message();
}

TEST(CheckpointSources, OnlyRankZeroAddsAbsoluteRegions) {
  TempDir tmp;
  CheckpointWriter r1(tmp.path(), StepTag(0), 1, 2);
  EXPECT_FALSE(r1.AddFileRegion("w", TensorKind::kParameter, DType::kFloat32, {2}, {"/x", 0}).ok());
  CheckpointWriter r0(tmp.path(), StepTag(0), 0, 1);
  EXPECT_FALSE(r0.AddFileRegion("w", TensorKind::kParameter, DType::kFloat32, {2}, {"relative.onnx", 0}).ok());
}

TEST(Checkpoint, AFailingRankLeavesLatestUntouched) {
  TempDir tmp;
  ExpectAllOk(Save(tmp.path(), 1, 1.f));
  for (int call : {0, 1}) {  // fails while preparing or while writing
    const auto st = Save(tmp.path(), 2, 2.f, /*fail_rank=*/1, call);
    for (size_t r = 0; r < st.size(); ++r) {
      ASSERT_FALSE(st[r].ok()) << "call " << call << " rank " << r;
      EXPECT_NE(st[r].message().find("global_step2"), std::string::npos) << st[r].message();
    }
    EXPECT_NE(st[0].message().find("rank 1 failed"), std::string::npos) << st[0].message();
    EXPECT_EQ(Latest(tmp.path()), "global_step1");
    EXPECT_FALSE(fs::exists(tmp.File(".tmp-global_step2")));
    EXPECT_FALSE(fs::exists(tmp.File("global_step2")));
    EXPECT_EQ(*ResolveCheckpoint(tmp.path()), tmp.File("global_step1"));
  }
}

TEST(Checkpoint, ShardsThatDoNotAddUpAreRefused) {
  TempDir tmp;
  ExpectAllOk(Save(tmp.path(), 1, 1.f));
  const auto st = RunRanks(2, [&](int rank, const AgreeFn& agree) -> Status {
    CheckpointWriter cw(tmp.path(), "global_step2", rank, 2);
    const std::vector<float> w(10, 1.f);
    RETURN_IF_ERROR(cw.AddShard("w", TensorKind::kMaster, DType::kFloat32, {10}, rank * 6, 4, w.data()));
    return cw.Commit(Meta(2), agree);
  });
  ASSERT_FALSE(st[0].ok());
  EXPECT_NE(st[0].message().find("elements [4, 6) are in no piece"), std::string::npos) << st[0].message();
  ASSERT_FALSE(st[1].ok());
  EXPECT_EQ(Latest(tmp.path()), "global_step1");
  EXPECT_FALSE(fs::exists(tmp.File("global_step2")));
}

TEST(Checkpoint, LeftoverTmpFoldersAreNeverLoaded) {
  TempDir tmp;
  ExpectAllOk(Save(tmp.path(), 1, 1.f));
  ExpectAllOk(Save(tmp.path(), 9, 9.f));
  // A complete-looking save of step 9 that never got renamed, and no `latest` for it.
  fs::rename(tmp.File("global_step9"), tmp.File(".tmp-global_step9"));
  WriteFileOrDie(tmp.File("latest"), "global_step1");
  EXPECT_EQ(*ResolveCheckpoint(tmp.path()), tmp.File("global_step1"));
  fs::remove(tmp.File("latest"));
  std::string note;
  EXPECT_EQ(*ResolveCheckpoint(tmp.path(), &note), tmp.File("global_step1"));
  EXPECT_NE(note.find("no "), std::string::npos) << note;
  EXPECT_FALSE(ResolveCheckpoint(tmp.File(".tmp-global_step9")).ok());
  EXPECT_FALSE(Checkpoint::Open(tmp.File(".tmp-global_step9")).ok());
  EXPECT_FALSE(Checkpoint::Open(tmp.File(".tmp-global_step9/")).ok());
  // A stale rank file in the temporary folder of a new save does not end up in the checkpoint.
  fs::copy_file(tmp.File(".tmp-global_step9/rank-2.safetensors"), tmp.File(".tmp-global_step9/rank-5.safetensors"));
  ExpectAllOk(Save(tmp.path(), 9, 9.5f));
  EXPECT_FALSE(fs::exists(tmp.File("global_step9/rank-5.safetensors")));
  EXPECT_EQ(*ResolveCheckpoint(tmp.path()), tmp.File("global_step9"));
}

TEST(Checkpoint, ResolveFallsBackToTheHighestCompleteStep) {
  TempDir tmp;
  ExpectAllOk(Save(tmp.path(), 4, 4.f));
  ExpectAllOk(Save(tmp.path(), 6, 6.f));
  ExpectAllOk(Save(tmp.path(), 5, 5.f));
  EXPECT_EQ(*ResolveCheckpoint(tmp.path()), tmp.File("global_step5"));  // `latest` wins when intact
  EXPECT_EQ(*ResolveCheckpoint(tmp.File("global_step4")), tmp.File("global_step4"));
  WriteFileOrDie(tmp.File("global_step5/manifest.json"), "{}");  // corrupted
  std::string note;
  EXPECT_EQ(*ResolveCheckpoint(tmp.path(), &note), tmp.File("global_step6"));
  EXPECT_NE(note.find("global_step5"), std::string::npos) << note;
  EXPECT_FALSE(ResolveCheckpoint(tmp.File("nothing")).ok());
}

TEST(Checkpoint, SavingTheSameTagAgainReplacesItAtomically) {
  TempDir tmp;
  ExpectAllOk(Save(tmp.path(), 2, 1.f));
  ExpectAllOk(Save(tmp.path(), 2, 50.f));
  auto ck = Checkpoint::Open(tmp.File("global_step2"));
  ASSERT_TRUE(ck.ok());
  auto w = ck->ReadTensor("w");
  ASSERT_TRUE(w.ok());
  EXPECT_EQ(w->data<float>()[0], 50.f);
  EXPECT_FALSE(fs::exists(tmp.File(".tmp-global_step2")));
}

TEST(Checkpoint, UnwritableFolderGivesAClearError) {
  TempDir tmp;
  ExpectAllOk(Save(tmp.path(), 1, 1.f));
  // A folder below a regular file: ENOTDIR, whoever runs the test.
  WriteFileOrDie(tmp.File("plain"), "x");
  auto st = Save(tmp.File("plain/ckpt"), 2, 2.f);
  ASSERT_FALSE(st[0].ok());
  EXPECT_NE(st[0].message().find(tmp.File("plain/ckpt")), std::string::npos) << st[0].message();
  EXPECT_NE(st[0].message().find("errno"), std::string::npos) << st[0].message();
  EXPECT_FALSE(st[2].ok());
  // A read-only folder (root writes anyway: then skipped).
  fs::permissions(tmp.path(), fs::perms::owner_read | fs::perms::owner_exec);
  const bool writable = ::access(tmp.path().c_str(), W_OK) == 0;
  if (!writable) {
    st = Save(tmp.path(), 2, 2.f);
    ASSERT_FALSE(st[0].ok());
    EXPECT_NE(st[0].message().find(tmp.File(".tmp-global_step2")), std::string::npos) << st[0].message();
    EXPECT_NE(st[0].message().find("Permission denied"), std::string::npos) << st[0].message();
    EXPECT_EQ(Latest(tmp.path()), "global_step1");
  }
  fs::permissions(tmp.path(), fs::perms::owner_all);
  if (writable) GTEST_SKIP() << "running as root: a read-only folder is writable";
}

// A full disk, as a file-size limit (EFBIG) that applies to root too: run in a child process.
void SaveWithFullDisk(const std::string& dir) {
  std::signal(SIGXFSZ, SIG_IGN);
  struct rlimit lim = {4096, 4096};
  ::setrlimit(RLIMIT_FSIZE, &lim);
  std::vector<float> big(100000, 1.f);
  const auto st = RunRanks(1, [&](int rank, const AgreeFn& agree) -> Status {
    CheckpointWriter cw(dir, "global_step2", rank, 1);
    RETURN_IF_ERROR(cw.AddTensor("w", TensorKind::kMaster, DType::kFloat32, {100000}, big.data()));
    return cw.Commit(Meta(2), agree);
  });
  const std::string msg = st[0].message();
  const bool good = !st[0].ok() && msg.find(dir + "/.tmp-global_step2/rank-0.safetensors.tmp") != std::string::npos &&
                    msg.find("errno") != std::string::npos && Latest(dir) == "global_step1" &&
                    !fs::exists(dir + "/global_step2") && !fs::exists(dir + "/.tmp-global_step2");
  std::fprintf(stderr, "%s\n", msg.c_str());
  std::exit(good ? 0 : 1);
}

TEST(CheckpointDeathTest, AFullDiskLeavesLatestUntouched) {
  TempDir tmp;
  ExpectAllOk(Save(tmp.path(), 1, 1.f));
  EXPECT_EXIT(SaveWithFullDisk(tmp.path()), ::testing::ExitedWithCode(0), "File too large");
}

}  // namespace
}  // namespace dsc
