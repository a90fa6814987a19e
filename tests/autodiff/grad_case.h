// Gradient-check cases: grad_cases.txt parsed and completed into a forward graph with a scalar
// loss, seeded data and training metadata (shared by the check and the torch-reference export).
#pragma once

#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "ir/graph.h"

namespace dsc {

struct GradCaseText {
  std::string name;
  std::map<std::string, std::string> options;  // h, rtol, atol, range, away, const, torch
  std::string graph;
};

struct GradCase {
  std::unique_ptr<Graph> graph;       // forward + loss; training.loss/parameters set
  std::map<std::string, Tensor> weights;  // output name -> R (loss = sum_k sum(out_k * R_k))
  double h = 1e-2, rtol = 1e-2, atol = 2e-3;
};

std::vector<GradCaseText> LoadGradCaseTexts(const std::string& path);
StatusOr<GradCase> BuildGradCase(const GradCaseText& text);

}  // namespace dsc
