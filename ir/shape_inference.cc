// ONNX shape inference applied to the IR.
#include "ir/shape_inference.h"

#include <unordered_map>

#include "ir/dsc_ops.h"
#include "ir/node_checks.h"
#include "ir/onnx_convert.h"
#include "ir/type_constraints.h"
#include "onnx/defs/schema.h"
#include "onnx/shape_inference/implementation.h"

namespace dsc {
namespace {

// True when `b` tells at least as much as `a` (known rank, more static dims).
bool AtLeastAsSpecific(const TensorType& a, const TensorType& b) {
  if (b.dtype == DType::kUndefined && a.dtype != DType::kUndefined) return false;
  if (!b.shape) return !a.shape;
  if (!a.shape) return true;
  if (a.shape->size() != b.shape->size()) return true;  // inference disagrees: trust it
  for (size_t i = 0; i < a.shape->size(); ++i)
    if ((*a.shape)[i].is_static() && !(*b.shape)[i].is_static()) return false;
  return true;
}

// `fresh` with the symbols of `old` where fresh has only ONNX's placeholder ("unk__N") or no name:
// an exporter's value_info says "6*batch" where ONNX's inference says "unk__3", and passes read the
// batch's place from such names (passes/sample_dropout.h).
TensorType KeepNamedSymbols(const TensorType& old, TensorType fresh) {
  if (!old.shape || !fresh.shape || old.shape->size() != fresh.shape->size()) return fresh;
  for (size_t i = 0; i < fresh.shape->size(); ++i) {
    Dim& f = (*fresh.shape)[i];
    const Dim& o = (*old.shape)[i];
    if (!f.is_static() && !o.is_static() && !o.symbol.empty() && o.symbol.rfind("unk__", 0) != 0 &&
        (f.symbol.empty() || f.symbol.rfind("unk__", 0) == 0))
      f.symbol = o.symbol;
  }
  return fresh;
}

}  // namespace

StatusOr<std::unordered_map<const Value*, TensorType>> InferredTypes(const Graph& g) {
  // ONNX's inference multiplies dims unchecked: shapes that overflow must not reach it.
  for (const Value* v : g.inputs()) RETURN_IF_ERROR(CheckValueSize(*v).WithContext("graph input"));
  // ONNX's data propagation materialises a constant Range's values: its length is checked first
  // (folding can turn a Range's inputs into constants between inferences).
  auto opset = g.opsets.find("");
  for (const auto& n : g.nodes())
    if (n->op_type() == "Range" && n->domain().empty())
      RETURN_IF_ERROR(CheckNode(*n, opset == g.opsets.end() ? 0 : opset->second, NodeCheckStage::kAttributes));
  onnx::ModelProto model = GraphToOnnx(g, GraphToOnnxOptions{/*weights_as_inputs_above=*/1024});
  // Drop the old intermediate types so stale shapes never shadow fresh inference. ONNX knows no
  // types for the outputs of our own ops (ir/dsc_ops.h), so those are kept: inference then goes on
  // past them (the recognize pass puts ai.dscompile.Gelu in forward graphs), and the IR's types of
  // such outputs are what is left after inference anyway. StopGradient is inferred as the Identity it
  // is: the import makes it (frontend/torch_detach.h), before any of its outputs has a type.
  model.mutable_graph()->clear_value_info();
  for (auto& out : *model.mutable_graph()->mutable_output()) out.clear_type();
  for (auto& n : *model.mutable_graph()->mutable_node())
    if (n.domain() == kDscDomain && n.op_type() == ops::kStopGradient) {
      n.set_domain("");
      n.set_op_type("Identity");
    }
  for (const auto& n : g.nodes()) {
    if (n->domain() != kDscDomain || ops::IsStopGradient(*n)) continue;
    for (const Value* v : n->outputs()) {
      if (!v || v->type.dtype == DType::kUndefined) continue;
      onnx::ValueInfoProto* vi = model.mutable_graph()->add_value_info();
      vi->set_name(v->name());
      TypeToOnnx(v->type, vi->mutable_type());
    }
  }
  // Types are checked below by CheckTypeConstraints, which admits the half models ONNX's own check
  // refuses; ONNX runs its inference functions before its type check either way.
  try {
    onnx::ShapeInferenceOptions options(/*check_type=*/false, /*error_mode=*/1, /*data_prop=*/true);
    onnx::shape_inference::InferShapes(model, onnx::OpSchemaRegistry::Instance(), options);
  } catch (const std::exception& e) {
    return InvalidArgument("shape inference failed: ", e.what());
  }
  std::unordered_map<std::string, const onnx::TypeProto*> inferred;
  for (const auto& vi : model.graph().value_info()) inferred[vi.name()] = &vi.type();
  for (const auto& vi : model.graph().output())
    if (vi.has_type()) inferred[vi.name()] = &vi.type();
  RETURN_IF_ERROR(CheckTypeConstraints(g, [&](const Value* v) {
    auto it = inferred.find(v->name());
    if (it == inferred.end() || !it->second->has_tensor_type()) return v->type.dtype;
    StatusOr<DType> d = DTypeFromOnnx(it->second->tensor_type().elem_type());
    return d.ok() && *d != DType::kUndefined ? *d : v->type.dtype;
  }));
  std::unordered_map<const Value*, TensorType> types;
  for (const auto& n : g.nodes()) {
    for (const Value* v : n->outputs()) {
      auto it = inferred.find(v->name());
      if (it == inferred.end()) continue;
      StatusOr<TensorType> t = TypeFromOnnx(*it->second, StrCat("value '", v->name(), "'"));
      if (!t.ok()) return t.status().WithContext(n->Describe());
      if (AtLeastAsSpecific(v->type, *t)) types.emplace(v, KeepNamedSymbols(v->type, *t));
    }
  }
  return types;
}

Status InferShapes(Graph& g) {
  ASSIGN_OR_RETURN(auto types, InferredTypes(g));
  for (auto& [v, t] : types) const_cast<Value*>(v)->type = std::move(t);
  return Status::OK();
}

}  // namespace dsc
