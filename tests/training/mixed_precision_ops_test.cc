// The training ops in mixed precision (ir/dsc_ops.h): Accumulate over any mix of float32/float16/
// bfloat16, ZeroFill and Assign<shard> on every dtype, SumSquares on half inputs, the skip input of
// AdamStep/SGDStep/OptimStep (every byte unchanged, half states included), the updates on half
// tensors against the float32 kernel through the half adaptor, the overflow check's IsInf/IsNaN/
// Or, and a half-model step program (Cast, AdamStep on the fp32 master, Assign of the half copy)
// run by the executor. References: the formulas of ir/dsc_ops.h computed here, and the float32
// kernels for the adaptor-run half variants.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "ir/dsc_ops.h"
#include "ir/optim_algorithms.h"
#include "kernels/cpu/half_convert.h"
#include "runtime/communicator.h"
#include "runtime/executor.h"
#include "tests/kernels/kernel_test_util.h"
#include "tests/training/group_position.h"

namespace dsc {
namespace {

using testing::GroupPosition;
using testing::RunNodeOnCpu;
using testing::StaticShape;

TensorType Typed(DType t, const std::vector<int64_t>& dims) { return TensorType{t, StaticShape(dims)}; }

double Get(const Tensor& t, int64_t i) { return t.GetAsDouble(i); }

// x rounded to float32/float16/bfloat16 (nearest even), as a double.
double RoundTo(DType t, double x) {
  const float f = static_cast<float>(x);
  if (t == DType::kFloat16) return HalfToFloat(FloatToHalf(f));
  if (t == DType::kBFloat16) return BFloat16ToFloat(FloatToBFloat16(f));
  return f;
}

// n values of dtype t: multiples of 1/64 in (-32, 32) with at most 8 significant bits, exactly
// representable in all three dtypes (so sums of squares are exact in double), including ties
// for the rounding of sums.
Tensor Grid(DType t, int64_t n, uint32_t seed) {
  Tensor x(t, {n});
  std::mt19937 rng(seed);
  for (int64_t i = 0; i < n; ++i) {
    const int k = static_cast<int>(rng() % 511) - 255;               // 8 bits of magnitude
    const int shift = static_cast<int>(rng() % 4);                   // scale 1/64 .. 1/8
    x.SetFromDouble(i, std::ldexp(static_cast<double>(k), -3 - shift));
  }
  return x;
}

Tensor Clone(const Tensor& t) {
  Tensor c(t.dtype(), t.dims());
  if (t.nbytes()) std::memcpy(c.raw(), t.raw(), t.nbytes());
  return c;
}

const DType kFloats[] = {DType::kFloat32, DType::kFloat16, DType::kBFloat16};

// ------------------------------------------------------------------ Accumulate, ZeroFill, Assign

TEST(MixedAccumulate, EveryDTypePairRoundsTheFloatSumOnce) {
  for (DType at : kFloats)
    for (DType xt : kFloats)
      for (int64_t n : {int64_t{7}, int64_t{1} << 16}) {  // the second takes the OpenMP path
        SCOPED_TRACE(StrCat("acc ", DTypeName(at), " += ", DTypeName(xt), ", n ", n));
        Graph g;
        Node* node = g.AddNode(ops::kAccumulate, {g.AddInput("acc", Typed(at, {n})), g.AddInput("x", Typed(xt, {n}))},
                               {}, kDscDomain);
        Tensor acc = Grid(at, n, 1), x = Grid(xt, n, 2);
        // Ties of the sum: 1 + 2^-11 (float16) and 1 + 2^-8 (bfloat16) round to even.
        acc.SetFromDouble(0, 1.0);
        x.SetFromDouble(0, at == DType::kBFloat16 ? 0x1p-8 : 0x1p-11);
        const Tensor before = Clone(acc);
        ASSERT_TRUE(RunNodeOnCpu(*node, {&acc, &x}).ok());
        for (int64_t i = 0; i < n; ++i) {
          const double want = RoundTo(at, static_cast<double>(static_cast<float>(Get(before, i) + Get(x, i))));
          ASSERT_EQ(Get(acc, i), want) << "element " << i;
        }
        if (at != DType::kFloat32) {
          EXPECT_EQ(Get(acc, 0), 1.0) << "tie rounds to even";
        }
      }
}

TEST(MixedAccumulate, IntegerOperandIsRefused) {
  Graph g;
  Node* node = g.AddNode(ops::kAccumulate,
                         {g.AddInput("acc", Typed(DType::kFloat16, {2})), g.AddInput("x", Typed(DType::kInt64, {2}))},
                         {}, kDscDomain, "acc_int");
  StatusOr<std::unique_ptr<OpKernel>> k = KernelRegistry::Global().Create(*node, DeviceKind::kCpu);
  ASSERT_FALSE(k.ok());
  EXPECT_NE(k.status().message().find("acc_int"), std::string::npos) << k.status().message();
}

TEST(ZeroFillAllFloats, ClearsEveryByte) {
  for (DType t : {DType::kFloat32, DType::kFloat16, DType::kBFloat16, DType::kFloat64}) {
    Graph g;
    Node* node = g.AddNode(ops::kZeroFill, {g.AddInput("t", Typed(t, {5}))}, {}, kDscDomain);
    Tensor x(t, {5});
    std::memset(x.raw(), 0xab, x.nbytes());
    ASSERT_TRUE(RunNodeOnCpu(*node, {&x}).ok()) << DTypeName(t);
    for (size_t b = 0; b < x.nbytes(); ++b) ASSERT_EQ(x.raw()[b], 0) << DTypeName(t) << " byte " << b;
  }
}

// Assign<shard=1>(dst, src): dst[rank*c, min(n, (rank+1)*c)) = src, the rest untouched; c = ceil(n/world).
TEST(ShardedAssign, WritesOnlyTheRanksChunk) {
  const int64_t n = 10, world = 4, c = 3;  // chunks [0,3) [3,6) [6,9) [9,10)+2 padding
  for (DType t : {DType::kFloat16, DType::kBFloat16, DType::kFloat32, DType::kInt64}) {
    for (int rank = 0; rank < world; ++rank) {
      SCOPED_TRACE(StrCat(DTypeName(t), " rank ", rank));
      Graph g;
      Node* node = g.AddNode(ops::kAssign, {g.AddInput("dst", Typed(t, {2, 5})), g.AddInput("src", Typed(t, {c}))}, {},
                             kDscDomain);
      node->SetAttr("shard", int64_t{1});
      node->SetAttr("world", world);
      Tensor dst(t, {2, 5}), src(t, {c});
      for (int64_t i = 0; i < n; ++i) dst.SetFromDouble(i, static_cast<double>(100 + i));
      for (int64_t i = 0; i < c; ++i) src.SetFromDouble(i, static_cast<double>(-1 - i));
      GroupPosition group(rank, static_cast<int>(world));
      ASSERT_TRUE(RunNodeOnCpu(*node, {&dst, &src}, 0, 1, &group).ok());
      for (int64_t i = 0; i < n; ++i) {
        const bool mine = i >= rank * c && i < (rank + 1) * c;
        EXPECT_EQ(Get(dst, i), mine ? static_cast<double>(-1 - (i - rank * c)) : static_cast<double>(100 + i))
            << "element " << i;
      }
    }
  }
}

TEST(ShardedAssign, UnshardedCopiesAndMismatchesAreErrors) {
  Graph g;
  Value* dst = g.AddInput("dst", Typed(DType::kBFloat16, {4}));
  Node* copy = g.AddNode(ops::kAssign, {dst, g.AddInput("src", Typed(DType::kBFloat16, {4}))}, {}, kDscDomain);
  Tensor d = Grid(DType::kBFloat16, 4, 3), s = Grid(DType::kBFloat16, 4, 4);
  ASSERT_TRUE(RunNodeOnCpu(*copy, {&d, &s}).ok());
  EXPECT_TRUE(d.SameContents(s));

  Node* wrong_type = g.AddNode(ops::kAssign, {dst, g.AddInput("f", Typed(DType::kFloat32, {4}))}, {}, kDscDomain);
  EXPECT_FALSE(KernelRegistry::Global().Create(*wrong_type, DeviceKind::kCpu).ok()) << "dst and src dtypes differ";

  Node* shard = g.AddNode(ops::kAssign, {dst, g.AddInput("chunk", Typed(DType::kBFloat16, {1}))}, {}, kDscDomain);
  shard->SetAttr("shard", int64_t{1});
  Tensor chunk(DType::kBFloat16, {1});
  GroupPosition group(0, 2);  // ceil(4 / 2) = 2 elements expected
  StatusOr<std::vector<Tensor>> r = RunNodeOnCpu(*shard, {&d, &chunk}, 0, 1, &group);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("shard of 2 elements"), std::string::npos) << r.status().message();
}

// ------------------------------------------------------------------ SumSquares

TEST(HalfSumSquares, MixedInputsSumInDouble) {
  Graph g;
  std::vector<Value*> in;
  std::vector<Tensor> xs;
  const int64_t sizes[] = {5, 1 << 16, 33, 1 << 15};
  int k = 0;
  for (DType t : {DType::kFloat16, DType::kBFloat16, DType::kFloat32, DType::kFloat16}) {
    in.push_back(g.AddInput(StrCat("x", k), Typed(t, {sizes[k]})));
    xs.push_back(Grid(t, sizes[k], 10 + k));
    ++k;
  }
  Node* node = g.AddNode(ops::kSumSquares, in, {"s"}, kDscDomain);
  node->output(0)->type = Typed(DType::kFloat32, {});
  double want = 0;  // exact: every square is a multiple of 2^-12 below 2^10
  for (const Tensor& x : xs)
    for (int64_t i = 0; i < x.numel(); ++i) want += Get(x, i) * Get(x, i);
  std::vector<Tensor*> args;
  for (Tensor& x : xs) args.push_back(&x);
  StatusOr<std::vector<Tensor>> out = RunNodeOnCpu(*node, args);
  ASSERT_TRUE(out.ok()) << out.status().ToString();
  EXPECT_EQ((*out)[0].data<float>()[0], static_cast<float>(want));
}

TEST(HalfSumSquares, InfAndNanInAHalfGradientReachTheNorm) {
  for (uint16_t bits : {uint16_t{0x7c00}, uint16_t{0x7e00}}) {  // float16 inf, NaN
    Graph g;
    Node* node = g.AddNode(ops::kSumSquares, {g.AddInput("x", Typed(DType::kFloat16, {3}))}, {"s"}, kDscDomain);
    node->output(0)->type = Typed(DType::kFloat32, {});
    Tensor x(DType::kFloat16, {3});
    x.data<uint16_t>()[0] = 0x3c00;
    x.data<uint16_t>()[1] = bits;
    x.data<uint16_t>()[2] = 0x3c00;
    StatusOr<std::vector<Tensor>> out = RunNodeOnCpu(*node, {&x});
    ASSERT_TRUE(out.ok());
    const float s = (*out)[0].data<float>()[0];
    EXPECT_TRUE(bits == 0x7c00 ? std::isinf(s) : std::isnan(s)) << s;
  }
}

// ------------------------------------------------------------------ skip

struct AdamNode {
  Graph g;
  Node* node = nullptr;
};

// AdamStep(param, grad, exp_avg, exp_avg_sq, lr, step, grad_scale, beta1_override = "", skip).
std::unique_ptr<AdamNode> Adam(DType param, DType grad, DType state, int64_t n, bool with_skip) {
  auto a = std::make_unique<AdamNode>();
  Graph& g = a->g;
  std::vector<Value*> in = {g.AddInput("p", Typed(param, {n})), g.AddInput("g", Typed(grad, {n})),
                            g.AddInput("m", Typed(state, {n})), g.AddInput("v", Typed(state, {n})),
                            g.AddInput("lr", Typed(DType::kFloat32, {})), g.AddInput("step", Typed(DType::kInt64, {})),
                            g.AddInput("scale", Typed(DType::kFloat32, {}))};
  if (with_skip) {
    in.push_back(nullptr);
    in.push_back(g.AddInput("skip", Typed(DType::kBool, {})));
  }
  a->node = g.AddNode(ops::kAdamStep, in, {}, kDscDomain, "adam");
  a->node->SetAttr("weight_decay", 0.01f);
  return a;
}

// Values with odd bit patterns (negative zero, subnormals, the largest finite) so a lossy
// round trip through the adaptor would show.
Tensor Awkward(DType t, int64_t n, uint32_t seed) {
  Tensor x = Grid(t, n, seed);
  x.SetFromDouble(0, -0.0);
  if (t != DType::kFloat32) {
    x.data<uint16_t>()[1] = 0x0001;                                 // least subnormal
    x.data<uint16_t>()[2] = t == DType::kFloat16 ? 0x7bff : 0x7f7f;  // largest finite
  }
  return x;
}

TEST(SkipInput, AdamStepLeavesEveryByteWhenSkipped) {
  const int64_t n = 40000;  // OpenMP path
  for (DType pt : kFloats)
    for (DType st : kFloats) {
      SCOPED_TRACE(StrCat("param ", DTypeName(pt), ", states ", DTypeName(st)));
      auto a = Adam(pt, DType::kFloat32, st, n, /*with_skip=*/true);
      Tensor p = Awkward(pt, n, 1), grad = Awkward(DType::kFloat32, n, 2), m = Awkward(st, n, 3),
             v = Grid(st, n, 4);
      for (int64_t i = 0; i < n; ++i) v.SetFromDouble(i, std::fabs(Get(v, i)));
      Tensor lr = Tensor::Scalar(DType::kFloat32, 1e-2), step = Tensor::FromVector<int64_t>(DType::kInt64, {}, {3}),
             scale = Tensor::Scalar(DType::kFloat32, 1.0);
      for (bool skip : {true, false}) {
        Tensor flag = Tensor::FromVector<int64_t>(DType::kBool, {}, {skip ? 1 : 0});
        const Tensor p0 = Clone(p), m0 = Clone(m), v0 = Clone(v), g0 = Clone(grad);
        ASSERT_TRUE(RunNodeOnCpu(*a->node, {&p, &grad, &m, &v, &lr, &step, &scale, nullptr, &flag}).ok());
        EXPECT_TRUE(grad.SameContents(g0));
        EXPECT_EQ(p.SameContents(p0), skip) << "skip " << skip;
        EXPECT_EQ(m.SameContents(m0), skip) << "skip " << skip;
        EXPECT_EQ(v.SameContents(v0), skip) << "skip " << skip;
      }
    }
}

// bf16 optimizer states with an fp32 master (a mixed node: the float32 kernel through the
// adaptor): the states are the float32 update of the widened states, rounded once.
TEST(SkipInput, AdamWithBFloat16StatesRoundsTheFloatUpdate) {
  const int64_t n = 513;
  auto mixed = Adam(DType::kFloat32, DType::kFloat32, DType::kBFloat16, n, true);
  auto wide = Adam(DType::kFloat32, DType::kFloat32, DType::kFloat32, n, true);
  Tensor p = Grid(DType::kFloat32, n, 5), grad = Grid(DType::kFloat32, n, 6), m = Grid(DType::kBFloat16, n, 7),
         v = Grid(DType::kBFloat16, n, 8);
  for (int64_t i = 0; i < n; ++i) v.SetFromDouble(i, std::fabs(Get(v, i)));
  Tensor p32 = Clone(p), m32(DType::kFloat32, {n}), v32(DType::kFloat32, {n});
  half::ToFloat(DType::kBFloat16, m.raw(), m32.data<float>(), n);
  half::ToFloat(DType::kBFloat16, v.raw(), v32.data<float>(), n);
  Tensor lr = Tensor::Scalar(DType::kFloat32, 1e-3), step = Tensor::FromVector<int64_t>(DType::kInt64, {}, {2}),
         scale = Tensor::Scalar(DType::kFloat32, 0.5), go = Tensor::FromVector<int64_t>(DType::kBool, {}, {0});
  ASSERT_TRUE(RunNodeOnCpu(*mixed->node, {&p, &grad, &m, &v, &lr, &step, &scale, nullptr, &go}).ok());
  ASSERT_TRUE(RunNodeOnCpu(*wide->node, {&p32, &grad, &m32, &v32, &lr, &step, &scale, nullptr, &go}).ok());
  EXPECT_TRUE(p.SameContents(p32));
  for (int64_t i = 0; i < n; ++i) {
    ASSERT_EQ(m.data<uint16_t>()[i], FloatToBFloat16(m32.data<float>()[i])) << i;
    ASSERT_EQ(v.data<uint16_t>()[i], FloatToBFloat16(v32.data<float>()[i])) << i;
  }
}

TEST(SkipInput, SgdStepWithMomentumLeavesEveryByteWhenSkipped) {
  const int64_t n = 17;
  for (DType t : kFloats) {
    Graph g;
    Node* node = g.AddNode(ops::kSGDStep,
                           {g.AddInput("p", Typed(t, {n})), g.AddInput("g", Typed(DType::kFloat32, {n})),
                            g.AddInput("buf", Typed(t, {n})), g.AddInput("lr", Typed(DType::kFloat32, {})),
                            g.AddInput("step", Typed(DType::kInt64, {})), g.AddInput("scale", Typed(DType::kFloat32, {})),
                            g.AddInput("skip", Typed(DType::kBool, {}))},
                           {}, kDscDomain);
    node->SetAttr("momentum", 0.9f);
    Tensor p = Awkward(t, n, 1), grad = Grid(DType::kFloat32, n, 2), buf = Awkward(t, n, 3);
    Tensor lr = Tensor::Scalar(DType::kFloat32, 0.1), step = Tensor::FromVector<int64_t>(DType::kInt64, {}, {2}),
           scale = Tensor::Scalar(DType::kFloat32, 1.0);
    for (bool skip : {true, false}) {
      Tensor flag = Tensor::FromVector<int64_t>(DType::kBool, {}, {skip ? 1 : 0});
      const Tensor p0 = Clone(p), b0 = Clone(buf);
      ASSERT_TRUE(RunNodeOnCpu(*node, {&p, &grad, &buf, &lr, &step, &scale, &flag}).ok()) << DTypeName(t);
      EXPECT_EQ(p.SameContents(p0), skip) << DTypeName(t) << " skip " << skip;
      EXPECT_EQ(buf.SameContents(b0), skip) << DTypeName(t) << " skip " << skip;
    }
  }
}

TEST(SkipInput, MustBeBool) {
  Graph g;
  Node* node = g.AddNode(ops::kSGDStep,
                         {g.AddInput("p", Typed(DType::kFloat32, {2})), g.AddInput("g", Typed(DType::kFloat32, {2})),
                          nullptr, g.AddInput("lr", Typed(DType::kFloat32, {})),
                          g.AddInput("step", Typed(DType::kInt64, {})), g.AddInput("scale", Typed(DType::kFloat32, {})),
                          g.AddInput("skip", Typed(DType::kFloat32, {}))},
                         {}, kDscDomain, "sgd");
  StatusOr<std::unique_ptr<OpKernel>> k = KernelRegistry::Global().Create(*node, DeviceKind::kCpu);
  ASSERT_FALSE(k.ok());
  EXPECT_NE(k.status().message().find("skip"), std::string::npos) << k.status().message();
}

// The update kernels take half tensors natively; their result must be the float32 kernel's on
// the widened tensors with each tensor rounded once (what the half adaptor computes), bit for bit,
// for every mix of param, grad and state dtypes, over two steps (the second reads rounded states).
StatusOr<std::vector<Tensor>> RunKernel(OpKernel& k, const std::vector<Tensor*>& inputs) {
  std::vector<TensorView> views(inputs.size());
  KernelContext ctx;
  for (size_t i = 0; i < inputs.size(); ++i) {
    if (!inputs[i]) {
      ctx.inputs.push_back(nullptr);
      continue;
    }
    views[i] = TensorView{inputs[i]->dtype(), inputs[i]->dims(), inputs[i]->raw()};
    ctx.inputs.push_back(&views[i]);
  }
  RETURN_IF_ERROR(k.Compute(ctx));
  return std::vector<Tensor>{};
}

TEST(HalfOptimizers, NativeKernelsEqualFloat32OnWidenedTensorsRounded) {
  const int64_t n = 301;
  for (DType pt : kFloats)
    for (DType gt : kFloats)
      for (DType st : kFloats) {
        if (pt == DType::kFloat32 && gt == DType::kFloat32 && st == DType::kFloat32) continue;
        SCOPED_TRACE(StrCat("param ", DTypeName(pt), ", grad ", DTypeName(gt), ", states ", DTypeName(st)));
        auto adam = Adam(pt, gt, st, n, /*with_skip=*/false);
        Graph g;
        Node* sgd = g.AddNode(ops::kSGDStep,
                              {g.AddInput("p", Typed(pt, {n})), g.AddInput("g", Typed(gt, {n})), g.AddInput("b", Typed(st, {n})),
                               g.AddInput("lr", Typed(DType::kFloat32, {})), g.AddInput("step", Typed(DType::kInt64, {})),
                               g.AddInput("scale", Typed(DType::kFloat32, {}))},
                              {}, kDscDomain);
        sgd->SetAttr("momentum", 0.9f);
        sgd->SetAttr("nesterov", int64_t{1});
        sgd->SetAttr("weight_decay", 0.001f);
        for (Node* node : {adam->node, sgd}) {
          SCOPED_TRACE(node->op_type());
          const bool is_adam = node == adam->node;
          StatusOr<std::unique_ptr<OpKernel>> native = KernelRegistry::Global().Create(*node, DeviceKind::kCpu);
          StatusOr<std::unique_ptr<OpKernel>> adapted = CreateHalfAdaptor(*node, KernelRegistry::Global(), DeviceKind::kCpu);
          ASSERT_TRUE(native.ok() && adapted.ok());
          Tensor p1 = Grid(pt, n, 1), g1 = Grid(gt, n, 2), m1 = Grid(st, n, 3), v1 = Grid(st, n, 4);
          for (int64_t i = 0; i < n; ++i) v1.SetFromDouble(i, std::fabs(Get(v1, i)));
          Tensor p2 = Clone(p1), m2 = Clone(m1), v2 = Clone(v1);
          Tensor lr = Tensor::Scalar(DType::kFloat32, 0.05), scale = Tensor::Scalar(DType::kFloat32, 0.5);
          for (int64_t k = 1; k <= 2; ++k) {
            Tensor step = Tensor::FromVector<int64_t>(DType::kInt64, {}, {k});
            std::vector<Tensor*> a1 = is_adam ? std::vector<Tensor*>{&p1, &g1, &m1, &v1, &lr, &step, &scale}
                                              : std::vector<Tensor*>{&p1, &g1, &m1, &lr, &step, &scale};
            std::vector<Tensor*> a2 = is_adam ? std::vector<Tensor*>{&p2, &g1, &m2, &v2, &lr, &step, &scale}
                                              : std::vector<Tensor*>{&p2, &g1, &m2, &lr, &step, &scale};
            ASSERT_TRUE(RunKernel(**native, a1).ok());
            ASSERT_TRUE(RunKernel(**adapted, a2).ok());
            EXPECT_TRUE(p1.SameContents(p2)) << "param, step " << k;
            EXPECT_TRUE(m1.SameContents(m2)) << "first state, step " << k;
            if (is_adam) {
              EXPECT_TRUE(v1.SameContents(v2)) << "exp_avg_sq, step " << k;
            }
          }
          EXPECT_FALSE(p1.SameContents(Grid(pt, n, 1))) << "the steps moved the parameter";
        }
      }
}

// OptimStep(p, g, states..., lr, step, scale[, skip]) of one algorithm with its weight decay on.
struct OptimNodeOf {
  Graph g;
  Node* node = nullptr;
  size_t states = 0;
};
std::unique_ptr<OptimNodeOf> Optim(const OptimAlgorithmInfo& a, DType param, DType grad, DType state, int64_t n,
                                   bool with_skip) {
  auto o = std::make_unique<OptimNodeOf>();
  Graph& g = o->g;
  o->states = OptimStateSuffixes(a.id, /*momentum=*/true, /*centered=*/false).size();  // RMSprop: + momentum_buffer
  std::vector<Value*> in = {g.AddInput("p", Typed(param, {n})), g.AddInput("g", Typed(grad, {n}))};
  for (size_t j = 0; j < o->states; ++j) in.push_back(g.AddInput(StrCat("s", j), Typed(state, {n})));
  in.push_back(g.AddInput("lr", Typed(DType::kFloat32, {})));
  in.push_back(g.AddInput("step", Typed(DType::kInt64, {})));
  in.push_back(g.AddInput("scale", Typed(DType::kFloat32, {})));
  if (with_skip) in.push_back(g.AddInput("skip", Typed(DType::kBool, {})));
  o->node = g.AddNode(ops::kOptimStep, in, {}, kDscDomain, a.name);
  o->node->SetAttr("algorithm", std::string(a.name));
  o->node->SetAttr("momentum", 0.9f);
  o->node->SetAttr("weight_decay", 0.01f);
  return o;
}

// OptimStep's states start from non-negative values (sums of squares among them).
std::vector<Tensor> OptimStates(DType t, int64_t n, size_t count, uint32_t seed) {
  std::vector<Tensor> s;
  for (size_t j = 0; j < count; ++j) {
    s.push_back(Grid(t, n, seed + static_cast<uint32_t>(j)));
    for (int64_t i = 0; i < n; ++i) s.back().SetFromDouble(i, std::fabs(Get(s.back(), i)));
  }
  return s;
}

TEST(HalfOptimizers, OptimStepNativeEqualsFloat32OnWidenedTensorsRounded) {
  const int64_t n = 301;
  for (const OptimAlgorithmInfo& a : OptimAlgorithms())
    for (DType pt : kFloats)
      for (DType st : kFloats) {
        const DType gt = pt == DType::kFloat32 ? DType::kBFloat16 : DType::kFloat32;
        SCOPED_TRACE(StrCat(a.name, ": param ", DTypeName(pt), ", grad ", DTypeName(gt), ", states ", DTypeName(st)));
        auto o = Optim(a, pt, gt, st, n, /*with_skip=*/false);
        StatusOr<std::unique_ptr<OpKernel>> native = KernelRegistry::Global().Create(*o->node, DeviceKind::kCpu);
        StatusOr<std::unique_ptr<OpKernel>> adapted = CreateHalfAdaptor(*o->node, KernelRegistry::Global(), DeviceKind::kCpu);
        ASSERT_TRUE(native.ok() && adapted.ok());
        Tensor p1 = Grid(pt, n, 1), g1 = Grid(gt, n, 2), p2 = Clone(p1);
        std::vector<Tensor> s1 = OptimStates(st, n, o->states, 3), s2;
        for (const Tensor& t : s1) s2.push_back(Clone(t));
        Tensor lr = Tensor::Scalar(DType::kFloat32, 0.05), scale = Tensor::Scalar(DType::kFloat32, 0.5);
        for (int64_t k = 1; k <= 3; ++k) {  // the kernels keep NAdam's mu_product between steps
          Tensor step = Tensor::FromVector<int64_t>(DType::kInt64, {}, {k});
          std::vector<Tensor*> a1 = {&p1, &g1}, a2 = {&p2, &g1};
          for (size_t j = 0; j < o->states; ++j) {
            a1.push_back(&s1[j]);
            a2.push_back(&s2[j]);
          }
          for (auto* args : {&a1, &a2}) args->insert(args->end(), {&lr, &step, &scale});
          ASSERT_TRUE(RunKernel(**native, a1).ok());
          ASSERT_TRUE(RunKernel(**adapted, a2).ok());
          EXPECT_TRUE(p1.SameContents(p2)) << "param, step " << k;
          for (size_t j = 0; j < o->states; ++j) EXPECT_TRUE(s1[j].SameContents(s2[j])) << "state " << j << ", step " << k;
        }
        EXPECT_FALSE(p1.SameContents(Grid(pt, n, 1))) << "the steps moved the parameter";
      }
}

TEST(SkipInput, OptimStepLeavesEveryByteWhenSkipped) {
  const int64_t n = 40000;  // OpenMP path
  for (const OptimAlgorithmInfo& a : OptimAlgorithms())
    for (DType pt : kFloats) {
      const DType st = pt == DType::kFloat32 ? DType::kBFloat16 : DType::kFloat32;
      SCOPED_TRACE(StrCat(a.name, ": param ", DTypeName(pt), ", states ", DTypeName(st)));
      auto o = Optim(a, pt, DType::kFloat32, st, n, /*with_skip=*/true);
      Tensor p = Awkward(pt, n, 1), grad = Awkward(DType::kFloat32, n, 2);
      std::vector<Tensor> s = OptimStates(st, n, o->states, 3);
      Tensor lr = Tensor::Scalar(DType::kFloat32, 1e-2), step = Tensor::FromVector<int64_t>(DType::kInt64, {}, {3}),
             scale = Tensor::Scalar(DType::kFloat32, 1.0);
      for (bool skip : {true, false}) {
        Tensor flag = Tensor::FromVector<int64_t>(DType::kBool, {}, {skip ? 1 : 0});
        const Tensor p0 = Clone(p), g0 = Clone(grad);
        std::vector<Tensor> s0;
        for (const Tensor& t : s) s0.push_back(Clone(t));
        std::vector<Tensor*> args = {&p, &grad};
        for (Tensor& t : s) args.push_back(&t);
        args.insert(args.end(), {&lr, &step, &scale, &flag});
        ASSERT_TRUE(RunNodeOnCpu(*o->node, args).ok());
        EXPECT_TRUE(grad.SameContents(g0));
        EXPECT_EQ(p.SameContents(p0), skip) << "skip " << skip;
        for (size_t j = 0; j < s.size(); ++j) EXPECT_EQ(s[j].SameContents(s0[j]), skip) << "state " << j << " skip " << skip;
      }
    }
}

// ------------------------------------------------------------------ programs through the executor

// dsc::overflow = Or(IsInf(norm), IsNaN(norm)) on float32 scalars, as the step program computes it.
TEST(OverflowCheck, IsInfIsNanOrOnScalars) {
  Graph g;
  Value* norm = g.AddInput("norm", Typed(DType::kFloat32, {}));
  Node* inf = g.AddNode("IsInf", {norm}, {"inf"});
  inf->output(0)->type = Typed(DType::kBool, {});
  Node* nan = g.AddNode("IsNaN", {norm}, {"nan"});
  nan->output(0)->type = Typed(DType::kBool, {});
  Node* any = g.AddNode("Or", {inf->output(0), nan->output(0)}, {ops::kOverflowOutput});
  any->output(0)->type = Typed(DType::kBool, {});
  g.AddOutput(any->output(0));
  const float kInf = std::numeric_limits<float>::infinity();
  for (float v : {0.0f, 3.5f, kInf, -kInf, std::numeric_limits<float>::quiet_NaN(), 3.4e38f}) {
    Tensor t = Tensor::Scalar(DType::kFloat32, v);
    StatusOr<std::map<std::string, Tensor>> out = RunGraphOnCpu(g, {{"norm", &t}});
    ASSERT_TRUE(out.ok()) << out.status().ToString();
    EXPECT_EQ(out->at(ops::kOverflowOutput).GetAsInt(0), std::isfinite(v) ? 0 : 1) << v;
  }
}

// The half-model update of one parameter, as the step program does it: g32 = Cast(P::grad);
// AdamStep(P::master, g32, m, v, lr, step, scale, "", overflow); P = Cast(P::master -> half).
// With skip nothing changes; without it P is the rounded master and the master follows the fp32
// Adam update (checked against the float32 kernel run alone).
TEST(HalfModelStep, MasterUpdateAndHalfCopyThroughTheExecutor) {
  const int64_t n = 300;
  for (DType half_t : {DType::kFloat16, DType::kBFloat16}) {
    SCOPED_TRACE(DTypeName(half_t));
    Graph g;
    Value* p = g.AddInput("P", Typed(half_t, {n}));
    Value* grad = g.AddInput("P::grad", Typed(half_t, {n}));
    Value* master = g.AddInput("P::master", Typed(DType::kFloat32, {n}));
    Value* m = g.AddInput("P::exp_avg", Typed(DType::kFloat32, {n}));
    Value* v = g.AddInput("P::exp_avg_sq", Typed(DType::kFloat32, {n}));
    Value* lr = g.AddInput(ops::kLrInput, Typed(DType::kFloat32, {}));
    Value* step = g.AddInput(ops::kStepInput, Typed(DType::kInt64, {}));
    Value* scale = g.AddInput("scale", Typed(DType::kFloat32, {}));
    Value* skip = g.AddInput("skip", Typed(DType::kBool, {}));
    Node* g32 = g.AddNode("Cast", {grad}, {"g32"});
    g32->SetAttr("to", static_cast<int64_t>(DTypeToOnnx(DType::kFloat32)));
    g32->output(0)->type = Typed(DType::kFloat32, {n});
    Node* adam = g.AddNode(ops::kAdamStep, {master, g32->output(0), m, v, lr, step, scale, nullptr, skip}, {}, kDscDomain);
    adam->SetAttr("weight_decay", 0.01f);  // as Adam() below
    Node* to_half = g.AddNode("Cast", {master}, {"p_half"});
    to_half->SetAttr("to", static_cast<int64_t>(DTypeToOnnx(half_t)));
    to_half->output(0)->type = Typed(half_t, {n});
    g.AddNode(ops::kAssign, {p, to_half->output(0)}, {}, kDscDomain);

    Tensor pt = Grid(half_t, n, 1), gt = Grid(half_t, n, 2), mt(DType::kFloat32, {n}), vt(DType::kFloat32, {n});
    Tensor mast(DType::kFloat32, {n});
    half::ToFloat(half_t, pt.raw(), mast.data<float>(), n);  // master = float(half P)
    Tensor lrt = Tensor::Scalar(DType::kFloat32, 1e-2), st = Tensor::FromVector<int64_t>(DType::kInt64, {}, {1}),
           sc = Tensor::Scalar(DType::kFloat32, 1.0);
    for (bool skipped : {true, false}) {
      Tensor flag = Tensor::FromVector<int64_t>(DType::kBool, {}, {skipped ? 1 : 0});
      const Tensor p0 = Clone(pt), master0 = Clone(mast), m0 = Clone(mt), v0 = Clone(vt);
      StatusOr<std::map<std::string, Tensor>> out =
          RunGraphOnCpu(g, {{"P", &pt}, {"P::grad", &gt}, {"P::master", &mast}, {"P::exp_avg", &mt},
                            {"P::exp_avg_sq", &vt}, {ops::kLrInput, &lrt}, {ops::kStepInput, &st}, {"scale", &sc},
                            {"skip", &flag}});
      ASSERT_TRUE(out.ok()) << out.status().ToString();
      if (skipped) {
        EXPECT_TRUE(pt.SameContents(p0) && mast.SameContents(master0) && mt.SameContents(m0) && vt.SameContents(v0));
        continue;
      }
      // The reference: the float32 AdamStep alone on float(grad).
      auto ref = Adam(DType::kFloat32, DType::kFloat32, DType::kFloat32, n, true);
      Tensor rp = Clone(master0), rm = Clone(m0), rv = Clone(v0), rg(DType::kFloat32, {n});
      half::ToFloat(half_t, gt.raw(), rg.data<float>(), n);
      ASSERT_TRUE(RunNodeOnCpu(*ref->node, {&rp, &rg, &rm, &rv, &lrt, &st, &sc, nullptr, &flag}).ok());
      EXPECT_TRUE(mast.SameContents(rp)) << "master";
      EXPECT_FALSE(mast.SameContents(master0)) << "the step moved the master";
      for (int64_t i = 0; i < n; ++i)
        ASSERT_EQ(pt.data<uint16_t>()[i], half::Round(rp.data<float>()[i], half_t == DType::kBFloat16)) << i;
    }
  }
}

// A half forward chain through the executor (arena slots reused between adaptor kernels) gives
// what the nodes give one at a time.
TEST(HalfExecutor, ChainMatchesNodeByNode) {
  const DType t = DType::kBFloat16;
  Graph g;
  Value* x = g.AddInput("x", Typed(t, {8, 16}));
  Value* w = g.AddInput("w", Typed(t, {16, 12}));
  Value* b = g.AddInput("b", Typed(t, {12}));
  Node* mm = g.AddNode("MatMul", {x, w}, {"h"});
  mm->output(0)->type = Typed(t, {8, 12});
  Node* add = g.AddNode("Add", {mm->output(0), b}, {"hb"});
  add->output(0)->type = Typed(t, {8, 12});
  Node* act = g.AddNode("Gelu", {add->output(0)}, {"a"});
  act->output(0)->type = Typed(t, {8, 12});
  Node* sm = g.AddNode("Softmax", {act->output(0)}, {"y"});
  sm->SetAttr("axis", int64_t{-1});
  sm->output(0)->type = Typed(t, {8, 12});
  g.AddOutput(sm->output(0));
  Tensor xt = Grid(t, 8 * 16, 1).Reshaped({8, 16}), wt = Grid(t, 16 * 12, 2).Reshaped({16, 12}), bt = Grid(t, 12, 3);
  StatusOr<std::map<std::string, Tensor>> out = RunGraphOnCpu(g, {{"x", &xt}, {"w", &wt}, {"b", &bt}});
  ASSERT_TRUE(out.ok()) << out.status().ToString();
  auto h = RunNodeOnCpu(*mm, {&xt, &wt});
  ASSERT_TRUE(h.ok());
  auto hb = RunNodeOnCpu(*add, {&(*h)[0], &bt});
  ASSERT_TRUE(hb.ok());
  auto a = RunNodeOnCpu(*act, {&(*hb)[0]});
  ASSERT_TRUE(a.ok());
  auto y = RunNodeOnCpu(*sm, {&(*a)[0]});
  ASSERT_TRUE(y.ok());
  EXPECT_TRUE(out->at("y").SameContents((*y)[0]));
}

}  // namespace
}  // namespace dsc
