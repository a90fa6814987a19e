// Graph invariants checked between passes.
#include "ir/verifier.h"

#include <algorithm>
#include <unordered_map>
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
    // Init-captures: clang 14 does not let a lambda capture a structured binding.
    RETURN_IF_ERROR(CheckUtf8(v, [&key = k] { return StrCat("metadata '", EscapeBytes(key), "'"); }));
  }
  auto opset_it = g.opsets.find("");
  const int64_t opset = opset_it == g.opsets.end() ? 0 : opset_it->second;
  std::unordered_set<const Value*> defined;
  std::unordered_set<std::string> names;
  auto define = [&](const Value* v, const std::string& what) -> Status {
    if (v->name().empty()) return Internal(what, " defines a value with an empty name");
    RETURN_IF_ERROR(CheckUtf8(v->name(), [&] { return StrCat("the name of a value defined by ", what); }));
    if (v->type.shape)
      for (const Dim& d : *v->type.shape)
        RETURN_IF_ERROR(CheckUtf8(d.symbol, [&] { return StrCat("a dim of value '", v->name(), "'"); }));
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
  // Use lists are checked by counting (a scan of each input's uses made values with many users,
  // such as a weight read by every layer, quadratic): every use names a node of this graph whose
  // input holds the value, and a value has as many uses as input slots read it.
  std::unordered_map<const Value*, size_t> input_slots;
  std::unordered_set<const Node*> graph_nodes;
  for (const auto& n : g.nodes()) graph_nodes.insert(n.get());
  for (const auto& n : g.nodes()) {
    if (n->op_type().empty()) return Internal("a node has no op type");
    // Describe() shows the node's name or first output's, so both are checked before it is used.
    RETURN_IF_ERROR(CheckUtf8(n->name(), [&] { return StrCat("the name of a ", EscapeBytes(n->op_type()), " node"); }));
    RETURN_IF_ERROR(CheckUtf8(n->op_type(), "op type"));
    RETURN_IF_ERROR(CheckUtf8(n->domain(), "op domain"));
    for (size_t i = 0; i < n->num_outputs(); ++i)
      RETURN_IF_ERROR(CheckUtf8(n->output(i)->name(), [&] { return StrCat("output ", i, " of a ", n->op_type(), " node"); }));
    const std::string where = n->Describe();
    for (size_t i = 0; i < n->num_inputs(); ++i) {
      const Value* v = n->input(i);
      if (!v) continue;
      if (!defined.count(v))
        return Internal(where, " input ", i, " '", v->name(), "' is not defined before use (not SSA, a cycle, or dangling)");
      ++input_slots[v];
    }
    for (size_t i = 0; i < n->num_outputs(); ++i) {
      const Value* v = n->output(i);
      if (v->producer() != n.get() || v->producer_output() != static_cast<int>(i))
        return Internal(where, " output '", v->name(), "' has a wrong producer link");
      RETURN_IF_ERROR(define(v, where));
      RETURN_IF_ERROR(CheckType(v, opts, where));
    }
    for (const auto& [name, a] : n->attrs()) {
      RETURN_IF_ERROR(CheckUtf8(name, [&] { return StrCat(where, ": attribute name"); }));
      auto attr = [&, &attr_name = name] { return StrCat(where, ": attribute '", attr_name, "'"); };
      if (const auto* str = std::get_if<std::string>(&a)) RETURN_IF_ERROR(CheckUtf8(*str, attr));
      if (const auto* strs = std::get_if<std::vector<std::string>>(&a))
        for (const std::string& x : *strs) RETURN_IF_ERROR(CheckUtf8(x, attr));
    }
    RETURN_IF_ERROR(CheckNode(*n, opset, NodeCheckStage::kShapes));
  }
  for (const Value* v : defined) {
    for (const Use& u : v->uses())
      if (!graph_nodes.count(u.node) || u.node->input(static_cast<size_t>(u.input_index)) != v)
        return Internal("value '", v->name(), "' lists a use (input ", u.input_index, ") by a node that does not read it");
    auto it = input_slots.find(v);
    const size_t slots = it == input_slots.end() ? 0 : it->second;
    if (v->uses().size() != slots)
      return Internal("value '", v->name(), "' is read by ", slots, " node inputs but its use list holds ", v->uses().size());
    if (slots > 1) {  // equal counts of valid uses cover every slot only when no use repeats
      std::vector<std::pair<const Node*, int>> seen;
      for (const Use& u : v->uses()) seen.emplace_back(u.node, u.input_index);
      std::sort(seen.begin(), seen.end());
      if (std::adjacent_find(seen.begin(), seen.end()) != seen.end())
        return Internal("value '", v->name(), "' lists one use twice, so a node input is missing from its use list");
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
