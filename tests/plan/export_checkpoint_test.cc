// Trained weights out of a saved checkpoint: a ZeRO-sharded checkpoint written by two ranks is
// exported as ONNX and safetensors and read back bit for bit; masters win over half parameters,
// BatchNorm buffers come along, optimizer states never do (nor are they read); dtypes convert to
// the source model's; corrupted or missing shards and a wrong source model are refused by name;
// dsinspect --export-onnx/--export-safetensors on the command line.
#include <gtest/gtest.h>

#include <condition_variable>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <mutex>
#include <thread>

#include "backend/export_onnx.h"
#include "backend/export_safetensors.h"
#include "frontend/onnx_import.h"
#include "ir/dsc_ops.h"
#include "runtime/checkpoint_format.h"
#include "runtime/safetensors.h"
#include "tests/testutil/test_util.h"

namespace dsc {
namespace {

namespace fs = std::filesystem;
using ::dsc::testing::RunCommand;
using ::dsc::testing::ShellQuote;
using ::dsc::testing::TempDir;

std::string ModelPath(const std::string& name) { return StrCat(DSC_SOURCE_DIR, "/models/", name, "/", name, ".onnx"); }

std::map<std::string, Tensor> SourceInitializers(const std::string& model) {
  auto g = ImportOnnxFile(ModelPath(model));
  EXPECT_TRUE(g.ok()) << g.status().ToString();
  std::map<std::string, Tensor> out;
  if (g.ok())
    for (const Value* v : (*g)->initializers()) out.emplace(v->name(), v->initializer());
  return out;
}

// `t` (float) with every element plus `add`, in `dtype`.
Tensor Plus(const Tensor& t, double add, DType dtype = DType::kFloat32) {
  Tensor out(dtype, t.dims());
  for (int64_t i = 0; i < t.numel(); ++i) out.SetFromDouble(i, t.GetAsDouble(i) + add);
  return out;
}

// ---- two ranks in one process, agreeing through a barrier ----

class LocalAgree {
 public:
  explicit LocalAgree(int n) : n_(n) {}
  Status Agree(bool ok) {
    std::unique_lock<std::mutex> lock(mu_);
    const int64_t gen = gen_;
    all_ok_ = all_ok_ && ok;
    if (++arrived_ == n_) {
      result_ = all_ok_;
      all_ok_ = true;
      arrived_ = 0;
      ++gen_;
      cv_.notify_all();
    } else {
      cv_.wait(lock, [&] { return gen_ != gen; });
    }
    return result_ ? Status::OK() : FailedPrecondition("a rank failed");
  }

 private:
  const int n_;
  std::mutex mu_;
  std::condition_variable cv_;
  int arrived_ = 0;
  bool all_ok_ = true, result_ = true;
  int64_t gen_ = 0;
};

void RunRanks(int world, const std::function<Status(int, const AgreeFn&)>& fn) {
  LocalAgree local(world);
  std::vector<Status> st(static_cast<size_t>(world));
  std::vector<std::thread> threads;
  for (int r = 0; r < world; ++r)
    threads.emplace_back([&, r] { st[static_cast<size_t>(r)] = fn(r, [&](bool ok) { return local.Agree(ok); }); });
  for (auto& t : threads) t.join();
  for (size_t r = 0; r < st.size(); ++r) ASSERT_TRUE(st[r].ok()) << "rank " << r << ": " << st[r].ToString();
}

// One tensor of a save: whole on rank 0, or split over the two ranks at an uneven cut (ZeRO).
struct Saved {
  std::string name;
  TensorKind kind;
  Tensor value;  // full
  bool sharded;
};

void WriteCheckpoint(const std::string& dir, int64_t step, const std::vector<Saved>& tensors,
                     const std::string& source_model) {
  RunRanks(2, [&](int rank, const AgreeFn& agree) -> Status {
    CheckpointWriter w(dir, StepTag(step), rank, 2);
    w.set_block_bytes(64);  // many checksum blocks
    for (const Saved& s : tensors) {
      const int64_t n = s.value.numel(), cut = n / 3, esize = static_cast<int64_t>(DTypeSize(s.value.dtype()));
      if (s.sharded) {
        const int64_t start = rank == 0 ? 0 : cut, count = rank == 0 ? cut : n - cut;
        RETURN_IF_ERROR(w.AddShard(s.name, s.kind, s.value.dtype(), s.value.dims(), start, count,
                                   s.value.raw() + start * esize));
      } else if (rank == 0) {
        RETURN_IF_ERROR(w.AddTensor(s.name, s.kind, s.value.dtype(), s.value.dims(), s.value.raw()));
      }
    }
    CheckpointMeta meta;
    meta.step = step;
    meta.plan_hash = "0123abcd";
    meta.source_model = source_model;
    return w.Commit(meta, agree);
  });
}

// The mlp after a mixed-precision ZeRO-2 run: fp16 parameters (replicated, on rank 0), sharded fp32
// masters and Adam moments. Masters are the initial values + 0.125; fc1.bias starts with three
// values whose fp16 roundings are known; the fp16 parameters hold something else entirely.
struct MlpCheckpoint {
  std::vector<Saved> tensors;
  std::map<std::string, Tensor> masters;  // by parameter name
};

MlpCheckpoint MixedPrecisionMlp() {
  MlpCheckpoint c;
  for (const auto& [name, init] : SourceInitializers("mlp")) {
    Tensor master = Plus(init, 0.125);
    if (name == "fc1.bias") {
      master.SetFromDouble(0, 1.0f / 3.0f);
      master.SetFromDouble(1, 0.1f);
      master.SetFromDouble(2, -2.5f);
    }
    c.masters[name] = master;
    c.tensors.push_back({name, TensorKind::kParameter, Plus(init, 100, DType::kFloat16), false});
    c.tensors.push_back({ops::MasterName(name), TensorKind::kMaster, master, true});
    c.tensors.push_back({ops::ExpAvgName(name), TensorKind::kOptimizer, Plus(init, 1000), true});
    c.tensors.push_back({ops::ExpAvgSqName(name), TensorKind::kOptimizer, Plus(init, 2000), true});
  }
  return c;
}

// The byte offset in a rank file of the 6th byte of the piece whose key contains `key_part`.
int64_t ByteOf(const std::string& rank_file, const std::string& key_part) {
  auto f = SafetensorsFile::Open(rank_file);
  EXPECT_TRUE(f.ok()) << f.status().ToString();
  for (const SafetensorsEntry& e : f->entries())
    if (e.name.find(key_part) != std::string::npos && e.end - e.begin > 5)
      return static_cast<int64_t>(f->raw_header().size()) + e.begin + 5;
  ADD_FAILURE() << rank_file << " has no piece of " << key_part;
  return -1;
}

void FlipByte(const std::string& file, int64_t at) {
  ASSERT_GE(at, 0);
  std::fstream io(file, std::ios::in | std::ios::out | std::ios::binary);
  io.seekg(at);
  char c = 0;
  io.get(c);
  io.seekp(at);
  io.put(static_cast<char>(c ^ 0x10));
  ASSERT_TRUE(io.good()) << file;
}

Checkpoint OpenOrDie(const std::string& dir) {
  auto path = ResolveCheckpoint(dir);
  EXPECT_TRUE(path.ok()) << path.status().ToString();
  auto ck = Checkpoint::Open(*path);
  EXPECT_TRUE(ck.ok()) << ck.status().ToString();
  return std::move(*ck);
}

std::map<std::string, DType> SourceDTypes(const std::string& model) {
  auto d = OnnxInitializerDTypes(ModelPath(model));
  EXPECT_TRUE(d.ok()) << d.status().ToString();
  return *d;
}

TEST(ExportCheckpoint, MastersOfAShardedMixedPrecisionCheckpointToOnnxAndSafetensors) {
  TempDir tmp;
  const MlpCheckpoint mlp = MixedPrecisionMlp();
  WriteCheckpoint(tmp.File("ckpt"), 3, mlp.tensors, ModelPath("mlp"));
  const Checkpoint ck = OpenOrDie(tmp.File("ckpt"));

  auto weights = TrainedWeightsFromCheckpoint(ck, SourceDTypes("mlp"));
  ASSERT_TRUE(weights.ok()) << weights.status().ToString();
  ASSERT_EQ(weights->size(), mlp.masters.size());  // no optimizer state, no fp16 copy
  for (const auto& [name, master] : mlp.masters) {
    ASSERT_TRUE(weights->count(name)) << name;
    EXPECT_TRUE(weights->at(name).SameContents(master)) << name << ": not the master's value";
  }

  // ONNX: every initializer is the master, bit for bit.
  const std::string onnx_out = tmp.File("trained.onnx");
  Status s = ExportTrainedOnnx(ModelPath("mlp"), *weights, onnx_out, ExportOptions{});
  ASSERT_TRUE(s.ok()) << s.ToString();
  auto g = ImportOnnxFile(onnx_out);
  ASSERT_TRUE(g.ok()) << g.status().ToString();
  EXPECT_EQ((*g)->initializers().size(), mlp.masters.size());
  for (const Value* v : (*g)->initializers())
    EXPECT_TRUE(v->initializer().SameContents(mlp.masters.at(v->name()))) << v->name();

  // safetensors: the same tensors under the initializer names, checksummed, marked for PyTorch.
  const std::string st_out = tmp.File("trained.safetensors");
  s = ExportSafetensors(*weights, st_out, {{"dsc.step", "3"}});
  ASSERT_TRUE(s.ok()) << s.ToString();
  EXPECT_FALSE(fs::exists(st_out + ".tmp"));
  auto f = SafetensorsFile::Open(st_out);
  ASSERT_TRUE(f.ok()) << f.status().ToString();
  EXPECT_TRUE(f->has_checksums());
  ASSERT_TRUE(f->VerifyData().ok());
  EXPECT_EQ(f->metadata().at("format"), "pt");
  EXPECT_EQ(f->metadata().at("dsc.step"), "3");
  EXPECT_EQ(f->entries().size(), mlp.masters.size());
  for (const auto& [name, master] : mlp.masters) {
    auto t = f->ReadTensor(name);
    ASSERT_TRUE(t.ok()) << t.status().ToString();
    EXPECT_TRUE(t->SameContents(master)) << name;
  }
}

TEST(ExportCheckpoint, ConvertsToTheSourceDTypeAndOnlyBetweenFloats) {
  TempDir tmp;
  const MlpCheckpoint mlp = MixedPrecisionMlp();
  WriteCheckpoint(tmp.File("ckpt"), 3, mlp.tensors, ModelPath("mlp"));
  const Checkpoint ck = OpenOrDie(tmp.File("ckpt"));

  // A model exported in fp16: the fp32 master rounds to nearest even.
  auto half = TrainedWeightsFromCheckpoint(ck, {{"fc1.bias", DType::kFloat16}});
  ASSERT_TRUE(half.ok()) << half.status().ToString();
  const Tensor& b = half->at("fc1.bias");
  ASSERT_EQ(b.dtype(), DType::kFloat16);
  const uint16_t* bits = b.data<uint16_t>();
  EXPECT_EQ(bits[0], 0x3555);  // 1/3 -> 0.333251953125
  EXPECT_EQ(bits[1], 0x2E66);  // 0.1 -> 0.0999755859375
  EXPECT_EQ(bits[2], 0xC100);  // -2.5 exactly
  EXPECT_EQ(half->at("fc1.weight").dtype(), DType::kFloat32);  // names not given keep their dtype

  auto refused = TrainedWeightsFromCheckpoint(ck, {{"fc1.bias", DType::kInt64}});
  ASSERT_FALSE(refused.ok());
  EXPECT_NE(refused.status().message().find("only float types convert"), std::string::npos)
      << refused.status().message();
  EXPECT_NE(refused.status().message().find("fc1.bias::master"), std::string::npos) << refused.status().message();

  // The half tensor is what an fp16 model's safetensors holds.
  ASSERT_TRUE(ExportSafetensors(*half, tmp.File("h.safetensors")).ok());
  auto f = SafetensorsFile::Open(tmp.File("h.safetensors"));
  ASSERT_TRUE(f.ok());
  EXPECT_EQ(f->Find("fc1.bias")->dtype, DType::kFloat16);
  EXPECT_TRUE(f->ReadTensor("fc1.bias")->SameContents(b));
}

TEST(ExportCheckpoint, ParametersAndBatchNormBuffersOfAZero3Checkpoint) {
  // The cnn after an fp32 ZeRO-3 run: parameters and momenta sharded, BatchNorm statistics whole.
  TempDir tmp;
  std::vector<Saved> tensors;
  std::map<std::string, Tensor> expect;
  for (const auto& [name, init] : SourceInitializers("cnn")) {
    const bool buffer = name.find("running_") != std::string::npos;
    const Tensor trained = Plus(init, buffer ? 0.75 : -0.5);
    expect[name] = trained;
    tensors.push_back({name, buffer ? TensorKind::kBuffer : TensorKind::kParameter, trained, !buffer});
    if (!buffer) tensors.push_back({ops::MomentumName(name), TensorKind::kOptimizer, Plus(init, 9), true});
  }
  ASSERT_EQ(expect.size(), 10u);
  WriteCheckpoint(tmp.File("ckpt"), 5, tensors, ModelPath("cnn"));
  const Checkpoint ck = OpenOrDie(tmp.File("ckpt"));
  auto weights = TrainedWeightsFromCheckpoint(ck, SourceDTypes("cnn"));
  ASSERT_TRUE(weights.ok()) << weights.status().ToString();
  ASSERT_EQ(weights->size(), expect.size());
  for (const auto& [name, t] : expect) EXPECT_TRUE(weights->at(name).SameContents(t)) << name;

  ASSERT_TRUE(ExportTrainedOnnx(ModelPath("cnn"), *weights, tmp.File("cnn.onnx"), ExportOptions{}).ok());
  auto g = ImportOnnxFile(tmp.File("cnn.onnx"));
  ASSERT_TRUE(g.ok()) << g.status().ToString();
  for (const auto& [name, t] : expect)
    EXPECT_TRUE((*g)->FindValue(name)->initializer().SameContents(t)) << name;
}

TEST(ExportCheckpoint, ReadsOnlyWhatItExports) {
  TempDir tmp;
  const MlpCheckpoint mlp = MixedPrecisionMlp();
  WriteCheckpoint(tmp.File("ckpt"), 3, mlp.tensors, ModelPath("mlp"));
  const std::string rank1 = tmp.File("ckpt/global_step3/rank-1.safetensors");
  const int64_t master_at = ByteOf(rank1, "fc2.weight::master"), moment_at = ByteOf(rank1, "fc2.weight::exp_avg_sq");

  // A damaged optimizer state does not stop an export: it is never read.
  FlipByte(rank1, moment_at);
  {
    const Checkpoint ck = OpenOrDie(tmp.File("ckpt"));
    auto weights = TrainedWeightsFromCheckpoint(ck, SourceDTypes("mlp"));
    ASSERT_TRUE(weights.ok()) << weights.status().ToString();
    EXPECT_TRUE(weights->at("fc2.weight").SameContents(mlp.masters.at("fc2.weight")));
    EXPECT_FALSE(ck.VerifyAll().ok());  // while a full check finds it
  }
  // A damaged master is refused, the file named.
  FlipByte(rank1, master_at);
  {
    const Checkpoint ck = OpenOrDie(tmp.File("ckpt"));
    auto weights = TrainedWeightsFromCheckpoint(ck, SourceDTypes("mlp"));
    ASSERT_FALSE(weights.ok());
    EXPECT_NE(weights.status().message().find("rank-1.safetensors"), std::string::npos) << weights.status().message();
  }
  // A missing shard file is refused when the checkpoint opens, the file named.
  fs::remove(rank1);
  auto ck = Checkpoint::Open(tmp.File("ckpt/global_step3"));
  ASSERT_FALSE(ck.ok());
  EXPECT_NE(ck.status().message().find("rank-1.safetensors"), std::string::npos) << ck.status().message();
}

TEST(ExportCheckpoint, WrongSourceModelIsRefusedWritingNothing) {
  TempDir tmp;
  WriteCheckpoint(tmp.File("ckpt"), 3, MixedPrecisionMlp().tensors, ModelPath("mlp"));
  const Checkpoint ck = OpenOrDie(tmp.File("ckpt"));
  auto weights = TrainedWeightsFromCheckpoint(ck, {});
  ASSERT_TRUE(weights.ok()) << weights.status().ToString();
  const std::string out = tmp.File("o.onnx");
  Status s = ExportTrainedOnnx(ModelPath("cnn"), *weights, out, ExportOptions{});
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("has no initializer named 'fc1.bias', 'fc1.weight'"), std::string::npos) << s.message();
  EXPECT_FALSE(fs::exists(out));
}

TEST(ExportCheckpoint, SelectionFromAManifest) {
  CheckpointManifest m;
  m.tag = "global_step1";
  auto add = [&](const std::string& name, TensorKind kind) {
    CheckpointTensor t;
    t.name = name;
    t.kind = kind;
    m.tensors.push_back(t);
  };
  add("w", TensorKind::kParameter);
  add("w::master", TensorKind::kMaster);
  add("w::exp_avg", TensorKind::kOptimizer);
  add("v", TensorKind::kParameter);
  add("v::grad", TensorKind::kGradient);
  add("bn.running_mean", TensorKind::kBuffer);
  auto refs = StateTensorRefs(m);
  ASSERT_TRUE(refs.ok()) << refs.status().ToString();
  auto chosen = SelectExportedState(*refs);
  ASSERT_TRUE(chosen.ok()) << chosen.status().ToString();
  const std::map<std::string, std::string> want = {{"w", "w::master"}, {"v", "v"}, {"bn.running_mean", "bn.running_mean"}};
  EXPECT_EQ(*chosen, want);

  // Two tensors that would become one initializer.
  add("w", TensorKind::kBuffer);
  refs = StateTensorRefs(m);
  ASSERT_TRUE(refs.ok());
  auto twice = SelectExportedState(*refs);
  ASSERT_FALSE(twice.ok());
  EXPECT_NE(twice.status().message().find("initializer 'w'"), std::string::npos) << twice.status().message();

  // A master whose parameter cannot be told from its name.
  m.tensors.pop_back();
  add("u_master", TensorKind::kMaster);
  auto bad = StateTensorRefs(m);
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("'u_master'"), std::string::npos) << bad.status().message();
}

TEST(ExportSafetensors, AlignsEveryTensorToItsElementSize) {
  TempDir tmp;
  std::map<std::string, Tensor> w;
  w["a.half"] = Tensor::FromVector<double>(DType::kFloat16, {3}, {1, 2, 3});
  w["b.float"] = Tensor::FromVector<double>(DType::kFloat32, {3}, {1, 2, 3});
  w["c.byte"] = Tensor::FromVector<int64_t>(DType::kUInt8, {1}, {7});
  w["d.long"] = Tensor::FromVector<int64_t>(DType::kInt64, {2}, {-1, 5});
  w["e.bf16"] = Tensor::FromVector<double>(DType::kBFloat16, {1}, {0.5});
  w["f.double"] = Tensor::FromVector<double>(DType::kFloat64, {1}, {0.25});
  ASSERT_TRUE(ExportSafetensors(w, tmp.File("m.safetensors")).ok());
  auto f = SafetensorsFile::Open(tmp.File("m.safetensors"));
  ASSERT_TRUE(f.ok()) << f.status().ToString();
  EXPECT_EQ(f->raw_header().size() % 8, 0u);
  ASSERT_EQ(f->entries().size(), w.size());
  for (const SafetensorsEntry& e : f->entries()) {
    EXPECT_EQ(e.begin % static_cast<int64_t>(DTypeSize(e.dtype)), 0) << e.name << " at " << e.begin;
    EXPECT_TRUE(f->ReadTensor(e.name)->SameContents(w.at(e.name))) << e.name;
  }
  // Reserved metadata keys and an unwritable folder are refused, nothing left behind.
  EXPECT_FALSE(ExportSafetensors(w, tmp.File("x.safetensors"), {{"format", "tf"}}).ok());
  EXPECT_FALSE(ExportSafetensors(w, tmp.File("x.safetensors"), {{"dsc.crc32c.blocks", ""}}).ok());
  EXPECT_FALSE(fs::exists(tmp.File("x.safetensors")));
  Status s = ExportSafetensors(w, tmp.File("no/such/folder/x.safetensors"));
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("no/such/folder"), std::string::npos) << s.message();
}

// ---- dsinspect on the command line ----

testing::CommandResult Dsinspect(const std::string& args) { return RunCommand(StrCat(DSINSPECT_PATH, " ", args)); }

TEST(DsinspectExport, WritesBothFromTheLatestCheckpoint) {
  TempDir tmp;
  const MlpCheckpoint mlp = MixedPrecisionMlp();
  WriteCheckpoint(tmp.File("ckpt"), 3, mlp.tensors, ModelPath("mlp"));
  const std::string onnx_out = tmp.File("m.onnx"), st_out = tmp.File("m.safetensors");
  auto r = Dsinspect(StrCat("--export-onnx ", ShellQuote(tmp.File("ckpt")), " ", ShellQuote(onnx_out),
                            " --export-safetensors ", ShellQuote(tmp.File("ckpt/global_step3")), " ",
                            ShellQuote(st_out)));
  ASSERT_EQ(r.rc, 0) << r.output;
  EXPECT_NE(r.output.find("wrote " + onnx_out + ": 6 tensors"), std::string::npos) << r.output;
  auto g = ImportOnnxFile(onnx_out);
  ASSERT_TRUE(g.ok()) << g.status().ToString();
  auto f = SafetensorsFile::Open(st_out);
  ASSERT_TRUE(f.ok()) << f.status().ToString();
  EXPECT_EQ(f->metadata().at("dsc.step"), "3");
  EXPECT_EQ(f->metadata().at("dsc.checkpoint"), "global_step3");
  for (const auto& [name, master] : mlp.masters) {
    EXPECT_TRUE((*g)->FindValue(name)->initializer().SameContents(master)) << name;
    EXPECT_TRUE(f->ReadTensor(name)->SameContents(master)) << name;
  }
}

TEST(DsinspectExport, SourceModelGoneOrWrong) {
  TempDir tmp;
  WriteCheckpoint(tmp.File("ckpt"), 3, MixedPrecisionMlp().tensors, tmp.File("moved/mlp.onnx"));
  const std::string ckpt = ShellQuote(tmp.File("ckpt"));
  // ONNX needs the model: the error says how to give it.
  auto r = Dsinspect(StrCat("--export-onnx ", ckpt, " ", ShellQuote(tmp.File("m.onnx"))));
  EXPECT_EQ(r.rc, 1) << r.output;
  EXPECT_NE(r.output.find("moved/mlp.onnx"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("give --export-source"), std::string::npos) << r.output;
  EXPECT_FALSE(fs::exists(tmp.File("m.onnx")));
  r = Dsinspect(StrCat("--export-onnx ", ckpt, " ", ShellQuote(tmp.File("m.onnx")), " --export-source ",
                       ShellQuote(ModelPath("mlp"))));
  EXPECT_EQ(r.rc, 0) << r.output;
  // safetensors does without, keeping the checkpoint's dtypes, and says so.
  r = Dsinspect(StrCat("--export-safetensors ", ckpt, " ", ShellQuote(tmp.File("m.safetensors"))));
  EXPECT_EQ(r.rc, 0) << r.output;
  EXPECT_NE(r.output.find("keep the checkpoint's dtypes"), std::string::npos) << r.output;
  // A source model that is not the one trained: its initializers are named.
  r = Dsinspect(StrCat("--export-onnx ", ckpt, " ", ShellQuote(tmp.File("c.onnx")), " --export-source ",
                       ShellQuote(ModelPath("cnn"))));
  EXPECT_EQ(r.rc, 1) << r.output;
  EXPECT_NE(r.output.find("has no initializer named 'fc1.bias'"), std::string::npos) << r.output;
  EXPECT_FALSE(fs::exists(tmp.File("c.onnx")));
}

TEST(DsinspectExport, ErrorsAndUsage) {
  TempDir tmp;
  WriteCheckpoint(tmp.File("ckpt"), 3, MixedPrecisionMlp().tensors, ModelPath("mlp"));
  const std::string ckpt = ShellQuote(tmp.File("ckpt"));
  auto r = Dsinspect(StrCat("--export-onnx ", ShellQuote(tmp.File("nothing")), " ", ShellQuote(tmp.File("m.onnx"))));
  EXPECT_EQ(r.rc, 1) << r.output;
  EXPECT_NE(r.output.find(tmp.File("nothing")), std::string::npos) << r.output;

  // A corrupted shard is named.
  const std::string rank0 = tmp.File("ckpt/global_step3/rank-0.safetensors");
  FlipByte(rank0, ByteOf(rank0, "fc3.weight::master"));
  r = Dsinspect(StrCat("--export-safetensors ", ckpt, " ", ShellQuote(tmp.File("m.safetensors"))));
  EXPECT_EQ(r.rc, 1) << r.output;
  EXPECT_NE(r.output.find("rank-0.safetensors"), std::string::npos) << r.output;
  EXPECT_FALSE(fs::exists(tmp.File("m.safetensors")));

  r = Dsinspect(StrCat("--export-onnx ", ckpt, " ", ShellQuote(tmp.File("no/such/dir/m.onnx"))));
  EXPECT_EQ(r.rc, 1) << r.output;
  EXPECT_NE(r.output.find("does not exist"), std::string::npos) << r.output;

  for (const std::string& bad : {StrCat("--export-onnx ", ckpt), StrCat("plan.dsc --export-onnx ", ckpt, " o.onnx"),
                                 StrCat("--export-onnx ", ckpt, " o.onnx --json"), std::string("--export-source m.onnx"),
                                 StrCat("--export-onnx=", ckpt, " o.onnx")}) {
    r = Dsinspect(bad);
    EXPECT_EQ(r.rc, 2) << bad << "\n" << r.output;
  }
  r = Dsinspect("--help");
  EXPECT_EQ(r.rc, 0);
  EXPECT_NE(r.output.find("--export-safetensors CKPT OUT.safetensors"), std::string::npos) << r.output;
}

}  // namespace
}  // namespace dsc
