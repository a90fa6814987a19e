// Error cases of the core CPU kernels: clear Unimplemented/InvalidArgument/OutOfRange naming the node.
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "tests/kernels/kernel_test_util.h"

namespace dsc {
namespace {

using testing::StaticShape;

bool Contains(const std::string& s, const std::string& part) { return s.find(part) != std::string::npos; }

TEST(CoreErrors, UnregisteredDTypeIsUnimplemented) {
  Graph g;
  // float64 Add has no kernel (float16/bfloat16 ones run through the float32 kernel, see
  // half_kernels_test.cc).
  Value* a = g.AddInput("a", TensorType{DType::kFloat64, StaticShape({2})});
  Node* n = g.AddNode("Add", {a, a}, {"y"}, "", "double_add");
  n->output(0)->type = a->type;
  auto k = KernelRegistry::Global().Create(*n, DeviceKind::kCpu);
  ASSERT_FALSE(k.ok());
  EXPECT_EQ(k.status().code(), StatusCode::kUnimplemented);
  EXPECT_TRUE(Contains(k.status().message(), "double_add")) << k.status().message();
  EXPECT_TRUE(Contains(k.status().message(), "double")) << k.status().message();
}

TEST(CoreErrors, PadReflectIsUnimplemented) {
  Graph g;
  Value* x = g.AddInput("x", TensorType{DType::kFloat32, StaticShape({2, 3})});
  Value* pads = g.AddInitializer("pads", Tensor::FromVector<int64_t>(DType::kInt64, {4}, {0, 1, 0, 1}));
  Node* n = g.AddNode("Pad", {x, pads}, {"y"}, "", "reflect_pad");
  n->SetAttr("mode", std::string("reflect"));
  n->output(0)->type = TensorType{DType::kFloat32, StaticShape({2, 5})};
  auto k = KernelRegistry::Global().Create(*n, DeviceKind::kCpu);
  ASSERT_FALSE(k.ok());
  EXPECT_EQ(k.status().code(), StatusCode::kUnimplemented);
  EXPECT_TRUE(Contains(k.status().message(), "reflect_pad")) << k.status().message();
  EXPECT_TRUE(Contains(k.status().message(), "reflect")) << k.status().message();
}

TEST(CoreErrors, GatherIndexOutOfRange) {
  Graph g;
  Value* x = g.AddInput("x", TensorType{DType::kFloat32, StaticShape({3, 2})});
  Value* i = g.AddInput("i", TensorType{DType::kInt64, StaticShape({2})});
  Node* n = g.AddNode("Gather", {x, i}, {"y"}, "", "bad_gather");
  n->output(0)->type = TensorType{DType::kFloat32, StaticShape({2, 2})};
  Tensor data(DType::kFloat32, {3, 2});
  Tensor idx = Tensor::FromVector<int64_t>(DType::kInt64, {2}, {1, -4});
  auto out = testing::RunNodeOnCpu(*n, {&data, &idx});
  ASSERT_FALSE(out.ok());
  EXPECT_EQ(out.status().code(), StatusCode::kOutOfRange);
  EXPECT_TRUE(Contains(out.status().message(), "bad_gather")) << out.status().message();
  EXPECT_TRUE(Contains(out.status().message(), "-4")) << out.status().message();
}

TEST(CoreErrors, SliceZeroStepIsInvalid) {
  Graph g;
  Value* x = g.AddInput("x", TensorType{DType::kFloat32, StaticShape({4})});
  auto c = [&](const char* name, int64_t v) {
    return g.AddInitializer(name, Tensor::FromVector<int64_t>(DType::kInt64, {1}, {v}));
  };
  Node* n = g.AddNode("Slice", {x, c("s", 0), c("e", 4), c("a", 0), c("st", 0)}, {"y"}, "", "zero_step");
  n->output(0)->type = TensorType{DType::kFloat32, StaticShape({4})};
  auto k = KernelRegistry::Global().Create(*n, DeviceKind::kCpu);
  ASSERT_FALSE(k.ok());
  EXPECT_EQ(k.status().code(), StatusCode::kInvalidArgument);
  EXPECT_TRUE(Contains(k.status().message(), "zero_step")) << k.status().message();
}

TEST(CoreErrors, ShapesThatDoNotBroadcast) {
  Graph g;
  Value* a = g.AddInput("a", TensorType{DType::kFloat32, StaticShape({2, 3})});
  Value* b = g.AddInput("b", TensorType{DType::kFloat32, StaticShape({4})});
  Node* n = g.AddNode("Mul", {a, b}, {"y"}, "", "bad_mul");
  n->output(0)->type = TensorType{DType::kFloat32, StaticShape({2, 3})};
  auto k = KernelRegistry::Global().Create(*n, DeviceKind::kCpu);
  ASSERT_FALSE(k.ok());
  EXPECT_EQ(k.status().code(), StatusCode::kInvalidArgument);
  EXPECT_TRUE(Contains(k.status().message(), "bad_mul")) << k.status().message();
}

TEST(CoreErrors, ReshapeElementCountMismatch) {
  Graph g;
  Value* x = g.AddInput("x", TensorType{DType::kFloat32, StaticShape({2, 3})});
  Value* s = g.AddInitializer("s", Tensor::FromVector<int64_t>(DType::kInt64, {1}, {5}));
  Node* n = g.AddNode("Reshape", {x, s}, {"y"}, "", "bad_reshape");
  n->output(0)->type = TensorType{DType::kFloat32, StaticShape({5})};
  auto k = KernelRegistry::Global().Create(*n, DeviceKind::kCpu);
  ASSERT_FALSE(k.ok());
  EXPECT_TRUE(Contains(k.status().message(), "bad_reshape")) << k.status().message();
}

TEST(CoreErrors, GeluUnknownApproximateIsInvalid) {
  Graph g;
  Value* x = g.AddInput("x", TensorType{DType::kFloat32, StaticShape({2, 3})});
  Node* n = g.AddNode("Gelu", {x}, {"y"}, "", "erf_gelu");
  n->SetAttr("approximate", std::string("erf"));
  n->output(0)->type = x->type;
  auto k = KernelRegistry::Global().Create(*n, DeviceKind::kCpu);
  ASSERT_FALSE(k.ok());
  EXPECT_EQ(k.status().code(), StatusCode::kInvalidArgument);
  EXPECT_TRUE(Contains(k.status().message(), "erf_gelu")) << k.status().message();
  EXPECT_TRUE(Contains(k.status().message(), "approximate = \"erf\"")) << k.status().message();
}

TEST(CoreErrors, SinOfIntegersIsUnimplemented) {
  Graph g;
  Value* x = g.AddInput("x", TensorType{DType::kInt64, StaticShape({3})});
  Node* n = g.AddNode("Sin", {x}, {"y"}, "", "int_sin");
  n->output(0)->type = x->type;
  auto k = KernelRegistry::Global().Create(*n, DeviceKind::kCpu);
  ASSERT_FALSE(k.ok());
  EXPECT_EQ(k.status().code(), StatusCode::kUnimplemented);
  EXPECT_TRUE(Contains(k.status().message(), "int_sin")) << k.status().message();
}

TEST(CoreErrors, IsNaNOfIntegersIsUnimplemented) {
  Graph g;
  Value* x = g.AddInput("x", TensorType{DType::kInt64, StaticShape({3})});
  Node* n = g.AddNode("IsNaN", {x}, {"y"}, "", "int_isnan");
  n->output(0)->type = TensorType{DType::kBool, StaticShape({3})};
  auto k = KernelRegistry::Global().Create(*n, DeviceKind::kCpu);
  ASSERT_FALSE(k.ok());
  EXPECT_EQ(k.status().code(), StatusCode::kUnimplemented);
  EXPECT_TRUE(Contains(k.status().message(), "int_isnan")) << k.status().message();
}

TEST(CoreErrors, CumSumAxisOutOfRange) {
  Graph g;
  Value* x = g.AddInput("x", TensorType{DType::kFloat32, StaticShape({2, 3})});
  Value* axis = g.AddInitializer("axis", Tensor::Scalar(DType::kInt64, 2));
  Node* n = g.AddNode("CumSum", {x, axis}, {"y"}, "", "bad_cumsum");
  n->output(0)->type = x->type;
  auto k = KernelRegistry::Global().Create(*n, DeviceKind::kCpu);
  ASSERT_FALSE(k.ok());
  EXPECT_EQ(k.status().code(), StatusCode::kInvalidArgument);
  EXPECT_TRUE(Contains(k.status().message(), "bad_cumsum")) << k.status().message();
  // Fed at run time, the same axis fails in Compute.
  Graph g2;
  Value* x2 = g2.AddInput("x", TensorType{DType::kFloat32, StaticShape({2, 3})});
  Value* a2 = g2.AddInput("axis", TensorType{DType::kInt64, StaticShape({})});
  Node* n2 = g2.AddNode("CumSum", {x2, a2}, {"y"}, "", "runtime_cumsum");
  n2->output(0)->type = x2->type;
  Tensor data(DType::kFloat32, {2, 3});
  Tensor bad_axis = Tensor::Scalar(DType::kInt64, -3);
  auto out = testing::RunNodeOnCpu(*n2, {&data, &bad_axis});
  ASSERT_FALSE(out.ok());
  EXPECT_TRUE(Contains(out.status().message(), "axis -3")) << out.status().message();
}

TEST(CoreErrors, TriluNeedsRankTwo) {
  Graph g;
  Value* x = g.AddInput("x", TensorType{DType::kFloat32, StaticShape({4})});
  Node* n = g.AddNode("Trilu", {x}, {"y"}, "", "rank1_trilu");
  n->output(0)->type = x->type;
  auto k = KernelRegistry::Global().Create(*n, DeviceKind::kCpu);
  ASSERT_FALSE(k.ok());
  EXPECT_EQ(k.status().code(), StatusCode::kInvalidArgument);
  EXPECT_TRUE(Contains(k.status().message(), "rank1_trilu")) << k.status().message();
  EXPECT_TRUE(Contains(k.status().message(), "rank >= 2")) << k.status().message();
}

TEST(CoreErrors, GatherNDIndexOutOfRange) {
  Graph g;
  Value* x = g.AddInput("x", TensorType{DType::kFloat32, StaticShape({3, 2})});
  Value* i = g.AddInput("i", TensorType{DType::kInt64, StaticShape({2, 2})});
  Node* n = g.AddNode("GatherND", {x, i}, {"y"}, "", "bad_gather_nd");
  n->output(0)->type = TensorType{DType::kFloat32, StaticShape({2})};
  Tensor data(DType::kFloat32, {3, 2});
  Tensor idx = Tensor::FromVector<int64_t>(DType::kInt64, {2, 2}, {1, 1, 3, 0});
  auto out = testing::RunNodeOnCpu(*n, {&data, &idx});
  ASSERT_FALSE(out.ok());
  EXPECT_EQ(out.status().code(), StatusCode::kOutOfRange);
  EXPECT_TRUE(Contains(out.status().message(), "bad_gather_nd")) << out.status().message();
  EXPECT_TRUE(Contains(out.status().message(), "index 3 out of range for dim 0 of size 3")) << out.status().message();
}

TEST(CoreErrors, ScatterIndicesOutOfRange) {
  for (const char* op : {"ScatterElements", "ScatterND"}) {
    Graph g;
    const bool nd = std::string(op) == "ScatterND";
    Value* x = g.AddInput("x", TensorType{DType::kFloat32, StaticShape({2, 3})});
    Value* i = g.AddInput("i", TensorType{DType::kInt64, StaticShape({1, 1})});
    Value* u = g.AddInput("u", TensorType{DType::kFloat32, StaticShape(nd ? std::vector<int64_t>{1, 3}
                                                                           : std::vector<int64_t>{1, 1})});
    Node* n = g.AddNode(op, {x, i, u}, {"y"}, "", "bad_scatter");
    if (!nd) n->SetAttr("axis", int64_t{1});
    n->output(0)->type = x->type;
    Tensor data(DType::kFloat32, {2, 3});
    Tensor idx = Tensor::FromVector<int64_t>(DType::kInt64, {1, 1}, {-4});
    Tensor upd(DType::kFloat32, nd ? std::vector<int64_t>{1, 3} : std::vector<int64_t>{1, 1});
    auto out = testing::RunNodeOnCpu(*n, {&data, &idx, &upd});
    ASSERT_FALSE(out.ok()) << op;
    EXPECT_EQ(out.status().code(), StatusCode::kOutOfRange) << op;
    EXPECT_TRUE(Contains(out.status().message(), "bad_scatter")) << out.status().message();
    EXPECT_TRUE(Contains(out.status().message(), "index -4")) << out.status().message();
  }
}

TEST(CoreErrors, ScatterReductionRefused) {
  Graph g;
  Value* x = g.AddInput("x", TensorType{DType::kBool, StaticShape({4})});
  Value* i = g.AddInput("i", TensorType{DType::kInt64, StaticShape({1, 1})});
  Value* u = g.AddInput("u", TensorType{DType::kBool, StaticShape({1})});
  Node* n = g.AddNode("ScatterND", {x, i, u}, {"y"}, "", "bool_add");
  n->SetAttr("reduction", std::string("add"));
  n->output(0)->type = x->type;
  auto k = KernelRegistry::Global().Create(*n, DeviceKind::kCpu);
  ASSERT_FALSE(k.ok());
  EXPECT_EQ(k.status().code(), StatusCode::kUnimplemented);
  EXPECT_TRUE(Contains(k.status().message(), "bool_add")) << k.status().message();
  n->SetAttr("reduction", std::string("mean"));
  k = KernelRegistry::Global().Create(*n, DeviceKind::kCpu);
  ASSERT_FALSE(k.ok());
  EXPECT_EQ(k.status().code(), StatusCode::kInvalidArgument);
  EXPECT_TRUE(Contains(k.status().message(), "'mean'")) << k.status().message();
}

TEST(CoreErrors, MalformedEinsumEquations) {
  struct Bad {
    const char* equation;
    std::vector<std::vector<int64_t>> shapes;
    const char* says;
  };
  const std::vector<Bad> bad = {
      {"ij,jk->iz", {{2, 3}, {3, 4}}, "output label 'z' is in no input"},
      {"ij,jk->ii", {{2, 3}, {3, 4}}, "output label 'i' is repeated"},
      {"i.j,jk", {{2, 3}, {3, 4}}, "a lone '.'"},
      {"ij,j1", {{2, 3}, {3, 4}}, "character '1' is not a letter"},
      {"ij", {{2, 3}, {3, 4}}, "has 1 operand terms but the node has 2 inputs"},
      {"ij->ij", {{2, 3, 4}}, "operand 0 has rank 3 but its term has 2 letters"},
      {"ij,jk->ik", {{2, 3}, {5, 4}}, "label 'j' has size 3 and 5"},
      {"...ij->ij", {{5, 2, 3}}, "the output has no '...'"},
      {"ij->i->j", {{2, 3}}, "more than one '->'"},
  };
  for (const Bad& b : bad) {
    Graph g;
    std::vector<Value*> ins;
    for (size_t i = 0; i < b.shapes.size(); ++i)
      ins.push_back(g.AddInput(std::string("x").append(std::to_string(i)), TensorType{DType::kFloat32, StaticShape(b.shapes[i])}));
    Node* n = g.AddNode("Einsum", ins, {"y"}, "", "bad_einsum");
    n->SetAttr("equation", std::string(b.equation));
    n->output(0)->type = TensorType{DType::kFloat32, StaticShape({2})};
    auto k = KernelRegistry::Global().Create(*n, DeviceKind::kCpu);
    ASSERT_FALSE(k.ok()) << b.equation;
    EXPECT_EQ(k.status().code(), StatusCode::kInvalidArgument) << b.equation;
    EXPECT_TRUE(Contains(k.status().message(), "bad_einsum")) << k.status().message();
    EXPECT_TRUE(Contains(k.status().message(), b.says)) << b.equation << ": " << k.status().message();
  }
}

// Two files registering one (domain, op, device, dtype) would make the winner depend on link order.
TEST(CoreErrors, NoKeyRegisteredTwice) {
  std::vector<KernelKey> keys = KernelRegistry::Global().Keys();
  for (size_t i = 1; i < keys.size(); ++i)
    EXPECT_TRUE(keys[i - 1] < keys[i]) << keys[i].op_type << " " << DTypeName(keys[i].dtype) << " registered twice";
}

// Opset 19's wrap mode, with opset 18's axes input: refused by name, like reflect.
TEST(CoreErrors, PadWrapOpset19IsUnimplemented) {
  Graph g;
  Value* x = g.AddInput("x", TensorType{DType::kFloat32, StaticShape({2, 3})});
  Value* pads = g.AddInitializer("pads", Tensor::FromVector<int64_t>(DType::kInt64, {2}, {1, 1}));
  Value* axes = g.AddInitializer("axes", Tensor::FromVector<int64_t>(DType::kInt64, {1}, {-1}));
  Node* n = g.AddNode("Pad", {x, pads, nullptr, axes}, {"y"}, "", "wrap_pad");
  n->SetAttr("mode", std::string("wrap"));
  n->output(0)->type = TensorType{DType::kFloat32, StaticShape({2, 5})};
  auto k = KernelRegistry::Global().Create(*n, DeviceKind::kCpu);
  ASSERT_FALSE(k.ok());
  EXPECT_EQ(k.status().code(), StatusCode::kUnimplemented);
  EXPECT_TRUE(Contains(k.status().message(), "wrap_pad")) << k.status().message();
  EXPECT_TRUE(Contains(k.status().message(), "'wrap'")) << k.status().message();
}

}  // namespace
}  // namespace dsc
