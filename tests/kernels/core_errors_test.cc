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
  Value* a = g.AddInput("a", TensorType{DType::kFloat16, StaticShape({2})});
  Node* n = g.AddNode("Add", {a, a}, {"y"}, "", "half_add");
  n->output(0)->type = a->type;
  auto k = KernelRegistry::Global().Create(*n, DeviceKind::kCpu);
  ASSERT_FALSE(k.ok());
  EXPECT_EQ(k.status().code(), StatusCode::kUnimplemented);
  EXPECT_TRUE(Contains(k.status().message(), "half_add")) << k.status().message();
  EXPECT_TRUE(Contains(k.status().message(), "float16")) << k.status().message();
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

// Two files registering one (domain, op, device, dtype) would make the winner depend on link order.
TEST(CoreErrors, NoKeyRegisteredTwice) {
  std::vector<KernelKey> keys = KernelRegistry::Global().Keys();
  for (size_t i = 1; i < keys.size(); ++i)
    EXPECT_TRUE(keys[i - 1] < keys[i]) << keys[i].op_type << " " << DTypeName(keys[i].dtype) << " registered twice";
}

}  // namespace
}  // namespace dsc
