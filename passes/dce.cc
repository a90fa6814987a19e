// dce: removes nodes whose results nobody uses, and unused initializers.
//
// Contract: nodes with side effects (in-place training ops), graph outputs, graph inputs (the data loader feeds them) and anything they depend on
// stay; nodes are removed in reverse order so chains disappear in one run. Trainable parameters
// that lose their last use are dropped from Graph::training.
#include <algorithm>

#include "ir/dsc_ops.h"
#include "passes/pass.h"

namespace dsc {
namespace {

class DcePass : public GraphPass {
 public:
  const char* name() const override { return "dce"; }

  StatusOr<bool> RunOnGraph(Graph& g, const PassContext&) override {
    bool changed = false;
    std::vector<Node*> order;
    for (const auto& n : g.nodes()) order.push_back(n.get());
    for (auto it = order.rbegin(); it != order.rend(); ++it) {
      Node* n = *it;
      bool dead = !ops::HasSideEffects(n->domain(), n->op_type()) &&
                  std::all_of(n->outputs().begin(), n->outputs().end(),
                              [](const Value* v) { return v->uses().empty() && !v->is_graph_output(); });
      if (!dead) continue;
      RETURN_IF_ERROR(g.RemoveNode(n));
      changed = true;
    }
    for (Value* v : g.initializers()) {
      if (!v->uses().empty() || v->is_graph_output()) continue;
      auto& params = g.training.parameters;
      params.erase(std::remove(params.begin(), params.end(), v->name()), params.end());
      g.RemoveInitializer(v);
      changed = true;
    }
    return changed;
  }
};

}  // namespace

std::unique_ptr<Pass> CreateDcePass() { return std::make_unique<DcePass>(); }

}  // namespace dsc
