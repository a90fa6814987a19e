// autodiff: appends the backward graph and records where each parameter's gradient is.
//
// Contract: runs on a graph with Graph::training.loss (select-loss) and static shapes on every
// differentiable path (specialize, fold-constants). Seeds d(loss) with 1/gradient_accumulation_steps
// (1 without a config) — the accumulation pass sums micro-step gradients, so the accumulated
// gradient is the batch mean — and by the input dsc::loss_scale when the graph has one (the
// precision pass adds it for fp16 and AMP). It then walks the nodes in reverse topological order and calls the
// gradient builder of every node on a differentiable path from a parameter to the loss
// (passes/autodiff/gradients_*.cc), summing the contributions of values used several times. The
// backward nodes are appended to the same graph, every new value typed; gradients are plain
// values (not graph outputs), named "<value>_grad", listed in Graph::training.gradients parallel
// to the parameters. Nodes without a builder are all listed in one error before anything changes.
// A training-mode Dropout without its mask output gets one (its gradient needs it). A graph that
// already has gradients is left unchanged.
#include <algorithm>
#include <set>
#include <unordered_map>
#include <unordered_set>

#include "frontend/config/ds_config.h"
#include "ir/dsc_ops.h"
#include "ir/shape_inference.h"
#include "passes/autodiff/grad_builder.h"
#include "passes/differentiability.h"
#include "passes/pass.h"

namespace dsc {
namespace {

using autodiff::GradBuilder;
using autodiff::GradientRegistry;

bool HasStaticShape(const Value* v) { return v->type.shape && IsStatic(*v->type.shape); }

// Values on a differentiable path from a parameter to the loss.
std::unordered_set<const Value*> ActiveValues(const Graph& g, const Value* loss) {
  std::unordered_set<const Value*> forward;
  for (const std::string& p : g.training.parameters) forward.insert(g.FindValue(p));
  for (const auto& n : g.nodes()) {
    bool reached = false;
    for (size_t i = 0; i < n->num_inputs(); ++i)
      if (n->input(i) && IsDifferentiableInput(*n, i) && forward.count(n->input(i))) reached = true;
    if (!reached) continue;
    for (size_t o = 0; o < n->num_outputs(); ++o)
      if (IsDifferentiableOutput(*n, o)) forward.insert(n->output(o));
  }
  std::unordered_set<const Value*> backward{loss};
  for (auto it = g.nodes().rbegin(); it != g.nodes().rend(); ++it) {
    const Node& n = **it;
    bool reached = false;
    for (size_t o = 0; o < n.num_outputs(); ++o)
      if (IsDifferentiableOutput(n, o) && backward.count(n.output(o))) reached = true;
    if (!reached) continue;
    for (size_t i = 0; i < n.num_inputs(); ++i)
      if (n.input(i) && IsDifferentiableInput(n, i)) backward.insert(n.input(i));
  }
  std::unordered_set<const Value*> active;
  for (const Value* v : forward)
    if (backward.count(v)) active.insert(v);
  return active;
}

// A node's view of the active set: which inputs need a gradient, whether any output carries one.
struct NodeRole {
  std::vector<bool> needs;
  bool on_path = false;
};

NodeRole RoleOf(const Node& n, const std::unordered_set<const Value*>& active) {
  NodeRole r;
  bool any_in = false, any_out = false;
  for (size_t i = 0; i < n.num_inputs(); ++i) {
    bool need = n.input(i) && IsDifferentiableInput(n, i) && active.count(n.input(i));
    r.needs.push_back(need);
    any_in |= need;
  }
  for (size_t o = 0; o < n.num_outputs(); ++o)
    any_out |= IsDifferentiableOutput(n, o) && active.count(n.output(o));
  r.on_path = any_in && any_out;
  return r;
}

class AutodiffPass : public GraphPass {
 public:
  const char* name() const override { return "autodiff"; }

  StatusOr<bool> RunOnGraph(Graph& g, const PassContext& ctx) override {
    if (g.training.loss.empty())
      return FailedPrecondition("autodiff: the graph has no loss (Graph::training.loss): run select-loss first");
    if (!g.training.gradients.empty()) return false;  // already differentiated
    Value* loss = g.FindValue(g.training.loss);
    if (!loss || !IsFloat(loss->type.dtype) || !HasStaticShape(loss))
      return FailedPrecondition("autodiff: the loss '", g.training.loss, "' is not a float value with a static shape");
    int64_t accumulation = ctx.config ? std::max<int64_t>(1, ctx.config->gradient_accumulation_steps) : 1;

    auto active = ActiveValues(g, loss);
    RETURN_IF_ERROR(CheckBeforeRewrite(g, active));
    RETURN_IF_ERROR(AddDropoutMasks(g, active));

    // Expected gradient contributions per value, so a value's gradient is summed exactly once,
    // when all its consumers (later in topological order) have been differentiated.
    std::vector<Node*> forward;
    for (const auto& n : g.nodes()) forward.push_back(n.get());
    std::unordered_map<const Value*, int> expected;
    for (Node* n : forward) {
      NodeRole role = RoleOf(*n, active);
      if (!role.on_path) continue;
      for (size_t i = 0; i < n->num_inputs(); ++i)
        if (role.needs[i]) ++expected[n->input(i)];
    }

    Tensor seed(loss->type.dtype, GradBuilder::Dims(loss));
    for (int64_t i = 0; i < seed.numel(); ++i) seed.SetFromDouble(i, 1.0 / static_cast<double>(accumulation));
    Backward bw{g, expected, {}, {}, {}};
    bw.grads[loss] = g.AddInitializer(g.UniqueName(loss->name() + "_grad"), std::move(seed));
    // Loss scaling (the precision pass added the input): d(loss) = loss_scale / gas, as DeepSpeed
    // multiplies the fp32 loss by the scale before backward.
    if (Value* scale = g.FindValue(ops::kLossScaleInput); scale && scale->is_graph_input()) {
      Node* mul = g.AddNode("Mul", {bw.grads[loss], scale}, {g.UniqueName(loss->name() + "_grad_scaled")});
      mul->output(0)->type = bw.grads[loss]->type;
      bw.grads[loss] = mul->output(0);
    }

    const GradientRegistry& registry = GradientRegistry::Get();
    for (auto it = forward.rbegin(); it != forward.rend(); ++it) {
      Node* n = *it;
      NodeRole role = RoleOf(*n, active);
      if (!role.on_path) continue;
      std::vector<Value*> dys;
      bool any = false;
      for (size_t o = 0; o < n->num_outputs(); ++o) {
        Value* dy = nullptr;
        if (IsDifferentiableOutput(*n, o) && active.count(n->output(o))) {
          ASSIGN_OR_RETURN(dy, bw.GradOf(n->output(o)));
        }
        dys.push_back(dy);
        any |= dy != nullptr;
      }
      if (!any) continue;
      auto mark = std::prev(g.nodes().end());
      GradBuilder builder(g, *n, dys, role.needs);
      RETURN_IF_ERROR(registry.Find(n->domain(), n->op_type())(builder));
      std::unordered_set<const Value*> emitted;
      for (auto m = std::next(mark); m != g.nodes().end(); ++m)
        for (Value* v : (*m)->outputs()) emitted.insert(v);
      for (size_t i = 0; i < n->num_inputs(); ++i) {
        if (!role.needs[i]) continue;
        Value* grad = builder.grads()[i];
        RETURN_IF_ERROR(CheckGradType(*n, i, grad));
        RETURN_IF_ERROR(bw.Contribute(n->input(i), grad, emitted.count(grad) > 0));
      }
    }

    TrainingInfo& t = g.training;
    t.gradients.clear();
    for (const std::string& p : t.parameters) {
      ASSIGN_OR_RETURN(Value* grad, bw.GradOf(g.FindValue(p)));
      t.gradients.push_back(grad->name());
    }
    RETURN_IF_ERROR(CheckTypesAgainstInference(g));
    return true;
  }

 private:
  // Gradient bookkeeping of one run: contributions per value, summed on first request.
  struct Backward {
    Graph& g;
    const std::unordered_map<const Value*, int>& expected;
    std::unordered_map<const Value*, Value*> grads;
    std::unordered_map<const Value*, std::vector<Value*>> parts;
    std::unordered_set<const Value*> renamed;

    Status Contribute(Value* x, Value* grad, bool fresh) {
      auto it = expected.find(x);
      if (it == expected.end()) return Internal("autodiff: unexpected gradient contribution to '", x->name(), "'");
      // A value with one contribution takes the name of the gradient; pass-through values
      // (Identity, Add: the consumer's dY itself) keep theirs.
      if (it->second == 1 && fresh && renamed.insert(grad).second)
        RETURN_IF_ERROR(g.RenameValue(grad, g.UniqueName(x->name() + "_grad")));
      parts[x].push_back(grad);
      return Status::OK();
    }

    StatusOr<Value*> GradOf(Value* v) {
      auto done = grads.find(v);
      if (done != grads.end()) return done->second;
      std::vector<Value*>& p = parts[v];
      auto it = expected.find(v);
      int want = it == expected.end() ? 0 : it->second;
      if (p.empty() || static_cast<int>(p.size()) != want)
        return Internal("autodiff: '", v->name(), "' has ", p.size(), " of ", want, " gradient contributions");
      Value* sum = p[0];
      if (p.size() > 1) {
        Node* n = g.AddNode(p.size() == 2 ? "Add" : "Sum", p, {g.UniqueName(v->name() + "_grad")});
        sum = n->output(0);
        sum->type = v->type;
      }
      grads[v] = sum;
      return sum;
    }
  };

  // Everything that can make the rewrite fail is checked before the graph changes.
  static Status CheckBeforeRewrite(const Graph& g, const std::unordered_set<const Value*>& active) {
    std::string unshaped;
    for (const Value* v : active)
      if (!HasStaticShape(v)) unshaped += StrCat("\n  '", v->name(), "' ", TypeToString(v->type));
    if (!unshaped.empty())
      return FailedPrecondition("autodiff needs static shapes on differentiable paths (run specialize and "
                                "fold-constants first); these are not static:", unshaped);
    const GradientRegistry& registry = GradientRegistry::Get();
    std::string missing;
    int count = 0;
    for (const auto& n : g.nodes()) {
      NodeRole role = RoleOf(*n, active);
      if (!role.on_path) continue;
      if (registry.Find(n->domain(), n->op_type())) continue;
      for (size_t i = 0; i < n->num_inputs(); ++i)
        if (role.needs[i]) {
          ++count;
          missing += StrCat("\n  ", n->domain().empty() ? "" : n->domain() + ".", n->op_type(), ": node '",
                            n->name(), "', input ", i, " '", n->input(i)->name(), "'");
        }
    }
    if (count)
      return Unimplemented("gradient coverage: no gradient builder for: ", count, " differentiable input(s)", missing);
    std::string unreached;
    for (const std::string& p : g.training.parameters) {
      const Value* v = g.FindValue(p);
      if (!v) return FailedPrecondition("autodiff: parameter '", p, "' is not a value of the graph");
      if (!active.count(v)) unreached += StrCat(" '", p, "'");
    }
    if (!unreached.empty())
      return FailedPrecondition("autodiff: parameters without a differentiable path to the loss '", g.training.loss,
                                "' (re-run select-loss):", unreached);
    for (const auto& n : g.nodes())
      if (n->op_type() == "Dropout" && n->domain().empty() && RoleOf(*n, active).on_path) {
        ASSIGN_OR_RETURN(bool training, autodiff::DropoutIsTraining(*n));
        (void)training;
      }
    return Status::OK();
  }

  // Training-mode Dropout: its gradient reuses the forward's mask, so the mask output must exist.
  static Status AddDropoutMasks(Graph& g, std::unordered_set<const Value*>& active) {
    std::vector<Node*> todo;
    for (const auto& n : g.nodes())
      if (n->op_type() == "Dropout" && n->domain().empty() && n->num_outputs() < 2 && RoleOf(*n, active).on_path &&
          *autodiff::DropoutIsTraining(*n))
        todo.push_back(n.get());
    for (Node* old : todo) {
      Value* out = old->output(0);
      std::string name = out->name();
      Node* n = g.AddNode("Dropout", old->inputs(), {g.UniqueName(name + "__masked"), g.UniqueName(name + "_mask")}, "",
                          old->name(), old);
      for (const auto& [k, v] : old->attrs()) n->SetAttr(k, v);
      n->output(0)->type = out->type;
      n->output(1)->type = TensorType{DType::kBool, out->type.shape};
      g.ReplaceAllUsesWith(out, n->output(0));
      active.erase(out);
      RETURN_IF_ERROR(g.RemoveNode(old));
      RETURN_IF_ERROR(g.RenameValue(n->output(0), name));
      active.insert(n->output(0));
    }
    return Status::OK();
  }

  static Status CheckGradType(const Node& n, size_t i, const Value* grad) {
    const Value* x = n.input(i);
    if (!grad) return Internal("autodiff: the gradient builder of ", n.Describe(), " gave no gradient for input ", i);
    if (grad->type.dtype != x->type.dtype || GradBuilder::Dims(grad) != GradBuilder::Dims(x) || !HasStaticShape(grad))
      return Internal("autodiff: the gradient builder of ", n.Describe(), " gave input ", i, " '", x->name(),
                      "' a gradient typed ", TypeToString(grad->type), ", expected ", TypeToString(x->type));
    return Status::OK();
  }

  // The types builders set are checked against ONNX inference (where it knows the op).
  static Status CheckTypesAgainstInference(const Graph& g) {
    ASSIGN_OR_RETURN(auto inferred, InferredTypes(g));
    for (const auto& n : g.nodes())
      for (const Value* v : n->outputs()) {
        auto it = inferred.find(v);
        if (it == inferred.end() || !HasStaticShape(v)) continue;
        if (TypeToString(v->type) != TypeToString(it->second))
          return Internal("autodiff: ", n->Describe(), " output '", v->name(), "' is typed ", TypeToString(v->type),
                          " but ONNX shape inference says ", TypeToString(it->second));
      }
    return Status::OK();
  }
};

}  // namespace

std::unique_ptr<Pass> CreateAutodiffPass() { return std::make_unique<AutodiffPass>(); }

}  // namespace dsc
