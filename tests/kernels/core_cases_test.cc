// Runs every case of data/core_cases.json (numpy/torch expectations written by gen_core_cases.py)
// through its CPU kernel, once with constant inputs as initializers and once with every input
// fed at run time (the kernels' non-constant fallback).
#include <cctype>
#include <cstdlib>
#include <fstream>
#include <limits>
#include <ostream>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "tests/kernels/kernel_test_util.h"

namespace dsc {
namespace {

using nlohmann::json;

const std::vector<json>& Cases() {
  static const std::vector<json> cases = [] {
    std::ifstream in(std::string(DSC_KERNEL_TEST_DATA) + "/core_cases.json");
    if (!in) return std::vector<json>{};
    return json::parse(in).at("cases").get<std::vector<json>>();
  }();
  return cases;
}

double ParseNumber(const json& v) {
  if (v.is_number()) return v.get<double>();
  const std::string s = v.get<std::string>();
  if (s == "nan") return std::numeric_limits<double>::quiet_NaN();
  return s == "-inf" ? -std::numeric_limits<double>::infinity() : std::numeric_limits<double>::infinity();
}

Tensor ParseTensor(const json& j) {
  StatusOr<DType> dtype = DTypeFromName(j.at("dtype").get<std::string>());
  EXPECT_TRUE(dtype.ok()) << j.at("dtype");
  Tensor t(*dtype, j.at("dims").get<std::vector<int64_t>>());
  const json& values = j.at("values");
  for (size_t i = 0; i < values.size(); ++i) {
    if (values[i].is_number_integer()) t.SetFromInt(static_cast<int64_t>(i), values[i].get<int64_t>());
    else t.SetFromDouble(static_cast<int64_t>(i), ParseNumber(values[i]));
  }
  return t;
}

std::vector<double> Expected(const json& j) {
  std::vector<double> out;
  for (const json& v : j.at("values")) out.push_back(ParseNumber(v));
  return out;
}

AttrValue ParseAttr(const json& j) {
  if (j.contains("int")) return j["int"].get<int64_t>();
  if (j.contains("float")) return j["float"].get<float>();
  if (j.contains("string")) return j["string"].get<std::string>();
  return j.at("ints").get<std::vector<int64_t>>();
}

using testing::StaticShape;

struct Param {
  size_t index;
  bool runtime_inputs;  // constant inputs fed as graph inputs instead of initializers
};

void PrintTo(const Param& p, std::ostream* os) { *os << "case " << p.index << (p.runtime_inputs ? " (runtime)" : ""); }

std::vector<Param> AllParams() {
  std::vector<Param> params;
  for (size_t i = 0; i < Cases().size(); ++i) {
    params.push_back({i, false});
    if (!Cases()[i].value("const_only", false)) params.push_back({i, true});
  }
  return params;
}

std::string ParamName(const ::testing::TestParamInfo<Param>& info) {
  const json& c = Cases()[info.param.index];
  std::string name = c.at("group").get<std::string>() + "_" + c.at("name").get<std::string>() +
                     (info.param.runtime_inputs ? "_runtime" : "_const");
  for (char& ch : name)
    if (!std::isalnum(static_cast<unsigned char>(ch))) ch = '_';
  return name;
}

class CoreCaseTest : public ::testing::TestWithParam<Param> {};

TEST_P(CoreCaseTest, MatchesReference) {
  const json& c = Cases()[GetParam().index];
  Graph g;
  std::vector<Value*> inputs;
  std::vector<Tensor> tensors;
  const json& ins = c.at("inputs");
  tensors.reserve(ins.size());
  for (size_t i = 0; i < ins.size(); ++i) {
    if (ins[i].is_null()) {
      inputs.push_back(nullptr);
      tensors.emplace_back();
      continue;
    }
    tensors.push_back(ParseTensor(ins[i]));
    const std::string name = "in" + std::to_string(i);
    if (ins[i].value("const", false) && !GetParam().runtime_inputs)
      inputs.push_back(g.AddInitializer(name, tensors.back()));
    else
      inputs.push_back(g.AddInput(name, TensorType{tensors.back().dtype(), StaticShape(tensors.back().dims())}));
  }
  const json& outs = c.at("outputs");
  std::vector<std::string> out_names;
  for (size_t i = 0; i < outs.size(); ++i) out_names.push_back("out" + std::to_string(i));
  Node* n = g.AddNode(c.at("op").get<std::string>(), inputs, out_names, "", c.at("name").get<std::string>());
  for (const auto& [name, value] : c.at("attrs").items()) n->SetAttr(name, ParseAttr(value));
  for (size_t i = 0; i < outs.size(); ++i) {
    StatusOr<DType> dtype = DTypeFromName(outs[i].at("dtype").get<std::string>());
    ASSERT_TRUE(dtype.ok());
    n->output(i)->type = TensorType{*dtype, StaticShape(outs[i].at("dims").get<std::vector<int64_t>>())};
  }

  std::vector<Tensor*> args;
  for (Tensor& t : tensors) args.push_back(t.dtype() == DType::kUndefined ? nullptr : &t);
  StatusOr<std::vector<Tensor>> result = testing::RunNodeOnCpu(*n, args);
  ASSERT_TRUE(result.ok()) << result.status().ToString();
  const double rtol = c.value("rtol", 1e-5), atol = c.value("atol", 1e-6);
  for (size_t i = 0; i < outs.size(); ++i) {
    EXPECT_EQ((*result)[i].dims(), outs[i].at("dims").get<std::vector<int64_t>>()) << "output " << i;
    EXPECT_TRUE(testing::AllClose((*result)[i], Expected(outs[i]), rtol, atol)) << "output " << i;
  }
}

INSTANTIATE_TEST_SUITE_P(Json, CoreCaseTest, ::testing::ValuesIn(AllParams()), ParamName);

TEST(CoreCases, FileLoaded) { EXPECT_GT(Cases().size(), 100u) << "missing " DSC_KERNEL_TEST_DATA "/core_cases.json"; }

}  // namespace
}  // namespace dsc
