// The committed reference cases of the optimizer kernel tests (tests/training/gen_*_cases.py) and
// the conversions between their JSON numbers and float32 tensors.
#pragma once

#include <fstream>
#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "ir/tensor.h"

namespace dsc::testing {

// The "cases" array of the JSON file at `path`, read once per path (several test files may share
// one executable).
inline const nlohmann::json& ReferenceCases(const std::string& path) {
  static std::map<std::string, nlohmann::json>* read = new std::map<std::string, nlohmann::json>;
  auto it = read->find(path);
  if (it == read->end()) {
    std::ifstream in(path);
    it = read->emplace(path, nlohmann::json::parse(in).at("cases")).first;
  }
  return it->second;
}

inline Tensor Floats(const std::vector<double>& v) {
  return Tensor::FromVector(DType::kFloat32, {static_cast<int64_t>(v.size())}, v);
}
inline std::vector<double> Doubles(const nlohmann::json& values) { return values.get<std::vector<double>>(); }

}  // namespace dsc::testing
