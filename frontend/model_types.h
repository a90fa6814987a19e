// The types of a ModelProto's values before it becomes IR, for import rewrites that depend on them.
//
//   const ModelTypes types(model, dims);
//   if (types.ElemType(n.input(1)) == onnx::TensorProto::FLOAT) ...
#pragma once

#include <map>
#include <optional>
#include <string>

#include "onnx/defs/schema.h"
#include "onnx/onnx_pb.h"
#include "onnx/shape_inference/implementation.h"

namespace dsc {

// Types from ONNX shape inference with data propagation on a copy of the model (the sequence length
// of an RNN's X often comes out of Shape/Reshape arithmetic or an earlier RNN), with the graph
// inputs' symbolic dims named in `dims` bound. Inference goes on past nodes it cannot type.
class ModelTypes {
 public:
  ModelTypes(const onnx::ModelProto& model, const std::map<std::string, int64_t>& dims) : model_(model) {
    for (auto& in : *model_.mutable_graph()->mutable_input())
      for (auto& d : *in.mutable_type()->mutable_tensor_type()->mutable_shape()->mutable_dim())
        if (auto it = dims.find(d.dim_param()); d.has_dim_param() && it != dims.end()) d.set_dim_value(it->second);
    try {
      onnx::ShapeInferenceOptions options(/*check_type=*/false, /*error_mode=*/0, /*data_prop=*/true);
      onnx::shape_inference::InferShapes(model_, onnx::OpSchemaRegistry::Instance(), options);
    } catch (const std::exception&) {
      // Whatever inference could not type stays unknown and is refused where it is needed.
    }
    const onnx::GraphProto& g = model_.graph();
    for (const auto* list : {&g.input(), &g.value_info(), &g.output()})
      for (const auto& vi : *list)
        if (vi.type().has_tensor_type()) types_[vi.name()] = &vi.type().tensor_type();
    for (const auto& t : g.initializer()) initializers_[t.name()] = &t;
    for (const auto& n : g.node())
      if (n.op_type() == "Constant" && (n.domain().empty() || n.domain() == "ai.onnx") && n.output_size() == 1)
        for (const auto& a : n.attribute())
          if (a.name() == "value" && a.has_t()) constants_[n.output(0)] = &a.t();
  }

  const onnx::TypeProto_Tensor* Find(const std::string& name) const {
    auto it = types_.find(name);
    return it == types_.end() ? nullptr : it->second;
  }
  // The symbol of a dim that is not static ("" when it has none).
  std::string Symbol(const std::string& name, int axis) const {
    const onnx::TypeProto_Tensor* t = Find(name);
    if (!t || !t->has_shape() || axis >= t->shape().dim_size()) return "";
    return t->shape().dim(axis).dim_param();
  }
  std::optional<int64_t> Dim(const std::string& name, int axis) const {
    if (auto it = initializers_.find(name); it != initializers_.end())
      return axis < it->second->dims_size() ? std::optional<int64_t>(it->second->dims(axis)) : std::nullopt;
    const onnx::TypeProto_Tensor* t = Find(name);
    if (!t || !t->has_shape() || axis >= t->shape().dim_size() || !t->shape().dim(axis).has_dim_value())
      return std::nullopt;
    return t->shape().dim(axis).dim_value();
  }
  std::optional<int> Rank(const std::string& name) const {
    if (auto it = initializers_.find(name); it != initializers_.end()) return it->second->dims_size();
    const onnx::TypeProto_Tensor* t = Find(name);
    if (!t || !t->has_shape()) return std::nullopt;
    return t->shape().dim_size();
  }
  int32_t ElemType(const std::string& name) const {
    if (auto it = initializers_.find(name); it != initializers_.end()) return it->second->data_type();
    const onnx::TypeProto_Tensor* t = Find(name);
    return t ? t->elem_type() : 0;
  }
  // The value of an initializer or of a Constant node's output.
  const onnx::TensorProto* Constant(const std::string& name) const {
    if (auto it = initializers_.find(name); it != initializers_.end()) return it->second;
    auto it = constants_.find(name);
    return it == constants_.end() ? nullptr : it->second;
  }

 private:
  onnx::ModelProto model_;
  std::map<std::string, const onnx::TypeProto_Tensor*> types_;
  std::map<std::string, const onnx::TensorProto*> initializers_, constants_;
};

}  // namespace dsc
