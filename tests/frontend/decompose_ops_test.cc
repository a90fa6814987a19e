// Ops imported as supported ones (frontend/decompose_ops.cc). InstanceNormalization, ReduceL2,
// ReduceL1 and ReduceLogSumExp: the imported graph holds none of them and computes the ONNX
// definition (evaluated node by node with the constant evaluator, against loops written out here),
// in both opset forms of the axes. PRelu, DepthToSpace, SpaceToDepth, Pad's indexed modes, DFT (every
// mode, opsets 17 and 20) and Col2Im: forward values and gradients (autodiff of the imported graph,
// run on the CPU) equal PyTorch's (data/decompose_cases.json, gen_decompose_cases.py), x == 0
// included; a dynamic batch keeps its symbol; bad attributes and non-constant shapes are refused
// naming the node.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <string>
#include <vector>

#include <fstream>

#include <nlohmann/json.hpp>

#include "frontend/decompose_ops.h"
#include "frontend/onnx_import.h"
#include "ir/shape_inference.h"
#include "onnx/defs/parser.h"
#include "onnx/onnx_pb.h"
#include "passes/const_eval.h"
#include "passes/pass.h"
#include "runtime/executor.h"
#include "tests/frontend/differentiate.h"

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

// In a half model (GroupNorm of an LLM loaded in bfloat16, wav2vec2's feature encoder) the
// decomposition computes in X's type: its epsilon is a constant of that type, not float.
TEST(DecomposeOps, InstanceNormOfAHalfModelStaysInItsType) {
  for (int to : {10, 16}) {  // float16, bfloat16
    SCOPED_TRACE("to " + std::to_string(to));
    std::string text = ModelText(18);
    const std::string cast = "<to = " + std::to_string(to) + ">";
    text.replace(text.find("  y = InstanceNormalization <epsilon = 0.001> (x, s, b)"),
                 std::string("  y = InstanceNormalization <epsilon = 0.001> (x, s, b)").size(),
                 "  xh = Cast " + cast + " (x)\n  sh = Cast " + cast + " (s)\n  bh = Cast " + cast + " (b)\n" +
                     "  yh = InstanceNormalization <epsilon = 0.001> (xh, sh, bh)\n  y = Cast <to = 1> (yh)");
    onnx::ModelProto m;
    auto st = onnx::OnnxParser::Parse(m, text.c_str());
    ASSERT_TRUE(st.IsOK()) << st.ErrorMessage();
    StatusOr<std::unique_ptr<Graph>> g = ImportOnnxBytes(m.SerializeAsString(), "", "decompose.onnx");
    ASSERT_TRUE(g.ok()) << g.status().ToString();
    std::map<std::string, Tensor> half = Evaluate(**g);
    ASSERT_TRUE(onnx::OnnxParser::Parse(m, ModelText(18).c_str()).IsOK());
    StatusOr<std::unique_ptr<Graph>> f = ImportOnnxBytes(m.SerializeAsString(), "", "decompose.onnx");
    ASSERT_TRUE(f.ok()) << f.status().ToString();
    std::map<std::string, Tensor> full = Evaluate(**f);
    ASSERT_EQ(half.at("y").numel(), 24);
    for (int i = 0; i < 24; ++i)
      EXPECT_NEAR(half.at("y").GetAsDouble(i), full.at("y").GetAsDouble(i), 4e-2 * (1 + std::fabs(full.at("y").GetAsDouble(i))));
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
    if (opset >= 18) {
      for (int i = 0; i < 24; ++i) EXPECT_NEAR(out.at("noop").data<float>()[i], x[i], 1e-6);
    }
  }
}

StatusOr<std::unique_ptr<Graph>> ImportText(const std::string& text) {
  onnx::ModelProto m;
  auto st = onnx::OnnxParser::Parse(m, text.c_str());
  if (!st.IsOK()) return InvalidArgument(st.ErrorMessage());
  return ImportOnnxBytes(m.SerializeAsString(), "", "decompose.onnx");
}

// PRelu, the pixel shuffles, Pad's reflect/edge/wrap modes (decompose_pad.h), DFT and Col2Im against
// PyTorch, or numpy.pad's index map where torch has no such pad (see gen_decompose_cases.py).
TEST(DecomposeOps, PReluPixelShuffleDftFoldAndPadModesFollowPyTorchForwardAndBackward) {
  std::ifstream in(DSC_FRONTEND_DATA_DIR "/decompose_cases.json");
  ASSERT_TRUE(in) << "missing data/decompose_cases.json";
  const nlohmann::json cases = nlohmann::json::parse(in).at("cases");
  ASSERT_EQ(cases.size(), 28u);
  for (const auto& c : cases) {
    SCOPED_TRACE(c.at("name").get<std::string>());
    StatusOr<std::unique_ptr<Graph>> imported = ImportText(c.at("model").get<std::string>());
    ASSERT_TRUE(imported.ok()) << imported.status().ToString();
    Graph& g = **imported;
    for (const auto& n : g.nodes()) {
      EXPECT_EQ(DecomposedOps().count(n->op_type()), 0u) << n->Describe();
      EXPECT_TRUE(n->op_type() != "Pad" || n->GetString("mode", "constant") == "constant") << n->Describe();
    }
    // loss = sum(y * R); every initializer trains.
    Value* y = g.FindValue("y");
    ASSERT_NE(y, nullptr);
    const std::vector<float> r = c.at("R").get<std::vector<float>>();
    Tensor rt(DType::kFloat32, {static_cast<int64_t>(r.size())});
    std::copy(r.begin(), r.end(), rt.data<float>());
    Value* flat = g.AddNode("Reshape", {y, g.AddInitializer("flat_shape", Tensor::FromVector<int64_t>(DType::kInt64, {1}, {-1}))}, {"y_flat"})->output(0);
    Node* sum = g.AddNode("ReduceSum", {g.AddNode("Mul", {flat, g.AddInitializer("R", rt)}, {"yR"})->output(0)}, {"loss"});
    sum->SetAttr("keepdims", int64_t{0});
    g.SetOutputs({sum->output(0)});
    Status inferred = InferShapes(g);
    ASSERT_TRUE(inferred.ok()) << inferred.ToString();
    std::vector<std::string> params;
    for (const auto& [name, _] : c.at("grads").items()) params.push_back(name);
    StatusOr<Module> m = testing::Differentiate(std::move(*imported), params, {"y"});
    ASSERT_TRUE(m.ok()) << m.status().ToString();
    Graph& dg = *m->programs[0].graph;
    StatusOr<std::map<std::string, Tensor>> got = RunGraphOnCpu(dg, {}, RunOptions{});
    ASSERT_TRUE(got.ok()) << got.status().ToString();
    auto expect_near = [](const Tensor& t, const std::vector<float>& want, const std::string& what) {
      ASSERT_EQ(t.numel(), static_cast<int64_t>(want.size())) << what;
      for (size_t i = 0; i < want.size(); ++i)
        EXPECT_NEAR(t.data<float>()[i], want[i], 1e-6 + 1e-5 * std::fabs(want[i])) << what << "[" << i << "]";
    };
    expect_near(got->at("y"), c.at("y").get<std::vector<float>>(), "y");
    for (size_t k = 0; k < dg.training.parameters.size(); ++k)
      expect_near(got->at(dg.training.gradients[k]),
                  c.at("grads").at(dg.training.parameters[k]).get<std::vector<float>>(), "d" + dg.training.parameters[k]);
  }
}

// nn.PixelShuffle on a dynamic batch: the reshape targets copy N (Reshape's 0), so the batch stays
// symbolic and C, H and W come from the file's types.
TEST(DecomposeOps, DepthToSpaceKeepsADynamicBatch) {
  StatusOr<std::unique_ptr<Graph>> g = ImportText(
      "<ir_version: 10, opset_import: [\"\" : 20]>\ng (float[N,8,3,5] x) => (float[N,2,6,10] y) {\n"
      "  y = DepthToSpace <blocksize = 2, mode = \"CRD\"> (x)\n}");
  ASSERT_TRUE(g.ok()) << g.status().ToString();
  const Value* y = (*g)->FindValue("y");
  ASSERT_TRUE(y && y->type.shape);
  ASSERT_EQ(y->type.shape->size(), 4u);
  EXPECT_FALSE((*y->type.shape)[0].is_static());
  for (const auto& n : (*g)->nodes()) EXPECT_NE(n->op_type(), "Shape") << "targets are constants when C, H, W are known";
}

TEST(DecomposeOps, BadBlockShuffleAttributesNameTheNode) {
  const std::pair<std::string, std::string> cases[] = {
      {"DepthToSpace <blocksize = 2, mode = \"XYZ\"> (x)", "mode \"XYZ\""},
      {"DepthToSpace <blocksize = 0> (x)", "blocksize 0"},
      {"DepthToSpace <blocksize = 3> (x)", "not a multiple of blocksize^2 = 9"},
      {"SpaceToDepth <blocksize = 2> (x)", "height 3 and width 5 must be multiples of blocksize 2"},
  };
  for (const auto& [node, want] : cases) {
    SCOPED_TRACE(node);
    StatusOr<std::unique_ptr<Graph>> g = ImportText(
        "<ir_version: 10, opset_import: [\"\" : 20]>\ng (float[1,8,3,5] x) => (float[1,2,6,10] y) {\n  y = " + node + "\n}");
    ASSERT_FALSE(g.ok());
    EXPECT_NE(g.status().message().find("(" + node.substr(0, node.find(' ')) + ")"), std::string::npos) << g.status().ToString();
    EXPECT_NE(g.status().message().find(want), std::string::npos) << g.status().ToString();
  }
}

// Pads computed in the graph (the legacy exporter's chain) give a Gather on every axis; once they
// fold, the axes padded by zero keep none.
TEST(DecomposeOps, ComputedPadsLeaveGathersOnlyOnPaddedAxes) {
  StatusOr<std::unique_ptr<Graph>> imported = ImportText(
      "<ir_version: 8, opset_import: [\"\" : 17]>\ng (float[2,3,4] x) => (float[2,4,9] y) "
      "<int64[6] pads = {0, 0, 2, 0, 1, 3}, int64[1] two = {2}> {\n"
      "  twice = Add (pads, pads)\n  half = Div (twice, two)\n  y = Pad <mode = \"reflect\"> (x, half)\n}");
  ASSERT_TRUE(imported.ok()) << imported.status().ToString();
  // The Gathers of data (not of the shape or the pads): their axes.
  auto data_gathers = [](const Graph& g) {
    std::vector<int64_t> axes;
    for (const auto& n : g.nodes())
      if (n->op_type() == "Gather" && n->input(0)->type.dtype == DType::kFloat32) axes.push_back(n->GetInt("axis", 0));
    return axes;
  };
  EXPECT_EQ(data_gathers(**imported), (std::vector<int64_t>{0, 1, 2}));
  Module m;
  m.programs.push_back(PlanProgram{"main", std::move(*imported)});
  StatusOr<bool> ran = CreatePass(PassId::kFoldConstants)->Run(m, PassContext{});
  ASSERT_TRUE(ran.ok()) << ran.status().ToString();
  EXPECT_EQ(data_gathers(*m.programs[0].graph), (std::vector<int64_t>{1, 2}));
  const Value* y = m.programs[0].graph->FindValue("y");
  ASSERT_TRUE(y && y->producer());
  EXPECT_EQ(y->producer()->op_type(), "Gather");
}

TEST(DecomposeOps, BadIndexedPadsNameTheNode) {
  const std::pair<std::string, std::string> cases[] = {
      {"(float[2,3] x, int64[1] axes) => (float[2,5] y) <int64[2] pads = {1, 1}> {\n"
       "  y = Pad <mode = \"reflect\"> (x, pads, , axes)\n}",
       "its 'axes' input 'axes' is not a constant"},
      {"(float[2,3] x) => (float[2,5] y) <int64[3] pads = {0, 1, 1}> {\n  y = Pad <mode = \"edge\"> (x, pads)\n}",
       "3 pads for 2 axes"},
      {"(float[2,3] x) => (float[2,1] y) <int64[4] pads = {0, -3, 0, 1}> {\n  y = Pad <mode = \"wrap\"> (x, pads)\n}",
       "keeps no element"},
      {"(float[2,3] x) => (float[2,5] y) <int64[2] pads = {1, 1}, int64[1] axes = {2}> {\n"
       "  y = Pad <mode = \"edge\"> (x, pads, , axes)\n}",
       "axis 2 is out of range"},
  };
  for (const auto& [graph, want] : cases) {
    SCOPED_TRACE(graph);
    StatusOr<std::unique_ptr<Graph>> g = ImportText("<ir_version: 10, opset_import: [\"\" : 19]>\ng " + graph);
    ASSERT_FALSE(g.ok());
    EXPECT_NE(g.status().message().find("(Pad, mode '"), std::string::npos) << g.status().ToString();
    EXPECT_NE(g.status().message().find(want), std::string::npos) << g.status().ToString();
  }
}

// A DFT over a dynamic batch keeps the batch symbolic (Reshape's 0 copies it); what the matrix
// product cannot take is refused naming the node.
TEST(DecomposeOps, DftKeepsADynamicBatchAndNamesWhatItRefuses) {
  StatusOr<std::unique_ptr<Graph>> g = ImportText(
      "<ir_version: 10, opset_import: [\"\" : 20]>\ng (float[N,4,6,1] x) => (float[N,4,4,2] y) {\n"
      "  y = DFT <onesided = 1> (x)\n}");
  ASSERT_TRUE(g.ok()) << g.status().ToString();
  const Value* y = (*g)->FindValue("y");
  ASSERT_TRUE(y && y->type.shape);
  ASSERT_EQ(y->type.shape->size(), 4u);
  EXPECT_FALSE((*y->type.shape)[0].is_static());
  EXPECT_EQ((*y->type.shape)[2].value, 4);
  struct Bad {
    std::string inputs, node, want;
  };
  const Bad cases[] = {
      {"float[2,6,1] x, int64 a", "DFT (x, \"\", a)", "axis 'a' must be a constant"},
      {"float[2,6,1] x, int64 n", "DFT (x, n)", "dft_length 'n' must be a constant"},
      {"float[2,6,3] x", "DFT (x)", "is 3; ONNX needs 1 (real) or 2 (complex)"},
      {"float[2,6,1] x", "DFT <inverse = 2> (x)", "inverse = 2"},
      {"float[2,N,1] x", "DFT (x)", "must be static"},
      {"float[2,8193,2] x", "DFT (x)", "more than the 2^26"},
  };
  for (const Bad& c : cases) {
    SCOPED_TRACE(c.node);
    StatusOr<std::unique_ptr<Graph>> bad = ImportText("<ir_version: 10, opset_import: [\"\" : 20]>\ng (" + c.inputs +
                                                      ") => (float y) {\n  y = " + c.node + "\n}");
    ASSERT_FALSE(bad.ok());
    EXPECT_NE(bad.status().message().find("(DFT)"), std::string::npos) << bad.status().ToString();
    EXPECT_NE(bad.status().message().find(c.want), std::string::npos) << bad.status().ToString();
  }
}

// F.fold on a dynamic batch (VOLO's outlook attention): N stays symbolic.
TEST(DecomposeOps, Col2ImKeepsADynamicBatch) {
  StatusOr<std::unique_ptr<Graph>> g = ImportText(
      "<ir_version: 10, opset_import: [\"\" : 20]>\ng (float[N,27,16] x) => (float[N,3,8,8] y) "
      "<int64[2] image = {8, 8}, int64[2] block = {3, 3}> {\n"
      "  y = Col2Im <strides = [2, 2], pads = [1, 1, 1, 1]> (x, image, block)\n}");
  ASSERT_TRUE(g.ok()) << g.status().ToString();
  const Value* y = (*g)->FindValue("y");
  ASSERT_TRUE(y && y->type.shape);
  ASSERT_EQ(y->type.shape->size(), 4u);
  EXPECT_FALSE((*y->type.shape)[0].is_static());
  for (int i = 1; i < 4; ++i) EXPECT_EQ((*y->type.shape)[i].value, i == 1 ? 3 : 8);
}

TEST(DecomposeOps, BadCol2ImNamesTheNode) {
  const std::pair<std::string, std::string> cases[] = {
      {"y = Col2Im(x, shape, block)", "image_shape ('shape') must be a constant"},
      {"y = Col2Im(x, image, block3)", "must have the same 1 to 3 spatial dims"},
      {"y = Col2Im <strides = [0, 1]> (x, image, block)", "attribute 'strides' [0,1] has 0"},
      {"y = Col2Im <pads = [1, 1]> (x, image, block)", "attribute 'pads' [1,1] needs 4 values"},
      {"y = Col2Im(x, image, big)", "does not fit image dim 0"},
      {"y = Col2Im(x, image, block22)", "needs (N, C * 4, 49)"},
  };
  for (const auto& [node, want] : cases) {
    SCOPED_TRACE(node);
    StatusOr<std::unique_ptr<Graph>> g = ImportText(
        "<ir_version: 10, opset_import: [\"\" : 20]>\ng (float[1,27,36] x, int64[2] shape) => (float[1,3,8,8] y) "
        "<int64[2] image = {8, 8}, int64[2] block = {3, 3}, int64[3] block3 = {3, 3, 1}, int64[2] big = {10, 3}, "
        "int64[2] block22 = {2, 2}> {\n  " + node + "\n}");
    ASSERT_FALSE(g.ok());
    EXPECT_NE(g.status().message().find("(Col2Im)"), std::string::npos) << g.status().ToString();
    EXPECT_NE(g.status().message().find(want), std::string::npos) << g.status().ToString();
  }
}

}  // namespace
}  // namespace dsc
