// Initializer bytes an import maps instead of copying: external-data files (refusing paths that
// leave the model folder) and the raw_data cut out of the model file itself (onnx_wire.h).
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "frontend/onnx_wire.h"
#include "ir/mapped_file.h"
#include "ir/onnx_convert.h"
#include "ir/status.h"
#include "onnx/onnx_pb.h"

namespace dsc {

// The location a held initializer's TensorProto carries instead of its data.
inline constexpr const char* kHeldLocation = "#dscompile.held";

// Maps the files of the external-data initializers not yet in `held` and adds them there; their
// TensorProtos are marked held (data_location EXTERNAL, location kHeldLocation).
Status MapExternalData(onnx::ModelProto* model, const std::string& base_dir, HeldInitializers* held);
// Copies every external-data initializer's bytes into its raw_data (for writing a model whose
// tensors must all be inline).
Status InlineExternalData(onnx::ModelProto* model, const std::string& base_dir);
// Copies each held initializer's bytes into its TensorProto's raw_data.
void InlineHeld(onnx::ModelProto* model, const HeldInitializers& held);
// Adds to `held` the initializers whose raw_data StripInitializerData cut out of `file`, as
// tensors borrowing the file's bytes, and marks them held.
Status HoldCutRawData(onnx::ModelProto* model, const std::vector<RawDataRange>& ranges,
                      const std::shared_ptr<const MappedFile>& file, HeldInitializers* held);

// An initializer's bytes: the held tensor, or the data inline in its TensorProto.
StatusOr<Tensor> InitializerData(const onnx::TensorProto& t, const HeldInitializers& held);
// Adds initializer `name` to `g` with `data` held (the TensorProto carries its type and shape only).
void AddHeldInitializer(onnx::GraphProto* g, const std::string& name, Tensor data, HeldInitializers* held);

}  // namespace dsc
