// Graph invariants checked between passes.
#include "ir/verifier.h"

#include <unordered_set>

namespace dsc {
namespace {

Status CheckType(const Value* v, const VerifyOptions& opts, const std::string& where) {
  if (opts.require_types && v->type.dtype == DType::kUndefined)
    return Internal(where, ": value '", v->name(), "' has no element type");
  if (opts.require_static_shapes) {
    if (!v->type.shape) return Internal(where, ": value '", v->name(), "' has unknown rank");
    if (!IsStatic(*v->type.shape))
      return Internal(where, ": value '", v->name(), "' has non-static shape ", ShapeToString(*v->type.shape));
  }
  return Status::OK();
}

}  // namespace

Status VerifyGraph(const Graph& g, const VerifyOptions& opts) {
  std::unordered_set<const Value*> defined;
  std::unordered_set<std::string> names;
  auto define = [&](const Value* v, const std::string& what) -> Status {
    if (v->name().empty()) return Internal(what, " defines a value with an empty name");
    if (!names.insert(v->name()).second) return Internal("value '", v->name(), "' is defined twice (", what, ")");
    defined.insert(v);
    return Status::OK();
  };
  for (const Value* v : g.inputs()) {
    if (v->is_initializer()) return Internal("graph input '", v->name(), "' is also an initializer");
    RETURN_IF_ERROR(define(v, "graph input"));
    RETURN_IF_ERROR(CheckType(v, opts, "graph input"));
  }
  for (const Value* v : g.initializers()) {
    RETURN_IF_ERROR(define(v, "initializer"));
    const Tensor& t = v->initializer();
    if (v->type.dtype != t.dtype())
      return Internal("initializer '", v->name(), "' is typed ", DTypeName(v->type.dtype), " but holds ", DTypeName(t.dtype()));
  }
  for (const auto& n : g.nodes()) {
    const std::string where = n->Describe();
    if (n->op_type().empty()) return Internal("a node has no op type");
    for (size_t i = 0; i < n->num_inputs(); ++i) {
      const Value* v = n->input(i);
      if (!v) continue;
      if (!defined.count(v))
        return Internal(where, " input ", i, " '", v->name(), "' is not defined before use (not SSA, a cycle, or dangling)");
      bool found = false;
      for (const Use& u : v->uses())
        if (u.node == n.get() && u.input_index == static_cast<int>(i)) found = true;
      if (!found) return Internal(where, " input ", i, " '", v->name(), "' is missing from its use list");
    }
    for (size_t i = 0; i < n->num_outputs(); ++i) {
      const Value* v = n->output(i);
      if (v->producer() != n.get() || v->producer_output() != static_cast<int>(i))
        return Internal(where, " output '", v->name(), "' has a wrong producer link");
      RETURN_IF_ERROR(define(v, where));
      RETURN_IF_ERROR(CheckType(v, opts, where));
    }
  }
  for (const Value* v : g.outputs())
    if (!defined.count(v)) return Internal("graph output '", v->name(), "' is never defined");
  if (!g.training.loss.empty()) {
    const Value* loss = g.FindValue(g.training.loss);
    bool is_output = loss && loss->is_graph_output();
    if (!is_output) return Internal("the loss '", g.training.loss, "' is not a graph output");
  }
  for (const std::string& p : g.training.parameters) {
    const Value* v = g.FindValue(p);
    if (!v || !v->is_initializer()) return Internal("parameter '", p, "' is not an initializer");
  }
  return Status::OK();
}

}  // namespace dsc
