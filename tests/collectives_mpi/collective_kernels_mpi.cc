// The ZeRO collective kernels on real MPI ranks (run by ctest under `mpirun -np 3`): one-node graphs
// run through their registered CPU kernels with KernelContext::comm = the MPI communicator.
// Checks: AllReduce avg/sum, ReduceScatter then AllGather = AllReduce (n divisible by the world
// size and not), AllGatherInPlace, and shard-mode AdamStep on every rank followed by
// AllGatherInPlace = one-rank AdamStep on the full tensor; the same collectives on float16 and
// bfloat16 tensors (exact sums, the average rounded once, 2-byte elements in bytes_sent). Every rank checks; the exit code is
// non-zero on every rank when any rank failed.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "ir/dsc_ops.h"
#include "kernels/kernel.h"
#include "runtime/communicator.h"
#include "tests/collectives_mpi/mpi_check.h"

namespace dsc {
namespace {

TensorType F32(std::vector<int64_t> dims) {
  Shape s;
  for (int64_t d : dims) s.push_back(Dim::Static(d));
  return TensorType{DType::kFloat32, s};
}
Tensor Floats(const std::vector<float>& v) {
  return Tensor::FromVector(DType::kFloat32, {static_cast<int64_t>(v.size())}, v);
}
Tensor Scalar(double v) { return Tensor::Scalar(DType::kFloat32, v); }
Tensor Step(int64_t k) { return Tensor::FromVector<int64_t>(DType::kInt64, {}, {k}); }
std::vector<float> Values(const Tensor& t) { return std::vector<float>(t.data<float>(), t.data<float>() + t.numel()); }

// tests/kernels/kernel_test_util.h's RunNodeOnCpu with a communicator; inputs are updated in place.
StatusOr<std::vector<Tensor>> RunNode(const Node& node, const std::vector<Tensor*>& inputs, Communicator* comm) {
  ASSIGN_OR_RETURN(std::unique_ptr<OpKernel> kernel, KernelRegistry::Global().Create(node, DeviceKind::kCpu));
  std::vector<TensorView> in_views(inputs.size()), out_views(node.num_outputs());
  std::vector<Tensor> outputs;
  KernelContext ctx;
  for (size_t i = 0; i < inputs.size(); ++i) {
    in_views[i] = TensorView{inputs[i]->dtype(), inputs[i]->dims(), inputs[i]->raw()};
    ctx.inputs.push_back(&in_views[i]);
  }
  outputs.reserve(node.num_outputs());
  for (size_t i = 0; i < node.num_outputs(); ++i) {
    const Value* v = node.output(i);
    std::vector<int64_t> dims;
    for (const Dim& d : *v->type.shape) dims.push_back(d.value);
    outputs.emplace_back(v->type.dtype, dims);
    out_views[i] = TensorView{v->type.dtype, dims, outputs.back().raw()};
    ctx.outputs.push_back(&out_views[i]);
  }
  ctx.step = 1;
  ctx.comm = comm;
  RETURN_IF_ERROR(kernel->Compute(ctx));
  return outputs;
}

// Runs a one-input collective node on `x`; returns its output (or x itself for in-place ops).
std::vector<float> RunCollective(const char* op, const std::vector<float>& x, int64_t out_n, int world,
                                 Communicator* comm, const char* reduce = nullptr) {
  Graph g;
  Value* in = g.AddInput("x", F32({static_cast<int64_t>(x.size())}));
  Node* n = g.AddNode(op, {in}, out_n >= 0 ? std::vector<std::string>{"y"} : std::vector<std::string>{}, kDscDomain);
  if (out_n >= 0) n->output(0)->type = F32({out_n});
  n->SetAttr("world", int64_t{world});
  if (reduce) n->SetAttr("op", std::string(reduce));
  Tensor t = Floats(x);
  auto out = RunNode(*n, {&t}, comm);
  CHECK_TRUE(out.ok(), op, ": ", out.ok() ? "" : out.status().ToString());
  if (!out.ok()) return {};
  return out_n >= 0 ? Values((*out)[0]) : Values(t);
}

// Rank r's contribution: small dyadic values so sums over ranks are exact in any order.
std::vector<float> Contribution(int rank, int64_t n, float salt) {
  std::vector<float> v(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i)
    v[static_cast<size_t>(i)] = static_cast<float>((rank + 1) * (i % 5) - 2 * i) * 0.25f + salt * static_cast<float>(rank);
  return v;
}

void CheckAllReduce(Communicator* comm) {
  const int world = comm->size();
  const int64_t n = 7;
  for (const char* op : {"sum", "avg"}) {
    const std::vector<float> y = RunCollective(ops::kAllReduce, Contribution(g_rank, n, 0.5f), n, world, comm, op);
    for (int64_t i = 0; i < n && !y.empty(); ++i) {
      double sum = 0;
      for (int q = 0; q < world; ++q) sum += Contribution(q, n, 0.5f)[static_cast<size_t>(i)];
      const double want = std::string(op) == "avg" ? sum / world : sum;
      CHECK_TRUE(std::fabs(y[static_cast<size_t>(i)] - want) <= 1e-6 * (1 + std::fabs(want)), "AllReduce ", op,
                 " element ", i, ": got ", y[static_cast<size_t>(i)], ", want ", want);
    }
  }
}

void CheckRoundTrip(Communicator* comm) {
  const int world = comm->size();
  for (int64_t n : {int64_t{7}, int64_t{9}, int64_t{2}, int64_t{1000}}) {
    for (const char* op : {"sum", "avg"}) {
      const int64_t c = ops::ChunkSize(n, world);
      const std::vector<float> x = Contribution(g_rank, n, 0.125f);
      const std::vector<float> reduced = RunCollective(ops::kAllReduce, x, n, world, comm, op);
      const std::vector<float> chunk = RunCollective(ops::kReduceScatter, x, c, world, comm, op);
      const std::vector<float> full = RunCollective(ops::kAllGather, chunk, n, world, comm);
      CHECK_TRUE(full == reduced, "ReduceScatter+AllGather != AllReduce for n=", n, " op=", op);
      // This rank's chunk is its slice of the reduction, zero-padded.
      for (int64_t i = 0; i < c && chunk.size() == static_cast<size_t>(c); ++i) {
        const int64_t at = g_rank * c + i;
        const float want = at < n ? reduced[static_cast<size_t>(at)] : 0.0f;
        CHECK_TRUE(chunk[static_cast<size_t>(i)] == want, "ReduceScatter n=", n, " chunk element ", i);
      }
    }
  }
}

void CheckAllGatherInPlace(Communicator* comm) {
  const int world = comm->size();
  for (int64_t n : {int64_t{7}, int64_t{9}, int64_t{2}}) {
    const int64_t c = ops::ChunkSize(n, world);
    std::vector<float> want(static_cast<size_t>(n)), p(static_cast<size_t>(n), -99.0f);
    for (int64_t i = 0; i < n; ++i) want[static_cast<size_t>(i)] = static_cast<float>(i) + 0.5f;
    for (int64_t i = g_rank * c; i < std::min(n, (g_rank + 1) * c); ++i) p[static_cast<size_t>(i)] = want[static_cast<size_t>(i)];
    CHECK_TRUE(RunCollective(ops::kAllGatherInPlace, p, -1, world, comm) == want, "AllGatherInPlace n=", n);
  }
}

// ---- float16/bfloat16: the kernels move 2-byte elements and reduce in the tensor's dtype.

TensorType Typed(DType t, int64_t n) { return TensorType{t, Shape{Dim::Static(n)}}; }

// Rank r's half contribution: multiples of 1/2 below 2^7 in every partial sum, so sums are exact
// in both dtypes whatever the order, and the average is the float average rounded once.
float HalfValue(int rank, int64_t i) { return static_cast<float>((rank + 1) * (i % 5) - 2 * (i % 13)) * 0.5f; }

uint16_t Narrow(float f, DType t) { return t == DType::kBFloat16 ? FloatToBFloat16(f) : FloatToHalf(f); }

Tensor HalfTensor(DType t, const std::vector<float>& v) {
  Tensor h(t, {static_cast<int64_t>(v.size())});
  for (size_t i = 0; i < v.size(); ++i) h.data<uint16_t>()[i] = Narrow(v[i], t);
  return h;
}

std::vector<uint16_t> Words(const Tensor& t) {
  return std::vector<uint16_t>(t.data<uint16_t>(), t.data<uint16_t>() + t.numel());
}

// Runs a one-input collective on a half tensor; returns the output's words (or x's, in place).
std::vector<uint16_t> RunHalf(const char* op, DType t, Tensor x, int64_t out_n, int world, Communicator* comm,
                              const char* reduce = nullptr) {
  Graph g;
  Node* n = g.AddNode(op, {g.AddInput("x", Typed(t, x.numel()))},
                      out_n >= 0 ? std::vector<std::string>{"y"} : std::vector<std::string>{}, kDscDomain);
  if (out_n >= 0) n->output(0)->type = Typed(t, out_n);
  n->SetAttr("world", int64_t{world});
  if (reduce) n->SetAttr("op", std::string(reduce));
  auto out = RunNode(*n, {&x}, comm);
  CHECK_TRUE(out.ok(), op, " ", DTypeName(t), ": ", out.ok() ? "" : out.status().ToString());
  if (!out.ok()) return {};
  return out_n >= 0 ? Words((*out)[0]) : Words(x);
}

void CheckHalfCollectives(Communicator* comm) {
  const int world = comm->size();
  for (DType t : {DType::kFloat16, DType::kBFloat16}) {
    for (int64_t n : {int64_t{7}, int64_t{9}, int64_t{2}, int64_t{1000}}) {
      const int64_t c = ops::ChunkSize(n, world);
      std::vector<float> mine(static_cast<size_t>(n));
      for (int64_t i = 0; i < n; ++i) mine[static_cast<size_t>(i)] = HalfValue(g_rank, i);
      for (const char* op : {"sum", "avg"}) {
        std::vector<uint16_t> want(static_cast<size_t>(n));
        for (int64_t i = 0; i < n; ++i) {
          float sum = 0;
          for (int q = 0; q < world; ++q) sum += HalfValue(q, i);
          want[static_cast<size_t>(i)] = Narrow(std::string(op) == "avg" ? sum / static_cast<float>(world) : sum, t);
        }
        const auto before = comm->bytes_sent();
        const std::vector<uint16_t> reduced = RunHalf(ops::kAllReduce, t, HalfTensor(t, mine), n, world, comm, op);
        CHECK_TRUE(reduced == want, "AllReduce ", DTypeName(t), " ", op, " n=", n);
        CHECK_TRUE(comm->bytes_sent().at("all_reduce") - before.at("all_reduce") == 2 * (world - 1) * n * 2 / world,
                   "AllReduce ", DTypeName(t), " n=", n, " counts 2-byte elements");
        const std::vector<uint16_t> chunk = RunHalf(ops::kReduceScatter, t, HalfTensor(t, mine), c, world, comm, op);
        for (int64_t i = 0; i < c && chunk.size() == static_cast<size_t>(c); ++i) {
          const int64_t at = g_rank * c + i;
          CHECK_TRUE(chunk[static_cast<size_t>(i)] == (at < n ? want[static_cast<size_t>(at)] : 0), "ReduceScatter ",
                     DTypeName(t), " ", op, " n=", n, " chunk element ", i);
        }
        Tensor chunk_t(t, {c});
        if (chunk.size() == static_cast<size_t>(c)) std::memcpy(chunk_t.raw(), chunk.data(), chunk_t.nbytes());
        CHECK_TRUE(RunHalf(ops::kAllGather, t, chunk_t, n, world, comm) == want, "ReduceScatter+AllGather ",
                   DTypeName(t), " ", op, " n=", n);
      }
      // AllGatherInPlace: rank r's chunk of P reaches every rank; the others' parts start as junk.
      std::vector<float> p(static_cast<size_t>(n), -99.0f), full(static_cast<size_t>(n));
      for (int64_t i = 0; i < n; ++i) full[static_cast<size_t>(i)] = static_cast<float>(i % 50) + 0.5f;
      for (int64_t i = g_rank * c; i < std::min(n, (g_rank + 1) * c); ++i) p[static_cast<size_t>(i)] = full[static_cast<size_t>(i)];
      CHECK_TRUE(RunHalf(ops::kAllGatherInPlace, t, HalfTensor(t, p), -1, world, comm) == Words(HalfTensor(t, full)),
                 "AllGatherInPlace ", DTypeName(t), " n=", n);
    }
  }
}

Node* AdamNode(Graph& g, int64_t n, int64_t state_n, bool shard, int world) {
  std::vector<Value*> in = {g.AddInput("p", F32({n}))};
  for (const char* name : {"g", "m", "v"}) in.push_back(g.AddInput(name, F32({state_n})));
  in.push_back(g.AddInput("lr", F32({})));
  in.push_back(g.AddInput("step", TensorType{DType::kInt64, Shape{}}));
  in.push_back(g.AddInput("scale", F32({})));
  Node* node = g.AddNode(ops::kAdamStep, in, {}, kDscDomain);
  node->SetAttr("weight_decay", 0.01f);
  node->SetAttr("adam_w_mode", int64_t{1});
  if (shard) {
    node->SetAttr("shard", int64_t{1});
    node->SetAttr("world", int64_t{world});
  }
  return node;
}

// ZeRO-1/2 step: ReduceScatter(avg) of each rank's gradient, sharded AdamStep, AllGatherInPlace;
// against AllReduce(avg) and AdamStep on the full tensor on one rank (no communicator).
void CheckShardedAdam(Communicator* comm) {
  const int world = comm->size();
  const int64_t n = 10, c = ops::ChunkSize(n, world);
  Graph g1, g2;
  Node* sharded = AdamNode(g1, n, c, true, world);
  Node* full = AdamNode(g2, n, n, false, world);
  std::vector<float> init(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) init[static_cast<size_t>(i)] = 0.1f * static_cast<float>(i) - 0.35f;
  Tensor p_s = Floats(init), m_s(DType::kFloat32, {c}), v_s(DType::kFloat32, {c});
  Tensor p_f = Floats(init), m_f(DType::kFloat32, {n}), v_f(DType::kFloat32, {n});
  Tensor lr = Scalar(1e-2), scale = Scalar(1.0);
  for (int64_t k = 1; k <= 3; ++k) {
    const std::vector<float> grad = Contribution(g_rank, n, 0.0625f * static_cast<float>(k));
    Tensor st = Step(k);
    // Sharded.
    Tensor g_chunk = Floats(RunCollective(ops::kReduceScatter, grad, c, world, comm, "avg"));
    auto r = RunNode(*sharded, {&p_s, &g_chunk, &m_s, &v_s, &lr, &st, &scale}, comm);
    CHECK_TRUE(r.ok(), "sharded AdamStep: ", r.ok() ? "" : r.status().ToString());
    Tensor gathered = Floats(RunCollective(ops::kAllGatherInPlace, Values(p_s), -1, world, comm));
    p_s = gathered;
    // Reference: the averaged full gradient on one rank.
    Tensor g_full = Floats(RunCollective(ops::kAllReduce, grad, n, world, comm, "avg"));
    auto rf = RunNode(*full, {&p_f, &g_full, &m_f, &v_f, &lr, &st, &scale}, nullptr);
    CHECK_TRUE(rf.ok(), "full AdamStep: ", rf.ok() ? "" : rf.status().ToString());
  }
  double max_diff = 0;
  for (int64_t i = 0; i < n; ++i)
    max_diff = std::max(max_diff, std::fabs(static_cast<double>(p_s.data<float>()[i]) - p_f.data<float>()[i]));
  CHECK_TRUE(max_diff <= 1e-7, "sharded Adam differs from full Adam by ", max_diff);
  if (g_rank == 0)
    std::printf("sharded AdamStep x3 on %d ranks vs one rank: max |diff| = %g (%s)\n", world, max_diff,
                p_s.SameContents(p_f) ? "bit-exact" : "not bit-exact");
}

int Main() {
  std::unique_ptr<Communicator> comm = JoinMpiJob();
  if (!comm) return 1;
  CheckAllReduce(comm.get());
  CheckRoundTrip(comm.get());
  CheckAllGatherInPlace(comm.get());
  CheckHalfCollectives(comm.get());
  CheckShardedAdam(comm.get());
  return Verdict(comm.get());  // every rank exits with the same verdict
}

}  // namespace
}  // namespace dsc

int main() { return dsc::Main(); }
