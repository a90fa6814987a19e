// Undoing what onnxscript's optimizer (torch.onnx.export(dynamo=True)'s default) does to PyTorch
// parameters, read on the ModelProto before it becomes IR so that the parameter list sees the result.
//
//   RETURN_IF_ERROR(RestoreOptimizedParameters(&model, &held));   // before RecordTorchParameters
#pragma once

#include "ir/onnx_convert.h"
#include "ir/status.h"
#include "onnx/onnx_pb.h"

namespace dsc {

// A default dynamo export leaves parameters without an initializer of their own in two ways that
// would otherwise freeze them or train several as one:
//  - Folded transposes: torchlib writes nn.Linear on inputs of rank > 2 as MatMul(x, Transpose(W)),
//    and the optimizer always folds the Transpose into a new initializer (W^T, named val_N, marked
//    folded_from [W]). Such an initializer, read by one MatMul whose fx node is aten.linear with W as
//    its weight, becomes W again (its own name, PyTorch's layout) and a Transpose node.
//  - Merged duplicates: initializers of at most 1024 elements with equal bytes become one (every
//    zero bias and unit LayerNorm weight of a freshly initialised model). Each use of the kept
//    initializer is matched to the placeholder its fx node names in that position (the node's
//    placeholder operands, in order, against its initializer inputs); a use that belongs to a
//    merged-away parameter or buffer gets a copy named after it. A node whose operands cannot be
//    matched one to one keeps the merged tensor, and the parameter stays missing (select-loss
//    warns).
// Files without torch.export's graph signature are left alone. `held`: the initializers whose bytes
// the import holds; restored tensors are added there.
Status RestoreOptimizedParameters(onnx::ModelProto* model, HeldInitializers* held);

}  // namespace dsc
