// torch.max/min(x, dim) written by the dynamo exporter as ReduceMax/ReduceMin carry their aten call
// in the node metadata; MaxDimAsGatherAtArgMax (frontend/torch_max_dim.cc) imports them as a
// GatherElements at ArgMax/ArgMin, so the gradient reaches the first extreme index only, as in
// torch, while an amax keeps ReduceMax and shares the gradient among ties. The expected gradients
// are torch 2.15's for x = [[0.5, 0.5, -0.2, -0.2], [0.3, 0.9, 0.9, 0.9]]:
//   x.max(1).values.sum()                -> [1, 0, 0, 0,  0, 1, 0, 0]
//   x.min(1, keepdim=True).values.sum()  -> [0, 0, 1, 0,  1, 0, 0, 0]
//   x.amax(1).sum()                      -> [.5, .5, 0, 0,  0, 1/3, 1/3, 1/3]
#include <gtest/gtest.h>

#include <map>
#include <string>
#include <vector>

#include "frontend/onnx_import.h"
#include "onnx/defs/parser.h"
#include "onnx/onnx_pb.h"
#include "passes/pass.h"
#include "runtime/executor.h"

namespace dsc {
namespace {

struct Case {
  const char* what;
  const char* node;    // the reduction, in ONNX text
  const char* target;  // the aten call its metadata records ("" for none)
  std::vector<const char*> ops_after;  // op types the reduction imports as
  std::vector<double> dx;
};

// x:(2,4) -> y = the reduction -> loss = sum(y), the reduction's node carrying `target`'s fx metadata.
onnx::ModelProto Model(const Case& c) {
  const std::string text = std::string(
      "<ir_version: 10, opset_import: [\"\" : 20]>\n"
      "g () => (float loss) <float[2,4] x = {0.5, 0.5, -0.2, -0.2, 0.3, 0.9, 0.9, 0.9}, int64[1] ax = {1}> {\n  ") +
      c.node + "\n  loss = ReduceSum <keepdims = 0> (y)\n}";
  onnx::ModelProto m;
  auto st = onnx::OnnxParser::Parse(m, text.c_str());
  EXPECT_TRUE(st.IsOK()) << st.ErrorMessage();
  if (*c.target) {
    auto* p = m.mutable_graph()->mutable_node(0)->add_metadata_props();
    p->set_key("pkg.torch.onnx.fx_node");
    p->set_value(std::string("%y : [num_users=1] = call_function[target=torch.ops.") + c.target +
                 "](args = (%x, 1), kwargs = {})");
  }
  return m;
}

TEST(MaxDim, GradientReachesTheIndexTorchReturns) {
  const Case cases[] = {
      {"torch.max(x, 1).values", "y = ReduceMax <keepdims = 0> (x, ax)", "aten.max.dim",
       {"ArgMax", "GatherElements", "Squeeze"}, {1, 0, 0, 0, 0, 1, 0, 0}},
      {"torch.min(x, 1, keepdim=True).values", "y = ReduceMin <keepdims = 1> (x, ax)", "aten.min.dim",
       {"ArgMin", "GatherElements"}, {0, 0, 1, 0, 1, 0, 0, 0}},
      {"x.amax(1)", "y = ReduceMax <keepdims = 0> (x, ax)", "aten.amax.default", {"ReduceMax"},
       {0.5, 0.5, 0, 0, 0, 1.0 / 3, 1.0 / 3, 1.0 / 3}},
      // No metadata (stripped, or another exporter): ONNX's ReduceMax, amax.
      {"ReduceMax without metadata", "y = ReduceMax <keepdims = 0> (x, ax)", "", {"ReduceMax"},
       {0.5, 0.5, 0, 0, 0, 1.0 / 3, 1.0 / 3, 1.0 / 3}},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.what);
    StatusOr<std::unique_ptr<Graph>> imported = ImportOnnxBytes(Model(c).SerializeAsString(), "", "max_dim.onnx");
    ASSERT_TRUE(imported.ok()) << imported.status().ToString();
    Graph& g = **imported;
    std::vector<std::string> ops;
    for (const auto& n : g.nodes())
      if (n->op_type() != "Constant" && n->op_type() != "ReduceSum") ops.push_back(n->op_type());
    EXPECT_EQ(ops, std::vector<std::string>(c.ops_after.begin(), c.ops_after.end()));

    g.training.loss = "loss";
    g.training.parameters = {"x"};
    Module m;
    m.programs.push_back(PlanProgram{"main", std::move(*imported)});
    for (PassId id : {PassId::kFoldConstants, PassId::kAutodiff}) {
      StatusOr<bool> ran = CreatePass(id)->Run(m, PassContext{});
      ASSERT_TRUE(ran.ok()) << ran.status().ToString();
    }
    Graph& d = *m.programs[0].graph;
    ASSERT_EQ(d.training.gradients.size(), 1u);
    d.SetOutputs({d.FindValue(d.training.gradients[0])});
    auto out = RunGraphOnCpu(d, {}, RunOptions{});
    ASSERT_TRUE(out.ok()) << out.status().ToString();
    const Tensor& dx = out->at(d.training.gradients[0]);
    ASSERT_EQ(dx.numel(), 8);
    for (int64_t i = 0; i < 8; ++i) EXPECT_NEAR(dx.GetAsDouble(i), c.dx[static_cast<size_t>(i)], 1e-7) << "dx[" << i << "]";
  }
}

}  // namespace
}  // namespace dsc
