// Runs every case of cases.json (numpy expectations written by gen_expected.py) through EvaluateNode.
#include <cmath>
#include <cstdlib>
#include <fstream>
#include <ostream>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "ir/graph.h"
#include "passes/const_eval.h"

namespace dsc {
namespace {

using nlohmann::json;

std::vector<json> LoadCases() {
  std::ifstream in(DSC_CONST_EVAL_CASES);
  if (!in) return {};
  json doc = json::parse(in);
  return doc.at("cases").get<std::vector<json>>();
}

Tensor ParseTensor(const json& j) {
  StatusOr<DType> dtype = DTypeFromName(j.at("dtype").get<std::string>());
  EXPECT_TRUE(dtype.ok()) << j.at("dtype");
  Tensor t(*dtype, j.at("dims").get<std::vector<int64_t>>());
  const auto& values = j.at("values");
  for (size_t i = 0; i < values.size(); ++i) {
    std::string s = values[i].get<std::string>();
    if (IsFloat(*dtype)) t.SetFromDouble(static_cast<int64_t>(i), std::strtod(s.c_str(), nullptr));
    else t.SetFromInt(static_cast<int64_t>(i), std::stoll(s));
  }
  return t;
}

AttrValue ParseAttr(const json& j) {
  if (j.contains("int")) return j["int"].get<int64_t>();
  if (j.contains("float")) return j["float"].get<float>();
  if (j.contains("string")) return j["string"].get<std::string>();
  if (j.contains("ints")) return j["ints"].get<std::vector<int64_t>>();
  if (j.contains("floats")) return j["floats"].get<std::vector<float>>();
  return ParseTensor(j.at("tensor"));
}

Shape StaticShape(const std::vector<int64_t>& dims) {
  Shape s;
  for (int64_t d : dims) s.push_back(Dim::Static(d));
  return s;
}

// Float tolerance per type: our evaluator computes in double and rounds once; numpy may round per step.
double Tolerance(DType t) {
  switch (t) {
    case DType::kFloat64: return 1e-12;
    case DType::kFloat16: return 1e-3;
    case DType::kBFloat16: return 1e-2;
    default: return 1e-6;
  }
}

void ExpectTensorEq(const Tensor& expected, const Tensor& actual, const std::string& what) {
  ASSERT_EQ(DTypeName(expected.dtype()), std::string(DTypeName(actual.dtype()))) << what;
  ASSERT_EQ(expected.dims(), actual.dims()) << what;
  for (int64_t i = 0; i < expected.numel(); ++i) {
    if (!IsFloat(expected.dtype())) {
      ASSERT_EQ(expected.GetAsInt(i), actual.GetAsInt(i)) << what << " element " << i;
      continue;
    }
    double e = expected.GetAsDouble(i), a = actual.GetAsDouble(i);
    if (std::isnan(e)) {
      ASSERT_TRUE(std::isnan(a)) << what << " element " << i << ": expected NaN, got " << a;
    } else if (std::isinf(e)) {
      ASSERT_EQ(e, a) << what << " element " << i;
    } else {
      ASSERT_NEAR(e, a, Tolerance(expected.dtype()) * std::max(1.0, std::fabs(e))) << what << " element " << i;
    }
  }
}

StatusCode CodeFromName(const std::string& name) {
  if (name == "InvalidArgument") return StatusCode::kInvalidArgument;
  if (name == "OutOfRange") return StatusCode::kOutOfRange;
  if (name == "Unimplemented") return StatusCode::kUnimplemented;
  ADD_FAILURE() << "unknown status code name " << name;
  return StatusCode::kOk;
}

// One row of cases.json; prints as its name so test listings stay short.
struct Case {
  json j;
};
void PrintTo(const Case& c, std::ostream* os) { *os << c.j.at("name").get<std::string>(); }

std::vector<Case> LoadCaseRows() {
  std::vector<Case> rows;
  for (json& j : LoadCases()) rows.push_back(Case{std::move(j)});
  return rows;
}

class ConstEvalCase : public ::testing::TestWithParam<Case> {};

TEST_P(ConstEvalCase, MatchesNumpy) {
  const json& c = GetParam().j;
  const std::string name = c.at("name").get<std::string>();
  Graph g;
  std::vector<Tensor> tensors;
  const auto& ins = c.at("inputs");
  tensors.reserve(ins.size());
  std::vector<Value*> values;
  std::vector<const Tensor*> inputs;
  for (size_t i = 0; i < ins.size(); ++i) {
    if (ins[i].is_null()) {
      values.push_back(nullptr);
      inputs.push_back(nullptr);
      continue;
    }
    tensors.push_back(ParseTensor(ins[i]));
    const Tensor& t = tensors.back();
    values.push_back(g.AddInput("in" + std::to_string(i), TensorType{t.dtype(), StaticShape(t.dims())}));
    inputs.push_back(&t);
  }
  size_t num_outputs = c.contains("outputs") ? c["outputs"].size() : c.at("num_outputs").get<size_t>();
  std::vector<std::string> out_names;
  for (size_t i = 0; i < num_outputs; ++i) out_names.push_back("out" + std::to_string(i));
  Node* node = g.AddNode(c.at("op").get<std::string>(), values, out_names, "", "n_" + name);
  for (const auto& [key, value] : c.at("attrs").items()) node->SetAttr(key, ParseAttr(value));

  ASSERT_TRUE(CanEvaluate(*node));
  StatusOr<std::vector<Tensor>> result = EvaluateNode(*node, inputs);
  if (c.contains("error")) {
    ASSERT_FALSE(result.ok()) << "expected " << c["error"] << " error";
    EXPECT_EQ(CodeFromName(c["error"].get<std::string>()), result.status().code()) << result.status().ToString();
    EXPECT_NE(result.status().message().find("'n_" + name + "'"), std::string::npos)
        << "error does not name the node: " << result.status().ToString();
    return;
  }
  ASSERT_TRUE(result.ok()) << result.status().ToString();
  ASSERT_EQ(result->size(), num_outputs);
  for (size_t i = 0; i < num_outputs; ++i)
    ExpectTensorEq(ParseTensor(c["outputs"][i]), (*result)[i], "output " + std::to_string(i));
}

INSTANTIATE_TEST_SUITE_P(Numpy, ConstEvalCase, ::testing::ValuesIn(LoadCaseRows()),
                         [](const ::testing::TestParamInfo<Case>& info) { return info.param.j.at("name").get<std::string>(); });

TEST(ConstEvalCases, TableIsPresent) { EXPECT_GT(LoadCases().size(), 100u) << "missing " << DSC_CONST_EVAL_CASES; }

}  // namespace
}  // namespace dsc
