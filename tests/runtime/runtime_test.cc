// Runtime pieces: .npy files, the data loader's order and errors, memory planning, the executor.
#include <gtest/gtest.h>

#include <sys/stat.h>

#include <cmath>
#include <filesystem>
#include <set>

#include "ir/shape_inference.h"
#include "ir/text.h"
#include "passes/memory_plan.h"
#include "runtime/data_loader.h"
#include "runtime/executor.h"
#include "runtime/npy.h"
#include "tests/testutil/test_util.h"

namespace dsc {
namespace {

using testing::TempDir;

Tensor Iota(DType dt, std::vector<int64_t> dims) {
  Tensor t(dt, dims);
  for (int64_t i = 0; i < t.numel(); ++i) t.SetFromDouble(i, static_cast<double>(i));
  return t;
}

TEST(Npy, RoundTripsEveryDtype) {
  TempDir dir;
  for (DType dt : {DType::kFloat32, DType::kFloat16, DType::kFloat64, DType::kInt64, DType::kInt32, DType::kBool}) {
    Tensor t = Iota(dt, {3, 2});
    ASSERT_TRUE(WriteNpy(dir.File("t.npy"), t).ok());
    StatusOr<Tensor> r = ReadNpy(dir.File("t.npy"));
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    EXPECT_TRUE(r->SameContents(t)) << DTypeName(dt);
  }
}

TEST(Npy, ReadsNumpyWrittenFile) {
  // Written by numpy 1.24: np.save(f, np.arange(6, dtype=np.int64).reshape(2, 3)).
  TempDir dir;
  std::string header = "{'descr': '<i8', 'fortran_order': False, 'shape': (2, 3), }";
  while ((10 + header.size() + 1) % 64) header += ' ';
  header += '\n';
  std::string bytes = std::string("\x93NUMPY\x01\x00", 8) + static_cast<char>(header.size()) + '\0' + header;
  for (int64_t i = 0; i < 6; ++i) bytes.append(reinterpret_cast<const char*>(&i), 8);
  testing::WriteFileOrDie(dir.File("a.npy"), bytes);
  StatusOr<Tensor> r = ReadNpy(dir.File("a.npy"));
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->dims(), (std::vector<int64_t>{2, 3}));
  EXPECT_EQ(r->GetAsInt(5), 5);
}

TEST(Npy, RejectsGarbageWithTheFileName) {
  TempDir dir;
  testing::WriteFileOrDie(dir.File("bad.npy"), "not numpy at all");
  StatusOr<Tensor> r = ReadNpy(dir.File("bad.npy"));
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("bad.npy"), std::string::npos);
  Tensor t = Iota(DType::kFloat32, {4, 4});
  ASSERT_TRUE(WriteNpy(dir.File("cut.npy"), t).ok());
  std::string full = testing::ReadFileOrDie(dir.File("cut.npy"));
  for (size_t n : {size_t{5}, size_t{20}, full.size() - 1}) {
    testing::WriteFileOrDie(dir.File("cut.npy"), full.substr(0, n));
    EXPECT_FALSE(ReadNpy(dir.File("cut.npy")).ok()) << n;
  }
}

// A .npy header as numpy writes it, padded to `len` bytes with spaces before the closing brace.
std::string NpyWithHeader(const std::string& dict, size_t len, const std::string& data) {
  std::string header = dict;
  while (header.size() + 1 < len) header += ' ';
  header += '\n';
  const uint32_t n = static_cast<uint32_t>(header.size());
  std::string out = std::string("\x93NUMPY\x02\x00", 8);
  for (int i = 0; i < 4; ++i) out += static_cast<char>((n >> (8 * i)) & 0xff);
  return out + header + data;
}

// The header is read without std::regex, whose recursion overflowed the stack on long headers.
TEST(Npy, LongHeadersAndSpacingParse) {
  TempDir dir;
  const float v[2] = {1.5f, -2.0f};
  const std::string data(reinterpret_cast<const char*>(v), sizeof(v));
  testing::WriteFileOrDie(dir.File("long.npy"),
                          NpyWithHeader("{'descr':'<f4',  'fortran_order' : False, 'shape': ( 2, ), }", 1000000, data));
  StatusOr<Tensor> r = ReadNpy(dir.File("long.npy"));
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->dims(), (std::vector<int64_t>{2}));
  EXPECT_EQ(r->data<float>()[1], -2.0f);
  // A long value with no closing quote is an error naming the file, not a crash.
  testing::WriteFileOrDie(dir.File("open.npy"), NpyWithHeader("{'descr': '" + std::string(900000, 'f'), 1000000, data));
  StatusOr<Tensor> bad = ReadNpy(dir.File("open.npy"));
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("open.npy: header has no descr"), std::string::npos) << bad.status().message();
  testing::WriteFileOrDie(dir.File("fortran.npy"),
                          NpyWithHeader("{'descr': '<f4', 'fortran_order': True, 'shape': (2,), }", 64, data));
  EXPECT_NE(ReadNpy(dir.File("fortran.npy")).status().message().find("Fortran-ordered"), std::string::npos);
}

// A FIFO (or a device) named as data would block the reader forever: refused at once.
TEST(Npy, RefusesWhatIsNotARegularFile) {
  TempDir dir;
  ASSERT_EQ(::mkfifo(dir.File("pipe.npy").c_str(), 0600), 0);
  StatusOr<Tensor> r = ReadNpy(dir.File("pipe.npy"));
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("pipe.npy: not a regular file"), std::string::npos) << r.status().message();
  std::filesystem::create_directory(dir.File("dir.npy"));
  EXPECT_NE(ReadNpy(dir.File("dir.npy")).status().message().find("not a regular file"), std::string::npos);
  EXPECT_NE(ReadNpy(dir.File("absent.npy")).status().message().find("absent.npy: cannot open"), std::string::npos);
}

class LoaderTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(WriteNpy(dir_.File("x.npy"), Iota(DType::kFloat32, {20, 3})).ok());
    ASSERT_TRUE(WriteNpy(dir_.File("y.npy"), Iota(DType::kInt32, {20})).ok());
  }
  std::vector<DataInput> inputs_ = {{"x", DType::kFloat32, {2, 3}}, {"y", DType::kInt64, {2}}};
  DataLoaderOptions Opts(bool shuffle) {
    DataLoaderOptions o;
    o.train_batch_size = 8;
    o.micro_batch = 2;
    o.gradient_accumulation_steps = 4;
    o.shuffle = shuffle;
    o.seed = 7;
    return o;
  }
  TempDir dir_;
};

TEST_F(LoaderTest, FileOrderAndMicroBatches) {
  StatusOr<DataLoader> dl = DataLoader::Open(dir_.path(), inputs_, Opts(false));
  ASSERT_TRUE(dl.ok()) << dl.status().ToString();
  EXPECT_EQ(dl->steps_per_epoch(), 2);  // 20 samples, batches of 8, remainder dropped
  std::map<std::string, Tensor> b;
  ASSERT_TRUE(dl->Fill(1, 3, &b).ok());  // step 1 starts at sample 8; micro 3 holds 14, 15
  EXPECT_EQ(b.at("y").GetAsInt(0), 14);
  EXPECT_EQ(b.at("y").GetAsInt(1), 15);
  EXPECT_EQ(b.at("x").GetAsDouble(0), 42.0);
  ASSERT_TRUE(dl->Fill(2, 0, &b).ok());  // next epoch starts over
  EXPECT_EQ(b.at("y").GetAsInt(0), 0);
}

TEST_F(LoaderTest, ShuffleIsASeededPermutationPerEpoch) {
  StatusOr<DataLoader> a = DataLoader::Open(dir_.path(), inputs_, Opts(true));
  StatusOr<DataLoader> b = DataLoader::Open(dir_.path(), inputs_, Opts(true));
  ASSERT_TRUE(a.ok() && b.ok());
  std::map<std::string, Tensor> ta, tb;
  std::multiset<int64_t> epoch0, epoch1;
  bool differs = false;
  for (int64_t step = 0; step < 4; ++step)
    for (int64_t m = 0; m < 4; ++m) {
      ASSERT_TRUE(a->Fill(step, m, &ta).ok());
      ASSERT_TRUE(b->Fill(step, m, &tb).ok());
      EXPECT_TRUE(ta.at("y").SameContents(tb.at("y")));
      for (int i = 0; i < 2; ++i) {
        (step < 2 ? epoch0 : epoch1).insert(ta.at("y").GetAsInt(i));
        differs |= ta.at("y").GetAsInt(i) != (step % 2) * 8 + m * 2 + i;
      }
    }
  EXPECT_TRUE(differs);
  EXPECT_EQ(epoch0.size(), 16u);
  EXPECT_EQ(std::set<int64_t>(epoch0.begin(), epoch0.end()).size(), 16u);  // no sample twice in an epoch
  EXPECT_NE(epoch0, epoch1);
}

TEST_F(LoaderTest, ErrorsNameTheFile) {
  struct Case {
    std::vector<DataInput> inputs;
    std::string needle;
  } cases[] = {
      {{{"z", DType::kFloat32, {2}}}, "z.npy: missing"},
      {{{"x", DType::kFloat32, {2, 4}}}, "x.npy: samples have shape [3] but the model input 'x' takes [4]"},
      {{{"x", DType::kInt64, {2, 3}}}, "x.npy: holds float data but the model input is int64"},
  };
  for (const Case& c : cases) {
    StatusOr<DataLoader> dl = DataLoader::Open(dir_.path(), c.inputs, Opts(false));
    ASSERT_FALSE(dl.ok());
    EXPECT_NE(dl.status().message().find(c.needle), std::string::npos) << dl.status().message();
  }
  DataLoaderOptions big = Opts(false);
  big.train_batch_size = 32;
  big.micro_batch = 8;
  StatusOr<DataLoader> dl = DataLoader::Open(dir_.path(), {{"x", DType::kFloat32, {8, 3}}, {"y", DType::kInt64, {8}}}, big);
  ASSERT_FALSE(dl.ok());
  EXPECT_NE(dl.status().message().find("holds 20 samples, fewer than one batch"), std::string::npos);
}

// Found by fuzzing: std::filesystem threw out of the loader (symlink loops, over-long names).
TEST_F(LoaderTest, FilesystemErrorsAreMessages) {
  TempDir dir;
  std::filesystem::create_symlink(dir.File("b"), dir.File("a"));
  std::filesystem::create_symlink(dir.File("a"), dir.File("b"));
  StatusOr<DataLoader> dl = DataLoader::Open(dir.File("a"), inputs_, Opts(false));
  ASSERT_FALSE(dl.ok());
  EXPECT_EQ(dl.status().message(), "--data " + dir.File("a") + ": Too many levels of symbolic links");

  const std::string long_name = dir.File(std::string(5000, 'd'));
  dl = DataLoader::Open(long_name, inputs_, Opts(false));
  ASSERT_FALSE(dl.ok());
  EXPECT_EQ(dl.status().message(), "--data " + long_name + ": File name too long");

  dl = DataLoader::Open(dir_.File("x.npy"), inputs_, Opts(false));
  ASSERT_FALSE(dl.ok());
  EXPECT_EQ(dl.status().message(), "--data " + dir_.File("x.npy") + ": not a directory");

  std::filesystem::create_symlink(dir.File("x.npy"), dir.File("x.npy"));  // a loop of one
  dl = DataLoader::Open(dir.path(), inputs_, Opts(false));
  ASSERT_FALSE(dl.ok());
  EXPECT_EQ(dl.status().message(), dir.File("x.npy") + ": Too many levels of symbolic links");
}

// An input not batched by the micro-batch size would make Fill write past its tensor.
TEST_F(LoaderTest, InputsMustBeBatchedByTheMicroBatch) {
  StatusOr<DataLoader> dl = DataLoader::Open(dir_.path(), {{"x", DType::kFloat32, {3, 3}}}, Opts(false));
  ASSERT_FALSE(dl.ok());
  EXPECT_NE(dl.status().message().find("the model input 'x' is float[3,3], not batched by the micro-batch size 2"),
            std::string::npos) << dl.status().message();
}

// A shape whose byte count overflows int64 is an error, not a wrapped size and a huge allocation.
TEST(Npy, HugeShapesAreErrors) {
  TempDir dir;
  for (const std::string shape : {"(1152921504606846976, 1)", "(4611686018427387904, 4)"}) {
    std::string header = "{'descr': '<f8', 'fortran_order': False, 'shape': " + shape + ", }";
    while ((10 + header.size() + 1) % 64 != 0) header += ' ';
    header += '\n';
    std::string bytes = std::string("\x93NUMPY\x01\x00", 8);
    bytes += static_cast<char>(header.size() & 0xff);
    bytes += static_cast<char>(header.size() >> 8);
    bytes += header + std::string(64, '\0');
    testing::WriteFileOrDie(dir.File("huge.npy"), bytes);
    StatusOr<Tensor> t = ReadNpy(dir.File("huge.npy"));
    ASSERT_FALSE(t.ok()) << shape;
    EXPECT_EQ(t.status().message().rfind(dir.File("huge.npy") + ": ", 0), 0u) << t.status().message();
    EXPECT_NE(t.status().message().find("int64"), std::string::npos) << t.status().message();
  }
}

constexpr const char* kChain = R"(<ir_version: 8, opset_import: ["" : 17]>
main (float[64] x) => (float[64] out) {
  a = Relu(x)
  b = Sigmoid(a)
  c = Relu(b)
  d = Sigmoid(c)
  out = Add(d, a)
}
)";

std::unique_ptr<Graph> ChainGraph() {
  auto g = ParseGraph(kChain);
  EXPECT_TRUE(g.ok());
  EXPECT_TRUE(InferShapes(**g).ok());
  return std::move(*g);
}

TEST(MemoryPlan, ReusesDeadBuffersAndNeverOverlapsLiveOnes) {
  auto g = ChainGraph();
  // Placement alone (in-place outputs would share bytes with their dying inputs by design).
  StatusOr<MemoryPlan> plan = ComputeMemoryPlan(*g, {.aliasing = false});
  ASSERT_TRUE(plan.ok()) << plan.status().ToString();
  EXPECT_EQ(plan->unshared_bytes, 5 * 256);
  // a lives to the end; b..d chain: at most a + two of the chain + out at once.
  EXPECT_LT(plan->arena_bytes, plan->unshared_bytes);
  auto overlap = [&](const std::string& u, const std::string& v) {
    auto p = plan->slots.at(u), q = plan->slots.at(v);
    return p.offset < q.offset + q.bytes && q.offset < p.offset + p.bytes;
  };
  EXPECT_FALSE(overlap("a", "b"));
  EXPECT_FALSE(overlap("a", "d"));
  EXPECT_FALSE(overlap("d", "out"));
  EXPECT_FALSE(overlap("c", "d"));
  StatusOr<MemoryPlan> back = MemoryPlanFromJson(MemoryPlanToJson(*plan));
  ASSERT_TRUE(back.ok());
  EXPECT_EQ(back->arena_bytes, plan->arena_bytes);
}

TEST(Executor, BindChecksShapesAndEveryInput) {
  auto g = ChainGraph();
  auto device = CreateCpuDevice(1);
  auto ex = ProgramExecutor::Create(*g, device.get());
  ASSERT_TRUE(ex.ok()) << ex.status().ToString();
  EXPECT_FALSE((*ex)->Run(RunOptions{}).ok());  // x unbound
  Tensor wrong(DType::kFloat32, {32});
  Status s = (*ex)->Bind("x", TensorView{wrong.dtype(), wrong.dims(), wrong.raw()});
  EXPECT_NE(s.message().find("expects float[64], got float[32]"), std::string::npos) << s.message();
  EXPECT_FALSE((*ex)->Bind("nope", TensorView{}).ok());
}

TEST(Executor, RunsAChain) {
  auto g = ChainGraph();
  Tensor x(DType::kFloat32, {64});
  for (int i = 0; i < 64; ++i) x.SetFromDouble(i, i - 32.0);
  auto out = RunGraphOnCpu(*g, {{"x", &x}});
  ASSERT_TRUE(out.ok()) << out.status().ToString();
  for (int i = 0; i < 64; ++i) {
    double a = std::max(0.0, i - 32.0);
    double d = 1 / (1 + std::exp(-std::max(0.0, 1 / (1 + std::exp(-a)))));
    EXPECT_NEAR(out->at("out").GetAsDouble(i), d + a, 1e-5);
  }
}

}  // namespace
}  // namespace dsc
