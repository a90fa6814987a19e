// The vector math of kernels/cpu/simd_math.h on every ISA this CPU runs: accuracy against libm in
// double over sweeps of the float range and special values, results that do not depend on an
// element's position or the length, and the kernels built on it with each ISA forced.
#include <cmath>
#include <cstring>
#include <limits>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "ir/dsc_ops.h"
#include "kernels/cpu/simd_math.h"
#include "tests/kernels/kernel_test_util.h"

namespace dsc {
namespace {

using cpu::Isa;
using VecFn = void (*)(Isa, const float*, float*, int64_t);

struct MathCase {
  const char* name;
  VecFn vec;
  double (*ref)(double);
};

double SigmoidRef(double x) { return 1.0 / (1.0 + std::exp(-x)); }

const MathCase kCases[] = {
    {"exp", cpu::VecExp, [](double x) { return std::exp(x); }},
    {"log", cpu::VecLog, [](double x) { return std::log(x); }},
    {"erf", cpu::VecErf, [](double x) { return std::erf(x); }},
    {"tanh", cpu::VecTanh, [](double x) { return std::tanh(x); }},
    {"sigmoid", cpu::VecSigmoid, SigmoidRef},
};

std::vector<Isa> RunnableIsas() {
  std::vector<Isa> isas;
  for (int i = 0; i <= static_cast<int>(cpu::DetectedIsa()); ++i) isas.push_back(static_cast<Isa>(i));
  return isas;
}

float FromBits(uint32_t u) {
  float f;
  std::memcpy(&f, &u, sizeof f);
  return f;
}
uint32_t Bits(float f) {
  uint32_t u;
  std::memcpy(&u, &f, sizeof u);
  return u;
}

// |got - ref| in units of the float spacing at ref (the smallest denormal below the normal range).
// NaN must give NaN; an infinite or overflowing ref must give the same infinity.
double UlpError(float got, double ref) {
  if (std::isnan(ref)) return std::isnan(got) ? 0 : INFINITY;
  const float r = static_cast<float>(ref);
  if (std::isinf(r)) return got == r ? 0 : INFINITY;
  if (std::isnan(got) || std::isinf(got)) return INFINITY;
  const float a = std::fabs(r);
  const double spacing = a < std::numeric_limits<float>::min() ? std::ldexp(1.0, -149)
                                                               : static_cast<double>(std::nextafter(a, INFINITY) - a);
  return std::fabs(static_cast<double>(got) - ref) / spacing;
}

class SimdMathTest : public ::testing::TestWithParam<Isa> {};

// Every 251st float bit pattern (all signs, exponents, denormals, NaNs): within 5 ulp of the
// double-precision result rounded to float (libmvec documents up to 4; the worst seen is 4.0).
TEST_P(SimdMathTest, AccuracySweepAgainstDoubleLibm) {
  std::vector<float> x;
  for (uint64_t b = 0; b < (uint64_t{1} << 32); b += 251) x.push_back(FromBits(static_cast<uint32_t>(b)));
  std::vector<float> y(x.size());
  for (const MathCase& c : kCases) {
    c.vec(GetParam(), x.data(), y.data(), static_cast<int64_t>(x.size()));
    double worst = 0;
    float worst_x = 0;
    for (size_t i = 0; i < x.size(); ++i) {
      const double e = UlpError(y[i], c.ref(x[i]));
      if (e > worst) worst = e, worst_x = x[i];
    }
    EXPECT_LE(worst, 5.0) << c.name << " at x = " << worst_x;
  }
}

TEST_P(SimdMathTest, SpecialValues) {
  const float inf = INFINITY, nan = NAN, dmin = std::numeric_limits<float>::denorm_min(),
              fmin = std::numeric_limits<float>::min(), fmax = std::numeric_limits<float>::max();
  const std::vector<float> x = {0.0f,  -0.0f, inf,    -inf,  nan,    -nan,   dmin,  -dmin, fmin,  -fmin,
                                fmax,  -fmax, 88.72f, 88.73f, -87.3f, -103.9f, -104.0f, -150.0f, 1.0f, -1.0f,
                                9.0f,  -9.0f, 10.0f,  -10.0f, 1e-20f, -1e-20f, 20.0f, -20.0f, 89.0f, -89.0f};
  std::vector<float> y(x.size());
  for (const MathCase& c : kCases) {
    c.vec(GetParam(), x.data(), y.data(), static_cast<int64_t>(x.size()));
    for (size_t i = 0; i < x.size(); ++i) {
      const double ref = c.ref(x[i]);
      EXPECT_LE(UlpError(y[i], ref), 5.0) << c.name << "(" << x[i] << ") = " << y[i] << ", libm " << ref;
      // Signed zeros: exp/log/sigmoid have none; erf and tanh keep the sign of x.
      if (ref == 0 && (c.vec == cpu::VecErf || c.vec == cpu::VecTanh)) {
        EXPECT_EQ(std::signbit(y[i]), std::signbit(x[i])) << c.name << "(" << x[i] << ")";
      }
    }
  }
}

// One element's result is the same bits wherever it sits and however long the array is, so
// splitting a batch (ranks, threads, micro-batches) never changes a value.
TEST_P(SimdMathTest, ResultDoesNotDependOnPositionOrLength) {
  std::vector<float> x(96);
  uint32_t seed = 7;
  for (float& v : x) {
    seed = seed * 1664525u + 1013904223u;
    v = static_cast<float>(seed >> 8) / (1u << 20) - 8.0f;  // [-8, 8)
  }
  for (const MathCase& c : kCases) {
    std::vector<float> whole(x.size());
    c.vec(GetParam(), x.data(), whole.data(), static_cast<int64_t>(x.size()));
    for (int64_t off = 0; off < 20; ++off)
      for (int64_t len = 1; off + len <= 60; ++len) {
        std::vector<float> part(static_cast<size_t>(len));
        c.vec(GetParam(), x.data() + off, part.data(), len);
        for (int64_t i = 0; i < len; ++i)
          ASSERT_EQ(Bits(part[i]), Bits(whole[off + i])) << c.name << " offset " << off << " length " << len;
      }
  }
}

// The row reductions: one order fixed by n (same bits on every ISA and address), and the sum
// close to the exact one.
TEST_P(SimdMathTest, RowReductionsAreFixedOrder) {
  std::vector<float> x(1000 + 16);
  uint32_t seed = 3;
  for (float& v : x) {
    seed = seed * 1664525u + 1013904223u;
    v = static_cast<float>(seed >> 8) / (1u << 16) - 100.0f;
  }
  for (int64_t n : {1, 7, 16, 17, 100, 1000}) {
    long double exact = 0;
    float exact_max = -INFINITY;
    for (int64_t i = 0; i < n; ++i) exact += x[i], exact_max = std::max(exact_max, x[i]);
    double sum_base = 0, sum_isa = 0, sum_shifted = 0;
    float max_isa = 0;
    cpu::RunOnIsa(Isa::kBaseline, [&] { sum_base = cpu::SumToDouble(x.data(), n); });
    cpu::RunOnIsa(GetParam(), [&] {
      sum_isa = cpu::SumToDouble(x.data(), n);
      max_isa = cpu::RowMaxOf(x.data(), n);
    });
    std::vector<float> shifted(x.begin(), x.begin() + n);  // another address and alignment
    shifted.insert(shifted.begin(), 0.0f);
    cpu::RunOnIsa(GetParam(), [&] { sum_shifted = cpu::SumToDouble(shifted.data() + 1, n); });
    EXPECT_EQ(sum_isa, sum_base) << n;
    EXPECT_EQ(sum_shifted, sum_isa) << n;
    EXPECT_NEAR(sum_isa, static_cast<double>(exact), 1e-9 * n * 100) << n;
    EXPECT_EQ(max_isa, exact_max) << n;
  }
  const float with_nan[3] = {1.0f, NAN, 2.0f};  // std::max from -inf: NaN never becomes the max
  EXPECT_EQ(cpu::RowMaxOf(with_nan, 3), 2.0f);
}

// Softmax over the last axis and LogSoftmax over a middle one (the strided path), run as kernels
// with the ISA forced, against the formula in double.
TEST_P(SimdMathTest, SoftmaxKernelsAgainstDouble) {
  cpu::SetIsaForTesting(GetParam());
  for (const bool log : {false, true}) {
    const std::vector<int64_t> dims = {3, 37, 5};
    const int64_t axis = log ? 1 : 2;
    Tensor x(DType::kFloat32, dims);
    uint32_t seed = 11;
    for (int64_t i = 0; i < x.numel(); ++i) {
      seed = seed * 1664525u + 1013904223u;
      x.data<float>()[i] = static_cast<float>(seed >> 8) / (1u << 19) - 16.0f;
    }
    Graph g;
    Value* in = g.AddInput("x", TensorType{DType::kFloat32, testing::StaticShape(dims)});
    Node* n = g.AddNode(log ? "LogSoftmax" : "Softmax", {in}, {"y"});
    n->SetAttr("axis", AttrValue(axis));
    n->output(0)->type = in->type;
    StatusOr<std::vector<Tensor>> out = testing::RunNodeOnCpu(*n, {&x});
    ASSERT_TRUE(out.ok()) << out.status().ToString();
    const int64_t len = dims[axis], stride = axis == 1 ? dims[2] : 1;
    std::vector<double> expected(static_cast<size_t>(x.numel()));
    for (int64_t o = 0; o < dims[0]; ++o)
      for (int64_t i = 0; i < (axis == 1 ? dims[2] : dims[1]); ++i) {
        const int64_t base = axis == 1 ? o * dims[1] * dims[2] + i : (o * dims[1] + i) * dims[2];
        double mx = -INFINITY, sum = 0;
        for (int64_t k = 0; k < len; ++k) mx = std::max(mx, static_cast<double>(x.data<float>()[base + k * stride]));
        for (int64_t k = 0; k < len; ++k) sum += std::exp(x.data<float>()[base + k * stride] - mx);
        for (int64_t k = 0; k < len; ++k) {
          const double v = x.data<float>()[base + k * stride] - mx;
          expected[base + k * stride] = log ? v - std::log(sum) : std::exp(v) / sum;
        }
      }
    EXPECT_TRUE(testing::AllClose((*out)[0], expected, 1e-6, 1e-7)) << (log ? "LogSoftmax" : "Softmax");
  }
  cpu::SetIsaForTesting(std::nullopt);
}

// Kernels of plain arithmetic and scalar libm give the same bits on every ISA (fixed-order sums,
// no FMA contraction): SoftmaxGrad (a row sum of dY * Y), SigmoidGrad, MishGrad and Mul with a
// broadcast row.
TEST_P(SimdMathTest, ArithmeticKernelsMatchBaselineBitForBit) {
  auto filled = [](std::vector<int64_t> dims, uint32_t seed) {
    Tensor t(DType::kFloat32, std::move(dims));
    for (int64_t i = 0; i < t.numel(); ++i) {
      seed = seed * 1664525u + 1013904223u;
      t.data<float>()[i] = static_cast<float>(seed >> 8) / (1u << 23) - 1.0f;
    }
    return t;
  };
  struct OpCase {
    const char* op;
    std::string domain;
    std::vector<int64_t> a, b;
  };
  const std::vector<OpCase> cases = {{ops::kSoftmaxGrad, kDscDomain, {6, 133}, {6, 133}},
                                     {ops::kSigmoidGrad, kDscDomain, {7, 131}, {7, 131}},
                                     {ops::kMishGrad, kDscDomain, {5, 129}, {5, 129}},
                                     {"Mul", "", {9, 77}, {77}}};
  for (const OpCase& c : cases) {
    Tensor a = filled(c.a, 5), b = filled(c.b, 6);
    std::vector<Tensor> results;
    for (Isa isa : {Isa::kBaseline, GetParam()}) {
      cpu::SetIsaForTesting(isa);
      Graph g;
      Value* va = g.AddInput("a", TensorType{DType::kFloat32, testing::StaticShape(c.a)});
      Value* vb = g.AddInput("b", TensorType{DType::kFloat32, testing::StaticShape(c.b)});
      Node* n = g.AddNode(c.op, {va, vb}, {"y"}, c.domain);
      if (c.domain == kDscDomain && std::string(c.op) == ops::kSoftmaxGrad) n->SetAttr("axis", AttrValue(int64_t{-1}));
      n->output(0)->type = va->type;
      StatusOr<std::vector<Tensor>> out = testing::RunNodeOnCpu(*n, {&a, &b});
      ASSERT_TRUE(out.ok()) << c.op << ": " << out.status().ToString();
      results.push_back((*out)[0]);
    }
    cpu::SetIsaForTesting(std::nullopt);
    EXPECT_EQ(std::memcmp(results[0].raw(), results[1].raw(), results[0].nbytes()), 0) << c.op;
  }
}

INSTANTIATE_TEST_SUITE_P(Isas, SimdMathTest, ::testing::ValuesIn(RunnableIsas()),
                         [](const ::testing::TestParamInfo<Isa>& info) { return std::string(cpu::IsaName(info.param)); });

TEST(SimdIsaTest, ParseIsaNamesTheThreeAndRejectsOthers) {
  for (Isa isa : {Isa::kBaseline, Isa::kAvx2, Isa::kAvx512}) {
    StatusOr<Isa> parsed = cpu::ParseIsa(cpu::IsaName(isa));
    ASSERT_TRUE(parsed.ok());
    EXPECT_EQ(*parsed, isa);
  }
  StatusOr<Isa> bad = cpu::ParseIsa("avx3");
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("baseline, avx2 or avx512"), std::string::npos) << bad.status().ToString();
}

}  // namespace
}  // namespace dsc
