// Gradient kernels of our domain against torch.autograd (and numpy for SliceGrad), DropoutGrad with the forward's mask.
#include <gtest/gtest.h>

#include <map>
#include <string>
#include <utility>
#include <vector>

#include "ir/dsc_ops.h"
#include "tests/kernels/nn_cases.h"

namespace dsc {
namespace {

using testing::RunNodeOnCpu;

class NnGradCase : public ::testing::TestWithParam<std::string> {};
TEST_P(NnGradCase, MatchesReference) { testing::RunNnCase(GetParam()); }
INSTANTIATE_TEST_SUITE_P(Table, NnGradCase, ::testing::ValuesIn(testing::NnCaseNames(kDscDomain)),
                         testing::NnCaseParamName);

TensorType Type(DType t, const std::vector<int64_t>& dims) {
  Shape s;
  for (int64_t d : dims) s.push_back(Dim::Static(d));
  return TensorType{t, s};
}

// Dropout forward in training mode, then DropoutGrad with its mask: dX = dY * mask / (1 - ratio).
TEST(NnDropoutGrad, UsesTheForwardMask) {
  const int64_t n = 257;
  const float ratio = 0.4f;
  Graph g;
  Value* x = g.AddInput("x", Type(DType::kFloat32, {n}));
  Value* r = g.AddInput("ratio", Type(DType::kFloat32, {}));
  Value* tm = g.AddInput("training_mode", Type(DType::kBool, {}));
  Node* fwd = g.AddNode("Dropout", {x, r, tm}, {"y", "mask"});
  fwd->output(0)->type = x->type;
  fwd->output(1)->type = Type(DType::kBool, {n});
  Value* dy = g.AddInput("dy", x->type);
  Node* bwd = g.AddNode(ops::kDropoutGrad, {dy, fwd->output(1), r}, {"dx"}, kDscDomain);
  bwd->output(0)->type = x->type;

  std::vector<float> xs(n), dys(n);
  for (int64_t i = 0; i < n; ++i) xs[i] = 0.5f + i, dys[i] = 1.0f - 0.01f * i;
  Tensor xt = Tensor::FromVector(DType::kFloat32, {n}, xs), dyt = Tensor::FromVector(DType::kFloat32, {n}, dys);
  Tensor rt = Tensor::Scalar(DType::kFloat32, ratio);
  Tensor tt = Tensor::FromVector<int64_t>(DType::kBool, {}, {1});
  StatusOr<std::vector<Tensor>> f = RunNodeOnCpu(*fwd, {&xt, &rt, &tt}, 11, 2);
  ASSERT_TRUE(f.ok()) << f.status().ToString();
  Tensor mask = (*f)[1];
  StatusOr<std::vector<Tensor>> b = RunNodeOnCpu(*bwd, {&dyt, &mask, &rt});
  ASSERT_TRUE(b.ok()) << b.status().ToString();
  std::vector<double> expect(n);
  int64_t kept = 0;
  for (int64_t i = 0; i < n; ++i) {
    kept += mask.GetAsInt(i);
    expect[i] = mask.GetAsInt(i) ? dys[i] / (1.0 - ratio) : 0.0;
  }
  EXPECT_GT(kept, 0);
  EXPECT_LT(kept, n);
  EXPECT_TRUE(testing::AllClose((*b)[0], expect));

  // The optional training_mode input: false makes the gradient an identity.
  Node* bwd_eval = g.AddNode(ops::kDropoutGrad, {dy, fwd->output(1), r, tm}, {"dx_eval"}, kDscDomain);
  bwd_eval->output(0)->type = x->type;
  Tensor off = Tensor::FromVector<int64_t>(DType::kBool, {}, {0});
  StatusOr<std::vector<Tensor>> e = RunNodeOnCpu(*bwd_eval, {&dyt, &mask, &rt, &off});
  ASSERT_TRUE(e.ok()) << e.status().ToString();
  for (int64_t i = 0; i < n; ++i) expect[i] = mask.GetAsInt(i) ? dys[i] : 0.0;
  EXPECT_TRUE(testing::AllClose((*e)[0], expect));
}

TEST(NnGradErrors, GatherGradIndexOutOfRange) {
  Graph g;
  Value* dy = g.AddInput("dy", Type(DType::kFloat32, {2, 3}));
  Value* idx = g.AddInput("idx", Type(DType::kInt64, {2}));
  Node* node = g.AddNode(ops::kGatherGrad, {dy, idx}, {"dd"}, kDscDomain, "emb_grad");
  node->output(0)->type = Type(DType::kFloat32, {4, 3});
  Tensor dyt(DType::kFloat32, {2, 3});
  Tensor it = Tensor::FromVector<int64_t>(DType::kInt64, {2}, {1, -5});
  StatusOr<std::vector<Tensor>> out = RunNodeOnCpu(*node, {&dyt, &it});
  ASSERT_FALSE(out.ok());
  EXPECT_NE(out.status().message().find("emb_grad"), std::string::npos) << out.status().ToString();
}

// padding_idx (nn.Embedding's): lookups of that row add nothing; the others scatter-add as usual.
TEST(NnGrad, GatherGradSkipsThePaddingRow) {
  Graph g;
  Value* dy = g.AddInput("dy", Type(DType::kFloat32, {4, 2}));
  Value* idx = g.AddInput("idx", Type(DType::kInt64, {4}));
  Node* node = g.AddNode(ops::kGatherGrad, {dy, idx}, {"dd"}, kDscDomain, "emb_grad");
  node->SetAttr("axis", int64_t{0});
  node->SetAttr("padding_idx", int64_t{1});
  node->output(0)->type = Type(DType::kFloat32, {3, 2});
  Tensor dyt = Tensor::FromVector<float>(DType::kFloat32, {4, 2}, {1, 2, 3, 4, 5, 6, 7, 8});
  Tensor it = Tensor::FromVector<int64_t>(DType::kInt64, {4}, {1, 2, -2, 0});  // -2 wraps to row 1
  StatusOr<std::vector<Tensor>> out = RunNodeOnCpu(*node, {&dyt, &it});
  ASSERT_TRUE(out.ok()) << out.status().ToString();
  EXPECT_TRUE(testing::AllClose((*out)[0], {7, 8, 0, 0, 3, 4}));

  node->SetAttr("padding_idx", int64_t{3});  // not a row of dData
  StatusOr<std::vector<Tensor>> bad = RunNodeOnCpu(*node, {&dyt, &it});
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("padding_idx"), std::string::npos) << bad.status().ToString();
}

TEST(NnGradErrors, SliceGradLengthMismatch) {
  Graph g;
  Value* dy = g.AddInput("dy", Type(DType::kFloat32, {3}));
  Value* s = g.AddInput("s", Type(DType::kInt64, {1}));
  Value* e = g.AddInput("e", Type(DType::kInt64, {1}));
  Node* node = g.AddNode(ops::kSliceGrad, {dy, s, e}, {"dx"}, kDscDomain, "sl_grad");
  node->output(0)->type = Type(DType::kFloat32, {5});
  Tensor dyt(DType::kFloat32, {3});
  Tensor st = Tensor::FromVector<int64_t>(DType::kInt64, {1}, {0});
  Tensor et = Tensor::FromVector<int64_t>(DType::kInt64, {1}, {2});
  StatusOr<std::vector<Tensor>> out = RunNodeOnCpu(*node, {&dyt, &st, &et});
  ASSERT_FALSE(out.ok());
  EXPECT_NE(out.status().message().find("sl_grad"), std::string::npos) << out.status().ToString();
}

TEST(NnGradErrors, IndexingGradsRefuseOutOfRangeIndices) {
  for (const char* op : {ops::kGatherElementsGrad, ops::kGatherNDGrad}) {
    Graph g;
    const bool nd = std::string(op) == ops::kGatherNDGrad;
    Value* dy = g.AddInput("dy", Type(DType::kFloat32, nd ? std::vector<int64_t>{2, 3} : std::vector<int64_t>{2, 1}));
    Value* idx = g.AddInput("idx", Type(DType::kInt64, {2, 1}));
    Node* node = g.AddNode(op, {dy, idx}, {"dd"}, kDscDomain, "indexing_grad");
    node->output(0)->type = Type(DType::kFloat32, {4, 3});
    Tensor dyt(DType::kFloat32, nd ? std::vector<int64_t>{2, 3} : std::vector<int64_t>{2, 1});
    Tensor it = Tensor::FromVector<int64_t>(DType::kInt64, {2, 1}, {1, nd ? 4 : -5});
    StatusOr<std::vector<Tensor>> out = RunNodeOnCpu(*node, {&dyt, &it});
    ASSERT_FALSE(out.ok()) << op;
    EXPECT_EQ(out.status().code(), StatusCode::kOutOfRange) << op;
    EXPECT_NE(out.status().message().find("indexing_grad"), std::string::npos) << out.status().ToString();
  }
}

// Shapes above the OpenMP threshold: one thread and several must agree bit for bit.
TEST(NnParallel, GradKernelsMatchAcrossThreadCounts) {
  using testing::NnRandom;
  using testing::NnStatic;
  struct Run {
    const char* op;
    std::vector<std::pair<DType, std::vector<int64_t>>> ins;
    std::vector<std::vector<int64_t>> outs;
    std::map<std::string, AttrValue> attrs;
  };
  const DType f = DType::kFloat32, i64 = DType::kInt64;
  const std::vector<int64_t> k3{3, 3}, s2{2, 2}, p1{1, 1, 1, 1};
  std::vector<Run> runs = {
      {ops::kReluGrad, {{f, {200, 200}}, {f, {200, 200}}}, {{200, 200}}, {}},
      {ops::kSoftmaxGrad, {{f, {8, 512, 16}}, {f, {8, 512, 16}}}, {{8, 512, 16}}, {{"axis", int64_t{1}}}},
      {ops::kLogSoftmaxGrad, {{f, {64, 1024}}, {f, {64, 1024}}}, {{64, 1024}}, {}},
      {ops::kLayerNormalizationGrad,
       {{f, {64, 4, 256}}, {f, {64, 4, 256}}, {f, {256}}},
       {{64, 4, 256}, {256}, {256}},
       {}},
      {ops::kBatchNormalizationGrad,
       {{f, {8, 16, 16, 17}}, {f, {8, 16, 16, 17}}, {f, {16}}},
       {{8, 16, 16, 17}, {16}, {16}},
       {}},
      {ops::kConvGrad,
       {{f, {2, 16, 20, 20}}, {f, {2, 8, 40, 40}}, {f, {16, 4, 3, 3}}},
       {{2, 8, 40, 40}, {16, 4, 3, 3}, {16}},
       {{"pads", p1}, {"strides", s2}, {"group", int64_t{2}}}},
      {ops::kMaxPoolGrad,
       {{f, {4, 16, 16, 16}}, {f, {4, 16, 32, 32}}},
       {{4, 16, 32, 32}},
       {{"kernel_shape", k3}, {"strides", s2}, {"pads", p1}}},
      {ops::kAveragePoolGrad,
       {{f, {4, 16, 16, 16}}},
       {{4, 16, 32, 32}},
       {{"kernel_shape", k3}, {"strides", s2}, {"pads", p1}, {"count_include_pad", int64_t{1}}}},
      {ops::kSoftmaxCrossEntropyLossGrad, {{f, {}}, {f, {64, 100, 8}}, {i64, {64, 8}}}, {{64, 100, 8}}, {}},
      {ops::kNegativeLogLikelihoodLossGrad,
       {{f, {64, 8}}, {f, {64, 100, 8}}, {i64, {64, 8}}},
       {{64, 100, 8}},
       {{"reduction", std::string("none")}}},
      {ops::kGatherGrad, {{f, {64, 40, 20}}, {i64, {40}}}, {{64, 30, 20}}, {{"axis", int64_t{1}}}},
  };
  for (const Run& r : runs) {
    SCOPED_TRACE(r.op);
    Graph g;
    std::vector<Value*> ins;
    std::vector<Tensor> ts;
    for (size_t i = 0; i < r.ins.size(); ++i) {
      ins.push_back(g.AddInput("in" + std::to_string(i), NnStatic(r.ins[i].first, r.ins[i].second)));
      if (r.ins[i].first == f) {
        ts.push_back(NnRandom(r.ins[i].second, static_cast<uint32_t>(i + 1)));
      } else {  // labels in [0, 100) for the losses, indices in [-30, 30) for GatherGrad
        ts.emplace_back(i64, r.ins[i].second);
        for (int64_t k = 0; k < ts.back().numel(); ++k) {
          const bool gather = r.ins.size() == 2;
          ts.back().data<int64_t>()[k] = gather ? (k * 7) % 60 - 30 : (k * 37) % 100;
        }
      }
    }
    std::vector<std::string> names;
    for (size_t i = 0; i < r.outs.size(); ++i) names.push_back("out" + std::to_string(i));
    Node* n = g.AddNode(r.op, ins, names, kDscDomain);
    for (size_t i = 0; i < r.outs.size(); ++i) n->output(i)->type = NnStatic(f, r.outs[i]);
    for (const auto& [k, v] : r.attrs) n->SetAttr(k, v);
    std::vector<Tensor*> args;
    for (Tensor& t : ts) args.push_back(&t);
    testing::ExpectSameAcrossThreadCounts(*n, args);
  }
}

}  // namespace
}  // namespace dsc
