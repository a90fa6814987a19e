// ONNX import and the first pipeline on the bundled models, models exported at test time, and
// malformed inputs that must be rejected with a message naming the problem.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <set>

#include "frontend/onnx_import.h"
#include "ir/verifier.h"
#include "onnx/onnx_pb.h"
#include "passes/pass_manager.h"

namespace dsc {
namespace {

namespace fs = std::filesystem;

// Runs the front of dscompile's pipeline (up to dce) with micro batch 4.
StatusOr<std::unique_ptr<Graph>> Compile(const std::string& path) {
  Module m;
  ASSIGN_OR_RETURN(std::unique_ptr<Graph> g, ImportOnnxFile(path));
  m.programs.push_back(PlanProgram{"train", std::move(g)});
  PassContext ctx;
  ctx.micro_batch = 4;
  PipelineOptions opts;
  const std::vector<PassId> front = {PassId::kSpecialize, PassId::kSelectLoss, PassId::kFoldConstants, PassId::kDce};
  RETURN_IF_ERROR(RunPipeline(m, front, ctx, opts).status());
  return std::move(m.programs[0].graph);
}

void ExpectFoldedAndTrainable(const Graph& g, const std::string& what) {
  const std::set<std::string> shape_ops = {"Shape", "Size", "ConstantOfShape", "Range", "Constant"};
  for (const auto& n : g.nodes())
    EXPECT_FALSE(shape_ops.count(n->op_type())) << what << ": " << n->Describe() << " survived folding";
  VerifyOptions v;
  v.require_types = v.require_static_shapes = true;
  Status s = VerifyGraph(g, v);
  EXPECT_TRUE(s.ok()) << what << ": " << s.ToString();
  EXPECT_FALSE(g.training.loss.empty()) << what;
  EXPECT_FALSE(g.training.parameters.empty()) << what;
}

// The trainable set must equal PyTorch's nn.Parameters, as recorded by the export script.
void ExpectParametersMatchPyTorch(const Graph& g, const fs::path& reference_json) {
  std::ifstream in(reference_json);
  ASSERT_TRUE(in) << reference_json;
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  // A tiny scan for the "trainable": [...] list keeps this test free of a JSON dependency.
  auto key = text.find("\"trainable\"");
  ASSERT_NE(key, std::string::npos);
  auto open = text.find('[', key), close = text.find(']', key);
  std::set<std::string> expected;
  for (size_t q = text.find('"', open); q < close; q = text.find('"', q + 1)) {
    size_t e = text.find('"', q + 1);
    expected.insert(text.substr(q + 1, e - q - 1));
    q = e;
  }
  std::set<std::string> got(g.training.parameters.begin(), g.training.parameters.end());
  EXPECT_EQ(got, expected) << reference_json;
}

class BundledModel : public ::testing::TestWithParam<std::string> {};

TEST_P(BundledModel, ImportsSpecializesAndFolds) {
  fs::path dir = fs::path(DSC_MODELS_DIR) / GetParam();
  auto g = Compile((dir / (GetParam() + ".onnx")).string());
  ASSERT_TRUE(g.ok()) << g.status().ToString();
  ExpectFoldedAndTrainable(**g, GetParam());
  ExpectParametersMatchPyTorch(**g, dir / "reference" / "reference.json");
  for (Value* in : (*g)->inputs()) EXPECT_EQ(in->type.shape->at(0).value, 4) << in->name();
}

INSTANTIATE_TEST_SUITE_P(Models, BundledModel, ::testing::Values("mlp", "cnn", "gpt"));

TEST(UnseenModels, ImportSpecializeFold) {
  fs::path dir = DSC_UNSEEN_DIR;
  if (!fs::exists(dir)) GTEST_SKIP() << "no models exported at " << dir << " (the export fixture did not run)";
  int count = 0;
  for (const auto& e : fs::directory_iterator(dir)) {
    if (!e.is_directory()) continue;
    const std::string name = e.path().filename().string();
    auto g = Compile((e.path() / (name + ".onnx")).string());
    ASSERT_TRUE(g.ok()) << name << ": " << g.status().ToString();
    ExpectFoldedAndTrainable(**g, name);
    if (fs::exists(e.path() / "reference" / "reference.json"))
      ExpectParametersMatchPyTorch(**g, e.path() / "reference" / "reference.json");
    ++count;
  }
  EXPECT_GT(count, 0);
}

// ---------------------------------------------------------------- malformed inputs

onnx::ModelProto TinyModel() {
  onnx::ModelProto m;
  m.set_ir_version(8);
  m.add_opset_import()->set_version(17);
  auto* g = m.mutable_graph();
  g->set_name("tiny");
  auto* in = g->add_input();
  in->set_name("x");
  in->mutable_type()->mutable_tensor_type()->set_elem_type(onnx::TensorProto::FLOAT);
  in->mutable_type()->mutable_tensor_type()->mutable_shape()->add_dim()->set_dim_value(2);
  auto* w = g->add_initializer();
  w->set_name("w");
  w->set_data_type(onnx::TensorProto::FLOAT);
  w->add_dims(2);
  w->add_float_data(1.0f);
  w->add_float_data(2.0f);
  auto* n = g->add_node();
  n->set_op_type("Mul");
  n->set_name("mul");
  n->add_input("x");
  n->add_input("w");
  n->add_output("y");
  auto* out = g->add_output();
  out->set_name("y");
  out->mutable_type()->mutable_tensor_type()->set_elem_type(onnx::TensorProto::FLOAT);
  out->mutable_type()->mutable_tensor_type()->mutable_shape()->add_dim()->set_dim_value(2);
  return m;
}

std::string ImportError(const onnx::ModelProto& m, const std::string& base_dir = "") {
  auto g = ImportOnnxBytes(m.SerializeAsString(), base_dir, "model.onnx");
  return g.ok() ? "" : g.status().message();
}

TEST(ImportErrors, TinyModelImports) { EXPECT_EQ(ImportError(TinyModel()), ""); }

TEST(ImportErrors, MalformedProtobuf) {
  auto g = ImportOnnxBytes(std::string("\x0a\xff\xff\xff\xff\x0f garbage", 16), "", "bad.onnx");
  ASSERT_FALSE(g.ok());
  EXPECT_NE(g.status().message().find("not a valid ONNX protobuf"), std::string::npos) << g.status().message();
  EXPECT_NE(g.status().message().find("bad.onnx"), std::string::npos);
}

TEST(ImportErrors, EmptyAndMissingFile) {
  EXPECT_FALSE(ImportOnnxBytes("", "", "empty.onnx").ok());
  auto g = ImportOnnxFile("/nonexistent/model.onnx");
  ASSERT_FALSE(g.ok());
  EXPECT_NE(g.status().message().find("/nonexistent/model.onnx"), std::string::npos);
}

TEST(ImportErrors, CheckerFailure) {
  onnx::ModelProto m = TinyModel();
  m.mutable_graph()->mutable_node(0)->add_input("x");  // Mul with three inputs
  std::string e = ImportError(m);
  EXPECT_NE(e.find("ONNX checker"), std::string::npos) << e;
}

TEST(ImportErrors, UnknownOpsAllListed) {
  onnx::ModelProto m = TinyModel();
  auto* g = m.mutable_graph();
  g->mutable_node(0)->set_domain("com.example");
  g->mutable_node(0)->set_op_type("Frobnicate");
  auto* op = m.add_opset_import();
  op->set_domain("com.example");
  op->set_version(1);
  auto* n2 = g->add_node();
  n2->set_op_type("Zap");
  n2->set_domain("com.example");
  n2->set_name("zap");
  n2->add_input("y");
  n2->add_output("z");
  g->mutable_output(0)->set_name("z");
  std::string e = ImportError(m);
  EXPECT_NE(e.find("2 nodes use unsupported operators"), std::string::npos) << e;
  EXPECT_NE(e.find("'mul' (com.example.Frobnicate)"), std::string::npos) << e;
  EXPECT_NE(e.find("'zap' (com.example.Zap)"), std::string::npos) << e;
}

TEST(ImportErrors, UnsupportedStandardOp) {
  onnx::ModelProto m = TinyModel();
  m.mutable_graph()->mutable_node(0)->set_op_type("Hardmax");
  m.mutable_graph()->mutable_node(0)->clear_input();
  m.mutable_graph()->mutable_node(0)->add_input("x");
  std::string e = ImportError(m);
  EXPECT_NE(e.find("'mul' (Hardmax), opset 17"), std::string::npos) << e;
}

TEST(ImportErrors, CyclicGraph) {
  onnx::ModelProto m = TinyModel();
  auto* g = m.mutable_graph();
  g->mutable_node(0)->set_input(1, "z");
  auto* n2 = g->add_node();
  n2->set_op_type("Relu");
  n2->set_name("relu");
  n2->add_input("y");
  n2->add_output("z");
  std::string e = ImportError(m);
  EXPECT_FALSE(e.empty());
  EXPECT_TRUE(e.find("topologically sorted") != std::string::npos || e.find("cycle") != std::string::npos) << e;
}

TEST(ImportErrors, MissingInitializer) {
  onnx::ModelProto m = TinyModel();
  m.mutable_graph()->clear_initializer();
  std::string e = ImportError(m);
  EXPECT_NE(e.find("w"), std::string::npos) << e;
  EXPECT_FALSE(e.empty());
}

TEST(ImportErrors, OpsetOutOfRange) {
  onnx::ModelProto m = TinyModel();
  m.mutable_opset_import(0)->set_version(11);
  EXPECT_NE(ImportError(m).find("opset 11"), std::string::npos) << ImportError(m);
}

TEST(ImportErrors, ShapeOverflowingInt64) {
  onnx::ModelProto m = TinyModel();
  auto* w = m.mutable_graph()->mutable_initializer(0);
  w->clear_dims();
  w->add_dims(int64_t{1} << 40);
  w->add_dims(int64_t{1} << 40);
  std::string e = ImportError(m);
  EXPECT_NE(e.find("overflows int64"), std::string::npos) << e;
}

TEST(ImportErrors, InitializerDataSizeMismatch) {
  onnx::ModelProto m = TinyModel();
  m.mutable_graph()->mutable_initializer(0)->add_float_data(3.0f);
  std::string e = ImportError(m);
  EXPECT_FALSE(e.empty());
  EXPECT_NE(e.find("'w'"), std::string::npos) << e;
}

class ExternalData : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = fs::temp_directory_path() / ("dsc_extdata_" + std::to_string(::getpid()));
    fs::create_directories(root_ / "model");
    std::ofstream(root_ / "model" / "w.bin", std::ios::binary).write("\0\0\x80\x3f\0\0\0\x40", 8);  // 1.0f, 2.0f
    std::ofstream(root_ / "secret.bin", std::ios::binary).write("\0\0\x80\x3f\0\0\0\x40", 8);
  }
  void TearDown() override { fs::remove_all(root_); }
  onnx::ModelProto WithLocation(const std::string& location) {
    onnx::ModelProto m = TinyModel();
    auto* w = m.mutable_graph()->mutable_initializer(0);
    w->clear_float_data();
    w->set_data_location(onnx::TensorProto::EXTERNAL);
    auto* kv = w->add_external_data();
    kv->set_key("location");
    kv->set_value(location);
    return m;
  }
  fs::path root_;
};

TEST_F(ExternalData, InsideFolderLoads) {
  auto g = ImportOnnxBytes(WithLocation("w.bin").SerializeAsString(), (root_ / "model").string(), "m.onnx");
  ASSERT_TRUE(g.ok()) << g.status().ToString();
  const Tensor& w = (*g)->FindValue("w")->initializer();
  EXPECT_EQ(w.GetAsDouble(0), 1.0);
  EXPECT_EQ(w.GetAsDouble(1), 2.0);
}

TEST_F(ExternalData, EscapingPathRefused) {
  for (const std::string loc : {"../secret.bin", "/etc/passwd", "sub/../../secret.bin"}) {
    auto g = ImportOnnxBytes(WithLocation(loc).SerializeAsString(), (root_ / "model").string(), "m.onnx");
    ASSERT_FALSE(g.ok()) << loc;
    EXPECT_TRUE(g.status().message().find("escapes") != std::string::npos ||
                g.status().message().find("absolute") != std::string::npos)
        << g.status().message();
  }
}

TEST_F(ExternalData, MissingFileAndBadRange) {
  auto g = ImportOnnxBytes(WithLocation("nope.bin").SerializeAsString(), (root_ / "model").string(), "m.onnx");
  ASSERT_FALSE(g.ok());
  EXPECT_NE(g.status().message().find("nope.bin"), std::string::npos);
  onnx::ModelProto m = WithLocation("w.bin");
  auto* kv = m.mutable_graph()->mutable_initializer(0)->add_external_data();
  kv->set_key("offset");
  kv->set_value("4");
  g = ImportOnnxBytes(m.SerializeAsString(), (root_ / "model").string(), "m.onnx");
  ASSERT_FALSE(g.ok());
}

}  // namespace
}  // namespace dsc
