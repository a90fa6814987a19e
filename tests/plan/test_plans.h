// Small plans for the plan tests: an MLP with a loss and trainable parameters, and a temp dir.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <string>

#include <nlohmann/json.hpp>
#include "onnx/onnx_pb.h"

#include "backend/plan.h"
#include "tests/testutil/test_util.h"

namespace dsc::testing {

// x[batch,4] -> Gemm(fc1: 8x4 + 8) -> Relu -> Gemm(fc2: 2x8 + 2) -> squared error vs y -> * scale
// -> ReduceMean = loss. Parameters: fc1.weight, fc1.bias, fc2.weight, fc2.bias (58 floats, 232 B).
// Constants: scale (float scalar, 4 B) and pads (int64[3], 24 B); one Constant node.
std::unique_ptr<Graph> MakeMlpGraph();

// A plan with one program "train" holding MakeMlpGraph(), a pipeline and a DeepSpeed-style config.
Plan MakeMlpPlan();

// Re-encodes the plan file `bytes` after `edit` changed its header and/or its programs' ONNX models
// (keyed by program name, "@initial_state" included), with offsets and the checksum recomputed:
// the damaged but checksum-valid plans that only plan verification can catch.
using PlanEdit = std::function<void(nlohmann::json& header, std::map<std::string, onnx::ModelProto>& programs)>;
std::string EditPlanBytes(const std::string& bytes, const PlanEdit& edit);

}  // namespace dsc::testing
