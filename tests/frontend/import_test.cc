// ONNX import and the first pipeline on the bundled models, models exported at test time, and
// malformed inputs that must be rejected with a message naming the problem.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <set>

#include "frontend/onnx_import.h"
#include "frontend/supported_ops.h"
#include "ir/onnx_convert.h"
#include "ir/text.h"
#include "ir/verifier.h"
#include "onnx/checker.h"
#include "onnx/onnx_pb.h"
#include "passes/pass.h"
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
  auto g = ImportOnnxBytes(std::string("\x0a\xff\xff\xff\xff\x0f garbage"), "", "bad.onnx");
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
  EXPECT_NE(e.find("Ops of other domains"), std::string::npos) << e;
  EXPECT_NE(e.find("dscompile --list-ops"), std::string::npos) << e;
}

TEST(ImportErrors, UnsupportedStandardOp) {
  onnx::ModelProto m = TinyModel();
  m.mutable_graph()->mutable_node(0)->set_op_type("Hardmax");
  m.mutable_graph()->mutable_node(0)->clear_input();
  m.mutable_graph()->mutable_node(0)->add_input("x");
  std::string e = ImportError(m);
  EXPECT_NE(e.find("'mul' (Hardmax), opset 17"), std::string::npos) << e;
  EXPECT_EQ(e.find("Ops of other domains"), std::string::npos) << e;
  EXPECT_NE(e.find("dscompile --list-ops"), std::string::npos) << e;
}

// Ops whose output shape depends on the data say so.
TEST(ImportErrors, DataDependentShapeOpSaysWhy) {
  onnx::ModelProto m = TinyModel();
  m.mutable_graph()->mutable_node(0)->set_op_type("Unique");
  m.mutable_graph()->mutable_node(0)->clear_input();
  m.mutable_graph()->mutable_node(0)->add_input("x");
  std::string e = ImportError(m);
  EXPECT_NE(e.find("'mul' (Unique), opset 17: its output's shape depends on the data"), std::string::npos) << e;
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


// ---------------------------------------------------------------- opsets and IR versions

TEST(ImportVersions, RangeIsTheLibrarys) {
  EXPECT_GE(MaxOpset(), 28);  // ONNX 1.23's newest
  EXPECT_GE(MaxIrVersion(), 13);
}

TEST(ImportVersions, Opset18AndNewestImport) {
  onnx::ModelProto m = TinyModel();
  m.mutable_opset_import(0)->set_version(18);
  EXPECT_EQ(ImportError(m), "");
  m.set_ir_version(MaxIrVersion());
  m.mutable_opset_import(0)->set_version(MaxOpset());
  EXPECT_EQ(ImportError(m), "");
}

TEST(ImportVersions, OpsetBeyondNewestRefusedWithTheExportThatWorks) {
  onnx::ModelProto m = TinyModel();
  m.mutable_opset_import(0)->set_version(MaxOpset() + 1);
  const std::string e = ImportError(m);
  for (const std::string& want :
       {StrCat("opset ", MaxOpset() + 1), StrCat("opsets 13 to ", MaxOpset()), std::string("dynamo=True"),
        StrCat("opset_version=18..", MaxOpset()), std::string("dynamo=False, opset_version=17 or 18"),
        std::string("model.onnx")})
    EXPECT_NE(e.find(want), std::string::npos) << "missing '" << want << "' in: " << e;
}

TEST(ImportVersions, IrVersionBeyondNewestNamesBothVersions) {
  onnx::ModelProto m = TinyModel();
  m.set_ir_version(MaxIrVersion() + 1);
  const std::string e = ImportError(m);
  EXPECT_NE(e.find(StrCat("IR version ", MaxIrVersion() + 1)), std::string::npos) << e;
  EXPECT_NE(e.find(StrCat("IR versions 3 to ", MaxIrVersion())), std::string::npos) << e;
  EXPECT_EQ(e.find("checker"), std::string::npos) << "the checker's raw text leaked: " << e;
}

TEST(ImportVersions, IrVersionUnsetRefused) {
  onnx::ModelProto m = TinyModel();
  m.clear_ir_version();
  const std::string e = ImportError(m);
  EXPECT_NE(e.find("IR version 0 (unset)"), std::string::npos) << e;
  EXPECT_NE(e.find(StrCat("3 to ", MaxIrVersion())), std::string::npos) << e;
}

// Opset 19's Cast `saturate` only matters for float8 targets, which have no dtype here: refused
// at import, naming the node.
TEST(ImportVersions, CastToFloat8Refused) {
  onnx::ModelProto m = TinyModel();
  m.set_ir_version(9);
  m.mutable_opset_import(0)->set_version(19);
  auto* g = m.mutable_graph();
  auto* n = g->add_node();
  n->set_op_type("Cast");
  n->set_name("to_f8");
  n->add_input("y");
  n->add_output("z");
  auto* to = n->add_attribute();
  to->set_name("to");
  to->set_type(onnx::AttributeProto::INT);
  to->set_i(onnx::TensorProto::FLOAT8E4M3FN);
  auto* sat = n->add_attribute();
  sat->set_name("saturate");
  sat->set_type(onnx::AttributeProto::INT);
  sat->set_i(0);
  g->mutable_output(0)->set_name("z");
  g->mutable_output(0)->mutable_type()->mutable_tensor_type()->set_elem_type(onnx::TensorProto::FLOAT8E4M3FN);
  const std::string e = ImportError(m);
  EXPECT_NE(e.find("FLOAT8E4M3FN"), std::string::npos) << e;
  EXPECT_NE(e.find("node 'to_f8' (Cast)"), std::string::npos) << e;
}

// Opset 28 defined floating-point Mod with fmod=0 (numpy.mod); older opsets required fmod=1.
TEST(ImportVersions, FloatModWithoutFmodOnlyFromOpset28) {
  onnx::ModelProto m = TinyModel();
  m.mutable_graph()->mutable_node(0)->set_op_type("Mod");
  m.mutable_opset_import(0)->set_version(27);
  m.set_ir_version(13);
  const std::string e = ImportError(m);
  EXPECT_NE(e.find("node 'mul' (Mod)"), std::string::npos) << e;
  EXPECT_NE(e.find("opset 28"), std::string::npos) << e;
  EXPECT_NE(e.find("has opset 27"), std::string::npos) << e;
  m.mutable_opset_import(0)->set_version(28);
  m.set_ir_version(MaxIrVersion());
  EXPECT_EQ(ImportError(m), "");
}

// Every op whose form changed at opset 18 (ReduceMean's axes input, Split's num_outputs, Pad's axes
// input), imported, folded and differentiated: the graph a dump of the autodiff pass holds must
// pass the ONNX checker at the model's opset.
class NewOpsetTraining : public ::testing::TestWithParam<int64_t> {};

TEST_P(NewOpsetTraining, DifferentiatedGraphPassesChecker) {
  const int64_t opset = GetParam() ? GetParam() : MaxOpset();
  const std::string text = StrCat("<ir_version: ", opset >= 28 ? MaxIrVersion() : 8, R"(, opset_import: ["" : )",
                                  opset, R"(]>
main (float[batch,3] x) => (float[] loss)
<
  float[3,5] w = {0.1, -0.2, 0.3, 0.4, -0.5, 0.6, 0.7, -0.8, 0.9, 0.15, 0.25, -0.35, 0.45, 0.55, -0.65},
  float[5] b = {0.01, 0.02, -0.03, 0.04, 0.05},
  int64[2] pads = {1, 0},
  int64[1] last = {-1}
>
{
  h = Gemm(x, w, b)
  p0, p1, p2 = Split <axis = 1, num_outputs = 3> (h)
  c = Concat <axis = 1> (p0, p2)
  q = Pad(c, pads, , last)
  s = Mul(q, q)
  m = ReduceMean(s, last)
  loss = ReduceMean <keepdims = 0> (m)
}
)");
  auto parsed = ParseGraph(text);
  ASSERT_TRUE(parsed.ok()) << parsed.status().ToString();
  fs::path dir = fs::temp_directory_path() / StrCat("dsc_opset", opset, "_", ::getpid());
  fs::create_directories(dir);
  const fs::path path = dir / "model.onnx";
  std::ofstream(path, std::ios::binary) << GraphToOnnx(**parsed).SerializeAsString();
  auto g = Compile(path.string());
  fs::remove_all(dir);
  ASSERT_TRUE(g.ok()) << g.status().ToString();
  Module m;
  m.programs.push_back(PlanProgram{"train", std::move(*g)});
  StatusOr<bool> ran = CreatePass(PassId::kAutodiff)->Run(m, PassContext{});
  ASSERT_TRUE(ran.ok()) << ran.status().ToString();
  const Graph& out = *m.programs[0].graph;
  EXPECT_EQ(out.opsets.at(""), opset);
  EXPECT_EQ(out.training.gradients.size(), 2u) << PrintGraph(out);
  try {
    onnx::checker::check_model(GraphToOnnx(out));
  } catch (const std::exception& e) {
    FAIL() << "opset " << opset << ": " << e.what() << "\n" << PrintGraph(out);
  }
}

// 0 stands for the newest opset the library knows.
INSTANTIATE_TEST_SUITE_P(Opsets, NewOpsetTraining, ::testing::Values(int64_t{18}, int64_t{0}));

// ConvTranspose at every opset dscompile takes (its schema changed at 22: bfloat16 and float16
// types), bfloat16 included where the schema allows it: shape inference gives the output its static
// spatial dims (stride 2, pads 1, output_padding 1: 2*(3-1)+1+3-2 = 6), autodiff emits
// ConvTransposeGrad for W and B, and the differentiated graph passes the checker.
class ConvTransposeOpsets : public ::testing::TestWithParam<std::pair<int64_t, const char*>> {};

TEST_P(ConvTransposeOpsets, ImportsWithStaticShapesAndDifferentiates) {
  const int64_t opset = GetParam().first ? GetParam().first : MaxOpset();
  const std::string t = GetParam().second;
  const std::string text = StrCat("<ir_version: ", opset >= 28 ? MaxIrVersion() : 8, R"(, opset_import: ["" : )",
                                  opset, R"(]>
main ()", t, R"([batch,2,3,3] x) => ()", t, R"([] loss)
<)", t, R"([2,3,3,3] w = {0.1, -0.2, 0.3, 0.4, -0.5, 0.6, 0.7, -0.8, 0.9, 0.15, 0.25, -0.35, 0.45, 0.55, -0.65, 0.1, 0.2,
                 0.3, -0.1, -0.2, -0.3, 0.05, 0.15, 0.25, 0.35, -0.45, 0.5, 0.1, -0.2, 0.3, 0.4, -0.5, 0.6, 0.7, -0.8, 0.9,
                 0.15, 0.25, -0.35, 0.45, 0.55, -0.65, 0.1, 0.2, 0.3, -0.1, -0.2, -0.3, 0.05, 0.15, 0.25, 0.35, -0.45,
                 0.5}, )", t, R"([3] b = {0.01, 0.02, -0.03}>
{
  y = ConvTranspose <strides = [2, 2], pads = [1, 1, 1, 1], output_padding = [1, 1]> (x, w, b)
  s = Mul(y, y)
  loss = ReduceMean <keepdims = 0> (s)
}
)");
  auto parsed = ParseGraph(text);
  ASSERT_TRUE(parsed.ok()) << parsed.status().ToString();
  fs::path dir = fs::temp_directory_path() / StrCat("dsc_convt", opset, "_", t, "_", ::getpid());
  fs::create_directories(dir);
  const fs::path path = dir / "model.onnx";
  std::ofstream(path, std::ios::binary) << GraphToOnnx(**parsed).SerializeAsString();
  auto g = Compile(path.string());
  fs::remove_all(dir);
  ASSERT_TRUE(g.ok()) << g.status().ToString();
  const Value* y = (*g)->FindValue("y");
  ASSERT_TRUE(y && y->type.shape) << PrintGraph(**g);
  ASSERT_EQ(y->type.shape->size(), 4u);
  for (size_t i = 1; i < 4; ++i) EXPECT_EQ((*y->type.shape)[i].value, i == 1 ? 3 : 6) << PrintGraph(**g);
  Module m;
  m.programs.push_back(PlanProgram{"train", std::move(*g)});
  StatusOr<bool> ran = CreatePass(PassId::kAutodiff)->Run(m, PassContext{});
  ASSERT_TRUE(ran.ok()) << ran.status().ToString();
  const Graph& out = *m.programs[0].graph;
  EXPECT_EQ(out.training.gradients.size(), 2u) << PrintGraph(out);
  int grads = 0;
  for (const auto& n : out.nodes()) grads += n->op_type() == "ConvTransposeGrad" && n->domain() == kDscDomain;
  EXPECT_EQ(grads, 1) << PrintGraph(out);
  try {
    onnx::checker::check_model(GraphToOnnx(out));
  } catch (const std::exception& e) {
    FAIL() << "opset " << opset << ": " << e.what() << "\n" << PrintGraph(out);
  }
}

INSTANTIATE_TEST_SUITE_P(Opsets, ConvTransposeOpsets,
                         ::testing::Values(std::pair<int64_t, const char*>{13, "float"},
                                           std::pair<int64_t, const char*>{17, "float"},
                                           std::pair<int64_t, const char*>{22, "bfloat16"},
                                           std::pair<int64_t, const char*>{0, "float"}),
                         [](const ::testing::TestParamInfo<std::pair<int64_t, const char*>>& i) {
                           return StrCat("opset", i.param.first ? std::to_string(i.param.first) : "max", "_",
                                         i.param.second);
                         });

}  // namespace
}  // namespace dsc
