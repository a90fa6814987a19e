// RMSNormalization, RotaryEmbedding, Attention and their gradient kernels against onnx.reference and
// torch.autograd (data/transformer_cases.json, gen_transformer_cases.py); thread independence; refusals.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "ir/dsc_ops.h"
#include "tests/kernels/nn_cases.h"

namespace dsc {
namespace {

using testing::NnStatic;
using testing::RunNodeOnCpu;

const nlohmann::json& Table() {
  static const nlohmann::json table = testing::ReadCaseTable("transformer_cases.json");
  return table;
}

class TransformerForward : public ::testing::TestWithParam<std::string> {};
TEST_P(TransformerForward, MatchesReference) { testing::RunNnCase(GetParam(), Table()); }
INSTANTIATE_TEST_SUITE_P(Table, TransformerForward, ::testing::ValuesIn(testing::NnCaseNames("", Table())),
                         testing::NnCaseParamName);

class TransformerGrad : public ::testing::TestWithParam<std::string> {};
TEST_P(TransformerGrad, MatchesReference) { testing::RunNnCase(GetParam(), Table()); }
INSTANTIATE_TEST_SUITE_P(Table, TransformerGrad, ::testing::ValuesIn(testing::NnCaseNames(kDscDomain, Table())),
                         testing::NnCaseParamName);

// Shapes big enough for the OpenMP paths: every output bit-identical on 1 and many threads.
TEST(TransformerThreads, AttentionAndGradSameAcrossThreadCounts) {
  Graph g;
  const std::vector<int64_t> qd{2, 4, 64, 32}, kd{2, 2, 64, 32};
  Value* q = g.AddInput("q", NnStatic(DType::kFloat32, qd));
  Value* k = g.AddInput("k", NnStatic(DType::kFloat32, kd));
  Value* v = g.AddInput("v", NnStatic(DType::kFloat32, kd));
  Value* m = g.AddInput("m", NnStatic(DType::kFloat32, {64, 64}));
  Value* dy = g.AddInput("dy", NnStatic(DType::kFloat32, qd));
  Node* fwd = g.AddNode("Attention", {q, k, v, m}, {"y"});
  fwd->SetAttr("is_causal", int64_t{1});
  fwd->output(0)->type = q->type;
  Node* bwd = g.AddNode(ops::kAttentionGrad, {dy, q, k, v, m}, {"dq", "dk", "dv", "dm"}, kDscDomain);
  bwd->SetAttr("is_causal", int64_t{1});
  for (size_t i = 0; i < 4; ++i) bwd->output(i)->type = bwd->input(i + 1)->type;
  Tensor qt = testing::NnRandom(qd, 1), kt = testing::NnRandom(kd, 2), vt = testing::NnRandom(kd, 3);
  Tensor mt = testing::NnRandom({64, 64}, 4), dyt = testing::NnRandom(qd, 5);
  testing::ExpectSameAcrossThreadCounts(*fwd, {&qt, &kt, &vt, &mt});
  testing::ExpectSameAcrossThreadCounts(*bwd, {&dyt, &qt, &kt, &vt, &mt});
}

TEST(TransformerThreads, RmsNormGradSameAcrossThreadCounts) {
  Graph g;
  const std::vector<int64_t> xd{64, 32, 48};
  Value* dy = g.AddInput("dy", NnStatic(DType::kFloat32, xd));
  Value* x = g.AddInput("x", NnStatic(DType::kFloat32, xd));
  Value* s = g.AddInput("s", NnStatic(DType::kFloat32, {48}));
  Node* bwd = g.AddNode(ops::kRMSNormalizationGrad, {dy, x, s}, {"dx", "ds"}, kDscDomain);
  bwd->output(0)->type = x->type;
  bwd->output(1)->type = s->type;
  Tensor dyt = testing::NnRandom(xd, 1), xt = testing::NnRandom(xd, 2), st = testing::NnRandom({48}, 3);
  testing::ExpectSameAcrossThreadCounts(*bwd, {&dyt, &xt, &st});
}

// Kernel creation errors name the node and say what is wrong.
std::string CreateError(Node* n) {
  StatusOr<std::unique_ptr<OpKernel>> k = KernelRegistry::Global().Create(*n, DeviceKind::kCpu);
  return k.ok() ? std::string("created") : k.status().ToString();
}

TEST(TransformerErrors, AttentionRefusesQkMatmulOutput) {
  Graph g;
  Value* q = g.AddInput("q", NnStatic(DType::kFloat32, {1, 2, 3, 4}));
  Node* n = g.AddNode("Attention", {q, q, q}, {"y", "pk", "pv", "qk"}, "", "attn0");
  for (size_t i = 0; i < 4; ++i) n->output(i)->type = q->type;
  std::string e = CreateError(n);
  EXPECT_NE(e.find("attn0"), std::string::npos) << e;
  EXPECT_NE(e.find("qk_matmul_output"), std::string::npos) << e;
}

TEST(TransformerErrors, AttentionMaskMustBroadcast) {
  Graph g;
  Value* q = g.AddInput("q", NnStatic(DType::kFloat32, {1, 2, 3, 4}));
  Value* m = g.AddInput("m", NnStatic(DType::kFloat32, {2, 3, 3}));  // (heads, q, kv): 2 heads fit, 3 keys do
  Value* bad = g.AddInput("bad", NnStatic(DType::kFloat32, {4, 3}));  // 4 query rows for 3 queries
  Node* ok = g.AddNode("Attention", {q, q, q, m}, {"y"}, "", "good");
  ok->output(0)->type = q->type;
  EXPECT_EQ(CreateError(ok), "created");
  Node* n = g.AddNode("Attention", {q, q, q, bad}, {"y2"}, "", "attn1");
  n->output(0)->type = q->type;
  std::string e = CreateError(n);
  EXPECT_NE(e.find("attn1"), std::string::npos) << e;
  EXPECT_NE(e.find("does not broadcast"), std::string::npos) << e;
}

TEST(TransformerErrors, RotaryCachesMustMatchRotaryDim) {
  Graph g;
  Value* x = g.AddInput("x", NnStatic(DType::kFloat32, {1, 2, 3, 8}));
  Value* c = g.AddInput("c", NnStatic(DType::kFloat32, {1, 3, 3}));  // 3 != 8/2
  Node* n = g.AddNode("RotaryEmbedding", {x, c, c}, {"y"}, "", "rope0");
  n->output(0)->type = x->type;
  std::string e = CreateError(n);
  EXPECT_NE(e.find("rope0"), std::string::npos) << e;
  EXPECT_NE(e.find("rotary_embedding_dim/2 = 4"), std::string::npos) << e;
}

}  // namespace
}  // namespace dsc
