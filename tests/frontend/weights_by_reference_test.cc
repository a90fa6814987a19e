// Weights by reference: the wire-format cut of raw_data, and imports whose large initializers
// borrow the mapped model (or external-data) file instead of copying it.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <fstream>

#include "frontend/onnx_import.h"
#include "frontend/onnx_wire.h"
#include "onnx/onnx_pb.h"

namespace dsc {
namespace {

namespace fs = std::filesystem;

// x * a + b with a (big, raw_data), b (small, raw_data) and c (float_data, unused).
onnx::ModelProto Model(int64_t big) {
  onnx::ModelProto m;
  m.set_ir_version(8);
  m.add_opset_import()->set_version(17);
  auto* g = m.mutable_graph();
  g->set_name("g");
  auto add_init = [&](const std::string& name, int64_t n, float base, bool raw) {
    auto* t = g->add_initializer();
    t->set_name(name);
    t->set_data_type(onnx::TensorProto::FLOAT);
    t->add_dims(n);
    std::vector<float> v(static_cast<size_t>(n));
    for (int64_t i = 0; i < n; ++i) v[static_cast<size_t>(i)] = base + static_cast<float>(i);
    if (raw) t->set_raw_data(std::string(reinterpret_cast<const char*>(v.data()), v.size() * 4));
    else for (float f : v) t->add_float_data(f);
  };
  add_init("a", big, 0.5f, true);
  add_init("b", big, -3.f, false);
  add_init("c", 2, 7.f, true);
  auto* in = g->add_input();
  in->set_name("x");
  in->mutable_type()->mutable_tensor_type()->set_elem_type(onnx::TensorProto::FLOAT);
  in->mutable_type()->mutable_tensor_type()->mutable_shape()->add_dim()->set_dim_value(big);
  for (const auto& [op, a, b, out] : {std::tuple{"Mul", "x", "a", "xa"}, std::tuple{"Add", "xa", "b", "y"}}) {
    auto* n = g->add_node();
    n->set_op_type(op);
    n->add_input(a);
    n->add_input(b);
    n->add_output(out);
  }
  auto* out = g->add_output();
  out->set_name("y");
  out->mutable_type()->mutable_tensor_type()->set_elem_type(onnx::TensorProto::FLOAT);
  out->mutable_type()->mutable_tensor_type()->mutable_shape()->add_dim()->set_dim_value(big);
  return m;
}

TEST(StripInitializerData, CutsLargeRawDataAndKeepsEverythingElse) {
  const onnx::ModelProto m = Model(2000);
  const std::string bytes = m.SerializeAsString();
  auto s = StripInitializerData(reinterpret_cast<const uint8_t*>(bytes.data()), static_cast<int64_t>(bytes.size()), 4096);
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  ASSERT_EQ(s->ranges.size(), 1u);
  EXPECT_EQ(s->ranges[0].initializer, 0);
  EXPECT_EQ(s->ranges[0].length, 8000);
  EXPECT_EQ(bytes.substr(static_cast<size_t>(s->ranges[0].offset), 8000), m.graph().initializer(0).raw_data());
  onnx::ModelProto parsed;
  ASSERT_TRUE(parsed.ParseFromString(s->bytes));
  onnx::ModelProto want = m;
  want.mutable_graph()->mutable_initializer(0)->clear_raw_data();
  EXPECT_EQ(parsed.SerializeAsString(), want.SerializeAsString());
}

// A length-delimited field's tag and length (field numbers below 16).
std::string FieldHead(int field, size_t length) {
  std::string out(1, static_cast<char>((field << 3) | 2));
  for (size_t n = length;; n >>= 7) {
    out += static_cast<char>((n & 0x7f) | (n > 0x7f ? 0x80 : 0));
    if (n <= 0x7f) break;
  }
  return out;
}

TEST(StripInitializerData, TheLastOfRepeatedRawDataFieldsWins) {
  const onnx::ModelProto m = Model(2000);
  // Initializer "a" encoded with a second, 16-byte raw_data field after its 8000-byte one.
  onnx::TensorProto extra;
  extra.set_raw_data(std::string(16, '\x01'));
  const std::string a = m.graph().initializer(0).SerializeAsString() + extra.SerializeAsString();
  onnx::GraphProto rest = m.graph();
  rest.mutable_initializer()->DeleteSubrange(0, 1);
  const std::string graph = FieldHead(5, a.size()) + a + rest.SerializeAsString();
  const std::string model = FieldHead(7, graph.size()) + graph;
  auto s = StripInitializerData(reinterpret_cast<const uint8_t*>(model.data()), static_cast<int64_t>(model.size()), 4096);
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  EXPECT_TRUE(s->ranges.empty());  // the 8000-byte field is replaced by the 16-byte one
  onnx::ModelProto parsed, whole;
  ASSERT_TRUE(parsed.ParseFromString(s->bytes));
  ASSERT_TRUE(whole.ParseFromString(model));
  EXPECT_EQ(parsed.graph().initializer(0).raw_data(), std::string(16, '\x01'));
  EXPECT_EQ(parsed.SerializeAsString(), whole.SerializeAsString());
  // And the other way round: a large field after a small one is cut.
  const std::string b = extra.SerializeAsString() + m.graph().initializer(0).SerializeAsString();
  const std::string graph2 = FieldHead(5, b.size()) + b;
  const std::string model2 = FieldHead(7, graph2.size()) + graph2;
  s = StripInitializerData(reinterpret_cast<const uint8_t*>(model2.data()), static_cast<int64_t>(model2.size()), 4096);
  ASSERT_TRUE(s.ok());
  ASSERT_EQ(s->ranges.size(), 1u);
  EXPECT_EQ(model2.substr(static_cast<size_t>(s->ranges[0].offset), 8000), m.graph().initializer(0).raw_data());
}

TEST(StripInitializerData, UnknownGroupFieldsAreKept) {
  const onnx::ModelProto m = Model(2000);
  std::string graph = m.graph().SerializeAsString();
  // Field 99 as a (deprecated) group holding a varint field 1 = 5: an unknown field protobuf keeps.
  auto varint = [](uint64_t v) {
    std::string out;
    for (; v >= 0x80; v >>= 7) out += static_cast<char>((v & 0x7f) | 0x80);
    return out + static_cast<char>(v);
  };
  graph += varint((99 << 3) | 3) + varint((1 << 3) | 0) + varint(5) + varint((99 << 3) | 4);
  const std::string model = FieldHead(7, graph.size()) + graph;
  onnx::ModelProto whole;
  ASSERT_TRUE(whole.ParseFromString(model));
  auto s = StripInitializerData(reinterpret_cast<const uint8_t*>(model.data()), static_cast<int64_t>(model.size()), 4096);
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  EXPECT_EQ(s->ranges.size(), 1u);
  onnx::ModelProto parsed;
  ASSERT_TRUE(parsed.ParseFromString(s->bytes));
  whole.mutable_graph()->mutable_initializer(0)->clear_raw_data();
  EXPECT_EQ(parsed.SerializeAsString(), whole.SerializeAsString());
}

TEST(StripInitializerData, MalformedBytesNeverCrashAndNeverParseDifferently) {
  const std::string bytes = Model(1100).SerializeAsString();
  for (size_t n = 0; n < bytes.size(); ++n) {
    const std::string cut = bytes.substr(0, n);
    auto s = StripInitializerData(reinterpret_cast<const uint8_t*>(cut.data()), static_cast<int64_t>(n), 4096);
    onnx::ModelProto whole;
    const bool whole_ok = whole.ParseFromString(cut);
    if (!s.ok()) {
      EXPECT_FALSE(whole_ok) << "prefix of " << n << " bytes parses, but the cut refused it: " << s.status().ToString();
      continue;
    }
    onnx::ModelProto stripped;
    ASSERT_EQ(stripped.ParseFromString(s->bytes), whole_ok) << n;
  }
}

class ImportByReference : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("dsc_byref_" + std::to_string(::getpid()));
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  fs::path dir_;
};

TEST_F(ImportByReference, LargeInitializersBorrowTheModelFile) {
  const std::string path = (dir_ / "m.onnx").string();
  const std::string bytes = Model(2000).SerializeAsString();
  std::ofstream(path, std::ios::binary) << bytes;
  auto g = ImportOnnxFile(path);
  ASSERT_TRUE(g.ok()) << g.status().ToString();
  auto copied = ImportOnnxBytes(bytes, dir_.string(), "m.onnx");
  ASSERT_TRUE(copied.ok()) << copied.status().ToString();
  const Tensor& a = (*g)->FindValue("a")->initializer();
  ASSERT_NE(a.source(), nullptr);
  EXPECT_EQ(a.source()->path, fs::absolute(path).lexically_normal().string());
  EXPECT_EQ(bytes.substr(static_cast<size_t>(a.source()->offset), a.nbytes()),
            std::string(reinterpret_cast<const char*>(a.raw()), a.nbytes()));
  EXPECT_TRUE(a.SameContents((*copied)->FindValue("a")->initializer()));
  EXPECT_NEAR(a.data<float>()[1999], 1999.5f, 0);  // typed reads work at any offset
  // Small and typed-field initializers are copied as before.
  EXPECT_EQ((*g)->FindValue("b")->initializer().source(), nullptr);
  EXPECT_TRUE((*g)->FindValue("b")->initializer().SameContents((*copied)->FindValue("b")->initializer()));
  // Writing detaches the tensor from the file: it owns its bytes, and is no longer the file's.
  Tensor w = a;
  w.SetFromDouble(0, 42.0);
  EXPECT_EQ(w.source(), nullptr);
  EXPECT_EQ(w.GetAsDouble(0), 42.0);
  EXPECT_EQ(a.GetAsDouble(0), 0.5);
  ASSERT_NE(a.source(), nullptr);
}

TEST_F(ImportByReference, ExternalDataBorrowsItsFile) {
  onnx::ModelProto m = Model(2000);
  auto* a = m.mutable_graph()->mutable_initializer(0);
  const std::string data = std::string(24, '\0') + a->raw_data();
  std::ofstream(dir_ / "weights.bin", std::ios::binary) << data;
  a->clear_raw_data();
  a->set_data_location(onnx::TensorProto::EXTERNAL);
  for (const auto& [k, v] : {std::pair<std::string, std::string>{"location", "weights.bin"}, {"offset", "24"}, {"length", "8000"}}) {
    auto* e = a->add_external_data();
    e->set_key(k);
    e->set_value(v);
  }
  const std::string path = (dir_ / "m.onnx").string();
  std::ofstream(path, std::ios::binary) << m.SerializeAsString();
  auto g = ImportOnnxFile(path);
  ASSERT_TRUE(g.ok()) << g.status().ToString();
  const Tensor& t = (*g)->FindValue("a")->initializer();
  ASSERT_NE(t.source(), nullptr);
  EXPECT_EQ(t.source()->path, fs::absolute(dir_ / "weights.bin").lexically_normal().string());
  EXPECT_EQ(t.source()->offset, 24);
  EXPECT_EQ(t.GetAsDouble(3), 3.5);
}

TEST_F(ImportByReference, InMemoryLocationsAreRefused) {
  onnx::ModelProto m = Model(4);
  auto* a = m.mutable_graph()->mutable_initializer(0);
  a->clear_raw_data();
  a->set_data_location(onnx::TensorProto::EXTERNAL);
  auto* e = a->add_external_data();
  e->set_key("location");
  e->set_value("#memory");
  auto g = ImportOnnxBytes(m.SerializeAsString(), dir_.string(), "m.onnx");
  ASSERT_FALSE(g.ok());
  EXPECT_NE(g.status().message().find("'#memory'"), std::string::npos) << g.status().message();
}

}  // namespace
}  // namespace dsc
