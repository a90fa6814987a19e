// Kernel tests of the ZeRO collectives (AllReduce, ReduceScatter, AllGather, AllGatherInPlace) and
// of the shard mode of AdamStep/SGDStep (ir/dsc_ops.h), without MPI: single rank (no communicator
// and CreateLocalCommunicator()), and rank r of N simulated by a fake communicator whose peers'
// contributions are set up front. The multi-process check is tests/collectives_mpi/.
#include <gtest/gtest.h>

#include "tests/kernels/kernel_test_util.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "ir/dsc_ops.h"
#include "kernels/kernel.h"
#include "runtime/communicator.h"

namespace dsc {
namespace {

using ::dsc::testing::F32;

Tensor Floats(const std::vector<float>& v) { return Tensor::FromVector(DType::kFloat32, {static_cast<int64_t>(v.size())}, v); }
Tensor Scalar(double v) { return Tensor::Scalar(DType::kFloat32, v); }
Tensor Step(int64_t k) { return Tensor::FromVector<int64_t>(DType::kInt64, {}, {k}); }
// A deep copy (Tensor copies share their data).
Tensor Clone(const Tensor& t) {
  Tensor c(t.dtype(), t.dims());
  if (t.nbytes()) std::memcpy(c.raw(), t.raw(), t.nbytes());
  return c;
}
std::vector<float> Values(const Tensor& t) { return std::vector<float>(t.data<float>(), t.data<float>() + t.numel()); }

StatusOr<std::vector<Tensor>> RunNode(const Node& node, const std::vector<Tensor*>& inputs, Communicator* comm) {
  return testing::RunNodeOnCpu(node, inputs, /*seed=*/0, /*step=*/1, comm);
}

// Rank `rank` of `size`: peers[q] is what rank q contributes (the whole send buffer of a
// reduction, the chunk of a gather). Collectives complete at once; Wait() is counted.
class FakeCommunicator : public Communicator {
 public:
  FakeCommunicator(int rank, int size, std::map<int, std::vector<float>> peers)
      : rank_(rank), size_(size), peers_(std::move(peers)) {}
  int rank() const override { return rank_; }
  int size() const override { return size_; }

  StatusOr<std::unique_ptr<CommHandle>> AllReduce(void* buf, int64_t count, DType, ReduceOp op) override {
    float* b = static_cast<float*>(buf);
    for (int64_t i = 0; i < count; ++i) {
      float sum = 0;
      for (int q = 0; q < size_; ++q) sum += q == rank_ ? b[i] : Peer(q, i);
      b[i] = op == ReduceOp::kAvg ? sum / static_cast<float>(size_) : sum;
    }
    return Handle("all_reduce", count);
  }
  StatusOr<std::unique_ptr<CommHandle>> ReduceScatter(const void* send, void* recv, int64_t recv_count, DType,
                                                      ReduceOp op) override {
    const float* s = static_cast<const float*>(send);
    float* r = static_cast<float*>(recv);
    for (int64_t i = 0; i < recv_count; ++i) {
      const int64_t at = rank_ * recv_count + i;
      float sum = 0;
      for (int q = 0; q < size_; ++q) sum += q == rank_ ? s[at] : Peer(q, at);
      r[i] = op == ReduceOp::kAvg ? sum / static_cast<float>(size_) : sum;
    }
    return Handle("reduce_scatter", recv_count);
  }
  StatusOr<std::unique_ptr<CommHandle>> AllGather(const void* send, void* recv, int64_t send_count, DType) override {
    float* r = static_cast<float*>(recv);
    std::memmove(r + rank_ * send_count, send, static_cast<size_t>(send_count) * sizeof(float));
    for (int q = 0; q < size_; ++q)
      if (q != rank_)
        for (int64_t i = 0; i < send_count; ++i) r[q * send_count + i] = Peer(q, i);
    return Handle("all_gather", send_count);
  }
  StatusOr<std::unique_ptr<CommHandle>> Broadcast(void*, int64_t, DType, int) override {
    return Unimplemented("FakeCommunicator::Broadcast");
  }
  StatusOr<std::unique_ptr<CommHandle>> AllToAll(const void*, void*, int64_t, DType) override {
    return Unimplemented("FakeCommunicator::AllToAll");
  }
  Status Barrier() override { return Status::OK(); }
  std::map<std::string, int64_t> bytes_sent() const override { return {}; }
  std::map<std::string, int64_t> calls() const override {
    std::map<std::string, int64_t> n = ZeroCollectiveCounts();
    for (const auto& [kind, count] : issued) ++n[kind];
    return n;
  }
  [[noreturn]] void Abort(const std::string& message, int) override {
    ADD_FAILURE() << "Abort: " << message;
    std::abort();
  }

  std::vector<std::pair<std::string, int64_t>> issued;  // (collective, count) in issue order
  int waits = 0;

 private:
  class FakeHandle : public CommHandle {
   public:
    explicit FakeHandle(int* waits) : waits_(waits) {}
    Status Wait() override {
      ++*waits_;
      return Status::OK();
    }

   private:
    int* waits_;
  };
  std::unique_ptr<CommHandle> Handle(const char* kind, int64_t count) {
    issued.emplace_back(kind, count);
    return std::make_unique<FakeHandle>(&waits);
  }
  float Peer(int q, int64_t i) const {
    const std::vector<float>& v = peers_.at(q);
    return i < static_cast<int64_t>(v.size()) ? v[static_cast<size_t>(i)] : 0.0f;
  }

  int rank_, size_;
  std::map<int, std::vector<float>> peers_;
};

// One-node graphs.
struct OneNode {
  Graph g;
  Node* node = nullptr;
};

std::unique_ptr<OneNode> Collective(const char* op, int64_t in_n, int64_t out_n, int64_t world, const char* reduce = nullptr) {
  auto m = std::make_unique<OneNode>();
  Value* x = m->g.AddInput("x", F32({in_n}));
  std::vector<std::string> outs;
  if (out_n >= 0) outs.push_back("y");
  m->node = m->g.AddNode(op, {x}, outs, kDscDomain);
  if (out_n >= 0) m->node->output(0)->type = F32({out_n});
  if (world > 0) m->node->SetAttr("world", world);
  if (reduce) m->node->SetAttr("op", std::string(reduce));
  return m;
}

// ---------------------------------------------------------------- single rank

class SingleRank : public ::testing::TestWithParam<bool> {  // true: CreateLocalCommunicator()
 protected:
  void SetUp() override {
    if (GetParam()) local_ = CreateLocalCommunicator();
  }
  Communicator* comm() { return local_.get(); }
  std::unique_ptr<Communicator> local_;
};

TEST_P(SingleRank, AllReduceCopies) {
  for (const char* op : {"avg", "sum"}) {
    auto m = Collective(ops::kAllReduce, 5, 5, GetParam() ? 1 : 0, op);
    Tensor x = Floats({1, -2, 3.5f, 4, 1e-30f});
    auto out = RunNode(*m->node, {&x}, comm());
    ASSERT_TRUE(out.ok()) << out.status().ToString();
    EXPECT_EQ(Values((*out)[0]), Values(x)) << op;
  }
}

TEST_P(SingleRank, ReduceScatterCopiesWholeTensor) {
  auto m = Collective(ops::kReduceScatter, 5, 5, 1, "avg");
  Tensor x = Floats({1, 2, 3, 4, 5});
  auto out = RunNode(*m->node, {&x}, comm());
  ASSERT_TRUE(out.ok()) << out.status().ToString();
  EXPECT_EQ(Values((*out)[0]), Values(x));
}

TEST_P(SingleRank, AllGatherCopies) {
  auto m = Collective(ops::kAllGather, 5, 5, 1);
  Tensor x = Floats({1, 2, 3, 4, 5});
  auto out = RunNode(*m->node, {&x}, comm());
  ASSERT_TRUE(out.ok()) << out.status().ToString();
  EXPECT_EQ(Values((*out)[0]), Values(x));
}

TEST_P(SingleRank, AllGatherInPlaceLeavesTensor) {
  auto m = Collective(ops::kAllGatherInPlace, 5, -1, 1);
  Tensor p = Floats({1, 2, 3, 4, 5});
  auto out = RunNode(*m->node, {&p}, comm());
  ASSERT_TRUE(out.ok()) << out.status().ToString();
  EXPECT_EQ(Values(p), (std::vector<float>{1, 2, 3, 4, 5}));
}

TEST_P(SingleRank, WrongWorldIsAnError) {
  auto m = Collective(ops::kAllReduce, 2, 2, 3, "sum");
  Tensor x = Floats({1, 2});
  auto out = RunNode(*m->node, {&x}, comm());
  ASSERT_FALSE(out.ok());
  EXPECT_NE(out.status().ToString().find("compiled for 3 ranks but runs on 1"), std::string::npos)
      << out.status().ToString();
}

// Half tensors on one rank: every collective is a copy of the 2-byte words (padding included
// for the 5-element tensor), and an output of another dtype is refused.
TEST_P(SingleRank, HalfCollectivesCopyWords) {
  for (DType t : {DType::kFloat16, DType::kBFloat16}) {
    SCOPED_TRACE(DTypeName(t));
    Tensor x(t, {5});
    for (int i = 0; i < 5; ++i) x.data<uint16_t>()[i] = static_cast<uint16_t>(0x3c00 + 7 * i);
    for (const char* op : {ops::kAllReduce, ops::kReduceScatter, ops::kAllGather}) {
      Graph g;
      Node* n = g.AddNode(op, {g.AddInput("x", TensorType{t, testing::StaticShape({5})})}, {"y"}, kDscDomain);
      n->output(0)->type = TensorType{t, testing::StaticShape({5})};
      if (std::string(op) != ops::kAllGather) n->SetAttr("op", std::string("avg"));
      auto out = RunNode(*n, {&x}, comm());
      ASSERT_TRUE(out.ok()) << op << ": " << out.status().ToString();
      EXPECT_TRUE((*out)[0].SameContents(x)) << op;
    }
    Graph g;
    Node* n = g.AddNode(ops::kAllReduce, {g.AddInput("x", TensorType{t, testing::StaticShape({5})})}, {"y"}, kDscDomain);
    n->output(0)->type = F32({5});
    EXPECT_FALSE(KernelRegistry::Global().Create(*n, DeviceKind::kCpu).ok()) << "half in, float out";
  }
}

INSTANTIATE_TEST_SUITE_P(Comm, SingleRank, ::testing::Bool(),
                         [](const auto& info) { return info.param ? "Local" : "Null"; });

TEST(Collectives, BadReduceOpIsAnError) {
  auto m = Collective(ops::kAllReduce, 2, 2, 1, "max");
  EXPECT_FALSE(KernelRegistry::Global().Create(*m->node, DeviceKind::kCpu).ok());
}

TEST(Collectives, WrongOutputSizeIsAnError) {
  auto m = Collective(ops::kReduceScatter, 7, 7, 3, "sum");  // Y must hold ceil(7/3) = 3
  FakeCommunicator comm(1, 3, {{0, std::vector<float>(9)}, {2, std::vector<float>(9)}});
  Tensor x = Floats({1, 2, 3, 4, 5, 6, 7});
  EXPECT_FALSE(RunNode(*m->node, {&x}, &comm).ok());
}

// ---------------------------------------------------------------- rank r of 3, n = 7 (c = 3)

const std::vector<float> kX0 = {1, 2, 3, 4, 5, 6, 7}, kX1 = {10, 20, 30, 40, 50, 60, 70},
                         kX2 = {0.5f, 0.25f, 0.125f, -1, -2, -3, 100};

TEST(Collectives, AllReduceRank1Of3) {
  for (const char* op : {"avg", "sum"}) {
    auto m = Collective(ops::kAllReduce, 7, 7, 3, op);
    FakeCommunicator comm(1, 3, {{0, kX0}, {2, kX2}});
    Tensor x = Floats(kX1);
    auto out = RunNode(*m->node, {&x}, &comm);
    ASSERT_TRUE(out.ok()) << out.status().ToString();
    std::vector<float> want(7);
    for (size_t i = 0; i < 7; ++i) {
      want[i] = kX0[i] + kX1[i] + kX2[i];
      if (std::string(op) == "avg") want[i] /= 3.0f;
    }
    EXPECT_EQ(Values((*out)[0]), want) << op;
    EXPECT_EQ(Values(x), kX1);  // X untouched
    EXPECT_EQ(comm.waits, 1);
  }
}

TEST(Collectives, ReduceScatterPadsToWorldTimesChunk) {
  for (int rank : {1, 2}) {
    SCOPED_TRACE(rank);
    auto m = Collective(ops::kReduceScatter, 7, 3, 3, "avg");
    std::map<int, std::vector<float>> peers = {{0, kX0}, {1, kX1}, {2, kX2}};
    const std::vector<float> mine = peers[rank];
    peers.erase(rank);
    FakeCommunicator comm(rank, 3, peers);
    Tensor x = Floats(mine);
    auto out = RunNode(*m->node, {&x}, &comm);
    ASSERT_TRUE(out.ok()) << out.status().ToString();
    std::vector<float> want(3, 0.0f);
    for (size_t i = 0; i < 3; ++i) {
      const size_t at = static_cast<size_t>(rank) * 3 + i;
      if (at < 7) want[i] = (kX0[at] + kX1[at] + kX2[at]) / 3.0f;
    }
    EXPECT_EQ(Values((*out)[0]), want);  // rank 2: [avg(x[6]), 0, 0]
    ASSERT_EQ(comm.issued.size(), 1u);
    EXPECT_EQ(comm.issued[0], std::make_pair(std::string("reduce_scatter"), int64_t{3}));
    EXPECT_EQ(comm.waits, 1);
  }
}

TEST(Collectives, AllGatherDropsPadding) {
  auto m = Collective(ops::kAllGather, 3, 7, 3);
  FakeCommunicator comm(1, 3, {{0, {1, 2, 3}}, {2, {7, 0, 0}}});
  Tensor x = Floats({4, 5, 6});
  auto out = RunNode(*m->node, {&x}, &comm);
  ASSERT_TRUE(out.ok()) << out.status().ToString();
  EXPECT_EQ(Values((*out)[0]), (std::vector<float>{1, 2, 3, 4, 5, 6, 7}));
  EXPECT_EQ(comm.waits, 1);
}

TEST(Collectives, AllGatherInPlace) {
  {  // n = 7 (padded), rank 1 owns [3, 6)
    auto m = Collective(ops::kAllGatherInPlace, 7, -1, 3);
    FakeCommunicator comm(1, 3, {{0, {1, 2, 3}}, {2, {7, 0, 0}}});
    Tensor p = Floats({-1, -1, -1, 4, 5, 6, -1});
    ASSERT_TRUE(RunNode(*m->node, {&p}, &comm).ok());
    EXPECT_EQ(Values(p), (std::vector<float>{1, 2, 3, 4, 5, 6, 7}));
    EXPECT_EQ(comm.issued.at(0).second, 3);
    EXPECT_EQ(comm.waits, 1);
  }
  {  // n = 7, rank 2 owns [6, 7)
    auto m = Collective(ops::kAllGatherInPlace, 7, -1, 3);
    FakeCommunicator comm(2, 3, {{0, {1, 2, 3}}, {1, {4, 5, 6}}});
    Tensor p = Floats({-1, -1, -1, -1, -1, -1, 7});
    ASSERT_TRUE(RunNode(*m->node, {&p}, &comm).ok());
    EXPECT_EQ(Values(p), (std::vector<float>{1, 2, 3, 4, 5, 6, 7}));
  }
  {  // n = 6 (no padding, gathered in place), rank 1 owns [2, 4)
    auto m = Collective(ops::kAllGatherInPlace, 6, -1, 3);
    FakeCommunicator comm(1, 3, {{0, {1, 2}}, {2, {5, 6}}});
    Tensor p = Floats({-1, -1, 3, 4, -1, -1});
    ASSERT_TRUE(RunNode(*m->node, {&p}, &comm).ok());
    EXPECT_EQ(Values(p), (std::vector<float>{1, 2, 3, 4, 5, 6}));
  }
  {  // n = 2 on 3 ranks: c = 1, rank 2 owns nothing
    auto m = Collective(ops::kAllGatherInPlace, 2, -1, 3);
    FakeCommunicator comm(2, 3, {{0, {8}}, {1, {9}}});
    Tensor p = Floats({-1, -1});
    ASSERT_TRUE(RunNode(*m->node, {&p}, &comm).ok());
    EXPECT_EQ(Values(p), (std::vector<float>{8, 9}));
  }
}

TEST(Collectives, RunsWithCommOfWrongSizeFail) {
  auto m = Collective(ops::kAllGather, 3, 7, 3);
  FakeCommunicator comm(1, 2, {{0, {1, 2, 3}}});
  Tensor x = Floats({4, 5, 6});
  auto out = RunNode(*m->node, {&x}, &comm);
  ASSERT_FALSE(out.ok());
  EXPECT_NE(out.status().ToString().find("compiled for 3 ranks but runs on 2"), std::string::npos)
      << out.status().ToString();
}

// ---------------------------------------------------------------- shard mode of the optimizer steps

struct AdamAttrs {
  float wd;
  int64_t adam_w_mode;
};

std::unique_ptr<OneNode> AdamNode(int64_t n, int64_t state_n, int64_t shard, AdamAttrs a) {
  auto m = std::make_unique<OneNode>();
  std::vector<Value*> in = {m->g.AddInput("p", F32({n}))};
  for (const char* name : {"g", "m", "v"}) in.push_back(m->g.AddInput(name, F32({state_n})));
  in.push_back(m->g.AddInput("lr", F32({})));
  in.push_back(m->g.AddInput("step", TensorType{DType::kInt64, Shape{}}));
  in.push_back(m->g.AddInput("scale", F32({})));
  m->node = m->g.AddNode(ops::kAdamStep, in, {}, kDscDomain);
  m->node->SetAttr("beta1", 0.9f);
  m->node->SetAttr("beta2", 0.999f);
  m->node->SetAttr("epsilon", 1e-8f);
  m->node->SetAttr("weight_decay", a.wd);
  m->node->SetAttr("adam_w_mode", a.adam_w_mode);
  if (shard >= 0) m->node->SetAttr("shard", shard);
  return m;
}

std::unique_ptr<OneNode> SgdNode(int64_t n, int64_t state_n, int64_t shard, float momentum, int64_t nesterov) {
  auto m = std::make_unique<OneNode>();
  std::vector<Value*> in = {m->g.AddInput("p", F32({n})), m->g.AddInput("g", F32({state_n})),
                            m->g.AddInput("buf", F32({state_n}))};
  in.push_back(m->g.AddInput("lr", F32({})));
  in.push_back(m->g.AddInput("step", TensorType{DType::kInt64, Shape{}}));
  in.push_back(m->g.AddInput("scale", F32({})));
  m->node = m->g.AddNode(ops::kSGDStep, in, {}, kDscDomain);
  m->node->SetAttr("momentum", momentum);
  m->node->SetAttr("dampening", 0.1f);
  m->node->SetAttr("nesterov", nesterov);
  m->node->SetAttr("weight_decay", 0.01f);
  if (shard >= 0) m->node->SetAttr("shard", shard);
  return m;
}

std::vector<float> Ramp(int64_t n, float a, float b) {
  std::vector<float> v(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) v[static_cast<size_t>(i)] = a + b * static_cast<float>(i * i % 7) - 0.3f * static_cast<float>(i);
  return v;
}

TEST(ShardMode, AdamWorld1EqualsUnsharded) {
  for (AdamAttrs a : {AdamAttrs{0.0f, 1}, AdamAttrs{0.05f, 1}, AdamAttrs{0.05f, 0}}) {
    for (bool local : {false, true}) {
      std::unique_ptr<Communicator> comm = local ? CreateLocalCommunicator() : nullptr;
      const int64_t n = 11;
      auto plain = AdamNode(n, n, -1, a), sharded = AdamNode(n, n, 1, a);
      Tensor p0 = Floats(Ramp(n, 0.5f, 0.1f)), m0(DType::kFloat32, {n}), v0(DType::kFloat32, {n});
      Tensor p1 = Clone(p0), m1 = Clone(m0), v1 = Clone(v0);
      Tensor lr = Scalar(1e-2), scale = Scalar(0.5);
      for (int64_t k = 1; k <= 4; ++k) {
        Tensor g = Floats(Ramp(n, -0.2f, 0.05f * static_cast<float>(k))), st = Step(k);
        ASSERT_TRUE(RunNode(*plain->node, {&p0, &g, &m0, &v0, &lr, &st, &scale}, comm.get()).ok());
        auto r = RunNode(*sharded->node, {&p1, &g, &m1, &v1, &lr, &st, &scale}, comm.get());
        ASSERT_TRUE(r.ok()) << r.status().ToString();
      }
      EXPECT_TRUE(p0.SameContents(p1));
      EXPECT_TRUE(m0.SameContents(m1));
      EXPECT_TRUE(v0.SameContents(v1));
    }
  }
}

TEST(ShardMode, SgdWorld1EqualsUnsharded) {
  for (float momentum : {0.0f, 0.9f}) {
    for (int64_t nesterov : {0, 1}) {
      if (momentum == 0.0f && nesterov) continue;
      const int64_t n = 10;
      auto plain = SgdNode(n, n, 0, momentum, nesterov), sharded = SgdNode(n, n, 1, momentum, nesterov);
      Tensor p0 = Floats(Ramp(n, 1.0f, -0.1f)), b0(DType::kFloat32, {n});
      Tensor p1 = Clone(p0), b1 = Clone(b0);
      Tensor lr = Scalar(0.1), scale = Scalar(1.0);
      for (int64_t k = 1; k <= 3; ++k) {
        Tensor g = Floats(Ramp(n, 0.3f, 0.02f * static_cast<float>(k))), st = Step(k);
        ASSERT_TRUE(RunNode(*plain->node, {&p0, &g, &b0, &lr, &st, &scale}, nullptr).ok());
        ASSERT_TRUE(RunNode(*sharded->node, {&p1, &g, &b1, &lr, &st, &scale}, nullptr).ok());
      }
      EXPECT_TRUE(p0.SameContents(p1));
      EXPECT_TRUE(b0.SameContents(b1));
    }
  }
}

// Rank r of 3 with n = 7 (c = 3): the sharded step equals the unsharded step on param[r*c, ...)
// (bit-exact) and leaves the rest of param alone; rank 2 updates one element and ignores the
// padded tail of its chunk. The Adam formula is also checked directly (double reference).
TEST(ShardMode, AdamRankOf3) {
  const int64_t n = 7, c = 3;
  const AdamAttrs a{0.05f, 1};
  for (int rank : {0, 1, 2}) {
    SCOPED_TRACE(rank);
    const int64_t begin = rank * c, len = std::min(n, begin + c) - begin;
    FakeCommunicator comm(rank, 3, {});
    auto sharded = AdamNode(n, c, 1, a), plain = AdamNode(len, len, 0, a);
    sharded->node->SetAttr("world", int64_t{3});
    const std::vector<float> param = Ramp(n, 0.5f, 0.1f);
    Tensor p = Floats(param), m(DType::kFloat32, {c}), v(DType::kFloat32, {c});
    Tensor ps = Floats(std::vector<float>(param.begin() + begin, param.begin() + begin + len));
    Tensor ms(DType::kFloat32, {len}), vs(DType::kFloat32, {len});
    Tensor lr = Scalar(1e-2), scale = Scalar(0.5);
    std::vector<double> rp(param.begin() + begin, param.begin() + begin + len), rm(len, 0.0), rv(len, 0.0);
    for (int64_t k = 1; k <= 3; ++k) {
      std::vector<float> grad = Ramp(c, -0.2f, 0.05f * static_cast<float>(k));
      for (int64_t i = len; i < c; ++i) grad[static_cast<size_t>(i)] = 1e6f;  // padding: ignored
      Tensor g = Floats(grad), gs = Floats(std::vector<float>(grad.begin(), grad.begin() + len)), st = Step(k);
      auto r = RunNode(*sharded->node, {&p, &g, &m, &v, &lr, &st, &scale}, &comm);
      ASSERT_TRUE(r.ok()) << r.status().ToString();
      ASSERT_TRUE(RunNode(*plain->node, {&ps, &gs, &ms, &vs, &lr, &st, &scale}, nullptr).ok());
      // Direct AdamW in double.
      const double b1 = 0.9, b2 = 0.999, bc1 = 1 - std::pow(b1, k), bc2 = 1 - std::pow(b2, k);
      for (int64_t i = 0; i < len; ++i) {
        const double gi = grad[static_cast<size_t>(i)] * 0.5;
        rm[i] = b1 * rm[i] + (1 - b1) * gi;
        rv[i] = b2 * rv[i] + (1 - b2) * gi * gi;
        rp[i] = rp[i] * (1 - 1e-2 * 0.05) - 1e-2 * (rm[i] / bc1) / (std::sqrt(rv[i] / bc2) + 1e-8);
      }
    }
    const std::vector<float> got = Values(p);
    for (int64_t i = 0; i < n; ++i) {
      if (i < begin || i >= begin + len) {
        EXPECT_EQ(got[i], param[i]) << "element " << i << " is not this rank's";
      } else {
        EXPECT_EQ(got[i], ps.data<float>()[i - begin]) << i;
        EXPECT_NEAR(got[i], rp[i - begin], 1e-6) << i;
        EXPECT_EQ(m.data<float>()[i - begin], ms.data<float>()[i - begin]) << i;
        EXPECT_EQ(v.data<float>()[i - begin], vs.data<float>()[i - begin]) << i;
      }
    }
    for (int64_t i = len; i < c; ++i) EXPECT_EQ(m.data<float>()[i], 0.0f) << "padded state touched";
  }
}

TEST(ShardMode, SgdRank1Of3) {
  const int64_t n = 7, c = 3, begin = 3;
  FakeCommunicator comm(1, 3, {});
  auto sharded = SgdNode(n, c, 1, 0.9f, 1);
  const std::vector<float> param = Ramp(n, 1.0f, -0.1f);
  Tensor p = Floats(param), buf(DType::kFloat32, {c}), lr = Scalar(0.1), scale = Scalar(1.0);
  std::vector<double> rp(param.begin() + begin, param.begin() + begin + c), rb(c, 0.0);
  for (int64_t k = 1; k <= 3; ++k) {
    const std::vector<float> grad = Ramp(c, 0.3f, 0.02f * static_cast<float>(k));
    Tensor g = Floats(grad), st = Step(k);
    auto r = RunNode(*sharded->node, {&p, &g, &buf, &lr, &st, &scale}, &comm);
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    for (int64_t i = 0; i < c; ++i) {  // torch.optim.SGD, nesterov, dampening 0.1, wd 0.01
      double d = grad[i] + 0.01 * rp[i];
      rb[i] = k == 1 ? d : 0.9 * rb[i] + 0.9 * d;
      d = d + 0.9 * rb[i];
      rp[i] -= 0.1 * d;
    }
  }
  for (int64_t i = 0; i < n; ++i) {
    if (i < begin || i >= begin + c) EXPECT_EQ(p.data<float>()[i], param[i]) << i;
    else EXPECT_NEAR(p.data<float>()[i], rp[i - begin], 1e-6) << i;
  }
}

TEST(ShardMode, WrongStateSizeIsAnError) {
  FakeCommunicator comm(1, 3, {});
  auto sharded = AdamNode(7, 7, 1, AdamAttrs{0.0f, 1});  // state must hold c = 3
  Tensor p(DType::kFloat32, {7}), g(DType::kFloat32, {7}), m(DType::kFloat32, {7}), v(DType::kFloat32, {7});
  Tensor lr = Scalar(0.1), st = Step(1), scale = Scalar(1);
  EXPECT_FALSE(RunNode(*sharded->node, {&p, &g, &m, &v, &lr, &st, &scale}, &comm).ok());
}

}  // namespace
}  // namespace dsc
