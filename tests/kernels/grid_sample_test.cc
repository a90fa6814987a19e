// GridSample and GridSampleGrad on the CPU against data/grid_sample_cases.json
// (gen_grid_sample_cases.py: torch's F.grid_sample and autograd for X and Grid, every mode, padding
// and align_corners, opset 16's and 20's mode names), and the refusals naming the node.
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

const std::vector<json>& Cases() { return testing::JsonCases(DSC_KERNEL_TEST_DATA "/grid_sample_cases.json"); }

Tensor FromCase(const json& c, const char* values, const char* dims) {
  return testing::TensorOf(DType::kFloat32, c.at(dims).get<std::vector<int64_t>>(),
                           c.at(values).get<std::vector<double>>());
}

void SetAttrs(Node* n, const json& c) {
  for (const auto& [k, v] : c.at("attrs").items()) {
    if (v.is_string()) n->SetAttr(k, v.get<std::string>());
    else n->SetAttr(k, v.get<int64_t>());
  }
}

class GridSampleCaseTest : public ::testing::TestWithParam<size_t> {};

TEST_P(GridSampleCaseTest, ForwardMatchesTorch) {
  const json& c = Cases()[GetParam()];
  const int64_t opset = c.at("opset").get<int64_t>();
  Graph g;
  g.opsets[""] = opset;
  Tensor x = FromCase(c, "x", "x_dims"), grid = FromCase(c, "grid", "grid_dims");
  Node* n = g.AddNode("GridSample", {g.AddInput("x", TensorType{DType::kFloat32, StaticShape(x.dims())}),
                                     g.AddInput("g", TensorType{DType::kFloat32, StaticShape(grid.dims())})},
                      {"y"}, "", c.at("name").get<std::string>());
  SetAttrs(n, c);
  const auto xd = x.dims(), gd = grid.dims();
  n->output(0)->type = TensorType{DType::kFloat32, StaticShape({xd[0], xd[1], gd[1], gd[2]})};
  Status checked = CheckNode(*n, opset, NodeCheckStage::kShapes);
  ASSERT_TRUE(checked.ok()) << checked.ToString();
  StatusOr<std::vector<Tensor>> out = testing::RunNodeOnCpu(*n, {&x, &grid});
  ASSERT_TRUE(out.ok()) << out.status().ToString();
  EXPECT_TRUE(testing::AllClose((*out)[0], c.at("y").get<std::vector<double>>(), 1e-5, 1e-5)) << c.at("name");
}

TEST_P(GridSampleCaseTest, GradientsMatchTorch) {
  const json& c = Cases()[GetParam()];
  Graph g;
  g.opsets[""] = c.at("opset").get<int64_t>();
  Tensor x = FromCase(c, "x", "x_dims"), grid = FromCase(c, "grid", "grid_dims");
  const auto xd = x.dims(), gd = grid.dims();
  Tensor dy(DType::kFloat32, {xd[0], xd[1], gd[1], gd[2]});
  const auto dyv = c.at("dy").get<std::vector<double>>();
  for (size_t i = 0; i < dyv.size(); ++i) dy.SetFromDouble(static_cast<int64_t>(i), dyv[i]);
  Node* n = g.AddNode(ops::kGridSampleGrad,
                      {g.AddInput("dy", TensorType{DType::kFloat32, StaticShape(dy.dims())}),
                       g.AddInput("x", TensorType{DType::kFloat32, StaticShape(xd)}),
                       g.AddInput("g", TensorType{DType::kFloat32, StaticShape(gd)})},
                      {"dx", "dg"}, kDscDomain, c.at("name").get<std::string>());
  SetAttrs(n, c);
  n->output(0)->type = TensorType{DType::kFloat32, StaticShape(xd)};
  n->output(1)->type = TensorType{DType::kFloat32, StaticShape(gd)};
  StatusOr<std::vector<Tensor>> out = testing::RunNodeOnCpu(*n, {&dy, &x, &grid});
  ASSERT_TRUE(out.ok()) << out.status().ToString();
  EXPECT_TRUE(testing::AllClose((*out)[0], c.at("dx").get<std::vector<double>>(), 1e-5, 1e-5)) << c.at("name") << " dX";
  EXPECT_TRUE(testing::AllClose((*out)[1], c.at("dgrid").get<std::vector<double>>(), 1e-4, 1e-4)) << c.at("name") << " dGrid";
}

std::string CaseName(const ::testing::TestParamInfo<size_t>& info) { return Cases()[info.param].at("name").get<std::string>(); }

std::vector<size_t> AllCases() {
  std::vector<size_t> v;
  for (size_t i = 0; i < Cases().size(); ++i) v.push_back(i);
  return v;
}

INSTANTIATE_TEST_SUITE_P(Json, GridSampleCaseTest, ::testing::ValuesIn(AllCases()), CaseName);

TEST(GridSampleCases, FileLoaded) { EXPECT_GT(Cases().size(), 36u) << "missing " DSC_KERNEL_TEST_DATA "/grid_sample_cases.json"; }

// What dscompile's GridSample does not take is refused by the node check and by the kernel, naming
// the node.
TEST(GridSampleRefusals, UnsupportedModesAndRanksNameTheNode) {
  struct Case {
    const char* attr;
    const char* value;
    std::vector<int64_t> x, grid;
    const char* words;
  };
  const Case cases[] = {
      {"mode", "area", {1, 1, 4, 4}, {1, 2, 2, 2}, "mode 'area'"},
      {"padding_mode", "wrap", {1, 1, 4, 4}, {1, 2, 2, 2}, "padding_mode 'wrap'"},
      {"mode", "linear", {1, 1, 2, 4, 4}, {1, 2, 2, 2, 3}, "4-D X"},
  };
  for (const Case& k : cases) {
    SCOPED_TRACE(k.words);
    Graph g;
    g.opsets[""] = 20;
    Node* n = g.AddNode("GridSample", {g.AddInput("x", testing::F32(k.x)), g.AddInput("g", testing::F32(k.grid))}, {"y"},
                        "", "sampler");
    n->SetAttr(k.attr, std::string(k.value));
    std::vector<int64_t> y = {k.x[0], k.x[1]};
    for (size_t i = 1; i + 1 < k.grid.size(); ++i) y.push_back(k.grid[i]);
    n->output(0)->type = testing::F32(y);
    Status s = CheckNode(*n, 20, NodeCheckStage::kShapes);
    EXPECT_FALSE(s.ok());
    EXPECT_NE(s.message().find("'sampler'"), std::string::npos) << s.message();
    StatusOr<std::unique_ptr<OpKernel>> kernel = KernelRegistry::Global().Create(*n, DeviceKind::kCpu);
    ASSERT_FALSE(kernel.ok());
    EXPECT_NE(kernel.status().message().find("'sampler'"), std::string::npos) << kernel.status().message();
    EXPECT_NE(kernel.status().message().find(k.words), std::string::npos) << kernel.status().message();
  }
}

}  // namespace
}  // namespace dsc
