// Small plans for the plan tests: an MLP with a loss and trainable parameters, and a temp dir.
#pragma once

#include <memory>
#include <string>

#include "backend/plan.h"
#include "tests/testutil/test_util.h"

namespace dsc::testing {

// x[batch,4] -> Gemm(fc1: 8x4 + 8) -> Relu -> Gemm(fc2: 2x8 + 2) -> squared error vs y -> * scale
// -> ReduceMean = loss. Parameters: fc1.weight, fc1.bias, fc2.weight, fc2.bias (58 floats, 232 B).
// Constants: scale (float scalar, 4 B) and pads (int64[3], 24 B); one Constant node.
std::unique_ptr<Graph> MakeMlpGraph();

// A plan with one program "train" holding MakeMlpGraph(), a pipeline and a DeepSpeed-style config.
Plan MakeMlpPlan();

}  // namespace dsc::testing
