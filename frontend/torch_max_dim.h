// torch.max/min(x, dim), which the dynamo exporter writes as ReduceMax/ReduceMin (torch.amax/amin
// in ONNX's terms), imported with torch.max(dim)'s gradient: restored from the node metadata.
//
//   RETURN_IF_ERROR(MaxDimAsGatherAtArgMax(&model));   // after the checker, before GraphFromOnnx
#pragma once

#include "ir/status.h"
#include "onnx/onnx_pb.h"

namespace dsc {

// ReduceMax's gradient is amax's: tied maxima share it. torch.max(x, dim)'s backward gives all of
// it to the one index it returns, the first. For each ReduceMax/ReduceMin (opset >= 11) whose fx
// node (`pkg.torch.onnx.fx_node`) is aten.max.dim / aten.min.dim with a literal dim, writes the
// values as they are defined there:
//   Y = GatherElements(X, ArgMax(X, dim, keepdims=1), dim)   (then Squeeze(dim) when keepdims = 0)
// (ArgMin for min), so the gradient reaches that index only; the values are the same. amax/amin and
// files without metadata keep ReduceMax/ReduceMin.
Status MaxDimAsGatherAtArgMax(onnx::ModelProto* model);

}  // namespace dsc
