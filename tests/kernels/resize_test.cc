// Resize and ResizeGrad on the CPU against data/resize_cases.json (gen_resize_cases.py: torch's
// F.interpolate and autograd, and onnx.reference for the attributes torch does not write), in
// float32 and through the half adaptor; and the refusals of what dscompile's Resize does not take.
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "ir/dsc_ops.h"
#include "ir/node_checks.h"
#include "tests/kernels/kernel_test_util.h"

namespace dsc {
namespace {

using nlohmann::json;
using testing::StaticShape;

const std::vector<json>& Cases() { return testing::JsonCases(DSC_KERNEL_TEST_DATA "/resize_cases.json"); }

// A Resize (grad = false) or ResizeGrad node of the case in `g`, its data input `in` of `dtype`.
Node* AddCaseNode(Graph& g, const json& c, bool grad, DType dtype) {
  const auto xd = c.at("x_dims").get<std::vector<int64_t>>(), yd = c.at("y_dims").get<std::vector<int64_t>>();
  Value* in = g.AddInput("in", TensorType{dtype, StaticShape(grad ? yd : xd)});
  std::vector<Value*> inputs{in, nullptr, nullptr};
  if (!c.at("scales").is_null()) {
    const auto s = c.at("scales").get<std::vector<double>>();
    inputs[2] = g.AddInitializer("scales", testing::TensorOf(DType::kFloat32, {static_cast<int64_t>(s.size())}, s));
  } else {
    const auto s = c.at("sizes").get<std::vector<int64_t>>();
    inputs.push_back(g.AddInitializer("sizes", Tensor::FromVector<int64_t>(DType::kInt64, {static_cast<int64_t>(s.size())}, s)));
  }
  Node* n = grad ? g.AddNode(ops::kResizeGrad, inputs, {"out"}, kDscDomain, c.at("name").get<std::string>())
                 : g.AddNode("Resize", inputs, {"out"}, "", c.at("name").get<std::string>());
  for (const auto& [k, v] : c.at("attrs").items()) {
    if (v.is_string()) n->SetAttr(k, v.get<std::string>());
    else if (v.is_number_integer()) n->SetAttr(k, v.get<int64_t>());
    else n->SetAttr(k, v.get<float>());
  }
  if (!c.at("axes").is_null()) n->SetAttr("axes", c.at("axes").get<std::vector<int64_t>>());
  n->output(0)->type = TensorType{dtype, StaticShape(grad ? xd : yd)};
  return n;
}

// Runs the case's node on `dtype` data and compares with the case's float expectations.
void Check(const json& c, bool grad, DType dtype, double rtol, double atol) {
  Graph g;
  g.opsets[""] = 19;
  Node* n = AddCaseNode(g, c, grad, dtype);
  ASSERT_TRUE(CheckNode(*n, 19, NodeCheckStage::kShapes).ok()) << CheckNode(*n, 19, NodeCheckStage::kShapes).ToString();
  const auto dims = c.at(grad ? "y_dims" : "x_dims").get<std::vector<int64_t>>();
  Tensor in = testing::TensorOf(dtype, dims, c.at(grad ? "dy" : "x").get<std::vector<double>>());
  StatusOr<std::vector<Tensor>> out = testing::RunNodeOnCpu(*n, {&in, nullptr, nullptr, nullptr});
  ASSERT_TRUE(out.ok()) << out.status().ToString();
  EXPECT_TRUE(testing::AllClose((*out)[0], c.at(grad ? "dx" : "y").get<std::vector<double>>(), rtol, atol))
      << c.at("source") << " case " << c.at("name") << (grad ? " (dX)" : " (Y)");
}

class ResizeCaseTest : public ::testing::TestWithParam<size_t> {};

TEST_P(ResizeCaseTest, ForwardMatchesReference) {
  const json& c = Cases()[GetParam()];
  Check(c, false, DType::kFloat32, c.at("rtol").get<double>(), c.at("atol").get<double>());
}

TEST_P(ResizeCaseTest, GradientMatchesReference) {
  const json& c = Cases()[GetParam()];
  Check(c, true, DType::kFloat32, c.at("rtol").get<double>(), c.at("atol").get<double>());
}

// bfloat16 data, fp32 math: within the rounding of inputs and output (2^-8 relative each) times
// the weight sum (cubic overshoots up to ~1.5; a gradient sums up to ~16 dY cells here).
TEST_P(ResizeCaseTest, BFloat16WithinRounding) {
  const json& c = Cases()[GetParam()];
  Check(c, false, DType::kBFloat16, 2e-2, 4e-2);
  Check(c, true, DType::kBFloat16, 2e-2, 1e-1);
}

std::string CaseName(const ::testing::TestParamInfo<size_t>& info) {
  std::string name = Cases()[info.param].at("source").get<std::string>() + "_" +
                     Cases()[info.param].at("name").get<std::string>();
  for (char& ch : name)
    if (!std::isalnum(static_cast<unsigned char>(ch))) ch = '_';
  return name;
}

std::vector<size_t> AllCases() {
  std::vector<size_t> v;
  for (size_t i = 0; i < Cases().size(); ++i) v.push_back(i);
  return v;
}

INSTANTIATE_TEST_SUITE_P(Json, ResizeCaseTest, ::testing::ValuesIn(AllCases()), CaseName);

TEST(ResizeCases, FileLoaded) { EXPECT_GT(Cases().size(), 60u) << "missing " DSC_KERNEL_TEST_DATA "/resize_cases.json"; }

// ------------------------------------------------------------------ refusals

struct Refusal {
  Graph g;
  Node* n = nullptr;
};

// Resize 'up' of X:(1,1,4,4) with the given constant scales (empty: none) and sizes (empty: none).
std::unique_ptr<Refusal> Make(const std::vector<float>& scales, const std::vector<int64_t>& sizes,
                              const std::vector<int64_t>& y = {1, 1, 8, 8}) {
  auto r = std::make_unique<Refusal>();
  r->g.opsets[""] = 19;
  Value* x = r->g.AddInput("x", testing::F32({1, 1, 4, 4}));
  Value* s = scales.empty() ? nullptr
                            : r->g.AddInitializer("scales", Tensor::FromVector<float>(
                                                                DType::kFloat32, {static_cast<int64_t>(scales.size())}, scales));
  std::vector<Value*> in{x, nullptr, s};
  if (!sizes.empty())
    in.push_back(r->g.AddInitializer("sizes", Tensor::FromVector<int64_t>(DType::kInt64, {static_cast<int64_t>(sizes.size())}, sizes)));
  r->n = r->g.AddNode("Resize", in, {"y"}, "", "up");
  r->n->output(0)->type = testing::F32(y);
  return r;
}

// Both the node check (import, verifier) and the kernel (dscompile creates every kernel) refuse,
// naming the node; `check` false when only the kernel can tell.
void ExpectRefused(Refusal& r, const std::string& words, bool check = true) {
  if (check) {
    Status s = CheckNode(*r.n, 19, NodeCheckStage::kShapes);
    EXPECT_FALSE(s.ok());
    EXPECT_NE(s.message().find("'up'"), std::string::npos) << s.message();
    EXPECT_NE(s.message().find(words), std::string::npos) << s.message();
  }
  StatusOr<std::unique_ptr<OpKernel>> k = KernelRegistry::Global().Create(*r.n, DeviceKind::kCpu);
  ASSERT_FALSE(k.ok());
  EXPECT_NE(k.status().message().find("'up'"), std::string::npos) << k.status().message();
  EXPECT_NE(k.status().message().find(words), std::string::npos) << k.status().message();
}

TEST(ResizeRefusals, Accepted) {
  auto r = Make({1, 1, 2, 2}, {});
  EXPECT_TRUE(CheckNode(*r->n, 19, NodeCheckStage::kShapes).ok());
  EXPECT_TRUE(KernelRegistry::Global().Create(*r->n, DeviceKind::kCpu).ok());
}

TEST(ResizeRefusals, BothScalesAndSizes) { ExpectRefused(*Make({1, 1, 2, 2}, {1, 1, 8, 8}), "both scales and sizes"); }

TEST(ResizeRefusals, NeitherScalesNorSizes) { ExpectRefused(*Make({}, {}), "neither scales nor sizes", false); }

TEST(ResizeRefusals, WrongScaleCount) { ExpectRefused(*Make({2, 2}, {}), "scales has 2 values"); }

TEST(ResizeRefusals, WrongSizeCount) { ExpectRefused(*Make({}, {8, 8, 8}), "sizes has 3 values"); }

TEST(ResizeRefusals, NonPositiveScale) { ExpectRefused(*Make({1, 1, 0, 2}, {}), "must be"); }

TEST(ResizeRefusals, OutputShapeDisagrees) { ExpectRefused(*Make({1, 1, 2, 2}, {}, {1, 1, 8, 9}), "but Y is", false); }

TEST(ResizeRefusals, UnsupportedAttributes) {
  auto r = Make({1, 1, 2, 2}, {});
  r->n->SetAttr("coordinate_transformation_mode", std::string("tf_crop_and_resize"));
  ExpectRefused(*r, "tf_crop_and_resize");
  r = Make({1, 1, 2, 2}, {});
  r->n->SetAttr("antialias", int64_t{1});
  ExpectRefused(*r, "antialias");
  r = Make({1, 1, 2, 2}, {});
  r->n->SetAttr("mode", std::string("area"));
  ExpectRefused(*r, "'mode' is 'area'");
  r = Make({1, 1, 2, 2}, {});
  r->n->SetAttr("nearest_mode", std::string("round"));
  ExpectRefused(*r, "'nearest_mode' is 'round'");
}

// A scale computed at run time (not folded to a constant) is refused by the kernel dscompile creates.
TEST(ResizeRefusals, DynamicScales) {
  Graph g;
  g.opsets[""] = 19;
  Value* x = g.AddInput("x", testing::F32({1, 1, 4, 4}));
  Value* s = g.AddInput("s", testing::F32({4}));
  Node* n = g.AddNode("Resize", {x, nullptr, s}, {"y"}, "", "up");
  n->output(0)->type = testing::F32({1, 1, 8, 8});
  EXPECT_TRUE(CheckNode(*n, 19, NodeCheckStage::kShapes).ok());
  StatusOr<std::unique_ptr<OpKernel>> k = KernelRegistry::Global().Create(*n, DeviceKind::kCpu);
  ASSERT_FALSE(k.ok());
  EXPECT_NE(k.status().message().find("'up'"), std::string::npos) << k.status().message();
  EXPECT_NE(k.status().message().find("scales 's' is computed at run time"), std::string::npos) << k.status().message();
}

}  // namespace
}  // namespace dsc
