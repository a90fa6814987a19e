// torch.squeeze(x, dim) on a dim that is not 1, which the dynamo exporter writes as an ONNX Squeeze
// that ONNX refuses: imported as torch defines it (no change to that dim), known by the node metadata.
//
//   RETURN_IF_ERROR(SqueezeAsTorchDoes(&model, dims));   // after the checker, before GraphFromOnnx
#pragma once

#include <cstdint>
#include <map>
#include <string>

#include "ir/status.h"
#include "onnx/onnx_pb.h"

namespace dsc {

// torch.squeeze(x, dim) leaves x unchanged where x.size(dim) != 1 (diffusers' PixArt squeezes its
// patch axis this way), but onnxscript's torchlib writes aten.squeeze.dim / aten.squeeze.dims as a
// plain Squeeze over those axes, which ONNX defines only on axes of size 1 (shape inference fails).
// For each Squeeze (opset >= 13, axes a constant input) whose fx node (`pkg.torch.onnx.fx_node`) is
// such a call, the axes whose size is known and not 1 are dropped: the node squeezes the others, or
// becomes an Identity when none is left. Sizes come from the file's types and ONNX inference, with
// `dims` binding symbolic dims; an axis of unknown size stays (ONNX checks it once shapes are known).
// Files without metadata are left to ONNX's rule.
Status SqueezeAsTorchDoes(onnx::ModelProto* model, const std::map<std::string, int64_t>& dims);

}  // namespace dsc
