// The NN kernel case table (data/nn_cases.json, written by gen_nn_cases.py): one-node graphs run
// through their CPU kernel and compared with torch/numpy. Shared by nn_forward_test and nn_grad_test.
//
//   INSTANTIATE_TEST_SUITE_P(Table, NnCase, ::testing::ValuesIn(dsc::testing::NnCaseNames("")), NnCaseName);
//   TEST_P(NnCase, MatchesReference) { dsc::testing::RunNnCase(GetParam()); }
#pragma once

#include <omp.h>

#include <algorithm>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "tests/kernels/kernel_test_util.h"

namespace dsc::testing {

// A case table under data/ (discarded json when unreadable). Other tables in this format:
// transformer_cases.json (gen_transformer_cases.py).
inline nlohmann::json ReadCaseTable(const std::string& file) {
  std::ifstream in(DSC_KERNEL_TEST_DATA "/" + file);
  return nlohmann::json::parse(in, nullptr, /*allow_exceptions=*/false);
}

inline const nlohmann::json& NnCaseTable() {
  static const nlohmann::json table = ReadCaseTable("nn_cases.json");
  return table;
}

// Names of the cases whose op is in `domain`; a single "table_unreadable" when the file is bad, so
// that shows up as a failing test rather than an empty suite.
inline std::vector<std::string> NnCaseNames(const std::string& domain, const nlohmann::json& t = NnCaseTable()) {
  if (t.is_discarded() || !t.contains("cases")) return {"table_unreadable"};
  std::vector<std::string> names;
  for (const auto& c : t["cases"])
    if (c["domain"] == domain) names.push_back(c["name"]);
  return names;
}

inline Tensor NnTensor(const nlohmann::json& j) {
  DType dtype = DTypeFromName(j["dtype"].get<std::string>()).value();
  std::vector<int64_t> dims = j["dims"].get<std::vector<int64_t>>();
  if (IsFloat(dtype)) return Tensor::FromVector(dtype, dims, j["values"].get<std::vector<double>>());
  return Tensor::FromVector(dtype, dims, j["values"].get<std::vector<int64_t>>());
}

inline AttrValue NnAttr(const nlohmann::json& j) {
  if (j.contains("int")) return j["int"].get<int64_t>();
  if (j.contains("float")) return j["float"].get<float>();
  if (j.contains("string")) return j["string"].get<std::string>();
  if (j.contains("ints")) return j["ints"].get<std::vector<int64_t>>();
  return j["floats"].get<std::vector<float>>();
}

inline TensorType NnType(const nlohmann::json& j) {
  Shape shape;
  for (int64_t d : j["dims"].get<std::vector<int64_t>>()) shape.push_back(Dim::Static(d));
  return TensorType{DTypeFromName(j["dtype"].get<std::string>()).value(), shape};
}

// Builds the case's node (omitted inputs/outputs stay omitted), runs it and checks every present output.
inline void RunNnCase(const std::string& name, const nlohmann::json& table = NnCaseTable()) {
  ASSERT_FALSE(table.is_discarded()) << "cannot read the case table under " DSC_KERNEL_TEST_DATA;
  const nlohmann::json* c = nullptr;
  for (const auto& x : table["cases"])
    if (x["name"] == name) c = &x;
  ASSERT_NE(c, nullptr) << name;

  Graph g;
  std::vector<Value*> ins;
  std::vector<Tensor> tensors;
  const auto& jin = (*c)["inputs"];
  tensors.reserve(jin.size());
  for (size_t i = 0; i < jin.size(); ++i) {
    if (jin[i].is_null()) {
      ins.push_back(nullptr);
      tensors.emplace_back();
      continue;
    }
    tensors.push_back(NnTensor(jin[i]));
    ins.push_back(g.AddInput("in" + std::to_string(i), NnType(jin[i])));
  }
  const auto& jout = (*c)["outputs"];
  std::vector<std::string> out_names;
  for (size_t i = 0; i < jout.size(); ++i)
    out_names.push_back((jout[i].is_null() ? "__omit" : "out") + std::to_string(i));
  Node* n = g.AddNode((*c)["op"].get<std::string>(), ins, out_names, (*c)["domain"].get<std::string>(), name);
  for (const auto& [k, v] : (*c)["attrs"].items()) n->SetAttr(k, NnAttr(v));
  for (size_t i = 0; i < jout.size(); ++i)
    if (!jout[i].is_null()) n->output(i)->type = NnType(jout[i]);

  std::vector<Tensor*> args;
  for (size_t i = 0; i < tensors.size(); ++i) args.push_back(ins[i] ? &tensors[i] : nullptr);
  StatusOr<std::vector<Tensor>> out = RunNodeOnCpu(*n, args);
  ASSERT_TRUE(out.ok()) << out.status().ToString();
  const double rtol = (*c)["rtol"], atol = (*c)["atol"];
  for (size_t i = 0; i < jout.size(); ++i) {
    if (jout[i].is_null()) continue;
    EXPECT_TRUE(AllClose((*out)[i], jout[i]["values"].get<std::vector<double>>(), rtol, atol)) << "output " << i;
  }
}

// Random float inputs (ints stay as given) for shapes large enough to take the kernels' OpenMP paths.
inline Tensor NnRandom(std::vector<int64_t> dims, uint32_t seed) {
  Tensor t(DType::kFloat32, std::move(dims));
  uint32_t s = seed * 2654435761u + 1;
  for (int64_t i = 0; i < t.numel(); ++i) {
    s = s * 1664525u + 1013904223u;
    t.data<float>()[i] = static_cast<float>(s >> 8) / 16777216.0f * 4.0f - 2.0f;
  }
  return t;
}

// The kernel on one thread and on all: every output bit-identical (each output element is computed
// by one thread in a fixed order, so a difference means a race).
inline void ExpectSameAcrossThreadCounts(const Node& node, const std::vector<Tensor*>& inputs) {
  const int threads = omp_get_max_threads();
  omp_set_num_threads(1);
  StatusOr<std::vector<Tensor>> serial = RunNodeOnCpu(node, inputs, 3, 4);
  omp_set_num_threads(std::max(threads, 2));
  StatusOr<std::vector<Tensor>> parallel = RunNodeOnCpu(node, inputs, 3, 4);
  omp_set_num_threads(threads);
  ASSERT_TRUE(serial.ok()) << serial.status().ToString();
  ASSERT_TRUE(parallel.ok()) << parallel.status().ToString();
  for (size_t i = 0; i < serial->size(); ++i) EXPECT_TRUE((*serial)[i].SameContents((*parallel)[i])) << "output " << i;
}

inline TensorType NnStatic(DType t, const std::vector<int64_t>& dims) {
  Shape s;
  for (int64_t d : dims) s.push_back(Dim::Static(d));
  return TensorType{t, s};
}

inline std::string NnCaseParamName(const ::testing::TestParamInfo<std::string>& info) { return info.param; }

}  // namespace dsc::testing
