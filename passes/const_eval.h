// Constant evaluator: computes ONNX ops (domain "", each opset form from 13 to the newest, and
// ai.dscompile.StopGradient as Identity) for fold-constants.
//
//   if (CanEvaluate(*node)) {
//     ASSIGN_OR_RETURN(std::vector<Tensor> outs, EvaluateNode(*node, {&shape_tensor, &axes_tensor}));
//   }
//
// Outputs follow the ONNX spec exactly: output dtypes, negative axes, numpy broadcasting, Slice clamping,
// int64 kept exact (never rounded through double). An output of more than kMaxConstEvalElements elements is
// refused with OutOfRange so the folder can keep the node instead of materialising a huge initializer.
#pragma once

#include <cstdint>
#include <vector>

#include "ir/graph.h"
#include "ir/status.h"
#include "ir/tensor.h"

namespace dsc {

// 64 Mi elements: the largest tensor EvaluateNode will materialise.
inline constexpr int64_t kMaxConstEvalElements = int64_t{64} << 20;

// True if EvaluateNode can compute this op (domain "" only, but for StopGradient).
bool CanEvaluate(const Node& node);

// Computes the outputs of `node` from constant inputs (nullptr for omitted optional inputs), one tensor per
// node output. Errors name node.Describe(): InvalidArgument for spec violations (bad axes, broadcast mismatch,
// Reshape count mismatch, index out of range, ...), Unimplemented for ops or attribute forms not supported,
// OutOfRange for outputs over kMaxConstEvalElements or values a conversion cannot represent.
StatusOr<std::vector<Tensor>> EvaluateNode(const Node& node, const std::vector<const Tensor*>& inputs);

}  // namespace dsc
