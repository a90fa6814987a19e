// ConvTranspose and ConvTransposeGrad CPU kernels against torch / ONNX's reference
// (data/conv_transpose_cases.json, gen_conv_transpose_cases.py), thread-count determinism, and the
// nodes they refuse (naming the node).
#include <gtest/gtest.h>

#include <map>
#include <string>
#include <vector>

#include "ir/dsc_ops.h"
#include "ir/node_checks.h"
#include "tests/kernels/nn_cases.h"

namespace dsc {
namespace {

using testing::NnStatic;

const nlohmann::json& Table() {
  static const nlohmann::json table = testing::ReadCaseTable("conv_transpose_cases.json");
  return table;
}

class ConvTransposeCase : public ::testing::TestWithParam<std::string> {};
TEST_P(ConvTransposeCase, MatchesReference) { testing::RunNnCase(GetParam(), Table()); }
INSTANTIATE_TEST_SUITE_P(Forward, ConvTransposeCase, ::testing::ValuesIn(testing::NnCaseNames("", Table())),
                         testing::NnCaseParamName);
INSTANTIATE_TEST_SUITE_P(Grad, ConvTransposeCase, ::testing::ValuesIn(testing::NnCaseNames(kDscDomain, Table())),
                         testing::NnCaseParamName);

TEST(ConvTransposeTable, CoversBothOpsEveryRankAndEveryAttribute) {
  // Both ops, 1-D, 2-D and 3-D, and every attribute: a regenerated table that lost a kind fails here.
  std::map<std::string, int> seen;
  for (const auto& c : Table()["cases"]) {
    seen[c["op"].get<std::string>() + "/" + std::to_string(c["inputs"][0]["dims"].size())]++;
    for (const auto& [k, v] : c["attrs"].items()) seen[k]++;
  }
  for (const char* k : {"ConvTranspose/3", "ConvTranspose/4", "ConvTranspose/5", "ConvTransposeGrad/3",
                        "ConvTransposeGrad/4", "ConvTransposeGrad/5", "auto_pad",
                        "output_padding", "output_shape", "pads", "strides", "dilations", "group"})
    EXPECT_GT(seen[k], 0) << k;
}

struct Built {
  Graph g;
  Node* node = nullptr;
};

// ConvTranspose "ct" (or its gradient) with the given X, W, Y dims and attributes.
void Build(Built& b, std::vector<int64_t> x, std::vector<int64_t> w, std::vector<int64_t> y,
           std::map<std::string, AttrValue> attrs, bool grad = false) {
  const DType f = DType::kFloat32;
  Value* xv = b.g.AddInput("x", NnStatic(f, x));
  Value* wv = b.g.AddInput("w", NnStatic(f, w));
  if (grad) {
    Value* dy = b.g.AddInput("dy", NnStatic(f, y));
    b.node = b.g.AddNode(ops::kConvTransposeGrad, {dy, xv, wv}, {"dx", "dw"}, kDscDomain, "ct_grad");
    b.node->output(0)->type = NnStatic(f, x);
    b.node->output(1)->type = NnStatic(f, w);
  } else {
    b.node = b.g.AddNode("ConvTranspose", {xv, wv}, {"y"}, "", "ct");
    b.node->output(0)->type = NnStatic(f, y);
  }
  for (auto& [k, v] : attrs) b.node->SetAttr(k, v);
}

Status CreateStatus(const Node& n) {
  StatusOr<std::unique_ptr<OpKernel>> k = KernelRegistry::Global().Create(n, DeviceKind::kCpu);
  return k.ok() ? Status::OK() : k.status();
}

void ExpectRefused(const Status& s, StatusCode code, const std::string& node, const std::string& words) {
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.code(), code) << s.ToString();
  EXPECT_NE(s.message().find(node), std::string::npos) << s.ToString();
  EXPECT_NE(s.message().find(words), std::string::npos) << s.ToString();
}

TEST(ConvTransposeErrors, FourDIsUnimplementedByName) {
  Built b;
  Build(b, {1, 2, 3, 3, 3, 3}, {2, 1, 2, 2, 2, 2}, {1, 1, 4, 4, 4, 4}, {});
  ExpectRefused(CreateStatus(*b.node), StatusCode::kUnimplemented, "'ct'", "1-D, 2-D and 3-D ConvTranspose");
}

TEST(ConvTransposeErrors, WeightChannelsMustMatchX) {
  Built b;  // W's first dim is X's channels (C, M/group, k...): 3 != 2
  Build(b, {1, 2, 4, 4}, {3, 2, 3, 3}, {1, 2, 6, 6}, {});
  ExpectRefused(CreateStatus(*b.node), StatusCode::kInvalidArgument, "'ct'", "group 1 does not fit");
  ExpectRefused(CheckNode(*b.node, 17, NodeCheckStage::kShapes), StatusCode::kInvalidArgument, "ct",
                "has 2 channels, weight W [3,2,3,3]");
}

TEST(ConvTransposeErrors, GroupMustDivideChannels) {
  Built b;
  Build(b, {1, 3, 4, 4}, {3, 1, 3, 3}, {1, 2, 6, 6}, {{"group", int64_t{2}}});
  ExpectRefused(CreateStatus(*b.node), StatusCode::kInvalidArgument, "'ct'", "group 2 does not fit");
  ExpectRefused(CheckNode(*b.node, 17, NodeCheckStage::kShapes), StatusCode::kInvalidArgument, "ct",
                "do not split into 2 groups");
}

TEST(ConvTransposeErrors, OutputShapeMustMatchTheAttributes) {
  Built b;  // stride 2, k 3, pads 1+1: 2*3+3-2 = 7, not 8 (output_padding 1 would make it 8)
  Build(b, {1, 1, 4, 4}, {1, 1, 3, 3}, {1, 1, 8, 8},
        {{"strides", std::vector<int64_t>{2, 2}}, {"pads", std::vector<int64_t>{1, 1, 1, 1}}});
  ExpectRefused(CreateStatus(*b.node), StatusCode::kInvalidArgument, "'ct'", "should be 7");
  Built g;  // the gradient reads the same attributes
  Build(g, {1, 1, 4, 4}, {1, 1, 3, 3}, {1, 1, 8, 8},
        {{"strides", std::vector<int64_t>{2, 2}}, {"pads", std::vector<int64_t>{1, 1, 1, 1}}}, /*grad=*/true);
  ExpectRefused(CreateStatus(*g.node), StatusCode::kInvalidArgument, "'ct_grad'", "should be 7");
}

TEST(ConvTransposeErrors, OutputPaddingBelowStrideOrDilation) {
  Built b;
  Build(b, {1, 1, 4, 4}, {1, 1, 3, 3}, {1, 1, 11, 11},
        {{"strides", std::vector<int64_t>{2, 2}}, {"output_padding", std::vector<int64_t>{2, 2}}});
  ExpectRefused(CreateStatus(*b.node), StatusCode::kInvalidArgument, "'ct'", "less than the stride or the dilation");
}

TEST(ConvTransposeErrors, OutputShapeLargerThanTheFullOutput) {
  Built b;  // the full output is 2*3+3 = 9; 10 would need negative padding
  Build(b, {1, 1, 4, 4}, {1, 1, 3, 3}, {1, 1, 10, 10},
        {{"strides", std::vector<int64_t>{2, 2}}, {"output_shape", std::vector<int64_t>{10, 10}}});
  ExpectRefused(CreateStatus(*b.node), StatusCode::kUnimplemented, "'ct'", "negative padding");
}

TEST(ConvTransposeErrors, DynamicShapeIsRefused) {
  Built b;
  Build(b, {1, 2, 4, 4}, {2, 2, 3, 3}, {1, 2, 6, 6}, {});
  Shape dynamic = *b.node->input(0)->type.shape;
  dynamic[0] = Dim::Symbol("batch");
  b.g.FindValue("x")->type.shape = dynamic;
  ExpectRefused(CreateStatus(*b.node), StatusCode::kInvalidArgument, "'ct'", "needs a static shape");
}

TEST(ConvTransposeErrors, AttributeCountsAreChecked) {
  Built b;
  Build(b, {1, 2, 4, 4}, {2, 2, 3, 3}, {1, 2, 6, 6}, {{"output_padding", std::vector<int64_t>{1}}});
  ExpectRefused(CheckNode(*b.node, 17, NodeCheckStage::kShapes), StatusCode::kInvalidArgument, "ct",
                "'output_padding' has 1 values");
}

// Shapes above the OpenMP threshold: one thread and several agree bit for bit.
TEST(ConvTransposeParallel, SameAcrossThreadCounts) {
  const std::map<std::string, AttrValue> attrs{{"strides", std::vector<int64_t>{2, 2}},
                                               {"pads", std::vector<int64_t>{1, 1, 1, 1}},
                                               {"output_padding", std::vector<int64_t>{1, 1}},
                                               {"group", int64_t{2}}};
  const std::vector<int64_t> x{2, 16, 20, 20}, w{16, 4, 3, 3}, y{2, 8, 40, 40};
  Tensor xt = testing::NnRandom(x, 1), wt = testing::NnRandom(w, 2), dyt = testing::NnRandom(y, 3);
  Built f;
  Build(f, x, w, y, attrs);
  testing::ExpectSameAcrossThreadCounts(*f.node, {&xt, &wt});
  Built g;
  Build(g, x, w, y, attrs, /*grad=*/true);
  testing::ExpectSameAcrossThreadCounts(*g.node, {&dyt, &xt, &wt});
}

}  // namespace
}  // namespace dsc
