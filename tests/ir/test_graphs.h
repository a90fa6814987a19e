// Graphs shared by the IR tests: a PyTorch-exported-style MLP built through the Graph API.
#pragma once

#include <memory>
#include <string>

#include "ir/graph.h"

namespace dsc::testing {

// x[batch,4] -> Gemm(fc1) -> Relu -> Gemm(fc2) -> SoftmaxCrossEntropyLoss(y) -> loss, with
// PyTorch-style names ("fc1.weight", "/fc1/Gemm_output_0", "onnx::Relu_3"), typed intermediates,
// a custom-domain op and training metadata.
std::unique_ptr<Graph> MakeMlp();

// Parses `text`, failing the test on error (returns null then).
std::unique_ptr<Graph> ParseOrDie(const std::string& text);

}  // namespace dsc::testing
