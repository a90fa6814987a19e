// The static FLOP table against hand counts, and the profile report's arithmetic.
#include <gtest/gtest.h>

#include "backend/flops.h"
#include "ir/text.h"
#include "runtime/profiler.h"

namespace dsc {
namespace {

// Each case: a one-node graph and its FLOPs counted by hand from the formula in backend/flops.h.
struct FlopCase {
  const char* what;
  const char* graph;
  bool known;
  int64_t flops;
  int64_t bytes;  // read + written
};

std::unique_ptr<Graph> Parse(const char* text) {
  auto g = ParseGraph(text);
  EXPECT_TRUE(g.ok()) << g.status().ToString();
  if (!g.ok()) return nullptr;
  return std::move(*g);  // every value is typed in the signature
}

TEST(StaticFlops, MatchHandCounts) {
  const FlopCase cases[] = {
      // out [2,3,4,6], K = 5: 2*(2*3)*4*6*5
      {"batched MatMul", R"(<ir_version: 8, opset_import: ["" : 17]>
g (float[2,3,4,5] a, float[2,3,5,6] b) => (float[2,3,4,6] y) { y = MatMul(a, b) })",
       true, 2 * 6 * 4 * 6 * 5, 4 * (120 + 180 + 144)},
      // M 8, N 32, K 16, with C: 2*8*32*16 + 8*32
      {"Gemm transB with bias", R"(<ir_version: 8, opset_import: ["" : 17]>
g (float[8,16] a, float[32,16] b, float[32] c) => (float[8,32] y) { y = Gemm <transB = 1> (a, b, c) })",
       true, 2 * 8 * 32 * 16 + 8 * 32, 4 * (128 + 512 + 32 + 256)},
      // transA: A is [K, M] = [16, 8]
      {"Gemm transA", R"(<ir_version: 8, opset_import: ["" : 17]>
g (float[16,8] a, float[16,32] b) => (float[8,32] y) { y = Gemm <transA = 1> (a, b) })",
       true, 2 * 8 * 32 * 16, 4 * (128 + 512 + 256)},
      // out [2,6,8,8] = 768 elements; Cin/groups = 2, 3x3 kernel; + 768 for the bias
      {"grouped Conv with bias", R"(<ir_version: 8, opset_import: ["" : 17]>
g (float[2,4,8,8] x, float[6,2,3,3] w, float[6] b) => (float[2,6,8,8] y) {
  y = Conv <group = 2, pads = [1, 1, 1, 1]> (x, w, b) })",
       true, 2 * 768 * 2 * 9 + 768, 4 * (512 + 108 + 6 + 768)},
      // 3-D: out [2,4,2,4,4] = 256 elements; Cin/groups = 3, 2x3x3 kernel = 18 taps; + 256 for the bias.
      {"Conv3d with bias", R"(<ir_version: 8, opset_import: ["" : 17]>
g (float[2,3,4,8,8] x, float[4,3,2,3,3] w, float[4] b) => (float[2,4,2,4,4] y) {
  y = Conv <strides = [2, 2, 2], pads = [0, 1, 1, 0, 1, 1]> (x, w, b) })",
       true, 2 * 256 * 3 * 18 + 256, 4 * (1536 + 216 + 4 + 256)},
      // dX and dW each the forward's GEMM part over dY's 256 elements; dB one per dY element.
      {"ConvGrad 3-D", R"(<ir_version: 8, opset_import: ["" : 17, "ai.dscompile" : 1]>
g (float[2,4,2,4,4] dy, float[2,3,4,8,8] x, float[4,3,2,3,3] w) => (float[2,3,4,8,8] dx, float[4,3,2,3,3] dw, float[4] db) {
  dx, dw, db = ai.dscompile.ConvGrad <kernel_shape = [2, 3, 3], strides = [2, 2, 2], pads = [0, 1, 1, 0, 1, 1]> (dy, x, w) })",
       true, 2 * (2 * 256 * 3 * 18) + 256, 4 * (256 + 1536 + 216 + 1536 + 216 + 4)},
      // Pools count their input: 1 per X element, whatever the window's rank.
      {"MaxPool 3-D", R"(<ir_version: 8, opset_import: ["" : 17]>
g (float[2,3,4,8,8] x) => (float[2,3,2,4,4] y) { y = MaxPool <kernel_shape = [2, 2, 2], strides = [2, 2, 2]> (x) })",
       true, 1536, 4 * (1536 + 192)},
      // Each of X's 72 elements meets Cout/groups * 4x4 = 48 weights; + 432 output elements for the bias.
      {"grouped ConvTranspose with bias", R"(<ir_version: 8, opset_import: ["" : 17]>
g (float[2,4,3,3] x, float[4,3,4,4] w, float[6] b) => (float[2,6,6,6] y) {
  y = ConvTranspose <group = 2, strides = [2, 2], pads = [1, 1, 1, 1]> (x, w, b) })",
       true, 2 * 72 * 48 + 432, 4 * (72 + 192 + 6 + 432)},
      // dX and dW as the forward's GEMM part each, dB one per dY element.
      {"ConvTransposeGrad", R"(<ir_version: 8, opset_import: ["" : 17, "ai.dscompile" : 1]>
g (float[2,6,6,6] dy, float[2,4,3,3] x, float[4,3,4,4] w) => (float[2,4,3,3] dx, float[4,3,4,4] dw, float[6] db) {
  dx, dw, db = ai.dscompile.ConvTransposeGrad <group = 2, strides = [2, 2], pads = [1, 1, 1, 1]> (dy, x, w) })",
       true, 2 * (2 * 72 * 48) + 432, 4 * (432 + 72 + 192 + 72 + 192 + 6)},
      {"broadcast Add", R"(<ir_version: 8, opset_import: ["" : 17]>
g (float[4,5] a, float[5] b) => (float[4,5] y) { y = Add(a, b) })",
       true, 20, 4 * (20 + 5 + 20)},
      {"ReduceSum counts its input", R"(<ir_version: 8, opset_import: ["" : 17]>
g (float[4,5] a) => (float[4] y) <int64[1] axes = {1}> { y = ReduceSum <keepdims = 0> (a, axes) })",
       true, 20, 4 * 20 + 8 + 4 * 4},
      {"Softmax", R"(<ir_version: 8, opset_import: ["" : 17]>
g (float[3,7] a) => (float[3,7] y) { y = Softmax(a) })",
       true, 21, 4 * 42},
      {"LayerNormalization 5 per element", R"(<ir_version: 8, opset_import: ["" : 17]>
g (float[4,8] x, float[8] s, float[8] b) => (float[4,8] y) { y = LayerNormalization(x, s, b) })",
       true, 5 * 32, 4 * (32 + 8 + 8 + 32)},
      {"Transpose moves data only", R"(<ir_version: 8, opset_import: ["" : 17]>
g (float[4,8] x) => (float[8,4] y) { y = Transpose <perm = [1, 0]> (x) })",
       true, 0, 4 * 64},
      // Q [B=1, H=2, Sq=4, D=8], K/V [1, 2, Sk=6, 8]: 2*64*6 + (64/8)*6 + 2*64*6
      {"Attention", R"(<ir_version: 8, opset_import: ["" : 23]>
g (float[1,2,4,8] q, float[1,2,6,8] k, float[1,2,6,8] v) => (float[1,2,4,8] y) { y = Attention(q, k, v) })",
       true, 2 * 64 * 6 + 8 * 6 + 2 * 64 * 6, 4 * (64 + 96 + 96 + 64)},
      // The fuse pass's MatMul reading A as [K, M] = [2, 3, 5, 4] and B as [N, K] = [2, 3, 6, 5]: K = 5.
      {"FusedMatMul transA transB", R"(<ir_version: 8, opset_import: ["" : 17, "ai.dscompile" : 1]>
g (float[2,3,5,4] a, float[2,3,6,5] b) => (float[2,3,4,6] y) { y = ai.dscompile.FusedMatMul <transA = 1, transB = 1> (a, b) })",
       true, 2 * 6 * 4 * 6 * 5, 4 * (120 + 180 + 144)},
      // In place: reads acc and x, writes acc; 1 FLOP per element added.
      {"Accumulate", R"(<ir_version: 8, opset_import: ["" : 17, "ai.dscompile" : 1]>
g (float[4,5] acc, float[4,5] x) => () { = ai.dscompile.Accumulate(acc, x) })",
       true, 20, 4 * (20 + 20 + 20)},
      // 17 per gradient element; reads param, grad, m, v, lr, step, scale; writes param, m, v.
      {"AdamStep", R"(<ir_version: 8, opset_import: ["" : 17, "ai.dscompile" : 1]>
g (float[6] w, float[6] g, float[6] m, float[6] v, float[] lr, int64[] step, float[] scale) => () {
  = ai.dscompile.AdamStep <adam_w_mode = 1, beta1 = 0.9, beta2 = 0.999, bias_correction = 1, epsilon = 1e-08, weight_decay = 0.01> (w, g, m, v, lr, step, scale) })",
       true, 17 * 6, 4 * (4 * 6) + 4 + 8 + 4 + 4 * (3 * 6)},
      // 2 per element of every input.
      {"SumSquares", R"(<ir_version: 8, opset_import: ["" : 17, "ai.dscompile" : 1]>
g (float[6] a, float[2,3] b) => (float[] y) { y = ai.dscompile.SumSquares(a, b) })",
       true, 2 * 12, 4 * (12 + 1)},
      // Bilinear over H and W (4 taps, 2 FLOPs each) per output element; N and C are not resized.
      {"Resize linear", R"(<ir_version: 8, opset_import: ["" : 17]>
g (float[1,2,3,4] x) => (float[1,2,6,8] y) <float[4] s = {1.0, 1.0, 2.0, 2.0}> { y = Resize <mode = "linear"> (x, , s) })",
       true, 2 * 4 * 96, 4 * (24 + 4 + 96)},
      // The adjoint of a cubic resize along one axis: 4 taps per dY element; nearest picks, 0 FLOPs.
      {"ResizeGrad cubic", R"(<ir_version: 8, opset_import: ["" : 17, "ai.dscompile" : 1]>
g (float[2,6] dy) => (float[2,3] dx) <float[2] s = {1.0, 2.0}> { dx = ai.dscompile.ResizeGrad <mode = "cubic"> (dy, , s) })",
       true, 2 * 4 * 12, 4 * (12 + 2 + 6)},
      {"Resize nearest", R"(<ir_version: 8, opset_import: ["" : 17]>
g (float[1,2,3,4] x) => (float[1,2,6,8] y) <float[4] s = {1.0, 1.0, 2.0, 2.0}> { y = Resize(x, , s) })",
       true, 0, 4 * (24 + 4 + 96)},
      // A router's TopK: 1 compare per input element; reads x and K, writes values and int64 indices.
      {"TopK", R"(<ir_version: 8, opset_import: ["" : 20]>
g (float[6,4] x) => (float[6,2] v, int64[6,2] i) <int64[1] k = {2}> { v, i = TopK(x, k) })",
       true, 24, 4 * 24 + 8 + 4 * 12 + 8 * 12},
      {"an op the table does not list", R"(<ir_version: 8, opset_import: ["" : 17]>
g (float[4,8] x, float[8,4] y) => (float[4,4] z) { z = Einsum <equation = "ij,jk->ik"> (x, y) })",
       false, 0, 4 * (32 + 32 + 16)},
  };
  for (const FlopCase& c : cases) {
    std::unique_ptr<Graph> g = Parse(c.graph);
    ASSERT_TRUE(g) << c.what;
    ASSERT_EQ(g->nodes().size(), 1u) << c.what;
    const NodeCost cost = StaticNodeCost(*g->nodes().front());
    EXPECT_EQ(cost.flops_known, c.known) << c.what;
    EXPECT_EQ(cost.flops, c.flops) << c.what;
    EXPECT_EQ(cost.bytes_read + cost.bytes_written, c.bytes) << c.what;
  }
}

TEST(StaticFlops, EveryRuleIsListed) {
  bool matmul = false, adam = false;
  for (const FlopRule& r : FlopRules()) {
    EXPECT_FALSE(std::string(r.rule).empty()) << r.op;
    matmul |= std::string(r.op) == "MatMul";
    adam |= std::string(r.op) == "AdamStep";
  }
  EXPECT_TRUE(matmul);
  EXPECT_TRUE(adam);
}

// Two programs, hand-made times: totals, percentages, rates and the phase split follow from them.
TEST(ProfileReport, SumsTimesAndRatesByHand) {
  ProfiledProgram micro{"micro_step", {}}, step{"step", {}};
  NodeCost mm{true, 1000000, 100, 50}, add{true, 1000, 10, 5}, unknown{false, 0, 8, 8};
  micro.nodes = {{"mm1", "MatMul", "", mm, Phase::kForward},
                 {"mm2", "MatMul", "", mm, Phase::kBackward},
                 {"add", "Add", "", add, Phase::kForward}};
  step.nodes = {{"upd", "ai.dscompile.Foo", "", unknown, Phase::kStep}};
  // Two steps of two micro-steps each: 4 calls per micro_step node.
  std::vector<std::vector<NodeTime>> times = {{{4, 0.004}, {4, 0.002}, {4, 0.001}}, {{2, 0.003}}};
  nlohmann::json r = ProfileReport({micro, step}, times, 2, 0.011, 2, "test");
  EXPECT_DOUBLE_EQ(r["step_ms"].get<double>(), 5.5);
  EXPECT_DOUBLE_EQ(r["kernel_ms"].get<double>(), 5.0);
  EXPECT_DOUBLE_EQ(r["phases_ms"]["forward"].get<double>(), 2.5);
  EXPECT_DOUBLE_EQ(r["phases_ms"]["backward"].get<double>(), 1.0);
  EXPECT_DOUBLE_EQ(r["phases_ms"]["step"].get<double>(), 1.5);
  const nlohmann::json& p = r["programs"][0];
  EXPECT_EQ(p["flops_per_run"].get<int64_t>(), 2001000);
  EXPECT_DOUBLE_EQ(p["runs_per_step"].get<double>(), 2.0);
  const nlohmann::json& k = p["op_kinds"][0];
  EXPECT_EQ(k["op"], "MatMul");
  EXPECT_EQ(k["nodes"].get<int64_t>(), 2);
  EXPECT_EQ(k["calls"].get<int64_t>(), 8);
  EXPECT_DOUBLE_EQ(k["total_ms"].get<double>(), 6.0);
  EXPECT_NEAR(k["percent"].get<double>(), 600.0 / 7.0, 1e-9);
  EXPECT_NEAR(k["gflops_per_s"].get<double>(), 8e6 / 0.006 / 1e9, 1e-9);  // 8 calls of 1 MFLOP in 6 ms
  EXPECT_EQ(k["bytes"].get<int64_t>(), 300);
  ASSERT_EQ(p["top_nodes"].size(), 2u);  // top_nodes = 2
  EXPECT_EQ(p["top_nodes"][0]["name"], "mm1");
  EXPECT_EQ(p["top_nodes"][1]["phase"], "backward");
  const nlohmann::json& s = r["programs"][1];
  EXPECT_EQ(s["flops_unknown_nodes"].get<int64_t>(), 1);
  EXPECT_TRUE(s["op_kinds"][0]["flops"].is_null());
  EXPECT_TRUE(s["op_kinds"][0]["gflops_per_s"].is_null());
  const std::string text = FormatProfile(r, true);
  EXPECT_NE(text.find("program micro_step"), std::string::npos) << text;
  EXPECT_NE(text.find("top 2 nodes by time"), std::string::npos) << text;
  EXPECT_EQ(FormatProfile(r, false).find("nodes by time"), std::string::npos);
}

}  // namespace
}  // namespace dsc
