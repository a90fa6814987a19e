// TopK, ArgMax/ArgMin and ReduceProd on the CPU against data/select_cases.json
// (gen_select_cases.py: torch 2.15's topk/sort(stable=True)/argmax/argmin/prod and onnx.reference
// for select_last_index and the order of ties), in float32 (an int32 ArgMax as GPT-2's classifier
// writes) and, for TopK and ArgMax, bfloat16
// through the half adaptor on the cases whose values bfloat16 holds exactly; and the refusals.
#include <cmath>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "ir/node_checks.h"
#include "tests/kernels/kernel_test_util.h"

namespace dsc {
namespace {

using nlohmann::json;
using testing::StaticShape;

const std::vector<json>& Cases() { return testing::JsonCases(DSC_KERNEL_TEST_DATA "/select_cases.json"); }

double Num(const json& v) { return v.is_string() ? std::nan("") : v.get<double>(); }

Tensor FromJson(DType dtype, const std::vector<int64_t>& dims, const json& v) {
  Tensor t(dtype, dims);
  for (size_t i = 0; i < v.size(); ++i) t.SetFromDouble(static_cast<int64_t>(i), Num(v[i]));
  return t;
}

// The case's node in `g` on `dtype` data.
Node* AddCaseNode(Graph& g, const json& c, DType dtype) {
  const auto xd = c.at("x_dims").get<std::vector<int64_t>>(), yd = c.at("y_dims").get<std::vector<int64_t>>();
  const std::string op = c.at("op");
  if (c.value("dtype", "float32") == "int32") dtype = DType::kInt32;
  std::vector<Value*> inputs{g.AddInput("x", TensorType{dtype, StaticShape(xd)})};
  std::vector<std::string> outs{"y"};
  if (op == "TopK") {
    inputs.push_back(g.AddInitializer("k", Tensor::FromVector<int64_t>(DType::kInt64, {1}, {c.at("k").get<int64_t>()})));
    outs.push_back("i");
  } else if (op == "ReduceProd") {
    const auto axes = c.at("axes").get<std::vector<int64_t>>();
    inputs.push_back(g.AddInitializer("axes", Tensor::FromVector<int64_t>(DType::kInt64, {static_cast<int64_t>(axes.size())}, axes)));
  }
  Node* n = g.AddNode(op, inputs, outs, "", c.at("name").get<std::string>());
  for (const auto& [k, v] : c.at("attrs").items()) n->SetAttr(k, v.get<int64_t>());
  if (op == "TopK") {
    n->output(0)->type = TensorType{dtype, StaticShape(yd)};
    n->output(1)->type = TensorType{DType::kInt64, StaticShape(yd)};
  } else {
    n->output(0)->type = TensorType{op == "ReduceProd" ? dtype : DType::kInt64, StaticShape(yd)};
  }
  return n;
}

void ExpectIndices(const Tensor& t, const json& want, const std::string& what) {
  ASSERT_EQ(t.numel(), static_cast<int64_t>(want.size())) << what;
  for (int64_t i = 0; i < t.numel(); ++i)
    EXPECT_EQ(t.data<int64_t>()[i], want[static_cast<size_t>(i)].get<int64_t>()) << what << " index " << i;
}

void ExpectValues(const Tensor& t, const json& want, const std::string& what, double rtol) {
  ASSERT_EQ(t.numel(), static_cast<int64_t>(want.size())) << what;
  for (int64_t i = 0; i < t.numel(); ++i) {
    const double got = t.GetAsDouble(i), w = Num(want[static_cast<size_t>(i)]);
    if (std::isnan(w)) EXPECT_TRUE(std::isnan(got)) << what << " value " << i << " is " << got;
    else EXPECT_NEAR(got, w, rtol * std::fabs(w) + 1e-7) << what << " value " << i;
  }
}

void Check(const json& c, DType dtype) {
  Graph g;
  g.opsets[""] = 20;
  Node* n = AddCaseNode(g, c, dtype);
  const std::string what = c.at("source").get<std::string>() + " case " + c.at("name").get<std::string>();
  Status checked = CheckNode(*n, 20, NodeCheckStage::kShapes);
  ASSERT_TRUE(checked.ok()) << checked.ToString();
  Tensor x = FromJson(n->input(0)->type.dtype, c.at("x_dims").get<std::vector<int64_t>>(), c.at("x"));
  StatusOr<std::vector<Tensor>> out = testing::RunNodeOnCpu(*n, {&x, nullptr});
  ASSERT_TRUE(out.ok()) << out.status().ToString();
  const std::string op = c.at("op");
  if (op == "TopK") {
    ExpectValues((*out)[0], c.at("values"), what, 0);
    ExpectIndices((*out)[1], c.at("indices"), what);
  } else if (op == "ReduceProd") {
    ExpectValues((*out)[0], c.at("values"), what, 1e-6);
  } else {
    ExpectIndices((*out)[0], c.at("indices"), what);
  }
}

// Whether every value of the case is exact in bfloat16 (the tie and NaN cases hold small integers).
bool ExactInBf16(const json& c) {
  for (const json& v : c.at("x")) {
    if (v.is_string()) continue;
    const double d = v.get<double>();
    if (d != std::floor(d) || std::fabs(d) > 256) return false;
  }
  return true;
}

class SelectCaseTest : public ::testing::TestWithParam<size_t> {};

TEST_P(SelectCaseTest, MatchesReference) { Check(Cases()[GetParam()], DType::kFloat32); }

std::vector<size_t> CaseIndices() {
  std::vector<size_t> out;
  for (size_t i = 0; i < Cases().size(); ++i) out.push_back(i);
  return out;
}

INSTANTIATE_TEST_SUITE_P(Cases, SelectCaseTest, ::testing::ValuesIn(CaseIndices()),
                         [](const ::testing::TestParamInfo<size_t>& info) {
                           return Cases()[info.param].at("name").get<std::string>();
                         });

TEST(SelectCases, AreThere) { EXPECT_GE(Cases().size(), 20u); }

// bfloat16 through the half adaptor: the cases whose values it holds exactly (the tie cases'
// small integers) select the same elements as in float32.
TEST(SelectCases, Bfloat16ThroughTheHalfAdaptorPicksTheSame) {
  int ran = 0;
  for (const json& c : Cases()) {
    if (c.at("op") == "ReduceProd" || c.value("dtype", "float32") != "float32" || !ExactInBf16(c)) continue;
    SCOPED_TRACE(c.at("name").get<std::string>());
    Check(c, DType::kBFloat16);
    ++ran;
  }
  EXPECT_GE(ran, 5);
}

// A node of `op` on x:(3,4) with K (TopK) given as `k`.
Node* Add(Graph& g, const std::string& op, std::vector<int64_t> y_dims, Value* k = nullptr) {
  Value* x = g.AddInput("x", testing::F32({3, 4}));
  Node* n = op == "TopK" ? g.AddNode(op, {x, k}, {"y", "i"}, "", "sel") : g.AddNode(op, {x}, {"y"}, "", "sel");
  n->output(0)->type = op == "TopK" ? testing::F32(y_dims) : TensorType{DType::kInt64, StaticShape(y_dims)};
  if (op == "TopK") n->output(1)->type = TensorType{DType::kInt64, StaticShape(y_dims)};
  return n;
}

TEST(SelectErrors, NodeChecksNameTheNode) {
  {
    Graph g;
    Node* n = Add(g, "TopK", {3, 5}, g.AddInitializer("k", Tensor::FromVector<int64_t>(DType::kInt64, {1}, {5})));
    Status s = CheckNode(*n, 20, NodeCheckStage::kShapes);
    EXPECT_FALSE(s.ok());
    EXPECT_NE(s.message().find("'sel'"), std::string::npos) << s.message();
    EXPECT_NE(s.message().find("K 5 exceeds the extent 4"), std::string::npos) << s.message();
  }
  {
    Graph g;
    Node* n = Add(g, "TopK", {3, 2}, g.AddInitializer("k", Tensor::FromVector<int64_t>(DType::kInt64, {1}, {2})));
    n->SetAttr("largest", int64_t{2});
    Status s = CheckNode(*n, 20, NodeCheckStage::kShapes);
    EXPECT_NE(s.message().find("attribute 'largest' is 2"), std::string::npos) << s.message();
  }
  {
    Graph g;
    Node* n = Add(g, "ArgMax", {3});
    n->SetAttr("axis", int64_t{2});
    Status s = CheckNode(*n, 20, NodeCheckStage::kShapes);
    EXPECT_NE(s.message().find("'sel'"), std::string::npos) << s.message();
    EXPECT_NE(s.message().find("attribute 'axis' 2 is out of range for rank 2"), std::string::npos) << s.message();
  }
}

TEST(SelectErrors, TopKRefusesAKComputedAtRunTime) {
  Graph g;
  Value* k = g.AddInput("k", TensorType{DType::kInt64, StaticShape({1})});
  Node* n = Add(g, "TopK", {3, 2}, k);
  Tensor x(DType::kFloat32, {3, 4}), kt = Tensor::FromVector<int64_t>(DType::kInt64, {1}, {2});
  StatusOr<std::vector<Tensor>> out = testing::RunNodeOnCpu(*n, {&x, &kt});
  ASSERT_FALSE(out.ok());
  EXPECT_NE(out.status().message().find("'sel'"), std::string::npos) << out.status().ToString();
  EXPECT_NE(out.status().message().find("computed at run time"), std::string::npos) << out.status().ToString();
}

TEST(SelectErrors, TopKNeedsKToMatchTheOutput) {
  Graph g;
  Node* n = Add(g, "TopK", {3, 3}, g.AddInitializer("k", Tensor::FromVector<int64_t>(DType::kInt64, {1}, {2})));
  Tensor x(DType::kFloat32, {3, 4});
  StatusOr<std::vector<Tensor>> out = testing::RunNodeOnCpu(*n, {&x, nullptr});
  ASSERT_FALSE(out.ok());
  EXPECT_NE(out.status().message().find("K must hold one value equal to the output's extent 3"), std::string::npos)
      << out.status().ToString();
}

}  // namespace
}  // namespace dsc
