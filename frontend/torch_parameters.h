// What PyTorch trains, as recorded in the model file: the export helper's parameter list or
// torch.export's graph signature, normalised into one metadata entry that select-loss reads.
//
//   RETURN_IF_ERROR(RecordTorchParameters(&model));   // before converting ModelProto -> Graph
#pragma once

#include "ir/status.h"
#include "ir/torch_parameters.h"
#include "onnx/onnx_pb.h"

namespace dsc {

// Validates the export helper's entry (kTorchParametersKey) when present: every named initializer
// must exist, once. Otherwise, when torch.export's per-initializer kinds are present (the dynamo
// exporter writes "pkg.torch.export.graph_signature.InputSpec.kind" on value_info), writes the
// entry from them: PARAMETER initializers train; BUFFER and unlabelled ones (scalars the exporter
// lifted, tensors its optimizer folded) do not; parameters of the graph signature with no
// initializer are listed as missing when the exporter's optimizer ran (it merged or folded them),
// else as tied (PyTorch shares one tensor between them, which the exporter writes once). One fold is
// undone: nn.PReLU's weight, reshaped and folded into PRelu's slope initializer, trains as that
// parameter (the PRelu's fx node names it and the initializer's folded_from mark names its target).
Status RecordTorchParameters(onnx::ModelProto* model);

}  // namespace dsc
