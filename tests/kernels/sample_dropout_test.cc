// SampleDropout: per-sample keep rates, independence between samples, and the same mask for a
// sample wherever the batch split puts it (the property the trajectory invariant rests on).
#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <vector>

#include "ir/dsc_ops.h"
#include "tests/kernels/kernel_test_util.h"

namespace dsc {
namespace {

using testing::RunNodeOnCpu;
using testing::StaticShape;

struct Layout {
  int64_t axis, rows;
};

// The mask of a training-mode SampleDropout over `dims` whose first sample is `first_sample`.
Tensor Mask(const std::vector<int64_t>& dims, Layout layout, int64_t first_sample, float ratio = 0.3f,
            int64_t step = 1, uint64_t seed = 42, const std::string& name = "y") {
  Graph g;
  Value* x = g.AddInput("x", TensorType{DType::kFloat32, StaticShape(dims)});
  Value* r = g.AddInput("ratio", TensorType{DType::kFloat32, StaticShape({})});
  Value* tm = g.AddInput("training_mode", TensorType{DType::kBool, StaticShape({})});
  Node* node = g.AddNode(ops::kSampleDropout, {x, r, tm}, {name, "mask"}, kDscDomain);
  node->SetAttr("batch_axis", layout.axis);
  node->SetAttr("sample_rows", layout.rows);
  node->output(0)->type = x->type;
  node->output(1)->type = TensorType{DType::kBool, StaticShape(dims)};
  Tensor xt(DType::kFloat32, dims);
  for (int64_t i = 0; i < xt.numel(); ++i) xt.SetFromDouble(i, 1.0 + static_cast<double>(i % 5));
  Tensor rt = Tensor::Scalar(DType::kFloat32, ratio);
  Tensor tt = Tensor::FromVector<int64_t>(DType::kBool, {}, {1});
  StatusOr<std::vector<Tensor>> out = RunNodeOnCpu(*node, {&xt, &rt, &tt}, seed, step, nullptr, first_sample);
  EXPECT_TRUE(out.ok()) << out.status().ToString();
  if (!out.ok()) return Tensor(DType::kBool, dims);
  for (int64_t i = 0; i < xt.numel(); ++i) {
    const double want = (*out)[1].GetAsInt(i) ? xt.GetAsDouble(i) / (1.0 - ratio) : 0.0;
    EXPECT_NEAR((*out)[0].GetAsDouble(i), want, 1e-5 * want) << "element " << i;
    if (::testing::Test::HasFailure()) break;
  }
  return (*out)[1];
}

TEST(SampleDropout, EverySampleKeepsOneMinusRatio) {
  const int64_t samples = 64, per = 4000;
  const double keep = 0.7, sigma = std::sqrt(keep * (1 - keep) / per);
  Tensor m = Mask({samples, per}, {0, 1}, 0);
  double chi2 = 0;
  for (int64_t s = 0; s < samples; ++s) {
    int64_t kept = 0;
    for (int64_t j = 0; j < per; ++j) kept += m.GetAsInt(s * per + j);
    const double rate = static_cast<double>(kept) / per;
    EXPECT_NEAR(rate, keep, 5 * sigma) << "sample " << s;
    chi2 += (rate - keep) * (rate - keep) / (sigma * sigma);
  }
  // Per-sample rates spread as independent binomials do: chi-square with 64 degrees of freedom
  // lies in [30, 110] with probability > 0.999.
  EXPECT_GT(chi2, 30.0);
  EXPECT_LT(chi2, 110.0);
}

TEST(SampleDropout, SamplesDrawIndependentMasks) {
  const int64_t samples = 16, per = 4000;
  Tensor m = Mask({samples, per}, {0, 1}, 0);
  // Two independent masks agree on keep^2 + drop^2 = 0.58 of the elements; a shared mask on all.
  for (int64_t a = 0; a < samples; ++a)
    for (int64_t b = a + 1; b < samples; ++b) {
      int64_t same = 0;
      for (int64_t j = 0; j < per; ++j) same += m.GetAsInt(a * per + j) == m.GetAsInt(b * per + j);
      EXPECT_NEAR(static_cast<double>(same) / per, 0.58, 0.04) << "samples " << a << " and " << b;
    }
}

// The batch of 8 samples in one micro-batch and in two of 4: each sample gets the same mask.
void ExpectSplitInvariant(const std::vector<int64_t>& whole, Layout layout) {
  const size_t ax = static_cast<size_t>(layout.axis);
  std::vector<int64_t> half = whole;
  half[ax] /= 2;
  Tensor full = Mask(whole, layout, 0), first = Mask(half, layout, 0), second = Mask(half, layout, 4);
  int64_t outer = 1, inner = 1;
  for (size_t i = 0; i < ax; ++i) outer *= whole[i];
  for (size_t i = ax + 1; i < whole.size(); ++i) inner *= whole[i];
  const int64_t extent = whole[ax], h = half[ax];
  for (int64_t o = 0; o < outer; ++o)
    for (int64_t a = 0; a < extent; ++a)
      for (int64_t e = 0; e < inner; ++e) {
        const Tensor& part = a < h ? first : second;
        const int64_t got = part.GetAsInt((o * h + a % h) * inner + e);
        ASSERT_EQ(got, full.GetAsInt((o * extent + a) * inner + e)) << "index (" << o << ", " << a << ", " << e << ")";
      }
  EXPECT_FALSE(first.SameContents(second)) << "the two halves drew the same masks";
}

TEST(SampleDropout, SampleMaskDoesNotDependOnTheSplit) {
  ExpectSplitInvariant({8, 5, 3}, {0, 1});   // [batch, seq, hidden]
  ExpectSplitInvariant({5, 8, 3}, {1, 1});   // [seq, batch, hidden]
  ExpectSplitInvariant({24, 4}, {0, 3});     // [batch*3, hidden]
}

TEST(SampleDropout, StepSeedAndNodeChangeTheMask) {
  Tensor a = Mask({4, 500}, {0, 1}, 0);
  EXPECT_FALSE(a.SameContents(Mask({4, 500}, {0, 1}, 0, 0.3f, 2)));
  EXPECT_FALSE(a.SameContents(Mask({4, 500}, {0, 1}, 0, 0.3f, 1, 43)));
  EXPECT_FALSE(a.SameContents(Mask({4, 500}, {0, 1}, 0, 0.3f, 1, 42, "other")));
  EXPECT_TRUE(a.SameContents(Mask({4, 500}, {0, 1}, 0)));
}

TEST(SampleDropout, WithoutBatchAxisTheMaskIgnoresThePosition) {
  EXPECT_TRUE(Mask({6, 50}, {-1, 1}, 0).SameContents(Mask({6, 50}, {-1, 1}, 12)));
}

TEST(SampleDropout, RefusesALayoutOutsideTheData) {
  for (Layout bad : {Layout{2, 1}, Layout{-2, 1}, Layout{0, 4}, Layout{0, 0}}) {
    Graph g;
    Value* x = g.AddInput("x", TensorType{DType::kFloat32, StaticShape({6, 5})});
    Node* node = g.AddNode(ops::kSampleDropout, {x}, {"y"}, kDscDomain);
    node->SetAttr("batch_axis", bad.axis);
    node->SetAttr("sample_rows", bad.rows);
    node->output(0)->type = x->type;
    Tensor xt(DType::kFloat32, {6, 5});
    StatusOr<std::vector<Tensor>> out = RunNodeOnCpu(*node, {&xt});
    ASSERT_FALSE(out.ok()) << "axis " << bad.axis << " rows " << bad.rows;
    EXPECT_NE(out.status().message().find("SampleDropout"), std::string::npos) << out.status().message();
  }
}

}  // namespace
}  // namespace dsc
