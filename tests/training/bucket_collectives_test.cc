// The bucketed, asynchronous collectives (ir/dsc_ops.h, "Bucketed, asynchronous collectives") on
// one rank, through the program executor: every Start/Wait kind round-trips its members, Release
// counts live gathered elements, a Start never waited for and a Wait without a Start are errors
// naming the node. The layout lists (kernels/common/bucket_copy.h, which the CUDA kernels use too)
// are checked against the contract's formulas for several ranks. Multi-rank runs:
// tests/collectives_mpi/bucket_collectives_mpi.cc.
#include <gtest/gtest.h>

#include <cstring>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "ir/dsc_ops.h"
#include "kernels/common/bucket_copy.h"
#include "kernels/cpu/half_convert.h"
#include "runtime/communicator.h"
#include "runtime/device.h"
#include "runtime/executor.h"

namespace dsc {
namespace {

TensorType Typed(DType t, std::vector<int64_t> dims) {
  Shape s;
  for (int64_t d : dims) s.push_back(Dim::Static(d));
  return TensorType{t, s};
}

// Distinct, exactly representable values: member m's element j.
float Elem(int m, int64_t j) { return static_cast<float>(100 * (m + 1) + j) * 0.5f; }

Tensor Member(DType t, int m, int64_t n) {
  Tensor x(t, {n});
  for (int64_t j = 0; j < n; ++j) {
    if (t == DType::kFloat32) x.data<float>()[j] = Elem(m, j);
    else x.data<uint16_t>()[j] = t == DType::kBFloat16 ? FloatToBFloat16(Elem(m, j)) : FloatToHalf(Elem(m, j));
  }
  return x;
}

bool SameBytes(const Tensor& a, const Tensor& b) {
  return a.dtype() == b.dtype() && a.nbytes() == b.nbytes() && std::memcmp(a.raw(), b.raw(), a.nbytes()) == 0;
}

const std::vector<int64_t> kSizes = {5, 1, 7};

// A program of one bucket of members sized kSizes: <kind>Start, then its CollectiveWait.
struct Bucket {
  Graph g;
  Node* start = nullptr;
  Node* wait = nullptr;
};

std::unique_ptr<Bucket> MakeBucket(const std::string& kind, DType t, const char* op = "sum") {
  auto b = std::make_unique<Bucket>();
  const ops::BucketLayout layout(kSizes, 1);
  std::vector<Value*> members;
  for (size_t i = 0; i < kSizes.size(); ++i)
    members.push_back(b->g.AddInput(StrCat("x", i), Typed(t, {kSizes[i]})));  // world 1: chunk = tensor
  b->start = b->g.AddNode(ops::StartOpOf(kind), members, {"B"}, kDscDomain);
  b->start->output(0)->type = Typed(t, {layout.BufferElements(kind)});
  std::vector<Value*> wait_in = {b->start->output(0)};
  std::vector<std::string> outs;
  if (kind == ops::kAllGatherInPlace) wait_in.insert(wait_in.end(), members.begin(), members.end());
  else for (size_t i = 0; i < kSizes.size(); ++i) outs.push_back(StrCat("y", i));
  b->wait = b->g.AddNode(ops::kCollectiveWait, wait_in, outs, kDscDomain);
  for (size_t i = 0; i < outs.size(); ++i) {
    b->wait->output(i)->type = Typed(t, {kSizes[i]});
    b->g.AddOutput(b->wait->output(i));
  }
  for (Node* n : {b->start, b->wait}) {
    n->SetAttr("world", int64_t{1});
    n->SetAttr("bucket", int64_t{0});
  }
  if (kind == ops::kAllReduce || kind == ops::kReduceScatter) b->start->SetAttr("op", std::string(op));
  b->wait->SetAttr("kind", kind);
  return b;
}

class SingleRankBuckets : public ::testing::TestWithParam<bool> {  // true: CreateLocalCommunicator()
 protected:
  void SetUp() override {
    if (GetParam()) local_ = CreateLocalCommunicator();
    cpu_ = CreateCpuDevice(1);
  }
  RunOptions Options() const {
    RunOptions o;
    o.comm = local_.get();
    return o;
  }
  std::unique_ptr<Communicator> local_;
  std::unique_ptr<Device> cpu_;
};

// With one rank every kind gives back its members: a reduction of one rank is the value itself,
// a gather of one chunk is the whole tensor.
TEST_P(SingleRankBuckets, EveryKindRoundTrips) {
  for (DType t : {DType::kFloat32, DType::kFloat16}) {
    for (const std::string kind : {ops::kAllReduce, ops::kReduceScatter, ops::kAllGather, ops::kAllGatherInPlace}) {
      for (const char* op : {"sum", "avg"}) {
        SCOPED_TRACE(StrCat(kind, " ", DTypeName(t), " ", op));
        auto b = MakeBucket(kind, t, op);
        auto ex = ProgramExecutor::Create(b->g, cpu_.get());
        ASSERT_TRUE(ex.ok()) << ex.status().ToString();
        std::vector<Tensor> xs;
        for (size_t i = 0; i < kSizes.size(); ++i) xs.push_back(Member(t, static_cast<int>(i), kSizes[i]));
        // AllGatherInPlace writes its members: they start as junk except this rank's chunk, which
        // with one rank is everything.
        for (size_t i = 0; i < kSizes.size(); ++i)
          ASSERT_TRUE((*ex)->Bind(StrCat("x", i), TensorView{t, xs[i].dims(), xs[i].raw()}).ok());
        for (int run = 0; run < 2; ++run) {  // twice: the table is empty again after a run
          ASSERT_TRUE((*ex)->Run(Options()).ok());
          EXPECT_TRUE((*ex)->comm_state().empty());
          for (size_t i = 0; i < kSizes.size(); ++i) {
            const Tensor want = Member(t, static_cast<int>(i), kSizes[i]);
            if (kind == ops::kAllGatherInPlace) {
              EXPECT_TRUE(SameBytes(xs[i], want)) << "member " << i;
              continue;
            }
            const TensorView* y = (*ex)->Output(StrCat("y", i));
            ASSERT_NE(y, nullptr);
            ASSERT_EQ(y->numel(), kSizes[i]);
            EXPECT_EQ(std::memcmp(y->ptr, want.raw(), want.nbytes()), 0) << "member " << i;
          }
        }
        // One rank sends nothing: no calls are counted.
        if (local_) {
          for (const auto& [name, n] : local_->calls()) EXPECT_EQ(n, 0) << name;
        }
        if (kind == ops::kAllGather || kind == ops::kAllGatherInPlace) break;  // no op attribute
      }
    }
  }
}

TEST_P(SingleRankBuckets, StartNeverWaitedIsAnErrorNamingIt) {
  Graph g;
  Value* x = g.AddInput("x", Typed(DType::kFloat32, {3}));
  Node* s = g.AddNode(ops::kAllReduceStart, {x}, {"B"}, kDscDomain, "grads_bucket_0");
  s->output(0)->type = Typed(DType::kFloat32, {3});
  s->SetAttr("world", int64_t{1});
  s->SetAttr("op", std::string("avg"));
  g.AddOutput(s->output(0));
  auto ex = ProgramExecutor::Create(g, cpu_.get());
  ASSERT_TRUE(ex.ok()) << ex.status().ToString();
  Tensor xt = Member(DType::kFloat32, 0, 3);
  ASSERT_TRUE((*ex)->Bind("x", TensorView{DType::kFloat32, {3}, xt.raw()}).ok());
  for (int run = 0; run < 2; ++run) {  // the failed run left nothing in flight: the same error again
    Status st = (*ex)->Run(Options());
    ASSERT_FALSE(st.ok());
    EXPECT_NE(st.message().find("never waited for"), std::string::npos) << st.ToString();
    EXPECT_NE(st.message().find("grads_bucket_0"), std::string::npos) << st.ToString();
    EXPECT_TRUE((*ex)->comm_state().empty());
  }
}

TEST_P(SingleRankBuckets, WaitWithoutStartIsAnError) {
  Graph g;
  Value* b = g.AddInput("B", Typed(DType::kFloat32, {3}));
  Node* w = g.AddNode(ops::kCollectiveWait, {b}, {"y"}, kDscDomain, "wait_bucket_4");
  w->output(0)->type = Typed(DType::kFloat32, {3});
  w->SetAttr("world", int64_t{1});
  w->SetAttr("kind", std::string(ops::kAllReduce));
  g.AddOutput(w->output(0));
  auto ex = ProgramExecutor::Create(g, cpu_.get());
  ASSERT_TRUE(ex.ok()) << ex.status().ToString();
  Tensor bt(DType::kFloat32, {3});
  ASSERT_TRUE((*ex)->Bind("B", TensorView{DType::kFloat32, {3}, bt.raw()}).ok());
  Status st = (*ex)->Run(Options());
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.message().find("wait_bucket_4"), std::string::npos) << st.ToString();
  EXPECT_NE(st.message().find("no collective is in flight"), std::string::npos) << st.ToString();
}

TEST_P(SingleRankBuckets, BufferOfTheWrongSizeIsRefused) {
  auto b = MakeBucket(ops::kReduceScatter, DType::kFloat32);
  b->start->output(0)->type = Typed(DType::kFloat32, {26});  // the layout needs 1 * 13
  b->wait->input(0)->type = b->start->output(0)->type;
  auto ex = ProgramExecutor::Create(b->g, cpu_.get());
  ASSERT_TRUE(ex.ok()) << ex.status().ToString();
  std::vector<Tensor> xs;
  for (size_t i = 0; i < kSizes.size(); ++i) {
    xs.push_back(Member(DType::kFloat32, static_cast<int>(i), kSizes[i]));
    ASSERT_TRUE((*ex)->Bind(StrCat("x", i), TensorView{DType::kFloat32, xs[i].dims(), xs[i].raw()}).ok());
  }
  Status st = (*ex)->Run(Options());
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.message().find("B has 26 elements"), std::string::npos) << st.ToString();
  EXPECT_NE(st.message().find("needs 13"), std::string::npos) << st.ToString();
}

// Two gathered buckets: live elements count from each AllGatherStart to the Release of its
// parameters. Order: start A, start B, wait A, release A, wait B, release B, start A' (A again
// under new names), wait, release. Peak = |A| + |B| (both in flight together); live ends at 0.
TEST_P(SingleRankBuckets, ReleaseCountsLiveGatheredElements) {
  Graph g;
  const DType t = DType::kFloat32;
  auto start = [&](const std::string& tag, const std::vector<int64_t>& sizes) {
    std::vector<Value*> in;
    for (size_t i = 0; i < sizes.size(); ++i) in.push_back(g.AddInput(StrCat(tag, "_x", i), Typed(t, {sizes[i]})));
    Node* s = g.AddNode(ops::kAllGatherStart, in, {tag + "_B"}, kDscDomain, tag + "_start");
    s->output(0)->type = Typed(t, {ops::BucketLayout(sizes, 1).BufferElements(ops::kAllGather)});
    s->SetAttr("world", int64_t{1});
    return s;
  };
  auto wait = [&](Node* s, const std::string& tag, const std::vector<int64_t>& sizes) {
    std::vector<std::string> outs;
    for (size_t i = 0; i < sizes.size(); ++i) outs.push_back(StrCat(tag, "_y", i));
    Node* w = g.AddNode(ops::kCollectiveWait, {s->output(0)}, outs, kDscDomain, tag + "_wait");
    for (size_t i = 0; i < sizes.size(); ++i) w->output(i)->type = Typed(t, {sizes[i]});
    w->SetAttr("world", int64_t{1});
    w->SetAttr("kind", std::string(ops::kAllGather));
    return w;
  };
  auto release = [&](Node* w, const std::string& tag) {
    g.AddNode(ops::kRelease, w->outputs(), {}, kDscDomain, tag + "_release");
  };
  const std::vector<int64_t> a = {5, 1, 7}, bb = {4, 9}, c = {6};
  Node* sa = start("a", a);
  Node* sb = start("b", bb);
  Node* wa = wait(sa, "a", a);
  release(wa, "a");
  Node* wb = wait(sb, "b", bb);
  release(wb, "b");
  Node* sc = start("c", c);
  Node* wc = wait(sc, "c", c);
  g.AddOutput(wc->output(0));
  release(wc, "c");
  auto ex = ProgramExecutor::Create(g, cpu_.get());
  ASSERT_TRUE(ex.ok()) << ex.status().ToString();
  std::map<std::string, Tensor> inputs;
  for (const Value* v : g.inputs()) {
    Tensor x(t, DimValues(*v->type.shape));
    for (int64_t j = 0; j < x.numel(); ++j) x.data<float>()[j] = static_cast<float>(j);
    ASSERT_TRUE((*ex)->Bind(v->name(), TensorView{t, x.dims(), x.raw()}).ok());
    inputs.emplace(v->name(), std::move(x));
  }
  ASSERT_TRUE((*ex)->Run(Options()).ok());
  EXPECT_EQ((*ex)->comm_state().gathered_peak(), 5 + 1 + 7 + 4 + 9);
  EXPECT_EQ((*ex)->comm_state().gathered_live(), 0);
  // ResetPeak starts the next window at what is live now (0); a second run peaks the same.
  (*ex)->comm_state().ResetPeak();
  EXPECT_EQ((*ex)->comm_state().gathered_peak(), 0);
  ASSERT_TRUE((*ex)->Run(Options()).ok());
  EXPECT_EQ((*ex)->comm_state().gathered_peak(), 5 + 1 + 7 + 4 + 9);
}

// An AllGatherStart's inputs are chunks: the gathered sizes it counts come from its Wait.
TEST_P(SingleRankBuckets, GatherWithoutWaitIsRefusedAtCreation) {
  Graph g;
  Value* x = g.AddInput("x", Typed(DType::kFloat32, {3}));
  Node* s = g.AddNode(ops::kAllGatherStart, {x}, {"B"}, kDscDomain, "params_bucket_2");
  s->output(0)->type = Typed(DType::kFloat32, {3});
  s->SetAttr("world", int64_t{1});
  g.AddOutput(s->output(0));
  auto ex = ProgramExecutor::Create(g, cpu_.get());
  ASSERT_FALSE(ex.ok());
  EXPECT_NE(ex.status().message().find("params_bucket_2"), std::string::npos) << ex.status().ToString();
  EXPECT_NE(ex.status().message().find("read by no CollectiveWait"), std::string::npos) << ex.status().ToString();
}

TEST_P(SingleRankBuckets, ReleaseOfWhatWasNotGatheredIsAnError) {
  Graph g;
  Value* x = g.AddInput("w", Typed(DType::kFloat32, {4}));
  g.AddNode(ops::kRelease, {x}, {}, kDscDomain, "release_w");
  auto ex = ProgramExecutor::Create(g, cpu_.get());
  ASSERT_TRUE(ex.ok()) << ex.status().ToString();
  Tensor w(DType::kFloat32, {4});
  ASSERT_TRUE((*ex)->Bind("w", TensorView{DType::kFloat32, {4}, w.raw()}).ok());
  Status st = (*ex)->Run(Options());
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.message().find("release_w"), std::string::npos) << st.ToString();
  EXPECT_NE(st.message().find("only 0 are live"), std::string::npos) << st.ToString();
}

INSTANTIATE_TEST_SUITE_P(Comm, SingleRankBuckets, ::testing::Values(false, true));

// ---------------------------------------------------------------- layout lists vs the contract

// Applies a member's lists (elements of floats).
void Apply(const coll::MemberCopies& m, float* dst, const float* src) {
  for (const coll::Segment& s : m.copies) std::memcpy(dst + s.dst, src + s.src, static_cast<size_t>(s.len) * 4);
  for (const coll::ZeroRange& z : m.zeros) std::memset(dst + z.at, 0, static_cast<size_t>(z.len) * 4);
}

class Layout : public ::testing::TestWithParam<int> {};  // the world size

// Packing for rank `rank`, each kind, against B written element by element from the contract:
// C = sum c_i, o_i = sum_{j<i} c_j; block r holds member i's chunk r at o_i, zero past n_i.
TEST_P(Layout, PackFollowsTheContract) {
  const int64_t world = GetParam();
  const ops::BucketLayout l(kSizes, world);
  const size_t k = kSizes.size();
  std::vector<int64_t> c(k), o(k), flat(k);
  int64_t C = 0, total = 0;
  for (size_t i = 0; i < k; ++i) {
    c[i] = (kSizes[i] + world - 1) / world;
    o[i] = C;
    flat[i] = total;
    C += c[i];
    total += kSizes[i];
  }
  std::vector<std::vector<float>> x(k);
  for (size_t i = 0; i < k; ++i)
    for (int64_t j = 0; j < kSizes[i]; ++j) x[i].push_back(Elem(static_cast<int>(i), j));
  const float junk = -7.0f;  // what B holds before packing
  for (int64_t rank = 0; rank < world; ++rank) {
    for (const std::string kind : {ops::kAllReduce, ops::kReduceScatter, ops::kAllGather, ops::kAllGatherInPlace}) {
      SCOPED_TRACE(StrCat(kind, " world ", world, " rank ", rank));
      std::vector<float> got(static_cast<size_t>(l.BufferElements(kind)), junk), want = got;
      for (size_t i = 0; i < k; ++i) {
        std::vector<float> src = x[i];
        if (kind == ops::kAllGather) {  // the member is this rank's padded chunk
          src.assign(static_cast<size_t>(c[i]), 0.0f);
          for (int64_t j = 0; j < c[i]; ++j)
            if (rank * c[i] + j < kSizes[i]) src[static_cast<size_t>(j)] = x[i][static_cast<size_t>(rank * c[i] + j)];
        }
        Apply(coll::PackCopies(l, kind, rank, i), got.data(), src.data());
        if (kind == ops::kAllReduce) {
          for (int64_t j = 0; j < kSizes[i]; ++j) want[static_cast<size_t>(flat[i] + j)] = x[i][static_cast<size_t>(j)];
          continue;
        }
        for (int64_t r = 0; r < world; ++r) {
          if (kind != ops::kReduceScatter && r != rank) continue;  // gathers pack this rank's block only
          for (int64_t j = 0; j < c[i]; ++j) {
            const int64_t e = r * c[i] + j;
            want[static_cast<size_t>(r * C + o[i] + j)] = e < kSizes[i] ? x[i][static_cast<size_t>(e)] : 0.0f;
          }
        }
      }
      EXPECT_EQ(got, want);
    }
  }
}

// Unpacking, against Y_i written from the contract: AllReduce B[flat_i, +n_i); ReduceScatter the
// rank's own block, reduced in place, B[rank*C + o_i, +c_i); gathers element e of Y_i =
// B[(e / c_i)*C + o_i + e % c_i].
TEST_P(Layout, UnpackFollowsTheContract) {
  const int64_t world = GetParam();
  const ops::BucketLayout l(kSizes, world);
  for (int64_t rank = 0; rank < world; ++rank) {
    for (const std::string kind : {ops::kAllReduce, ops::kReduceScatter, ops::kAllGather, ops::kAllGatherInPlace}) {
      SCOPED_TRACE(StrCat(kind, " world ", world, " rank ", rank));
      std::vector<float> b(static_cast<size_t>(l.BufferElements(kind)));
      for (size_t e = 0; e < b.size(); ++e) b[e] = static_cast<float>(e) + 0.25f;
      for (size_t i = 0; i < kSizes.size(); ++i) {
        const auto& m = l.members[i];
        const int64_t n = kind == ops::kReduceScatter ? m.chunk : m.numel;
        std::vector<float> got(static_cast<size_t>(n), -1.0f), want(static_cast<size_t>(n));
        for (int64_t e = 0; e < n; ++e) {
          int64_t at;
          if (kind == ops::kAllReduce) at = m.flat_offset + e;
          else if (kind == ops::kReduceScatter) at = rank * l.block + m.block_offset + e;
          else at = (e / m.chunk) * l.block + m.block_offset + e % m.chunk;
          want[static_cast<size_t>(e)] = b[static_cast<size_t>(at)];
        }
        Apply(coll::UnpackCopies(l, kind, rank, i), got.data(), b.data());
        EXPECT_EQ(got, want) << "member " << i;
      }
    }
  }
}

INSTANTIATE_TEST_SUITE_P(World, Layout, ::testing::Values(1, 2, 3, 4));

}  // namespace
}  // namespace dsc
