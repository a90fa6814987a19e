// Differentiates an imported graph as dscompile's pipeline does, for the frontend tests that compare
// values and gradients with PyTorch's.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "ir/graph.h"
#include "ir/module.h"
#include "ir/status.h"
#include "passes/pass.h"

namespace dsc::testing {

// The module holding `g` with value "loss" as its loss and `params` trained, after fold-constants
// (an import's Constant nodes become initializers; parameters stay) and autodiff. Its graph's outputs
// become `outputs`, then each parameter's gradient in the order of training.gradients.
inline StatusOr<Module> Differentiate(std::unique_ptr<Graph> g, const std::vector<std::string>& params,
                                      const std::vector<std::string>& outputs) {
  g->training.loss = "loss";
  g->training.parameters = params;
  Module m;
  m.programs.push_back(PlanProgram{"main", std::move(g)});
  for (PassId pass : {PassId::kFoldConstants, PassId::kAutodiff}) {
    StatusOr<bool> ran = CreatePass(pass)->Run(m, PassContext{});
    if (!ran.ok()) return ran.status();
  }
  Graph& dg = *m.programs[0].graph;
  std::vector<Value*> outs;
  for (const std::string& name : outputs) {
    Value* v = dg.FindValue(name);
    if (!v) return InvalidArgument("the differentiated graph has no value '", name, "'");
    outs.push_back(v);
  }
  for (const std::string& grad : dg.training.gradients) outs.push_back(dg.FindValue(grad));
  dg.SetOutputs(outs);
  return m;
}

}  // namespace dsc::testing
