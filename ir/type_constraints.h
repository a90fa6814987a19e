// ONNX's type constraints checked node by node, with half precision admitted wherever float is.
#pragma once

#include <functional>

#include "ir/graph.h"
#include "onnx/defs/schema.h"

namespace dsc {

// Whether a formal parameter admitting `admitted` (empty: anything) takes a tensor of `t`, a half
// type standing wherever float is admitted (the rule below).
bool AdmitsDType(const onnx::DataTypeSet& admitted, DType t);

// Checks every node of the default ONNX domain against its schema at the graph's opset, as ONNX's
// shape inference does with check_type: each input and output type is one its formal parameter
// admits, and the values bound to one type parameter share one type. One rule differs: a bfloat16
// or float16 tensor passes where the parameter admits float. PyTorch exports half models with
// Conv, pooling, Dropout, NLL and more in bfloat16 at opsets that admit it only from 22 on (the
// release that added bfloat16 everywhere, nothing else), ONNX Runtime runs them, and every kernel
// here computes each float type. `type_of` gives a value's dtype after inference (kUndefined:
// unknown, not checked). Nodes without a schema (our own domain, unknown ops) are left to the
// supported-op and node checks.
Status CheckTypeConstraints(const Graph& g, const std::function<DType(const Value*)>& type_of);

}  // namespace dsc
