// Conversion between the IR and ONNX's protobuf ModelProto (the on-disk and checker form).
#pragma once

#include <memory>

#include "ir/graph.h"
#include "onnx/onnx_pb.h"

namespace dsc {

// Tensor data must already be inline (raw_data or typed fields); external data is resolved by
// the frontend before this is called.
// Errors name the tensor as `what` (default: "tensor '<name>'").
StatusOr<Tensor> TensorFromOnnx(const onnx::TensorProto& t, const std::string& what = "");
void TensorToOnnx(const Tensor& t, const std::string& name, onnx::TensorProto* out);

StatusOr<TensorType> TypeFromOnnx(const onnx::TypeProto& t, const std::string& what);
void TypeToOnnx(const TensorType& t, onnx::TypeProto* out);

// Imports a model. Graph inputs that also have an initializer become initializers. Value infos
// (shape inference results) type the intermediate values.
StatusOr<std::unique_ptr<Graph>> GraphFromOnnx(const onnx::ModelProto& model);
// Exports a model with value_info for every typed intermediate; training metadata goes into
// metadata_props ("dsc.loss", "dsc.parameters").
onnx::ModelProto GraphToOnnx(const Graph& g);

}  // namespace dsc
