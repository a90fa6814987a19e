// SampleRandom (ONNX's random ops as sample-keyed draws): each distribution's moments and range,
// Bernoulli's rate against its probabilities, and a sample's numbers wherever the split puts it.
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

struct Draw {
  std::string distribution = "uniform";
  float a = 0.0f, b = 1.0f;  // low, high or mean, scale
  int64_t axis = 0, rows = 1;
};

// SampleRandom's output over `dims` (Bernoulli: probabilities `p`), first sample `first_sample`.
StatusOr<Tensor> Draws(const std::vector<int64_t>& dims, const Draw& d, int64_t first_sample = 0, int64_t step = 1,
                     uint64_t seed = 42, Tensor* p = nullptr, const std::string& name = "r") {
  Graph g;
  std::vector<Value*> inputs;
  if (p) inputs.push_back(g.AddInput("p", TensorType{DType::kFloat32, StaticShape(dims)}));
  Node* node = g.AddNode(ops::kSampleRandom, inputs, {name}, kDscDomain);
  node->SetAttr("distribution", d.distribution);
  if (d.distribution == "uniform") node->SetAttr("low", d.a), node->SetAttr("high", d.b);
  if (d.distribution == "normal") node->SetAttr("mean", d.a), node->SetAttr("scale", d.b);
  node->SetAttr("batch_axis", d.axis);
  node->SetAttr("sample_rows", d.rows);
  node->output(0)->type = TensorType{DType::kFloat32, StaticShape(dims)};
  std::vector<Tensor*> in;
  if (p) in.push_back(p);
  ASSIGN_OR_RETURN(std::vector<Tensor> out, RunNodeOnCpu(*node, in, seed, step, nullptr, first_sample));
  return std::move(out[0]);
}

struct Moments {
  double mean = 0, var = 0, lo = INFINITY, hi = -INFINITY;
};
Moments Of(const Tensor& t) {
  Moments m;
  const int64_t n = t.numel();
  for (int64_t i = 0; i < n; ++i) {
    const double v = t.GetAsDouble(i);
    m.mean += v / n;
    m.lo = std::min(m.lo, v), m.hi = std::max(m.hi, v);
  }
  for (int64_t i = 0; i < n; ++i) m.var += (t.GetAsDouble(i) - m.mean) * (t.GetAsDouble(i) - m.mean) / (n - 1);
  return m;
}

TEST(SampleRandom, UniformCoversLowToHigh) {
  const int64_t n = 200000;
  StatusOr<Tensor> t = Draws({50, n / 50}, {"uniform", -2.0f, 3.0f});
  ASSERT_TRUE(t.ok()) << t.status().ToString();
  const Moments m = Of(*t);
  // U(-2, 3): mean 0.5, variance 25/12; 5 sigma of the sample mean is 5 * sqrt(25/12/n).
  EXPECT_NEAR(m.mean, 0.5, 5 * std::sqrt(25.0 / 12 / n));
  EXPECT_NEAR(m.var, 25.0 / 12, 0.02 * 25.0 / 12);
  EXPECT_GE(m.lo, -2.0);
  EXPECT_LT(m.hi, 3.0);
  EXPECT_LT(m.lo, -1.99);
  EXPECT_GT(m.hi, 2.99);
}

TEST(SampleRandom, NormalHasItsMeanAndScale) {
  const int64_t n = 200000;
  StatusOr<Tensor> t = Draws({n}, {"normal", 1.5f, 0.5f, -1});
  ASSERT_TRUE(t.ok()) << t.status().ToString();
  const Moments m = Of(*t);
  EXPECT_NEAR(m.mean, 1.5, 5 * 0.5 / std::sqrt(static_cast<double>(n)));
  EXPECT_NEAR(m.var, 0.25, 0.02 * 0.25);
  // Tails: P(|z| > 3) = 0.0027.
  int64_t far = 0;
  for (int64_t i = 0; i < n; ++i) far += std::fabs(t->GetAsDouble(i) - 1.5) > 1.5;
  EXPECT_NEAR(static_cast<double>(far) / n, 0.0027, 0.0006);
}

TEST(SampleRandom, BernoulliDrawsOnesAtItsProbabilities) {
  const int64_t samples = 8, per = 20000;
  Tensor p(DType::kFloat32, {samples, per});
  for (int64_t s = 0; s < samples; ++s)
    for (int64_t j = 0; j < per; ++j) p.SetFromDouble(s * per + j, 0.1 * static_cast<double>(s + 1));
  StatusOr<Tensor> t = Draws({samples, per}, {"bernoulli"}, 0, 1, 42, &p);
  ASSERT_TRUE(t.ok()) << t.status().ToString();
  for (int64_t s = 0; s < samples; ++s) {
    double ones = 0;
    for (int64_t j = 0; j < per; ++j) {
      const double v = t->GetAsDouble(s * per + j);
      ASSERT_TRUE(v == 0.0 || v == 1.0) << v;
      ones += v;
    }
    const double q = 0.1 * (s + 1);
    EXPECT_NEAR(ones / per, q, 5 * std::sqrt(q * (1 - q) / per)) << "sample " << s;
  }
}

// Stochastic depth's draw: one number per sample ([batch, 1, 1]); a sample's number is the same
// in a micro-batch of 8 and in the second of two micro-batches of 4, for each layout.
TEST(SampleRandom, SampleNumbersDoNotDependOnTheSplit) {
  for (const auto& [dims, half, d] :
       std::vector<std::tuple<std::vector<int64_t>, std::vector<int64_t>, Draw>>{
           {{8, 1, 1}, {4, 1, 1}, {"uniform", 0, 1, 0, 1}},
           {{3, 8, 5}, {3, 4, 5}, {"normal", 0, 1, 1, 1}},
           {{24, 5}, {12, 5}, {"uniform", 0, 1, 0, 3}}}) {
    StatusOr<Tensor> whole = Draws(dims, d, 0);
    StatusOr<Tensor> second = Draws(half, d, 4);
    ASSERT_TRUE(whole.ok() && second.ok());
    const int64_t axis = d.axis, outer = axis == 1 ? dims[0] : 1;
    // Element (o, a, e) of the half batch is (o, a + extent/2, e) of the whole one (rows 3: the
    // second micro-batch's 4 samples are rows 12..23 of the whole's 24).
    const int64_t ext_w = dims[static_cast<size_t>(axis)], ext_h = half[static_cast<size_t>(axis)];
    int64_t in = 1;
    for (size_t k = static_cast<size_t>(axis) + 1; k < dims.size(); ++k) in *= dims[k];
    for (int64_t o = 0; o < outer; ++o)
      for (int64_t a = 0; a < ext_h; ++a)
        for (int64_t e = 0; e < in; ++e)
          ASSERT_EQ(second->GetAsDouble((o * ext_h + a) * in + e), whole->GetAsDouble((o * ext_w + a + ext_h) * in + e))
              << "layout axis " << axis << " rows " << d.rows << " at " << o << "," << a << "," << e;
  }
}

TEST(SampleRandom, StepSeedAndNodeChangeTheDraws) {
  StatusOr<Tensor> base = Draws({4, 64}, {}), step = Draws({4, 64}, {}, 0, 2), seed = Draws({4, 64}, {}, 0, 1, 7),
                   node = Draws({4, 64}, {}, 0, 1, 42, nullptr, "other"), again = Draws({4, 64}, {});
  ASSERT_TRUE(base.ok() && step.ok() && seed.ok() && node.ok() && again.ok());
  auto same = [&](const Tensor& t) {
    for (int64_t i = 0; i < t.numel(); ++i)
      if (t.GetAsDouble(i) != base->GetAsDouble(i)) return false;
    return true;
  };
  EXPECT_TRUE(same(*again));
  EXPECT_FALSE(same(*step));
  EXPECT_FALSE(same(*seed));
  EXPECT_FALSE(same(*node));
}

TEST(SampleRandom, RefusesBadAttributes) {
  EXPECT_FALSE(Draws({4, 4}, {"gamma"}).ok());
  EXPECT_FALSE(Draws({4, 4}, {"uniform", 0, 1, 2, 1}).ok());     // axis outside the rank
  EXPECT_FALSE(Draws({4, 4}, {"uniform", 0, 1, 0, 3}).ok());     // rows do not divide the dim
  EXPECT_FALSE(Draws({4, 4}, {"bernoulli"}).ok());               // no probabilities
  Tensor p(DType::kFloat32, {4, 4});
  EXPECT_FALSE(Draws({4, 4}, {"uniform"}, 0, 1, 42, &p).ok());  // an input it does not read
}

}  // namespace
}  // namespace dsc
