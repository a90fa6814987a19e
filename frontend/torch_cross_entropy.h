// F.cross_entropy as PyTorch computes it where the dynamo exporter's SoftmaxCrossEntropyLoss does not:
// label smoothing (dropped by the exporter, restored from the node metadata) and probability targets.
//
//   RETURN_IF_ERROR(RestoreCrossEntropy(&model));   // after the checker, before GraphFromOnnx
#pragma once

#include "ir/status.h"
#include "onnx/onnx_pb.h"

namespace dsc {

// Rewrites, in the main graph, each SoftmaxCrossEntropyLoss(X[N, C, d..], T[, W]) that computes
// another function than PyTorch's aten.cross_entropy_loss (aten/src/ATen/native/LossNLL.cpp), with
// L = LogSoftmax(X, axis 1) and W = 1 when absent:
// - label smoothing e != 0, which onnxscript's torchlib ignores, read from the node's dynamo metadata
//   ("pkg.torch.onnx.fx_node": aten.cross_entropy_loss's 6th argument); with class indices T:
//     (1 - e) * SoftmaxCrossEntropyLoss(X, T[, W]) + e / C * R,
//     S[n, d..] = -sum_c W[c] L[n, c, d..], 0 where T == ignore_index,
//     R = S (none), sum S (sum), sum S / sum_{T != ignore_index} W[T] (mean; their count without W);
// - probability targets (float T of X's shape: soft labels, mixup, distillation), which ONNX's op
//   does not define (its labels are indices) although the exporter writes them into it:
//     S[n, d..] = -sum_c W[c] P[n, c, d..] L[n, c, d..],  P = T (1 - e) + e / C,
//     reduced by none / sum / mean over N * d.. (PyTorch's mean ignores W here).
// A smoothing value outside [0, 1] or not a literal is an error naming the node.
Status RestoreCrossEntropy(onnx::ModelProto* model);

}  // namespace dsc
