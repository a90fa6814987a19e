// InstanceNormalization, ReduceL2, ReduceL1 and ReduceLogSumExp imported as supported ops
// (frontend/decompose_ops.cc): the imported graph holds none of them and computes the ONNX
// definition (evaluated node by node with the constant evaluator, against loops written out here),
// in both opset forms of the axes.
#include <gtest/gtest.h>

#include <algorithm>
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

// x:(2,3,4); l1 = ReduceL1(x, [1]), lse = ReduceLogSumExp(x, [0, 2]) keepdims, all = over every
// axis; li = ReduceLogSumExp over rows of Log(z) where z's first row is zeros (a group of -inf:
// torch.logsumexp gives -inf there, not NaN); big = over rows of 40 * x, whose exp overflows float
// unless the max is taken out first; ld = over a double input (the decomposition keeps X's dtype);
// at 18+ also noop_with_empty_axes (Y = X).
std::string ReduceModelText(int opset) {
  std::string x = "{";
  for (int i = 0; i < 24; ++i) x += (i ? ", " : "") + std::to_string(3 * std::sin(0.9 * i + 0.3)).substr(0, 8);
  x += "}";
  const bool in = opset >= 18;
  std::string body = in ? "  l1 = ReduceL1 <keepdims = 0> (x, a1)\n  lse = ReduceLogSumExp(x, a02)\n"
                          "  li = ReduceLogSumExp <keepdims = 0> (lz, a1)\n  noop = ReduceLogSumExp <noop_with_empty_axes = 1> (x)\n"
                        : "  l1 = ReduceL1 <keepdims = 0, axes = [1]> (x)\n  lse = ReduceLogSumExp <axes = [0, 2]> (x)\n"
                          "  li = ReduceLogSumExp <keepdims = 0, axes = [1]> (lz)\n  noop = Identity(x)\n";
  return "<ir_version: 8, opset_import: [\"\" : " + std::to_string(opset) +
         "]>\ng () => (float[2,4] l1, float[1,3,1] lse, float[1,1,1] all, float[2] li, float[2,3,4] noop, float[2,4] big, double[1] ld) <float[2,3,4] x = " + x +
         ", double[3] xd = {1.0, 2.0, 3.0}" +
         ", float[1] forty = {40.0}, float[2,2] z = {0, 0, 0.5, 2.0}, int64[1] a1 = {1}, int64[2] a02 = {0, 2}> {\n  lz = Log(z)\n" + body +
         "  all = ReduceLogSumExp(x)\n  x40 = Mul(x, forty)\n  ld = ReduceLogSumExp(xd)\n" +
         (in ? "  big = ReduceLogSumExp <keepdims = 0> (x40, a1)\n" : "  big = ReduceLogSumExp <keepdims = 0, axes = [1]> (x40)\n") + "}";
}

TEST(DecomposeOps, ReduceL1AndLogSumExpFollowTheOnnxDefinition) {
  for (int opset : {17, 18, 20}) {
    SCOPED_TRACE("opset " + std::to_string(opset));
    onnx::ModelProto m;
    auto st = onnx::OnnxParser::Parse(m, ReduceModelText(opset).c_str());
    ASSERT_TRUE(st.IsOK()) << st.ErrorMessage();
    std::vector<float> x(m.graph().initializer(0).float_data().begin(), m.graph().initializer(0).float_data().end());
    ASSERT_EQ(x.size(), 24u);
    StatusOr<std::unique_ptr<Graph>> g = ImportOnnxBytes(m.SerializeAsString(), "", "decompose.onnx");
    ASSERT_TRUE(g.ok()) << g.status().ToString();
    for (const auto& n : (*g)->nodes())
      EXPECT_TRUE(n->op_type() != "ReduceL1" && n->op_type() != "ReduceLogSumExp") << n->Describe();
    std::map<std::string, Tensor> out = Evaluate(**g);
    ASSERT_EQ(out.size(), 7u);
    EXPECT_NEAR(out.at("ld").data<double>()[0], std::log(std::exp(1.0) + std::exp(2.0) + std::exp(3.0)), 1e-12);
    auto at = [&](int i, int j, int k) { return static_cast<double>(x[(i * 3 + j) * 4 + k]); };
    ASSERT_EQ(out.at("l1").dims(), (std::vector<int64_t>{2, 4}));
    for (int i = 0; i < 2; ++i)
      for (int k = 0; k < 4; ++k)
        EXPECT_NEAR(out.at("l1").data<float>()[i * 4 + k], std::fabs(at(i, 0, k)) + std::fabs(at(i, 1, k)) + std::fabs(at(i, 2, k)), 1e-5);
    ASSERT_EQ(out.at("lse").dims(), (std::vector<int64_t>{1, 3, 1}));
    double total = 0;
    for (int j = 0; j < 3; ++j) {
      double s = 0;
      for (int i = 0; i < 2; ++i)
        for (int k = 0; k < 4; ++k) s += std::exp(at(i, j, k));
      total += s;
      EXPECT_NEAR(out.at("lse").data<float>()[j], std::log(s), 1e-5);
    }
    ASSERT_EQ(out.at("all").numel(), 1);
    EXPECT_NEAR(out.at("all").data<float>()[0], std::log(total), 1e-5);
    const float* li = out.at("li").data<float>();
    EXPECT_TRUE(std::isinf(li[0]) && li[0] < 0) << li[0];
    EXPECT_NEAR(li[1], std::log(0.5 + 2.0), 1e-6);
    for (int i = 0; i < 2; ++i)
      for (int k = 0; k < 4; ++k) {
        double mx = -INFINITY, s = 0;
        for (int j = 0; j < 3; ++j) mx = std::max(mx, 40 * at(i, j, k));
        for (int j = 0; j < 3; ++j) s += std::exp(40 * at(i, j, k) - mx);
        EXPECT_NEAR(out.at("big").data<float>()[i * 4 + k], mx + std::log(s), 1e-4 * std::fabs(mx));
      }
    if (opset >= 18)
      for (int i = 0; i < 24; ++i) EXPECT_NEAR(out.at("noop").data<float>()[i], x[i], 1e-6);
  }
}

}  // namespace
}  // namespace dsc
