// Attention's float32 BLAS path (kernels/cpu/attention_blas.h) against the double-precision
// reference kernels it replaces (kernels/cpu/attention.cc): Y and dQ, dK, dV within 1e-5 of the
// reference's largest magnitude, on shapes that span several query blocks, with and without masks,
// causal, grouped-query and 3-D; the same bits on one thread and on many.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "ir/dsc_ops.h"
#include "kernels/cpu/attention_blas.h"
#include "tests/kernels/nn_cases.h"

namespace dsc {
namespace {

using testing::NnRandom;
using testing::NnStatic;
using testing::RunNodeOnCpu;

struct Case {
  std::string name;
  std::vector<int64_t> q, k, v;
  std::vector<int64_t> mask;  // empty: none
  bool bool_mask = false, causal = false;
  int64_t heads = 0, kv_heads = 0;  // 3-D inputs
  float scale = 0;                  // 0: the default 1/sqrt(d)
};

void PrintTo(const Case& c, std::ostream* os) { *os << c.name; }

// max |a - b| over max |b|: the error relative to the output's scale (elements near 0 carry the
// rounding of their larger neighbours' sums).
double RelativeError(const Tensor& a, const Tensor& b) {
  double diff = 0, scale = 0;
  for (int64_t i = 0; i < b.numel(); ++i) {
    diff = std::max(diff, std::fabs(a.GetAsDouble(i) - b.GetAsDouble(i)));
    scale = std::max(scale, std::fabs(b.GetAsDouble(i)));
  }
  return scale == 0 ? diff : diff / scale;
}

class AttentionBlas : public ::testing::TestWithParam<Case> {
 protected:
  void TearDown() override { attn::UseReferenceForTesting(false); }

  // The node's outputs on the reference path and on the BLAS path.
  void Compare(const Node& n, const std::vector<Tensor*>& inputs) {
    attn::UseReferenceForTesting(true);
    StatusOr<std::vector<Tensor>> ref = RunNodeOnCpu(n, inputs);
    attn::UseReferenceForTesting(false);
    StatusOr<std::vector<Tensor>> fast = RunNodeOnCpu(n, inputs);
    ASSERT_TRUE(ref.ok()) << ref.status().ToString();
    ASSERT_TRUE(fast.ok()) << fast.status().ToString();
    for (size_t i = 0; i < ref->size(); ++i) {
      const double err = RelativeError((*fast)[i], (*ref)[i]);
      EXPECT_LE(err, 1e-5) << n.op_type() << " output " << i;
      EXPECT_GT(err, 0.0) << n.op_type() << " output " << i << ": bitwise equal, so not the BLAS path";
    }
    testing::ExpectSameAcrossThreadCounts(n, inputs);
  }
};

TEST_P(AttentionBlas, MatchesDoubleReference) {
  const Case& c = GetParam();
  Graph g;
  Value* q = g.AddInput("q", NnStatic(DType::kFloat32, c.q));
  Value* k = g.AddInput("k", NnStatic(DType::kFloat32, c.k));
  Value* v = g.AddInput("v", NnStatic(DType::kFloat32, c.v));
  std::vector<Value*> in{q, k, v};
  Tensor qt = NnRandom(c.q, 1), kt = NnRandom(c.k, 2), vt = NnRandom(c.v, 3);
  std::vector<Tensor*> tensors{&qt, &kt, &vt};
  Tensor mt;
  if (!c.mask.empty()) {
    in.push_back(g.AddInput("m", NnStatic(c.bool_mask ? DType::kBool : DType::kFloat32, c.mask)));
    mt = NnRandom(c.mask, 4);
    if (c.bool_mask) {  // about a quarter of the keys masked
      Tensor b(DType::kBool, c.mask);
      for (int64_t i = 0; i < b.numel(); ++i) b.SetFromInt(i, mt.data<float>()[i] > -1.0f ? 1 : 0);
      mt = std::move(b);
    }
    tensors.push_back(&mt);
  }
  Node* fwd = g.AddNode("Attention", in, {"y"});
  std::vector<int64_t> yd = c.q;
  yd.back() = c.heads ? c.v.back() / c.kv_heads * c.heads : c.v.back();
  fwd->output(0)->type = NnStatic(DType::kFloat32, yd);
  Value* dy = g.AddInput("dy", NnStatic(DType::kFloat32, yd));
  std::vector<Value*> gin{dy};
  gin.insert(gin.end(), in.begin(), in.end());
  Node* bwd = g.AddNode(ops::kAttentionGrad, gin, {"dq", "dk", "dv"}, kDscDomain);
  for (size_t i = 0; i < 3; ++i) bwd->output(i)->type = in[i]->type;
  for (Node* n : {fwd, bwd}) {
    if (c.causal) n->SetAttr("is_causal", int64_t{1});
    if (c.scale) n->SetAttr("scale", c.scale);
    if (c.heads) {
      n->SetAttr("q_num_heads", c.heads);
      n->SetAttr("kv_num_heads", c.kv_heads);
    }
  }
  Compare(*fwd, tensors);
  Tensor dyt = NnRandom(yd, 5);
  std::vector<Tensor*> gtensors{&dyt};
  gtensors.insert(gtensors.end(), tensors.begin(), tensors.end());
  Compare(*bwd, gtensors);
}

INSTANTIATE_TEST_SUITE_P(
    Shapes, AttentionBlas,
    ::testing::Values(
        Case{"plain", {2, 3, 70, 16}, {2, 3, 70, 16}, {2, 3, 70, 16}},
        Case{"causal_blocks", {2, 2, 150, 8}, {2, 2, 150, 8}, {2, 2, 150, 12}, {}, false, true},
        Case{"causal_float_mask", {2, 2, 80, 8}, {2, 2, 80, 8}, {2, 2, 80, 8}, {2, 1, 1, 80}, false, true},
        Case{"padding_bool_mask_scale", {2, 2, 65, 8}, {2, 2, 90, 8}, {2, 2, 90, 8}, {2, 1, 65, 90}, true, false,
             0, 0, 0.3f},
        Case{"short_mask_gqa", {1, 4, 40, 8}, {1, 2, 50, 8}, {1, 2, 50, 8}, {40, 30}},
        Case{"three_d_gqa_causal", {2, 100, 32}, {2, 100, 16}, {2, 100, 16}, {}, false, true, 4, 2}),
    [](const ::testing::TestParamInfo<Case>& info) { return info.param.name; });

// Softcap, past keys, nonpad_kv_seqlen and a gradient into the mask stay on the reference path.
TEST(AttentionBlasCoverage, SoftcapAndMaskGradientUseTheReference) {
  attn::AttentionSpec sp;
  sp.keys = 4, sp.q.dim = 4, sp.v.dim = 4;
  EXPECT_TRUE(attn::BlasPathCovers(sp, false));
  EXPECT_FALSE(attn::BlasPathCovers(sp, true));
  sp.softcap = 2;
  EXPECT_FALSE(attn::BlasPathCovers(sp, false));
  sp.softcap = 0, sp.past = 2;
  EXPECT_FALSE(attn::BlasPathCovers(sp, false));
  sp.past = 0, sp.has_nonpad = true;
  EXPECT_FALSE(attn::BlasPathCovers(sp, false));
}

}  // namespace
}  // namespace dsc
