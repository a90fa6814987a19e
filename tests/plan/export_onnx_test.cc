// Trained ONNX export: the bundled models with changed weights pass ONNX's checker, keep every
// other byte, read back equal, and compute what the changed weights compute; refusals name the
// initializer; the external-data path; weights picked from a plan's state (masters, buffers).
#include "backend/export_onnx.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include <nlohmann/json.hpp>

#include "frontend/config/ds_config.h"
#include "frontend/external_data.h"
#include "frontend/onnx_import.h"
#include "ir/dsc_ops.h"
#include "ir/onnx_convert.h"
#include "onnx/checker.h"
#include "passes/pass.h"
#include "passes/pass_manager.h"
#include "runtime/executor.h"
#include "runtime/npy.h"
#include "tests/testutil/test_util.h"

namespace dsc {
namespace {

namespace fs = std::filesystem;
using ::dsc::testing::TempDir;

std::string ModelPath(const std::string& name) { return StrCat(DSC_SOURCE_DIR, "/models/", name, "/", name, ".onnx"); }

onnx::ModelProto ReadModel(const std::string& path, bool load_external = true) {
  onnx::ModelProto m;
  std::ifstream in(path, std::ios::binary);
  std::ostringstream ss;
  ss << in.rdbuf();
  EXPECT_TRUE(m.ParseFromString(ss.str())) << path;
  if (load_external) {
    Status s = InlineExternalData(&m, fs::path(path).parent_path().string());
    EXPECT_TRUE(s.ok()) << s.ToString();
  }
  return m;
}

std::map<std::string, Tensor> Initializers(const onnx::ModelProto& m) {
  std::map<std::string, Tensor> out;
  for (const auto& t : m.graph().initializer()) {
    StatusOr<Tensor> v = TensorFromOnnx(t);
    if (v.ok()) out[t.name()] = *v;
  }
  return out;
}

// Every float initializer of more than one element, plus 0.5.
std::map<std::string, Tensor> Shifted(const onnx::ModelProto& m, double by = 0.5) {
  std::map<std::string, Tensor> out;
  for (const auto& [name, t] : Initializers(m)) {
    if (!IsFloat(t.dtype()) || t.numel() < 2) continue;
    Tensor w(t.dtype(), t.dims());
    for (int64_t i = 0; i < t.numel(); ++i) w.SetFromDouble(i, t.GetAsDouble(i) + by);
    out[name] = w;
  }
  return out;
}

// The model with the data of the named initializers cleared: what must stay byte-identical.
std::string WithoutData(onnx::ModelProto m, const std::map<std::string, Tensor>& names) {
  for (auto& t : *m.mutable_graph()->mutable_initializer()) {
    if (!names.count(t.name())) continue;
    t.clear_raw_data();
    t.clear_float_data();
    t.clear_int32_data();
    t.clear_int64_data();
    t.clear_double_data();
    t.clear_uint64_data();
    t.clear_external_data();
    t.clear_data_location();
  }
  return m.SerializeAsString();
}

void ExpectExported(const std::string& model, const std::map<std::string, Tensor>& weights, const std::string& out) {
  const onnx::ModelProto original = ReadModel(model);
  EXPECT_NO_THROW(onnx::checker::check_model(out)) << out;
  const onnx::ModelProto exported = ReadModel(out);
  EXPECT_EQ(WithoutData(original, weights), WithoutData(exported, weights)) << "more than the weights changed";
  const std::map<std::string, Tensor> before = Initializers(original), after = Initializers(exported);
  ASSERT_EQ(before.size(), after.size());
  for (const auto& [name, t] : after) {
    auto w = weights.find(name);
    EXPECT_TRUE(t.SameContents(w == weights.end() ? before.at(name) : w->second)) << name;
  }
}

TEST(ExportOnnx, BundledModelsWithChangedWeights) {
  TempDir tmp;
  for (const std::string name : {"mlp", "cnn", "gpt"}) {
    SCOPED_TRACE(name);
    const std::map<std::string, Tensor> weights = Shifted(ReadModel(ModelPath(name)));
    ASSERT_FALSE(weights.empty());
    const std::string out = tmp.File(name + ".onnx");
    Status s = ExportTrainedOnnx(ModelPath(name), weights, out, ExportOptions{});
    ASSERT_TRUE(s.ok()) << s.ToString();
    EXPECT_FALSE(fs::exists(out + ".data"));  // small models stay inline
    ExpectExported(ModelPath(name), weights, out);
    EXPECT_TRUE(ImportOnnxFile(out).ok());
  }
}

TEST(ExportOnnx, UnchangedWeightsGiveTheSameBytesOfEveryOtherField) {
  TempDir tmp;
  const onnx::ModelProto m = ReadModel(ModelPath("cnn"));
  const std::map<std::string, Tensor> same = Initializers(m);
  ASSERT_TRUE(ExportTrainedOnnx(ModelPath("cnn"), same, tmp.File("o.onnx"), ExportOptions{}).ok());
  ExpectExported(ModelPath("cnn"), same, tmp.File("o.onnx"));
}

TEST(ExportOnnx, RefusesMismatchesAndUnknownNamesWritingNothing) {
  TempDir tmp;
  const onnx::ModelProto m = ReadModel(ModelPath("mlp"));
  std::map<std::string, Tensor> weights = Shifted(m);
  const std::string victim = weights.begin()->first;
  const std::string out = tmp.File("o.onnx");
  const Tensor& good = weights.at(victim);

  std::map<std::string, Tensor> bad = weights;
  bad[victim] = Tensor(DType::kFloat16, good.dims());
  Status s = ExportTrainedOnnx(ModelPath("mlp"), bad, out, ExportOptions{});
  EXPECT_FALSE(s.ok());
  EXPECT_NE(s.message().find("initializer '" + victim + "' is float"), std::string::npos) << s.message();
  EXPECT_NE(s.message().find("float16"), std::string::npos) << s.message();

  bad[victim] = Tensor(good.dtype(), {good.numel()});
  if (good.rank() != 1) {
    s = ExportTrainedOnnx(ModelPath("mlp"), bad, out, ExportOptions{});
    EXPECT_FALSE(s.ok());
    EXPECT_NE(s.message().find(victim), std::string::npos) << s.message();
    EXPECT_NE(s.message().find(DimsToString({good.numel()})), std::string::npos) << s.message();
  }

  bad = weights;
  bad["no_such_weight"] = good;
  bad["another.missing"] = good;
  s = ExportTrainedOnnx(ModelPath("mlp"), bad, out, ExportOptions{});
  EXPECT_FALSE(s.ok());
  EXPECT_NE(s.message().find("'another.missing', 'no_such_weight'"), std::string::npos) << s.message();
  EXPECT_FALSE(fs::exists(out));
  EXPECT_TRUE(fs::is_empty(tmp.path()));  // no temporary file left either

  EXPECT_FALSE(ExportTrainedOnnx(tmp.File("absent.onnx"), weights, out, ExportOptions{}).ok());
}

TEST(ExportOnnx, ExternalDataWhenOverTheLimit) {
  TempDir tmp;
  const onnx::ModelProto m = ReadModel(ModelPath("gpt"));
  const std::map<std::string, Tensor> weights = Shifted(m);
  ExportOptions opts;
  opts.inline_limit_bytes = 1000;  // gpt.onnx is 150 kB: forces the external path
  opts.external_min_bytes = 64;
  const std::string out = tmp.File("big.onnx");
  Status s = ExportTrainedOnnx(ModelPath("gpt"), weights, out, opts);
  ASSERT_TRUE(s.ok()) << s.ToString();
  ASSERT_TRUE(fs::exists(out + ".data"));
  EXPECT_NO_THROW(onnx::checker::check_model(out, /*full_check=*/false));

  const onnx::ModelProto raw = ReadModel(out, /*load_external=*/false);
  int external = 0;
  for (const auto& t : raw.graph().initializer()) {
    if (t.data_location() != onnx::TensorProto_DataLocation_EXTERNAL) continue;
    ++external;
    std::map<std::string, std::string> kv;
    for (const auto& e : t.external_data()) kv[e.key()] = e.value();
    EXPECT_EQ(kv["location"], "big.onnx.data") << t.name();
    EXPECT_EQ(std::stoll(kv["offset"]) % opts.external_alignment, 0) << t.name();
    EXPECT_FALSE(t.has_raw_data());
  }
  EXPECT_GT(external, 0);
  EXPECT_LT(fs::file_size(out), fs::file_size(ModelPath("gpt")) / 2);  // the weights left the model file
  ExpectExported(ModelPath("gpt"), weights, out);  // reloads through the external data
  EXPECT_TRUE(ImportOnnxFile(out).ok());

  // Exported again from the external-data model: read through its data file, written inline.
  const std::string again = tmp.File("sub/again.onnx");
  fs::create_directories(tmp.File("sub"));
  ASSERT_TRUE(ExportTrainedOnnx(out, {}, again, ExportOptions{}).ok());
  EXPECT_FALSE(fs::exists(again + ".data"));
  EXPECT_TRUE(Initializers(ReadModel(again)).at(weights.begin()->first).SameContents(weights.begin()->second));
}

// The imported model's loss on the first micro-batch of its data.
double Loss(std::unique_ptr<Graph> g, const std::string& model, int64_t batch,
            const std::map<std::string, Tensor>* set_initializers = nullptr) {
  if (set_initializers)
    for (const auto& [name, t] : *set_initializers) g->FindValue(name)->set_initializer(t);
  Module m;
  m.programs.push_back(PlanProgram{"train", std::move(g)});
  PassContext ctx;
  ctx.micro_batch = batch;
  auto ran = RunPipeline(m, {PassId::kSpecialize, PassId::kFoldConstants}, ctx, PipelineOptions{});
  EXPECT_TRUE(ran.ok()) << ran.status().ToString();
  const Graph& graph = *m.FindProgram("train")->graph;
  std::map<std::string, Tensor> data;
  std::map<std::string, Tensor*> bound;
  for (const Value* in : graph.inputs()) {
    StatusOr<Tensor> all = ReadNpy(StrCat(DSC_SOURCE_DIR, "/models/", model, "/data/", in->name(), ".npy"));
    EXPECT_TRUE(all.ok()) << all.status().ToString();
    std::vector<int64_t> dims = all->dims();
    dims[0] = batch;
    Tensor t(all->dtype(), dims);
    std::memcpy(t.raw(), all->raw(), t.nbytes());
    bound[in->name()] = &data.emplace(in->name(), t).first->second;
  }
  auto out = RunGraphOnCpu(graph, bound);
  EXPECT_TRUE(out.ok()) << out.status().ToString();
  if (!out.ok()) return 0;
  const std::string loss = graph.outputs().front()->name();
  return out->at(loss).GetAsDouble(0);
}

TEST(ExportOnnx, ExportedWeightsComputeWhatTheyShould) {
  TempDir tmp;
  for (const std::string name : {"mlp", "cnn", "gpt"}) {
    SCOPED_TRACE(name);
    const onnx::ModelProto m = ReadModel(ModelPath(name));
    const std::map<std::string, Tensor> same = Initializers(m), shifted = Shifted(m, 0.05);
    ASSERT_TRUE(ExportTrainedOnnx(ModelPath(name), same, tmp.File("same.onnx"), ExportOptions{}).ok());
    ASSERT_TRUE(ExportTrainedOnnx(ModelPath(name), shifted, tmp.File("shifted.onnx"), ExportOptions{}).ok());
    auto orig = ImportOnnxFile(ModelPath(name));
    auto orig2 = ImportOnnxFile(ModelPath(name));
    auto same_g = ImportOnnxFile(tmp.File("same.onnx"));
    auto shifted_g = ImportOnnxFile(tmp.File("shifted.onnx"));
    ASSERT_TRUE(orig.ok() && orig2.ok() && same_g.ok() && shifted_g.ok());
    const double base = Loss(std::move(*orig), name, 4);
    EXPECT_EQ(Loss(std::move(*same_g), name, 4), base);  // bit for bit
    const double moved = Loss(std::move(*shifted_g), name, 4);
    EXPECT_NE(moved, base);
    // The effect expected: the original graph with those values set in memory.
    EXPECT_EQ(moved, Loss(std::move(*orig2), name, 4, &shifted));
  }
}

// A compiled plan's state: masters are exported (converted back to the model's dtype), buffers
// too, gradients and optimizer states are not.
Plan Compile(const std::string& model, const std::string& config) {
  std::vector<std::string> warnings;
  auto cfg = ParseDsConfig(config, ConfigOptions{}, &warnings);
  EXPECT_TRUE(cfg.ok()) << cfg.status().ToString();
  PassContext ctx;
  ctx.config = &*cfg;
  ctx.micro_batch = 4;
  auto g = ImportOnnxFile(ModelPath(model));
  EXPECT_TRUE(g.ok()) << g.status().ToString();
  Plan plan;
  plan.programs.push_back(PlanProgram{"train", std::move(*g)});
  auto ran = RunPipeline(plan, DefaultPipeline(), ctx, PipelineOptions{});
  EXPECT_TRUE(ran.ok()) << ran.status().ToString();
  return plan;
}

std::map<std::string, Tensor> StatePlus(const Plan& plan, double master_add, double other_add) {
  std::map<std::string, Tensor> state;
  for (const StateInfo& s : plan.state) {
    Tensor t(s.dtype, s.dims);
    if (!s.zero_init) {
      const Tensor& init = plan.initial_state->FindValue(s.name)->initializer();
      const double add = s.kind == StateKind::kMaster ? master_add : other_add;
      for (int64_t i = 0; i < t.numel(); ++i) t.SetFromDouble(i, init.GetAsDouble(i) + add);
    }
    state.emplace(s.name, t);
  }
  return state;
}

TEST(ExportOnnx, TrainedWeightsFromAHalfModelsMasters) {
  const Plan plan = Compile("mlp", R"({"train_batch_size": 4, "optimizer": {"type": "Adam", "params": {"lr": 0.001}},
                                      "fp16": {"enabled": true}})");
  const std::map<std::string, Tensor> state = StatePlus(plan, 0.25, 100.0);
  auto dtypes = OnnxInitializerDTypes(ModelPath("mlp"));
  ASSERT_TRUE(dtypes.ok()) << dtypes.status().ToString();
  auto weights = TrainedWeightsFromState(plan, state, *dtypes);
  ASSERT_TRUE(weights.ok()) << weights.status().ToString();
  int masters = 0;
  for (const StateInfo& s : plan.state) {
    if (s.kind != StateKind::kMaster) {
      EXPECT_TRUE(s.kind == StateKind::kParameter || !weights->count(s.name)) << s.name;
      continue;
    }
    ++masters;
    const Tensor& w = weights->at(s.owner);
    EXPECT_EQ(w.dtype(), DType::kFloat32) << s.owner;  // the model's dtype, not the half compute copy's
    EXPECT_TRUE(w.SameContents(state.at(ops::MasterName(s.owner)))) << s.owner << ": not the master's value";
  }
  EXPECT_GT(masters, 0);
  TempDir tmp;
  ASSERT_TRUE(ExportTrainedOnnx(ModelPath("mlp"), *weights, tmp.File("t.onnx"), ExportOptions{}).ok());
  ExpectExported(ModelPath("mlp"), *weights, tmp.File("t.onnx"));

  // Without the model's dtypes nothing converts: the masters' fp32 is the mlp's dtype anyway.
  auto plain = TrainedWeightsFromState(plan, state);
  ASSERT_TRUE(plain.ok());
  EXPECT_EQ(plain->size(), weights->size());
  // A state tensor missing from the checkpoint is named.
  std::map<std::string, Tensor> partial = state;
  partial.erase(ops::MasterName(weights->begin()->first));
  auto missing = TrainedWeightsFromState(plan, partial, *dtypes);
  ASSERT_FALSE(missing.ok());
  EXPECT_NE(missing.status().message().find(ops::MasterName(weights->begin()->first)), std::string::npos);
}

TEST(ExportOnnx, TrainedWeightsIncludeBatchNormStatistics) {
  const Plan plan = Compile("cnn", R"({"train_batch_size": 4, "optimizer": {"type": "SGD", "params": {"lr": 0.1}}})");
  const std::map<std::string, Tensor> state = StatePlus(plan, 0, 0.5);
  auto weights = TrainedWeightsFromState(plan, state);
  ASSERT_TRUE(weights.ok()) << weights.status().ToString();
  int buffers = 0, params = 0;
  for (const StateInfo& s : plan.state) {
    const bool exported = s.kind == StateKind::kParameter || s.kind == StateKind::kBuffer;
    EXPECT_EQ(weights->count(s.name), exported ? 1u : 0u) << s.name;
    buffers += s.kind == StateKind::kBuffer;
    params += s.kind == StateKind::kParameter;
  }
  EXPECT_GT(buffers, 0);
  EXPECT_EQ(weights->size(), static_cast<size_t>(buffers + params));
  TempDir tmp;
  ASSERT_TRUE(ExportTrainedOnnx(ModelPath("cnn"), *weights, tmp.File("t.onnx"), ExportOptions{}).ok());
  ExpectExported(ModelPath("cnn"), *weights, tmp.File("t.onnx"));
}

}  // namespace
}  // namespace dsc
