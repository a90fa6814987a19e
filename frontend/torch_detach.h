// Tensor.detach() inside the model, which ONNX cannot say: restored from the dynamo exporter's metadata.
//
//   RETURN_IF_ERROR(RestoreDetach(&model));   // after the checker, before GraphFromOnnx
#pragma once

#include "ir/status.h"
#include "ir/torch_parameters.h"
#include "onnx/onnx_pb.h"

namespace dsc {

// A detach() produces no ONNX node: its consumers read the detached value itself, so the file lets
// gradients through where PyTorch stops them (straight-through estimators, stop-gradient targets,
// DETR-style detached reference points). The consumer's fx node (`pkg.torch.onnx.fx_node`) still
// names its argument `%detach` / `%detach_K`. For each node whose fx call reads such a value, the
// inputs its fx arguments do not account for (by name: `%v`, or `%p_v`/`%b_v`/`%c_v` for an
// initializer `v` with dots as underscores), among the values the exporter named after fx nodes,
// graph inputs and initializers, are the detached ones when there are as many of them as distinct
// detach arguments: each is read through ai.dscompile.StopGradient (ir/dsc_ops.h), an Identity that
// autodiff does not differentiate. Where the count differs (a value read both detached and not by
// one node, or a detach the exporter's optimizer merged away) the node is named in a warning under
// kImportWarningsKey instead. The merge is inferred from the file (a reader whose fx value is gone),
// which a merge of plain duplicates also shows: the warning says so. Without the optimizer
// (optimize=False) the exporter keeps each detach as an Identity: it becomes a StopGradient.
Status RestoreDetach(onnx::ModelProto* model);

}  // namespace dsc
