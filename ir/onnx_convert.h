// Conversion between the IR and ONNX's protobuf ModelProto (the on-disk and checker form).
#pragma once

#include <memory>
#include <string>
#include <unordered_map>

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
// `held`: initializers whose bytes are held already (the frontend's mapped file), by name; their
// TensorProtos carry no data and are not read.
using HeldInitializers = std::unordered_map<std::string, Tensor>;
StatusOr<std::unique_ptr<Graph>> GraphFromOnnx(const onnx::ModelProto& model, const HeldInitializers* held = nullptr);
// The same, dropping each initializer's data from `model` as soon as the graph holds it, so the
// weights of a large model are never held twice.
StatusOr<std::unique_ptr<Graph>> GraphFromOnnxReleasingWeights(onnx::ModelProto* model,
                                                               const HeldInitializers* held = nullptr);
// Exports a model with value_info for every typed intermediate; training metadata goes into
// metadata_props ("dsc.loss", "dsc.parameters").
struct GraphToOnnxOptions {
  // Float initializers of more elements than this go out as typed graph inputs without their data
  // (-1: none do). Shape inference needs only their types, and a model's weights are not copied
  // once more for it; integer tensors, which data propagation reads, always keep their values.
  int64_t weights_as_inputs_above = -1;
};
onnx::ModelProto GraphToOnnx(const Graph& g, const GraphToOnnxOptions& options = {});

}  // namespace dsc
