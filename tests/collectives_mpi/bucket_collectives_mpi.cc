// The bucketed, asynchronous collectives on real MPI ranks (ctest runs it under `mpirun -np 2` and
// `-np 3`): programs of <Kind>Start / CollectiveWait run by the program executor (which lets MPI
// progress after every node) against the per-tensor kernels (AllReduce, ReduceScatter, AllGather,
// AllGatherInPlace) on the same data, members of 5, 1 and 7 elements (not multiples of the world
// size). Values are small dyadic numbers, so float sums are exact in any order and the results
// must be bit-equal. Also: two buckets in flight at once, waited in the reverse order; calls()
// counting one collective per bucket; gathered_peak of an AllGatherStart; a float16 bucket; the
// MPI communicator's Progress() before Wait(). Every rank checks; the exit code is non-zero on
// every rank when any rank failed.
#include <cstdio>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "ir/dsc_ops.h"
#include "kernels/cpu/half_convert.h"
#include "kernels/kernel.h"
#include "runtime/communicator.h"
#include "runtime/device.h"
#include "runtime/executor.h"
#include "tests/collectives_mpi/mpi_check.h"

namespace dsc {
namespace {

const std::vector<int64_t> kSizes = {5, 1, 7};

TensorType Typed(DType t, int64_t n) { return TensorType{t, Shape{Dim::Static(n)}}; }

// Rank r's element j of member m: multiples of 1/4 below 2^8, exact in float16 too, and so are
// their sums over up to 4 ranks.
float Contribution(int rank, int m, int64_t j) {
  return static_cast<float>((rank + 1) * (j % 5) - 2 * j + 7 * m) * 0.25f;
}

Tensor Make(DType t, int64_t n, const std::vector<float>& v) {
  Tensor x(t, {n});
  for (int64_t j = 0; j < n; ++j) {
    if (t == DType::kFloat32) x.data<float>()[j] = v[static_cast<size_t>(j)];
    else x.data<uint16_t>()[j] = FloatToHalf(v[static_cast<size_t>(j)]);
  }
  return x;
}

bool SameBytes(const void* a, const Tensor& b) { return std::memcmp(a, b.raw(), b.nbytes()) == 0; }

// A one-node per-tensor collective through its registered CPU kernel: the reference.
StatusOr<Tensor> PerTensor(const char* op, DType t, Tensor* x, int64_t out_n, int world, Communicator* comm,
                           const char* reduce) {
  Graph g;
  Node* n = g.AddNode(op, {g.AddInput("x", Typed(t, x->numel()))},
                      out_n >= 0 ? std::vector<std::string>{"y"} : std::vector<std::string>{}, kDscDomain);
  if (out_n >= 0) n->output(0)->type = Typed(t, out_n);
  n->SetAttr("world", int64_t{world});
  if (reduce) n->SetAttr("op", std::string(reduce));
  ASSIGN_OR_RETURN(std::unique_ptr<OpKernel> k, KernelRegistry::Global().Create(*n, DeviceKind::kCpu));
  TensorView in{t, x->dims(), x->raw()};
  Tensor y(t, {out_n >= 0 ? out_n : 0});
  TensorView out{t, y.dims(), y.raw()};
  KernelContext ctx;
  ctx.inputs = {&in};
  if (out_n >= 0) ctx.outputs = {&out};
  ctx.comm = comm;
  RETURN_IF_ERROR(k->Compute(ctx));
  return out_n >= 0 ? y : *x;
}

// One bucket of kSizes members in a program: its Start (added now) and its Wait (AddWait).
struct BucketSpec {
  std::string kind, tag;
  DType dtype = DType::kFloat32;
  const char* reduce = nullptr;
  Node* start = nullptr;
  std::vector<Value*> members;
};
BucketSpec Spec(const std::string& kind, const std::string& tag, DType dtype, const char* reduce = nullptr) {
  BucketSpec b;
  b.kind = kind;
  b.tag = tag;
  b.dtype = dtype;
  b.reduce = reduce;
  return b;
}

// The member's tensor a Start reads: X_i, or this rank's chunk for AllGather.
int64_t MemberInputSize(const std::string& kind, int64_t n, int world) {
  return kind == ops::kAllGather ? ops::ChunkSize(n, world) : n;
}
// What the Wait writes for member i: Y_i of n_i, or c_i for ReduceScatter.
int64_t MemberOutputSize(const std::string& kind, int64_t n, int world) {
  return kind == ops::kReduceScatter ? ops::ChunkSize(n, world) : n;
}

void AddStart(Graph& g, BucketSpec& b, int world) {
  for (size_t i = 0; i < kSizes.size(); ++i)
    b.members.push_back(g.AddInput(StrCat(b.tag, "_x", i), Typed(b.dtype, MemberInputSize(b.kind, kSizes[i], world))));
  b.start = g.AddNode(ops::StartOpOf(b.kind), b.members, {b.tag + "_B"}, kDscDomain, b.tag + "_start");
  b.start->output(0)->type = Typed(b.dtype, ops::BucketLayout(kSizes, world).BufferElements(b.kind));
  b.start->SetAttr("world", int64_t{world});
  if (b.reduce) b.start->SetAttr("op", std::string(b.reduce));
}

void AddWait(Graph& g, BucketSpec& b, int world) {
  std::vector<Value*> in = {b.start->output(0)};
  std::vector<std::string> outs;
  if (b.kind == ops::kAllGatherInPlace) in.insert(in.end(), b.members.begin(), b.members.end());
  else for (size_t i = 0; i < kSizes.size(); ++i) outs.push_back(StrCat(b.tag, "_y", i));
  Node* w = g.AddNode(ops::kCollectiveWait, in, outs, kDscDomain, b.tag + "_wait");
  for (size_t i = 0; i < outs.size(); ++i) {
    w->output(i)->type = Typed(b.dtype, MemberOutputSize(b.kind, kSizes[i], world));
    g.AddOutput(w->output(i));
  }
  w->SetAttr("world", int64_t{world});
  w->SetAttr("kind", b.kind);
  if (b.kind == ops::kAllGather) g.AddNode(ops::kRelease, w->outputs(), {}, kDscDomain, b.tag + "_release");
}

// This rank's member i of a bucket: X_i, its chunk (AllGather), or P_i with only this rank's chunk
// set and junk elsewhere (AllGatherInPlace).
std::vector<float> MemberData(const std::string& kind, size_t i, int world) {
  const int64_t n = kSizes[i], c = ops::ChunkSize(n, world);
  std::vector<float> v(static_cast<size_t>(MemberInputSize(kind, n, world)));
  for (int64_t j = 0; j < static_cast<int64_t>(v.size()); ++j) {
    if (kind == ops::kAllGather) v[static_cast<size_t>(j)] = g_rank * c + j < n ? Contribution(g_rank, static_cast<int>(i), g_rank * c + j) : 0.0f;
    else if (kind == ops::kAllGatherInPlace)
      v[static_cast<size_t>(j)] = j / c == g_rank ? Contribution(g_rank, static_cast<int>(i), j) : -99.0f;
    else v[static_cast<size_t>(j)] = Contribution(g_rank, static_cast<int>(i), j);
  }
  return v;
}

// Runs the buckets (Starts in order, then Waits in `wait_order`) and compares every member with
// the per-tensor op on the same data; checks calls() counts one collective per bucket.
void CheckBuckets(Communicator* comm, Device* cpu, std::vector<BucketSpec> buckets, const std::vector<size_t>& wait_order) {
  const int world = comm->size();
  Graph g;
  for (BucketSpec& b : buckets) AddStart(g, b, world);
  for (size_t w : wait_order) AddWait(g, buckets[w], world);
  std::string what;
  for (const BucketSpec& b : buckets) what += StrCat(what.empty() ? "" : " + ", b.kind, "(", DTypeName(b.dtype), b.reduce ? StrCat(",", b.reduce) : "", ")");
  auto ex = ProgramExecutor::Create(g, cpu);
  CHECK_TRUE(ex.ok(), what, ": ", ex.ok() ? "" : ex.status().ToString());
  if (!ex.ok()) return;
  std::vector<std::vector<Tensor>> inputs(buckets.size());
  for (size_t bi = 0; bi < buckets.size(); ++bi)
    for (size_t i = 0; i < kSizes.size(); ++i) {
      const BucketSpec& b = buckets[bi];
      inputs[bi].push_back(Make(b.dtype, MemberInputSize(b.kind, kSizes[i], world), MemberData(b.kind, i, world)));
      Tensor& x = inputs[bi].back();
      Status s = (*ex)->Bind(StrCat(b.tag, "_x", i), TensorView{x.dtype(), x.dims(), x.raw()});
      CHECK_TRUE(s.ok(), what, ": ", s.ToString());
    }
  const auto calls_before = comm->calls();
  RunOptions opts;
  opts.comm = comm;
  Status run = (*ex)->Run(opts);
  CHECK_TRUE(run.ok(), what, ": ", run.ToString());
  if (!run.ok()) return;
  const auto calls_after = comm->calls();
  std::map<std::string, int64_t> want_calls = ZeroCollectiveCounts();
  for (const BucketSpec& b : buckets)
    ++want_calls[b.kind == ops::kAllReduce ? "all_reduce" : b.kind == ops::kReduceScatter ? "reduce_scatter" : "all_gather"];
  for (const auto& [kind, n] : want_calls)
    CHECK_TRUE(calls_after.at(kind) - calls_before.at(kind) == n, what, ": calls()[", kind, "] grew by ",
               calls_after.at(kind) - calls_before.at(kind), ", want ", n);
  int64_t gathered = 0;
  for (size_t bi = 0; bi < buckets.size(); ++bi) {
    const BucketSpec& b = buckets[bi];
    if (b.kind == ops::kAllGather)
      for (int64_t n : kSizes) gathered += n;
    for (size_t i = 0; i < kSizes.size(); ++i) {
      // The reference: the per-tensor op on a fresh copy of the same member.
      Tensor x = Make(b.dtype, MemberInputSize(b.kind, kSizes[i], world), MemberData(b.kind, i, world));
      const std::string per_tensor = b.kind;
      auto ref = PerTensor(per_tensor.c_str(), b.dtype, &x,
                           b.kind == ops::kAllGatherInPlace ? -1 : MemberOutputSize(b.kind, kSizes[i], world), world,
                           comm, b.reduce);
      CHECK_TRUE(ref.ok(), what, ": per-tensor ", b.kind, ": ", ref.ok() ? "" : ref.status().ToString());
      if (!ref.ok()) continue;
      const void* got = b.kind == ops::kAllGatherInPlace ? inputs[bi][i].raw() : (*ex)->Output(StrCat(b.tag, "_y", i))->ptr;
      CHECK_TRUE(SameBytes(got, *ref), what, ": bucket ", b.tag, " member ", i, " (", kSizes[i],
                 " elements) differs from the per-tensor ", b.kind);
    }
  }
  CHECK_TRUE((*ex)->comm_state().gathered_peak() == gathered, what, ": gathered_peak ",
             (*ex)->comm_state().gathered_peak(), ", want ", gathered);
  CHECK_TRUE((*ex)->comm_state().gathered_live() == 0, what, ": gathered elements still live after the Releases");
}

// MPI's Progress(): a few tests while the all-reduce is in flight, then Wait() finishes it (and
// the average) as before; calls() counts the one collective.
void CheckProgressThenWait(Communicator* comm) {
  const int world = comm->size();
  std::vector<float> buf(1000);
  for (size_t j = 0; j < buf.size(); ++j) buf[j] = Contribution(g_rank, 0, static_cast<int64_t>(j));
  const auto before = comm->calls();
  auto h = comm->AllReduce(buf.data(), static_cast<int64_t>(buf.size()), DType::kFloat32, ReduceOp::kAvg);
  CHECK_TRUE(h.ok(), "AllReduce: ", h.ok() ? "" : h.status().ToString());
  if (!h.ok()) return;
  for (int i = 0; i < 50; ++i) {
    Status s = (*h)->Progress();
    CHECK_TRUE(s.ok(), "Progress: ", s.ToString());
  }
  Status w = (*h)->Wait();
  CHECK_TRUE(w.ok(), "Wait after Progress: ", w.ToString());
  CHECK_TRUE((*h)->Progress().ok(), "Progress after Wait");
  for (size_t j = 0; j < buf.size(); ++j) {
    float sum = 0;
    for (int q = 0; q < world; ++q) sum += Contribution(q, 0, static_cast<int64_t>(j));
    CHECK_TRUE(buf[j] == sum / static_cast<float>(world), "element ", j, ": ", buf[j], " != ", sum / world);
    if (buf[j] != sum / static_cast<float>(world)) break;
  }
  CHECK_TRUE(comm->calls().at("all_reduce") - before.at("all_reduce") == 1, "calls()[all_reduce] did not grow by 1");
}

int Main() {
  std::unique_ptr<Communicator> comm = JoinMpiJob();
  if (!comm) return 1;
  std::unique_ptr<Device> cpu = CreateCpuDevice(1);
  CheckProgressThenWait(comm.get());
  for (const char* reduce : {"sum", "avg"}) {
    CheckBuckets(comm.get(), cpu.get(), {Spec(ops::kAllReduce, "ar", DType::kFloat32, reduce)}, {0});
    CheckBuckets(comm.get(), cpu.get(), {Spec(ops::kReduceScatter, "rs", DType::kFloat32, reduce)}, {0});
  }
  CheckBuckets(comm.get(), cpu.get(), {Spec(ops::kAllGather, "ag", DType::kFloat32)}, {0});
  CheckBuckets(comm.get(), cpu.get(), {Spec(ops::kAllGatherInPlace, "agp", DType::kFloat32)}, {0});
  // Two in flight at once, waited in the reverse order of their Starts.
  CheckBuckets(comm.get(), cpu.get(),
               {Spec(ops::kReduceScatter, "rs", DType::kFloat32, "avg"), Spec(ops::kAllGather, "ag", DType::kFloat32)}, {1, 0});
  CheckBuckets(comm.get(), cpu.get(),
               {Spec(ops::kAllReduce, "a", DType::kFloat32, "sum"), Spec(ops::kAllReduce, "b", DType::kFloat32, "sum")}, {1, 0});
  // Half: 2-byte elements, reduced in float16 (exact here).
  CheckBuckets(comm.get(), cpu.get(), {Spec(ops::kAllReduce, "h", DType::kFloat16, "sum")}, {0});
  CheckBuckets(comm.get(), cpu.get(), {Spec(ops::kAllGatherInPlace, "hp", DType::kFloat16)}, {0});
  return Verdict(comm.get());  // every rank exits with the same verdict
}

}  // namespace
}  // namespace dsc

int main() { return dsc::Main(); }
