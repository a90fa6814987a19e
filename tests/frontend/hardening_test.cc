// Import of hostile ONNX files (the fuzzing campaign's defect classes, one minimal model each): every
// one is refused with a message naming the node, value or file, with no crash, hang or allocation
// sized by a declared shape.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "frontend/onnx_import.h"
#include "onnx/onnx_pb.h"

namespace dsc {
namespace {

namespace fs = std::filesystem;

onnx::ValueInfoProto* AddTensorInfo(google::protobuf::RepeatedPtrField<onnx::ValueInfoProto>* list,
                                    const std::string& name, std::vector<int64_t> dims) {
  auto* vi = list->Add();
  vi->set_name(name);
  auto* tt = vi->mutable_type()->mutable_tensor_type();
  tt->set_elem_type(onnx::TensorProto::FLOAT);
  for (int64_t d : dims) tt->mutable_shape()->add_dim()->set_dim_value(d);
  return vi;
}

// A model of one node `op` over inputs `ins` (name, dims), output y of rank `out_rank` with unknown dims.
onnx::ModelProto OneNode(const std::string& op, const std::vector<std::pair<std::string, std::vector<int64_t>>>& ins,
                         int out_rank) {
  onnx::ModelProto m;
  m.set_ir_version(8);
  m.add_opset_import()->set_version(17);
  auto* g = m.mutable_graph();
  g->set_name("g");
  auto* n = g->add_node();
  n->set_op_type(op);
  n->set_name("n0");
  for (const auto& [name, dims] : ins) {
    AddTensorInfo(g->mutable_input(), name, dims);
    n->add_input(name);
  }
  n->add_output("y");
  g->add_output()->set_name("y");
  auto* tt = g->mutable_output(0)->mutable_type()->mutable_tensor_type();
  tt->set_elem_type(onnx::TensorProto::FLOAT);
  tt->mutable_shape();
  for (int i = 0; i < out_rank; ++i) tt->mutable_shape()->add_dim();
  return m;
}

void SetInts(onnx::NodeProto* n, const std::string& name, std::vector<int64_t> v) {
  auto* a = n->add_attribute();
  a->set_name(name);
  a->set_type(onnx::AttributeProto::INTS);
  for (int64_t x : v) a->add_ints(x);
}

onnx::TensorProto* AddFloats(onnx::GraphProto* g, const std::string& name, std::vector<int64_t> dims, int count) {
  auto* t = g->add_initializer();
  t->set_name(name);
  t->set_data_type(onnx::TensorProto::FLOAT);
  for (int64_t d : dims) t->add_dims(d);
  for (int i = 0; i < count; ++i) t->add_float_data(0.5f);
  return t;
}

std::string ImportError(const onnx::ModelProto& m, const std::string& dir = "") {
  auto g = ImportOnnxBytes(m.SerializeAsString(), dir, "model.onnx");
  return g.ok() ? "" : g.status().message();
}

void ExpectRefused(const onnx::ModelProto& m, std::initializer_list<const char*> parts, const std::string& dir = "") {
  const std::string e = ImportError(m, dir);
  EXPECT_FALSE(e.empty()) << "imported unexpectedly";
  for (const char* p : parts) EXPECT_NE(e.find(p), std::string::npos) << "'" << p << "' not in: " << e;
}

onnx::ModelProto Conv(std::vector<int64_t> strides, std::vector<int64_t> pads) {
  onnx::ModelProto m = OneNode("Conv", {{"x", {1, 1, 5, 5}}}, 4);
  AddFloats(m.mutable_graph(), "w", {1, 1, 3, 3}, 9);
  m.mutable_graph()->mutable_node(0)->add_input("w");
  SetInts(m.mutable_graph()->mutable_node(0), "strides", strides);
  SetInts(m.mutable_graph()->mutable_node(0), "pads", pads);
  return m;
}

TEST(ImportHardening, ValidConvImports) { EXPECT_EQ(ImportError(Conv({1, 1}, {1, 1, 1, 1})), ""); }

// Stride 0 reached ONNX's shape inference, which divides by it (SIGFPE).
TEST(ImportHardening, ZeroStrideRefusedBeforeShapeInference) {
  ExpectRefused(Conv({0, 1}, {0, 0, 0, 0}), {"model.onnx: node 'n0' (Conv): attribute 'strides' [0,1] has 0"});
  for (const char* op : {"MaxPool", "AveragePool"}) {
    onnx::ModelProto m = OneNode(op, {{"x", {1, 1, 5, 5}}}, 4);
    SetInts(m.mutable_graph()->mutable_node(0), "kernel_shape", {2, 2});
    SetInts(m.mutable_graph()->mutable_node(0), "strides", {1, 0});
    ExpectRefused(m, {"attribute 'strides' [1,0] has 0"});
  }
}

// A 2^40 pad compiled to an empty tensor on which dsrun spun.
TEST(ImportHardening, HugePadRefused) {
  ExpectRefused(Conv({1, 1}, {int64_t{1} << 40, 0, 0, 0}), {"node 'n0' (Conv): attribute 'pads'", "1099511627776"});
}

// A wrong-length perm used to crash the Transpose gradient builder after import.
TEST(ImportHardening, TransposePermRefused) {
  onnx::ModelProto m = OneNode("Transpose", {{"x", {2, 3, 4}}}, 3);
  SetInts(m.mutable_graph()->mutable_node(0), "perm", {1, 0});
  ExpectRefused(m, {"node 'n0' (Transpose): attribute 'perm' [1,0] has 2 entries, the input has rank 3"});
}

TEST(ImportHardening, SliceStepInt64MinRefused) {
  onnx::ModelProto m = OneNode("Slice", {{"x", {8}}}, 1);
  auto* g = m.mutable_graph();
  for (auto [name, v] : {std::pair<const char*, int64_t>{"s", 0}, {"e", 8}, {"a", 0}, {"st", INT64_MIN}}) {
    auto* t = g->add_initializer();
    t->set_name(name);
    t->set_data_type(onnx::TensorProto::INT64);
    t->add_dims(1);
    t->add_int64_data(v);
    g->mutable_node(0)->add_input(name);
  }
  ExpectRefused(m, {"node 'n0' (Slice): steps [-9223372036854775808]"});
}

// Mismatched inner dims passed shape inference and surfaced later as an autodiff error.
TEST(ImportHardening, GemmAndMatMulInnerDimsRefusedAtImport) {
  ExpectRefused(OneNode("MatMul", {{"a", {2, 3}}, {"b", {4, 5}}}, 2), {"node 'n0' (MatMul): inner dimensions differ"});
  ExpectRefused(OneNode("Gemm", {{"a", {2, 3}}, {"b", {4, 5}}}, 2), {"node 'n0' (Gemm)", "inner dimensions"});
}

// The declared shape (2^39 floats, 2 TiB) over two values must be refused, never allocated (ONNX's
// checker refuses it first here; tests/ir covers TensorFromOnnx on its own).
TEST(ImportHardening, HugeDeclaredInitializerWithTinyDataRefused) {
  onnx::ModelProto m = OneNode("Mul", {{"x", {2}}}, 1);
  AddFloats(m.mutable_graph(), "w", {int64_t{1} << 20, int64_t{1} << 19}, 2);
  m.mutable_graph()->mutable_node(0)->add_input("w");
  ExpectRefused(m, {"w", "float_data size (2)"});
  m.mutable_graph()->mutable_initializer(0)->clear_float_data();
  m.mutable_graph()->mutable_initializer(0)->set_raw_data(std::string(8, '\0'));
  ExpectRefused(m, {"w", "raw_data size (8 bytes)"});
}

TEST(ImportHardening, InvalidUtf8NamesRefusedWithEscapedBytes) {
  onnx::ModelProto m = OneNode("Relu", {{"x", {2}}}, 1);
  m.mutable_graph()->mutable_node(0)->set_name("relu\xff");
  ExpectRefused(m, {"the name of node 0 (Relu) \"relu\\xff\" is not valid UTF-8"});
  m = OneNode("Relu", {{"x", {2}}}, 1);
  m.mutable_graph()->mutable_node(0)->set_output(0, "y\xc3");
  m.mutable_graph()->mutable_output(0)->set_name("y\xc3");
  ExpectRefused(m, {"\"y\\xc3\" is not valid UTF-8"});
  m = OneNode("Relu", {{"x", {2}}}, 1);
  auto* p = m.add_metadata_props();
  p->set_key("k");
  p->set_value("\xe2\x82");
  ExpectRefused(m, {"metadata 'k' of the model \"\\xe2\\x82\""});
  // Graph and node metadata feed parameter lists (torch.export's graph signature), which are
  // JSON: such a model threw from the JSON writer (found by fuzz_onnx_import). A long string is
  // shown around its first bad byte.
  m = OneNode("Relu", {{"x", {2}}}, 1);
  p = m.mutable_graph()->add_metadata_props();
  p->set_key("pkg.torch.export.ExportedProgram.graph_signature");
  p->set_value(std::string(500, 'a') + "target='w\xfe'" + std::string(500, 'b'));
  ExpectRefused(m, {"metadata 'pkg.torch.export.ExportedProgram.graph_signature' of the graph is not valid UTF-8 at byte 509 of 1011: ...\"aaaa", "target='w\\xfe'bbb"});
  m = OneNode("Relu", {{"x", {2}}}, 1);
  p = m.mutable_graph()->mutable_node(0)->add_metadata_props();
  p->set_key("pkg.torch.onnx.fx_node");
  p->set_value("\xc0");
  ExpectRefused(m, {"metadata 'pkg.torch.onnx.fx_node' of node 0 (Relu) \"\\xc0\" is not valid UTF-8"});
}

// Context is named once: the initializer's message does not repeat its name as a tensor's.
TEST(ImportHardening, ContextNotRepeated) {
  onnx::ModelProto m = OneNode("Mul", {{"x", {2}}}, 1);
  AddFloats(m.mutable_graph(), "w", {2}, 3);
  m.mutable_graph()->mutable_node(0)->add_input("w");
  const std::string e = ImportError(m);
  EXPECT_EQ(e.find("tensor 'w'"), std::string::npos) << e;
  EXPECT_NE(e.find("initializer 'w'"), std::string::npos) << e;
  EXPECT_EQ(e.find("initializer 'w'"), e.rfind("initializer 'w'")) << e;
}

class ExternalDataHardening : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = fs::temp_directory_path() / ("dsc_hardening_" + std::to_string(::getpid()));
    fs::create_directories(root_ / "dir");
    std::ofstream(root_ / "w.bin", std::ios::binary).write("\0\0\x80\x3f\0\0\0\x40", 8);
  }
  void TearDown() override { fs::remove_all(root_); }
  onnx::ModelProto WithExternal(const std::string& location, const char* offset = nullptr, const char* length = nullptr) {
    onnx::ModelProto m = OneNode("Mul", {{"x", {2}}}, 1);
    auto* w = AddFloats(m.mutable_graph(), "w", {2}, 0);
    m.mutable_graph()->mutable_node(0)->add_input("w");
    w->set_data_location(onnx::TensorProto::EXTERNAL);
    auto add = [&](const char* k, const char* v) {
      auto* kv = w->add_external_data();
      kv->set_key(k);
      kv->set_value(v);
    };
    add("location", location.c_str());
    if (offset) add("offset", offset);
    if (length) add("length", length);
    return m;
  }
  fs::path root_;
};

TEST_F(ExternalDataHardening, RegularFileLoads) { EXPECT_EQ(ImportError(WithExternal("w.bin"), root_.string()), ""); }

TEST_F(ExternalDataHardening, DirectoryAndFifoRefusedWithoutHanging) {
  ExpectRefused(WithExternal("dir"), {"initializer 'w'", "'dir' is not a regular file"}, root_.string());
  ASSERT_EQ(::mkfifo((root_ / "fifo").c_str(), 0600), 0);
  ExpectRefused(WithExternal("fifo"), {"'fifo' is not a regular file"}, root_.string());
}

TEST_F(ExternalDataHardening, OverflowingOrMalformedRangesRefused) {
  ExpectRefused(WithExternal("w.bin", "9223372036854775807", "8"), {"offset 9223372036854775807 lies beyond"},
                root_.string());
  ExpectRefused(WithExternal("w.bin", "4", "9223372036854775807"), {"9223372036854775807 bytes at offset 4 lies outside"},
                root_.string());
  ExpectRefused(WithExternal("w.bin", "-1"), {"offset '-1' is not a non-negative int64"}, root_.string());
  ExpectRefused(WithExternal("w.bin", "4x"), {"offset '4x'"}, root_.string());
  ExpectRefused(WithExternal("w.bin", "99999999999999999999"), {"offset '99999999999999999999'"}, root_.string());
  ExpectRefused(WithExternal("w.bin", "4"), {"external data holds 4 bytes, its type and shape need 8"}, root_.string());
}

}  // namespace
}  // namespace dsc
