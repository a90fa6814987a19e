// InstanceNormalization and ReduceL2 imported as supported ops (frontend/decompose_ops.cc): the
// imported graph holds none of them and computes the ONNX definition (evaluated node by node with
// the constant evaluator, against loops written out here), in both opset forms of the axes.
#include <gtest/gtest.h>

#include <cmath>
#include <map>
#include <string>
#include <vector>

#include "frontend/onnx_import.h"
#include "onnx/defs/parser.h"
#include "onnx/onnx_pb.h"
#include "passes/const_eval.h"

namespace dsc {
namespace {

// x:(2,3,2,2) and s, b:(3) as initializers; y = InstanceNormalization(x), n = ReduceL2(x, axes [1, 3]).
std::string ModelText(int opset) {
  std::string x = "{";
  for (int i = 0; i < 24; ++i) x += (i ? ", " : "") + std::to_string(std::sin(0.7 * i) * (1 + i % 5)).substr(0, 8);
  x += "}";
  const std::string reduce = opset >= 18 ? "n = ReduceL2 <keepdims = 0> (x, axes)"
                                         : "n = ReduceL2 <keepdims = 0, axes = [1, 3]> (x)";
  return "<ir_version: 8, opset_import: [\"\" : " + std::to_string(opset) +
         "]>\ng () => (float[2,3,2,2] y, float[2,2] n) <float[2,3,2,2] x = " + x +
         ", float[3] s = {0.5, -1.0, 2.0}, float[3] b = {0.1, 0.2, -0.3}, int64[2] axes = {1, 3}> {\n"
         "  y = InstanceNormalization <epsilon = 0.001> (x, s, b)\n  " + reduce + "\n}";
}

// Runs every node of the imported graph with the constant evaluator; returns the graph outputs.
std::map<std::string, Tensor> Evaluate(const Graph& g) {
  std::map<const Value*, Tensor> v;
  for (const Value* i : g.initializers()) v[i] = i->initializer();
  for (const auto& n : g.nodes()) {
    EXPECT_TRUE(CanEvaluate(*n)) << n->Describe();
    std::vector<const Tensor*> ins;
    for (size_t k = 0; k < n->num_inputs(); ++k) ins.push_back(n->input(k) ? &v.at(n->input(k)) : nullptr);
    StatusOr<std::vector<Tensor>> outs = EvaluateNode(*n, ins);
    EXPECT_TRUE(outs.ok()) << outs.status().ToString();
    if (!outs.ok()) return {};
    for (size_t k = 0; k < n->num_outputs(); ++k) v[n->output(k)] = (*outs)[k];
  }
  std::map<std::string, Tensor> out;
  for (const Value* o : g.outputs()) out[o->name()] = v.at(o);
  return out;
}

TEST(DecomposeOps, InstanceNormAndReduceL2FollowTheOnnxDefinition) {
  for (int opset : {17, 18, 20}) {
    SCOPED_TRACE("opset " + std::to_string(opset));
    onnx::ModelProto m;
    auto st = onnx::OnnxParser::Parse(m, ModelText(opset).c_str());
    ASSERT_TRUE(st.IsOK()) << st.ErrorMessage();
    std::vector<float> x(m.graph().initializer(0).float_data().begin(), m.graph().initializer(0).float_data().end());
    ASSERT_EQ(x.size(), 24u);
    StatusOr<std::unique_ptr<Graph>> g = ImportOnnxBytes(m.SerializeAsString(), "", "decompose.onnx");
    ASSERT_TRUE(g.ok()) << g.status().ToString();
    for (const auto& n : (*g)->nodes())
      EXPECT_TRUE(n->op_type() != "InstanceNormalization" && n->op_type() != "ReduceL2") << n->Describe();
    std::map<std::string, Tensor> out = Evaluate(**g);
    ASSERT_EQ(out.size(), 2u);
    const float* y = out.at("y").data<float>();
    const float s[3] = {0.5f, -1.0f, 2.0f}, b[3] = {0.1f, 0.2f, -0.3f};
    for (int n = 0; n < 2; ++n)
      for (int c = 0; c < 3; ++c) {
        const float* p = &x[(n * 3 + c) * 4];
        double mean = 0, var = 0;
        for (int i = 0; i < 4; ++i) mean += p[i] / 4.0;
        for (int i = 0; i < 4; ++i) var += (p[i] - mean) * (p[i] - mean) / 4.0;
        for (int i = 0; i < 4; ++i)
          EXPECT_NEAR(y[(n * 3 + c) * 4 + i], s[c] * (p[i] - mean) / std::sqrt(var + 1e-3) + b[c], 1e-5);
      }
    ASSERT_EQ(out.at("n").dims(), (std::vector<int64_t>{2, 2}));
    const float* l2 = out.at("n").data<float>();
    for (int n = 0; n < 2; ++n)
      for (int h = 0; h < 2; ++h) {
        double sum = 0;
        for (int c = 0; c < 3; ++c)
          for (int w = 0; w < 2; ++w) sum += double(x[((n * 3 + c) * 2 + h) * 2 + w]) * x[((n * 3 + c) * 2 + h) * 2 + w];
        EXPECT_NEAR(l2[n * 2 + h], std::sqrt(sum), 1e-5);
      }
  }
}

}  // namespace
}  // namespace dsc
