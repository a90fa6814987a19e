// Gradient-check cases: grad_cases.txt parsed and completed into a forward graph with a scalar
// loss, seeded data and training metadata (shared by the check and the torch-reference export).
#pragma once

#include <cstdint>
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

// Seeded uniform values for a case's data: splitmix64 over an FNV-1a hash of the key (so a value
// depends on its case and name only, not on the order cases run in).
class CaseRng {
 public:
  explicit CaseRng(const std::string& key) {
    for (unsigned char ch : key) state_ = (state_ ^ ch) * 1099511628211ull;
  }
  double Uniform01() {
    uint64_t z = (state_ += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    z ^= z >> 31;
    return static_cast<double>(z >> 11) * (1.0 / 9007199254740992.0);
  }

 private:
  uint64_t state_ = 1469598103934665603ull;
};

std::vector<GradCaseText> LoadGradCaseTexts(const std::string& path);
StatusOr<GradCase> BuildGradCase(const GradCaseText& text);

}  // namespace dsc
