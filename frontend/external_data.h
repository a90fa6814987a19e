// Resolves ONNX external-data tensors into inline raw_data, refusing paths that leave the model folder.
#pragma once

#include <string>

#include "ir/status.h"
#include "onnx/onnx_pb.h"

namespace dsc {

Status LoadExternalData(onnx::ModelProto* model, const std::string& base_dir);

}  // namespace dsc
