// 3-D sliding windows on the CPU: Conv/ConvGrad, MaxPool/MaxPoolGrad, AveragePool/AveragePoolGrad
// against torch (data/window3d_cases.json, gen_window3d_cases.py), with BatchNormalization and
// GlobalAveragePool on 5-D inputs; every convolution case of the 1-D, 2-D and 3-D tables again on the
// im2col + sgemm path (oneDNN turned off), the readable spec the oneDNN path is checked against; and
// thread-count determinism.
#include <gtest/gtest.h>

#include <map>
#include <string>
#include <vector>

#include "ir/dsc_ops.h"
#include "kernels/cpu/onednn.h"
#include "tests/kernels/nn_cases.h"

namespace dsc {
namespace {

using testing::NnStatic;

const nlohmann::json& Table() {
  static const nlohmann::json table = testing::ReadCaseTable("window3d_cases.json");
  return table;
}

class Window3DCase : public ::testing::TestWithParam<std::string> {};
TEST_P(Window3DCase, MatchesTorch) { testing::RunNnCase(GetParam(), Table()); }
INSTANTIATE_TEST_SUITE_P(Forward, Window3DCase, ::testing::ValuesIn(testing::NnCaseNames("", Table())),
                         testing::NnCaseParamName);
INSTANTIATE_TEST_SUITE_P(Grad, Window3DCase, ::testing::ValuesIn(testing::NnCaseNames(kDscDomain, Table())),
                         testing::NnCaseParamName);

TEST(Window3DTable, CoversEveryOpAndAttribute) {
  // Every op on 5-D inputs and every window attribute: a regenerated table that lost a kind fails here.
  std::map<std::string, int> seen;
  for (const auto& c : Table()["cases"]) {
    seen[c["op"].get<std::string>() + "/" + std::to_string(c["inputs"][0]["dims"].size())]++;
    for (const auto& [k, v] : c["attrs"].items()) {
      seen[k]++;
      if (v.contains("string")) seen[k + "=" + v["string"].get<std::string>()]++;
    }
  }
  for (const char* k : {"Conv/5", "ConvGrad/5", "MaxPool/5", "MaxPoolGrad/5", "AveragePool/5", "AveragePoolGrad/5",
                        "GlobalAveragePool/5", "BatchNormalization/5", "BatchNormalizationGrad/5", "pads", "strides",
                        "dilations", "group", "kernel_shape", "ceil_mode", "count_include_pad",
                        "auto_pad=SAME_UPPER", "auto_pad=SAME_LOWER", "auto_pad=VALID"})
    EXPECT_GT(seen[k], 0) << k;
}

// The convolution cases of a table (Conv, ConvGrad, ConvTranspose, ConvTransposeGrad), as "file:name".
std::vector<std::string> ConvCases() {
  std::vector<std::string> out;
  for (const char* file : {"nn_cases.json", "conv_transpose_cases.json", "window3d_cases.json"}) {
    const nlohmann::json t = testing::ReadCaseTable(file);
    if (t.is_discarded() || !t.contains("cases")) {
      out.push_back(std::string(file) + ":table_unreadable");
      continue;
    }
    for (const auto& c : t["cases"]) {
      const std::string op = c["op"];
      if (op == "Conv" || op == ops::kConvGrad || op == "ConvTranspose" || op == ops::kConvTransposeGrad)
        out.push_back(std::string(file) + ":" + c["name"].get<std::string>());
    }
  }
  return out;
}

// Turns oneDNN off for the kernels one test creates.
class WithoutOnednn {
 public:
  WithoutOnednn() { cpu::SetOnednnForTesting(false); }
  ~WithoutOnednn() { cpu::SetOnednnForTesting(true); }
};

class Im2ColCase : public ::testing::TestWithParam<std::string> {};
TEST_P(Im2ColCase, MatchesTorch) {
  const std::string& p = GetParam();
  const size_t colon = p.find(':');
  const nlohmann::json table = testing::ReadCaseTable(p.substr(0, colon));
  WithoutOnednn off;
  testing::RunNnCase(p.substr(colon + 1), table);
}
INSTANTIATE_TEST_SUITE_P(AllRanks, Im2ColCase, ::testing::ValuesIn(ConvCases()),
                         [](const ::testing::TestParamInfo<std::string>& info) {
                           std::string name = info.param;
                           for (char& ch : name)
                             if (!isalnum(static_cast<unsigned char>(ch))) ch = '_';
                           return name;
                         });

TEST(Im2ColCases, CoverEveryRankOfConvAndConvTranspose) {
  std::map<std::string, int> seen;
  for (const char* file : {"nn_cases.json", "conv_transpose_cases.json", "window3d_cases.json"}) {
    const nlohmann::json t = testing::ReadCaseTable(file);
    ASSERT_FALSE(t.is_discarded()) << file;
    for (const auto& c : t["cases"]) seen[c["op"].get<std::string>() + "/" + std::to_string(c["inputs"][0]["dims"].size())]++;
  }
  for (const char* k : {"Conv/3", "Conv/4", "Conv/5", "ConvGrad/3", "ConvGrad/4", "ConvGrad/5", "ConvTranspose/3",
                        "ConvTranspose/4", "ConvTranspose/5", "ConvTransposeGrad/5"})
    EXPECT_GT(seen[k], 0) << k;
}

// A one-node graph of `op` with X and Y of the given dims (and W for Conv).
struct Built {
  Graph g;
  Node* node = nullptr;
};

void BuildPool(Built& b, const std::string& op, const std::string& domain, std::vector<int64_t> in,
               std::vector<int64_t> out, std::map<std::string, AttrValue> attrs, bool with_x) {
  const DType f = DType::kFloat32;
  std::vector<Value*> ins{b.g.AddInput("a", NnStatic(f, in))};
  if (with_x) ins.push_back(b.g.AddInput("x", NnStatic(f, out)));
  b.node = b.g.AddNode(op, ins, {"y"}, domain, "pool3d");
  b.node->output(0)->type = NnStatic(f, out);
  for (auto& [k, v] : attrs) b.node->SetAttr(k, v);
}

// Each kernel dim may be up to 2^31 (node checks), so three of them could overflow the tap count: a
// window of more than 2^40 taps is refused by name.
TEST(Window3DErrors, TooManyTapsIsRefused) {
  const int64_t k = int64_t{1} << 20;
  Built b;
  BuildPool(b, "MaxPool", "", {1, 1, 1, 1, 1}, {1, 1, 1, 1, 1},
            {{"kernel_shape", std::vector<int64_t>{k, k, k}}, {"pads", std::vector<int64_t>{k - 1, k - 1, k - 1, 0, 0, 0}}},
            false);
  StatusOr<std::unique_ptr<OpKernel>> kernel = KernelRegistry::Global().Create(*b.node, DeviceKind::kCpu);
  ASSERT_FALSE(kernel.ok());
  EXPECT_EQ(kernel.status().code(), StatusCode::kUnimplemented);
  EXPECT_NE(kernel.status().message().find("pool3d"), std::string::npos) << kernel.status().ToString();
  EXPECT_NE(kernel.status().message().find("more than 2^40 taps"), std::string::npos) << kernel.status().ToString();
}

// Shapes above the OpenMP thresholds: one thread and several agree bit for bit.
TEST(Window3DParallel, PoolsSameAcrossThreadCounts) {
  const std::map<std::string, AttrValue> attrs{{"kernel_shape", std::vector<int64_t>{3, 3, 2}},
                                               {"strides", std::vector<int64_t>{2, 1, 2}},
                                               {"pads", std::vector<int64_t>{1, 1, 0, 1, 0, 1}},
                                               {"count_include_pad", int64_t{1}}};
  const std::vector<int64_t> x{2, 8, 9, 16, 16}, y{2, 8, 5, 15, 8};
  Tensor xt = testing::NnRandom(x, 1), dyt = testing::NnRandom(y, 2);
  for (const char* op : {"MaxPool", "AveragePool"}) {
    Built f;
    BuildPool(f, op, "", x, y, attrs, false);
    testing::ExpectSameAcrossThreadCounts(*f.node, {&xt});
  }
  Built mg;  // MaxPoolGrad (dY, X)
  BuildPool(mg, ops::kMaxPoolGrad, kDscDomain, y, x, attrs, true);
  testing::ExpectSameAcrossThreadCounts(*mg.node, {&dyt, &xt});
  Built ag;  // AveragePoolGrad (dY)
  BuildPool(ag, ops::kAveragePoolGrad, kDscDomain, y, x, attrs, false);
  testing::ExpectSameAcrossThreadCounts(*ag.node, {&dyt});
}

TEST(Window3DParallel, Im2ColConvSameAcrossThreadCounts) {
  const DType f = DType::kFloat32;
  const std::vector<int64_t> x{2, 6, 6, 10, 10}, w{8, 3, 3, 3, 3}, y{2, 8, 3, 10, 10};
  const std::map<std::string, AttrValue> attrs{{"strides", std::vector<int64_t>{2, 1, 1}},
                                               {"pads", std::vector<int64_t>{1, 1, 1, 0, 1, 1}},
                                               {"group", int64_t{2}}};
  Tensor xt = testing::NnRandom(x, 3), wt = testing::NnRandom(w, 4), dyt = testing::NnRandom(y, 5);
  WithoutOnednn off;  // oneDNN's own threading is its business; the spec's loops are ours
  Graph g;
  Value* xv = g.AddInput("x", NnStatic(f, x));
  Value* wv = g.AddInput("w", NnStatic(f, w));
  Value* dy = g.AddInput("dy", NnStatic(f, y));
  Node* conv = g.AddNode("Conv", {xv, wv}, {"y"}, "", "conv3d");
  conv->output(0)->type = NnStatic(f, y);
  Node* grad = g.AddNode(ops::kConvGrad, {dy, xv, wv}, {"dx", "dw"}, kDscDomain, "conv3d_grad");
  grad->output(0)->type = NnStatic(f, x);
  grad->output(1)->type = NnStatic(f, w);
  for (Node* n : {conv, grad})
    for (auto& [k, v] : attrs) n->SetAttr(k, v);
  testing::ExpectSameAcrossThreadCounts(*conv, {&xt, &wt});
  testing::ExpectSameAcrossThreadCounts(*grad, {&dyt, &xt, &wt});
}

}  // namespace
}  // namespace dsc
