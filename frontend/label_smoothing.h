// F.cross_entropy's label_smoothing, which the dynamo exporter drops: restored from the node metadata.
//
//   RETURN_IF_ERROR(RestoreLabelSmoothing(&model));   // after the checker, before GraphFromOnnx
#pragma once

#include "ir/status.h"
#include "onnx/onnx_pb.h"

namespace dsc {

// onnxscript's torchlib writes aten.cross_entropy_loss as SoftmaxCrossEntropyLoss and ignores its
// label_smoothing argument, so the file computes the unsmoothed loss. For each SoftmaxCrossEntropyLoss
// whose dynamo metadata ("pkg.torch.onnx.fx_node") records aten.cross_entropy_loss with
// label_smoothing = e != 0, over C classes, rewrites the loss as PyTorch defines it
// (aten/src/ATen/native/LossNLL.cpp, cross_entropy_loss_label_smoothing):
//   (1 - e) * SoftmaxCrossEntropyLoss(X, T[, W]) + e / C * R,
//   S[n, d..] = -sum_c W[c] * LogSoftmax(X, 1)[n, c, d..]   (W = 1 without weights), 0 where T == ignore_index
//   R = S (none), sum S (sum), sum S / sum_{T != ignore_index} W[T] (mean; the count of such T without W).
// A smoothing value outside [0, 1] or one that is not a literal is an error naming the node.
Status RestoreLabelSmoothing(onnx::ModelProto* model);

}  // namespace dsc
