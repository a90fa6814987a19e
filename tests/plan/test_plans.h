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

// A micro_step on 2 ranks with four buckets (ir/dsc_ops.h): a reduce-scatter of g1[10], g2[3]
// overlapping a MatMul and a Relu; a float16 all-reduce of g3[5] waited at once; gathers of p1[10],
// p2[3] (chunks c1, c2) and of p3[5] (chunk c3), in flight together, each released after its use.
inline constexpr const char* kBucketedMicroStep = R"(<ir_version: 8, opset_import: ["" : 17, "ai.dscompile" : 1]>
micro_step (float[10] g1, float[3] g2, float16[5] g3, float[4,8] x, float[8,6] w, float[5] c1, float[2] c2, float[3] c3)
    => (float[4,6] r, float[5] s1, float[2] s2, float16[5] a3, float[10] u, float[5] v)
<float[14] B0, float[4,6] y, float16[5] B1, float[14] B2, float[6] B3, float[10] p1, float[3] p2, float[5] p3>
{
  B0 = ai.dscompile.ReduceScatterStart <op = "avg", world = 2, bucket = 0> (g1, g2)
  y = MatMul(x, w)
  r = Relu(y)
  s1, s2 = ai.dscompile.CollectiveWait <kind = "ReduceScatter", bucket = 0, world = 2> (B0)
  B1 = ai.dscompile.AllReduceStart <op = "sum", world = 2, bucket = 1> (g3)
  a3 = ai.dscompile.CollectiveWait <kind = "AllReduce", bucket = 1, world = 2> (B1)
  ["gather2"] B2 = ai.dscompile.AllGatherStart <world = 2, bucket = 2> (c1, c2)
  B3 = ai.dscompile.AllGatherStart <world = 2, bucket = 3> (c3)
  p1, p2 = ai.dscompile.CollectiveWait <kind = "AllGather", bucket = 2, world = 2> (B2)
  u = Add(p1, p1)
  = ai.dscompile.Release(p1, p2)
  p3 = ai.dscompile.CollectiveWait <kind = "AllGather", bucket = 3, world = 2> (B3)
  v = Mul(p3, p3)
  = ai.dscompile.Release(p3)
}
)";

}  // namespace dsc::testing
