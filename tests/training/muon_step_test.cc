// Kernel tests of Muon's two ops, MuonMomentum and MuonApply (DeepSpeed's Muon update): whole
// tensors against the reference for a few steps (gram with its restart, transposed, square,
// standard, a 4-D filter, a batch; weight decay and grad_scale), sharded over three ranks as
// ZeRO 1-2 (shard = 1) and as stage-3 chunks (chunk_of) with the update gathered in between,
// skip, and the node checks. Reference numbers: data/muon_cases.json from gen_muon_cases.py.
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>

#include <nlohmann/json.hpp>

#include "ir/dsc_ops.h"
#include "ir/node_checks.h"
#include "tests/kernels/kernel_test_util.h"
#include "tests/training/group_position.h"
#include "tests/training/reference_cases.h"

namespace dsc {
namespace {

using ::dsc::testing::AllClose;
using ::dsc::testing::Doubles;
using ::dsc::testing::F32;
using ::dsc::testing::Floats;
using ::dsc::testing::GroupPosition;
using ::dsc::testing::RunNodeOnCpu;
using nlohmann::json;

const json& Cases() { return ::dsc::testing::ReferenceCases(DSC_MUON_CASES); }

std::vector<int64_t> ShapeOf(const json& c) { return c["shape"].get<std::vector<int64_t>>(); }
int64_t Numel(const std::vector<int64_t>& dims) {
  int64_t n = 1;
  for (int64_t d : dims) n *= d;
  return n;
}

// OpenBLAS's sgemm and torch's float32 matmul sum in different orders; five Newton-Schulz
// iterations carry that to about 1e-6 of the update.
constexpr double kRtol = 1e-5, kAtol = 2e-6;

// MuonMomentum (param of `param_elems`, grad/momentum/update of `state_elems`) and MuonApply
// (param, the whole update shaped as the case, lr).
struct MuonNodes {
  Graph g;
  Node* momentum = nullptr;
  Node* apply = nullptr;
};
std::unique_ptr<MuonNodes> MakeNodes(const json& c, int64_t param_elems, int64_t state_elems, bool skip = false) {
  auto mn = std::make_unique<MuonNodes>();
  Graph& g = mn->g;
  Value* p = g.AddInput("p", F32({param_elems}));
  Value* skip_in = skip ? g.AddInput("skip", TensorType{DType::kBool, Shape{}}) : nullptr;
  std::vector<Value*> in = {p, g.AddInput("g", F32({state_elems})), g.AddInput("buf", F32({state_elems})),
                            g.AddInput("scale", F32({}))};
  if (skip_in) in.push_back(skip_in);
  mn->momentum = g.AddNode(ops::kMuonMomentum, in, {"u"}, kDscDomain, "momentum");
  mn->momentum->output(0)->type = F32({state_elems});
  mn->momentum->SetAttr("momentum", c["momentum"].get<float>());
  in = {p, g.AddInput("whole", F32(ShapeOf(c))), g.AddInput("lr", F32({}))};
  if (skip_in) in.push_back(skip_in);
  mn->apply = g.AddNode(ops::kMuonApply, in, {}, kDscDomain, "apply");
  mn->apply->SetAttr("ns_method", c["ns_method"].get<std::string>());
  mn->apply->SetAttr("weight_decay", c["weight_decay"].get<float>());
  return mn;
}

TEST(Muon, MatchesReference) {
  for (const json& c : Cases()) {
    SCOPED_TRACE(c["name"].get<std::string>());
    const int64_t n = Numel(ShapeOf(c));
    auto mn = MakeNodes(c, n, n);
    Tensor p = Floats(Doubles(c["param"]));
    Tensor buf(DType::kFloat32, {n});
    Tensor lr = Tensor::Scalar(DType::kFloat32, c["lr"].get<double>());
    Tensor scale = Tensor::Scalar(DType::kFloat32, c["grad_scale"].get<double>());
    for (size_t k = 0; k < c["grads"].size(); ++k) {
      SCOPED_TRACE("step " + std::to_string(k + 1));
      const json& e = c["expected"][k];
      Tensor grad = Floats(Doubles(c["grads"][k]));
      auto u = RunNodeOnCpu(*mn->momentum, {&p, &grad, &buf, &scale});
      ASSERT_TRUE(u.ok()) << u.status().message();
      EXPECT_TRUE(AllClose(buf, Doubles(e["momentum_buffer"]), 1e-6, 1e-7));
      Tensor whole = (*u)[0];
      ASSERT_TRUE(RunNodeOnCpu(*mn->apply, {&p, &whole, &lr}).ok());
      EXPECT_TRUE(AllClose(p, Doubles(e["param"]), kRtol, kAtol));
    }
  }
}

// Three ranks: each keeps a chunk of the momentum (the last one's padding fed NaN gradients at
// ZeRO 1-2, zeros at stage 3, as the reduce-scatter pads), the update chunks are concatenated
// (the AllGather), and each rank writes its chunk: of the whole param (shard = 1) or of its own
// chunk (chunk_of = n, padding 3.0 left alone). Every rank's part then equals the reference.
TEST(Muon, ShardedRanksFollowTheReference) {
  const int64_t world = 3;
  for (bool stage3 : {false, true}) {
    for (const json& c : Cases()) {
      SCOPED_TRACE(c["name"].get<std::string>() + (stage3 ? " (chunk_of)" : " (shard)"));
      const int64_t n = Numel(ShapeOf(c));
      const int64_t chunk = ops::ChunkSize(n, world);
      auto mn = MakeNodes(c, stage3 ? chunk : n, chunk);
      for (Node* node : {mn->momentum, mn->apply}) {
        if (!stage3) node->SetAttr("shard", int64_t{1});
        node->SetAttr("world", world);
      }
      if (stage3) mn->apply->SetAttr("chunk_of", n);
      const std::vector<double> p0 = Doubles(c["param"]);
      std::vector<Tensor> params, bufs;
      for (int r = 0; r < world; ++r) {
        std::vector<double> part(static_cast<size_t>(chunk), 3.0);
        for (int64_t i = 0; i < chunk && r * chunk + i < n; ++i) part[static_cast<size_t>(i)] = p0[static_cast<size_t>(r * chunk + i)];
        params.push_back(stage3 ? Floats(part) : Floats(p0));
        bufs.emplace_back(DType::kFloat32, std::vector<int64_t>{chunk});
      }
      Tensor lr = Tensor::Scalar(DType::kFloat32, c["lr"].get<double>());
      Tensor scale = Tensor::Scalar(DType::kFloat32, c["grad_scale"].get<double>());
      for (size_t k = 0; k < c["grads"].size(); ++k) {
        const std::vector<double> g = Doubles(c["grads"][k]);
        std::vector<double> gathered;
        for (int r = 0; r < world; ++r) {
          std::vector<double> part(static_cast<size_t>(chunk), stage3 ? 0.0 : std::nan(""));
          for (int64_t i = 0; i < chunk && r * chunk + i < n; ++i) part[static_cast<size_t>(i)] = g[static_cast<size_t>(r * chunk + i)];
          Tensor grad = Floats(part);
          GroupPosition group(r, world);
          auto u = RunNodeOnCpu(*mn->momentum, {&params[r], &grad, &bufs[r], &scale}, 0, 1, &group);
          ASSERT_TRUE(u.ok()) << u.status().message();
          for (int64_t i = 0; i < chunk && static_cast<int64_t>(gathered.size()) < n; ++i) gathered.push_back((*u)[0].GetAsDouble(i));
        }
        Tensor whole = Tensor::FromVector(DType::kFloat32, ShapeOf(c), gathered);
        for (int r = 0; r < world; ++r) {
          GroupPosition group(r, world);
          auto out = RunNodeOnCpu(*mn->apply, {&params[r], &whole, &lr}, 0, 1, &group);
          ASSERT_TRUE(out.ok()) << out.status().message();
        }
      }
      const std::vector<double> want_p = Doubles(c["expected"].back()["param"]);
      for (int r = 0; r < world; ++r)
        for (int64_t i = 0; i < (stage3 ? chunk : n); ++i) {
          const int64_t at = stage3 ? r * chunk + i : i;
          const bool mine = at >= r * chunk && at < (r + 1) * chunk;
          const double want = at >= n ? 3.0 : mine ? want_p[static_cast<size_t>(at)] : p0[static_cast<size_t>(at)];
          EXPECT_NEAR(params[r].GetAsDouble(i), want, kAtol + kRtol * std::fabs(want)) << "rank " << r << " element " << at;
        }
    }
  }
}

// The skip input (an overflowed step): the momentum and the param stay, the update is 0.
TEST(Muon, SkipChangesNothing) {
  const json& c = Cases()[1];
  const int64_t n = Numel(ShapeOf(c));
  auto mn = MakeNodes(c, n, n, /*skip=*/true);
  Tensor p = Floats(Doubles(c["param"])), grad = Floats(Doubles(c["grads"][0]));
  Tensor buf = Floats(std::vector<double>(static_cast<size_t>(n), 0.5));
  Tensor lr = Tensor::Scalar(DType::kFloat32, 0.1), scale = Tensor::Scalar(DType::kFloat32, 1.0);
  Tensor yes = Tensor::FromVector<uint8_t>(DType::kBool, {}, {1});
  auto u = RunNodeOnCpu(*mn->momentum, {&p, &grad, &buf, &scale, &yes});
  ASSERT_TRUE(u.ok()) << u.status().message();
  EXPECT_TRUE(AllClose((*u)[0], std::vector<double>(static_cast<size_t>(n), 0.0), 0.0, 0.0));
  EXPECT_TRUE(AllClose(buf, std::vector<double>(static_cast<size_t>(n), 0.5), 0.0, 0.0));
  Tensor whole = Tensor::FromVector(DType::kFloat32, ShapeOf(c), Doubles(c["grads"][1]));
  ASSERT_TRUE(RunNodeOnCpu(*mn->apply, {&p, &whole, &lr, &yes}).ok());
  EXPECT_TRUE(AllClose(p, Doubles(c["param"]), 0.0, 0.0));
}

TEST(Muon, NodeChecksAndKernelErrorsNameTheProblem) {
  const json& c = Cases()[0];
  const int64_t n = Numel(ShapeOf(c));
  auto mn = MakeNodes(c, n, n);
  EXPECT_TRUE(CheckNode(*mn->momentum, 17, NodeCheckStage::kShapes).ok());
  EXPECT_TRUE(CheckNode(*mn->apply, 17, NodeCheckStage::kShapes).ok());
  mn->apply->SetAttr("ns_method", std::string("polar"));
  Status s = CheckNode(*mn->apply, 17, NodeCheckStage::kShapes);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("'ns_method' is 'polar'"), std::string::npos) << s.message();
  mn->apply->SetAttr("ns_method", std::string("gram"));
  mn->apply->SetAttr("ns_steps", int64_t{0});
  s = CheckNode(*mn->apply, 17, NodeCheckStage::kShapes);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("'ns_steps' is 0"), std::string::npos) << s.message();
  mn->apply->SetAttr("ns_steps", int64_t{5});
  // A param whose size is not the update's, and a chunk that is not ceil(n / world) elements.
  Tensor p(DType::kFloat32, {n - 1}), whole(DType::kFloat32, ShapeOf(c)), lr = Tensor::Scalar(DType::kFloat32, 0.1);
  auto r = RunNodeOnCpu(*mn->apply, {&p, &whole, &lr});
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("updated from"), std::string::npos) << r.status().message();
  mn->apply->SetAttr("chunk_of", n);
  mn->apply->SetAttr("world", int64_t{2});
  GroupPosition group(0, 2);
  Tensor small(DType::kFloat32, {3});
  r = RunNodeOnCpu(*mn->apply, {&small, &whole, &lr}, 0, 1, &group);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("chunk of 18 elements of 36 expected, got 3"), std::string::npos)
      << r.status().message();
}

}  // namespace
}  // namespace dsc
