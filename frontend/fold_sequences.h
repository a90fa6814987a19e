// Folds ONNX sequence ops away on the ModelProto, before it becomes IR.
//
// The legacy exporter writes torch.split/unbind/chunk as SplitToSequence + SequenceAt, and lists
// as SequenceConstruct + ConcatFromSequence. The IR holds tensors only, and every pass, the shape
// inference and the plan assume so; when a sequence's element count and the positions read are
// static, each sequence is just a list of tensor names, so the rewrite happens here, on the
// protobuf, and sequences never reach the IR. A sequence whose structure depends on run-time
// data (a position computed in the graph, a split of a dynamic dim, a sequence crossing a graph
// input/output or a subgraph) is refused with a message naming the node.
//
//   RETURN_IF_ERROR(FoldSequenceOps(&model));   // after the checker, before GraphFromOnnx
#pragma once

#include "ir/onnx_convert.h"
#include "ir/status.h"
#include "onnx/onnx_pb.h"

namespace dsc {

// Rewrites SequenceConstruct, SequenceEmpty, SequenceInsert, SequenceErase, SequenceAt,
// SequenceLength, SplitToSequence and ConcatFromSequence into Split/Squeeze/Unsqueeze/Concat/
// Identity/Constant nodes. No-op on a model without them.
// `held`: initializers whose bytes the import holds outside the model (ir/onnx_convert.h).
Status FoldSequenceOps(onnx::ModelProto* model, const HeldInitializers* held = nullptr);

}  // namespace dsc
