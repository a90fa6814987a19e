// Shape ops that torch defines on inputs where ONNX's op refuses them, as the dynamo exporter writes
// them: imported as torch defines them, known by the node metadata.
//
//   RETURN_IF_ERROR(ShapeOpsAsTorchDoes(&model, dims));   // after the checker, before GraphFromOnnx
#pragma once

#include <cstdint>
#include <map>
#include <string>

#include "ir/status.h"
#include "onnx/onnx_pb.h"

namespace dsc {

// onnxscript's torchlib writes these aten calls as the plain ONNX op, which ONNX defines on fewer
// inputs than torch does (shape inference then fails). For each node whose fx node
// (`pkg.torch.onnx.fx_node`) is such a call, with sizes from the file's types and ONNX inference
// (`dims` binding symbolic dims):
//  - torch.squeeze(x, dim) leaves x alone where x.size(dim) != 1 (diffusers' PixArt squeezes its
//    16-wide patch axis): from a Squeeze (opset >= 13, constant axes) of aten.squeeze.dim/dims, the
//    axes whose size is known and not 1 are dropped; it becomes an Identity when none is left. An
//    axis of unknown size stays (ONNX checks it once shapes are known).
//  - torch.cat skips 1-D tensors of size 0 whatever the others' rank (torchaudio's Emformer
//    concatenates torch.empty(0)): from a Concat of aten.cat, the 1-D inputs of known size 0 are
//    dropped when another input's rank is not 1 (an Identity of the one left, if one).
// Files without metadata are left to ONNX's rules.
Status ShapeOpsAsTorchDoes(onnx::ModelProto* model, const std::map<std::string, int64_t>& dims);

}  // namespace dsc
