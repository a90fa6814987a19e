// Graph invariants checked between passes.
#include "ir/verifier.h"

#include <unordered_set>

#include "ir/node_checks.h"
#include "ir/utf8.h"

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
  RETURN_IF_ERROR(CheckUtf8(g.name, "the graph name"));
  for (const auto& [k, v] : g.metadata) {
    RETURN_IF_ERROR(CheckUtf8(k, "a metadata key"));
    RETURN_IF_ERROR(CheckUtf8(v, StrCat("metadata '", EscapeBytes(k), "'")));
  }
  auto opset_it = g.opsets.find("");
  const int64_t opset = opset_it == g.opsets.end() ? 0 : opset_it->second;
  std::unordered_set<const Value*> defined;
  std::unordered_set<std::string> names;
  auto define = [&](const Value* v, const std::string& what) -> Status {
    if (v->name().empty()) return Internal(what, " defines a value with an empty name");
    RETURN_IF_ERROR(CheckUtf8(v->name(), StrCat("the name of a value defined by ", what)));
    if (v->type.shape)
      for (const Dim& d : *v->type.shape) RETURN_IF_ERROR(CheckUtf8(d.symbol, StrCat("a dim of value '", v->name(), "'")));
    RETURN_IF_ERROR(CheckValueSize(*v).WithContext(what));
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
    if (n->op_type().empty()) return Internal("a node has no op type");
    // Describe() shows the node's name or first output's, so both are checked before it is used.
    RETURN_IF_ERROR(CheckUtf8(n->name(), StrCat("the name of a ", EscapeBytes(n->op_type()), " node")));
    RETURN_IF_ERROR(CheckUtf8(n->domain() + "." + n->op_type(), "op type"));
    for (size_t i = 0; i < n->num_outputs(); ++i)
      RETURN_IF_ERROR(CheckUtf8(n->output(i)->name(), StrCat("output ", i, " of a ", n->op_type(), " node")));
    const std::string where = n->Describe();
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
    for (const auto& [name, a] : n->attrs()) {
      RETURN_IF_ERROR(CheckUtf8(name, StrCat(where, ": attribute name")));
      if (const auto* str = std::get_if<std::string>(&a)) RETURN_IF_ERROR(CheckUtf8(*str, StrCat(where, ": attribute '", name, "'")));
      if (const auto* strs = std::get_if<std::vector<std::string>>(&a))
        for (const std::string& x : *strs) RETURN_IF_ERROR(CheckUtf8(x, StrCat(where, ": attribute '", name, "'")));
    }
    RETURN_IF_ERROR(CheckNode(*n, opset, NodeCheckStage::kShapes));
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
