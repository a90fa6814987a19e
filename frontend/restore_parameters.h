// Undoing what onnxscript's optimizer (torch.onnx.export(dynamo=True)'s default) does to PyTorch
// parameters, read on the ModelProto before it becomes IR so that the parameter list sees the result.
//
//   RETURN_IF_ERROR(RestoreOptimizedParameters(&model, &held));   // before RecordTorchParameters
#pragma once

#include "ir/onnx_convert.h"
#include "ir/status.h"
#include "onnx/onnx_pb.h"

namespace dsc {

// A default dynamo export leaves parameters without an initializer of their own, which select-loss
// would freeze or train several as one. Each is rebuilt from the file's own record (the graph
// signature, every node's fx call, the optimizer's folded_from marks):
//  - Folded transposes: torchlib writes nn.Linear on inputs of rank > 2 as MatMul(x, Transpose(W))
//    and aten.index on a parameter as GatherND(Transpose(W), ...), and the optimizer always folds
//    the Transpose into an initializer (val_N, folded_from [W]). When every read of it is such a
//    call on W, it becomes W in PyTorch's layout and a Transpose; when W is still in the file (a
//    tied embedding table), the copy must hold exactly W transposed.
//  - Merged duplicates: initializers of at most 1024 elements with equal bytes become one (every
//    zero bias and unit LayerNorm weight of a freshly initialised model). Each read of the kept one
//    is paired with the placeholder operand of its fx call it stands for; a read that belongs to a
//    merged-away parameter or buffer gets a copy named after it.
//  - Dropped zero biases: RemoveOptionalBias rules drop an all-zero bias from Conv, ConvTranspose
//    and Gemm; the bias comes back as a zero input.
//  - Folded lookups: nn.Embedding read at constant indices (position ids) folds into initializer
//    "embedding[_N]"; it becomes Gather over the distinct rows it holds.
//  - Folded views and unary chains: a parameter reshaped by calls that keep the element order
//    (view, unsqueeze; GroupNorm's affine) trains as its folded tensor; through exp and neg it is
//    inverted and the ops re-applied.
//  - Folded recurrent weights: nn.LSTM/nn.GRU parameters, reordered and concatenated into ONNX's W,
//    R and B, come back in PyTorch's layout with the Gathers and Concats that rebuild W, R and B.
//  - Constants merged into a parameter (torchlib's unit scale of a LayerNorm without affine weights)
//    read an untrainable copy.
// What cannot be matched stays missing, and select-loss warns.
// Files without torch.export's graph signature are left alone. `held`: the initializers whose bytes
// the import holds; restored tensors are added there.
Status RestoreOptimizedParameters(onnx::ModelProto* model, HeldInitializers* held);

}  // namespace dsc
