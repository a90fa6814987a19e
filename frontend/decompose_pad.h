// Imports Pad in modes reflect, edge and wrap (F.pad reflect/replicate/circular, Conv padding_mode,
// nn.ReflectionPad*d) as one Gather per padded axis, which trains, runs on CUDA and follows the
// precision policy as Gather does.
//
//   if (IsIndexedPad(n)) RETURN_IF_ERROR(DecomposeIndexedPad(n, opset, types, &nodes));
#pragma once

#include <cstdint>
#include <vector>

#include "frontend/model_types.h"
#include "ir/status.h"
#include "onnx/onnx_pb.h"

namespace dsc {

// A default-domain Pad whose mode is reflect, edge or wrap (constant mode stays a Pad).
bool IsIndexedPad(const onnx::NodeProto& n);

// Appends the nodes replacing Pad `n`: along each padded axis a (of size L, pads b before and e
// after), Y = Gather(X, idx, axis=a). A negative pad crops first, as torch does (numpy.pad, which
// defines the modes, has no negative pads), leaving K = L - max(-b, 0) - max(-e, 0) elements from
// c = max(-b, 0); then for q = -max(b, 0) .. K+max(e, 0)-1, idx = c + s(q) with, as numpy.pad:
//   edge    s = clamp(q, 0, K-1)
//   wrap    s = q mod K
//   reflect s = (K-1) - |(K-1) - (|q| mod max(2(K-1), 1))|   (repeating past the far edge)
// idx is a constant when the pads and L are known here; otherwise it is computed from Shape(X) and
// the pads tensor (the legacy exporter's Reshape/Slice/Transpose chain) with Range arithmetic that
// fold-constants evaluates once shapes are static. Axes whose constant pads are both zero get no
// Gather (fold-constants drops the identity Gathers of computed ones). The pads must be constant or
// computable; an axes input (opset 18) that is not a constant, an input of unknown rank without
// constant pads, or padding an axis with nothing kept is an error naming the node.
Status DecomposeIndexedPad(const onnx::NodeProto& n, int64_t opset, const ModelTypes& types,
                           std::vector<onnx::NodeProto>* out);

}  // namespace dsc
