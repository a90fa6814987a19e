// The host side of the bucketed collective kernels (ir/dsc_ops.h, "Bucketed, asynchronous
// collectives"), shared by kernels/cpu/bucket_collectives.cc and its CUDA twin: what each node
// reads, the checks against ops::BucketLayout, the collective issued on B, the table of
// collectives in flight (KernelContext::comm_state). The device only supplies its copies:
//
//   class CpuCopier : public coll::BucketCopier { ... memcpy / memset ... };
//   class StartCpu : public OpKernel, coll::BucketStart {
//     Status Compute(KernelContext& ctx) override { CpuCopier c; return Start(ctx, c); } };
//
// Layouts are computed on the first Compute (the world size and rank are known then) and kept:
// shapes are static, so nothing is allocated per run after the first.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "ir/dsc_ops.h"
#include "kernels/common/bucket_copy.h"
#include "kernels/common/collective_node.h"
#include "kernels/common/comm_state.h"
#include "kernels/kernel.h"
#include "runtime/communicator.h"

namespace dsc::coll {

// Copies and zero fills on the kernel's device, in element ranges of one dtype.
class BucketCopier {
 public:
  virtual ~BucketCopier() = default;
  virtual Status Copy(void* dst, const void* src, size_t bytes) = 0;
  virtual Status Zero(void* dst, size_t bytes) = 0;
};

// What Start and Wait share: the kind, the node's checks, the layout of its bucket.
class BucketNode : protected CollectiveNode {
 protected:
  Status InitBucket(const Node& n, const std::string& kind) {
    kind_ = kind;
    RETURN_IF_ERROR(CollectiveNode::Init(n, kind == ops::kAllReduce || kind == ops::kReduceScatter));
    for (size_t i = 0; i < n.num_inputs(); ++i)
      if (!n.input(i)) return InvalidArgument(name_, ": input ", i, " is missing");
    return Status::OK();
  }

  Status NeedState(const KernelContext& ctx) const {
    if (!ctx.comm_state)
      return FailedPrecondition(name_, ": no table of collectives in flight (KernelContext::comm_state): ",
                                "bucketed collectives run inside a program executor");
    return Status::OK();
  }

  // Every tensor of the bucket (members and B) has the node's dtype.
  Status CheckDType(const TensorView& t, const char* what, size_t i) const {
    if (t.dtype != dtype_)
      return InvalidArgument(name_, ": ", what, " ", i, " is ", DTypeName(t.dtype), ", the bucket is ",
                             DTypeName(dtype_));
    return Status::OK();
  }

  // B's elements against the layout; `members` names what the numels came from in the message.
  Status CheckBuffer(const TensorView& b) const {
    const int64_t want = layout_->BufferElements(kind_);
    if (b.numel() != want) {
      std::string sizes;
      for (const auto& m : layout_->members) sizes += StrCat(sizes.empty() ? "" : ", ", m.numel);
      return InvalidArgument(name_, ": B has ", b.numel(), " elements; a ", kind_, " bucket of members with ", sizes,
                             " elements over ", layout_->world, " ranks needs ", want);
    }
    return Status::OK();
  }

  Status Apply(BucketCopier& dev, void* dst, const void* src, const MemberCopies& m) const {
    for (const Segment& s : m.copies) {
      const char* from = static_cast<const char*>(src) + s.src * static_cast<int64_t>(element_size_);
      if (At(dst, s.dst) == from) continue;  // a Wait planned in place over its B (memory_plan.h)
      RETURN_IF_ERROR(dev.Copy(At(dst, s.dst), from, static_cast<size_t>(s.len) * element_size_));
    }
    for (const ZeroRange& z : m.zeros) RETURN_IF_ERROR(dev.Zero(At(dst, z.at), static_cast<size_t>(z.len) * element_size_));
    return Status::OK();
  }

  // Whether the cached layout was made for these member sizes, world and rank.
  bool Planned(const std::vector<int64_t>& numels, int64_t world, int64_t rank) const {
    return layout_ && planned_rank_ == rank && layout_->world == world && numels == planned_numels_;
  }

  std::string kind_;
  std::unique_ptr<ops::BucketLayout> layout_;
  std::vector<int64_t> planned_numels_;
  std::vector<int64_t> numels_now_;  // this run's member sizes, compared with planned_numels_
  int64_t planned_rank_ = -1;
  std::vector<MemberCopies> copies_;  // per member
};

// <Kind>Start(X1..Xk) -> B: packs, issues one collective on B, records it in the table.
class BucketStart : protected BucketNode {
 public:
  Status Init(const Node& n) {
    RETURN_IF_ERROR(InitBucket(n, ops::KindOfStart(n.op_type())));
    if (n.num_outputs() != 1 || !n.output(0)) return InvalidArgument(name_, ": a Start has one output, B");
    if (kind_ == ops::kAllGather) RETURN_IF_ERROR(GatheredSizes(n));
    return Status::OK();
  }

  Status Start(KernelContext& ctx, BucketCopier& dev) {
    int64_t world, rank;
    RETURN_IF_ERROR(Group(ctx, &world, &rank));
    RETURN_IF_ERROR(NeedState(ctx));
    RETURN_IF_ERROR(Plan(ctx, world, rank));
    TensorView& b = ctx.output(0);
    RETURN_IF_ERROR(CheckDType(b, "output", 0));
    RETURN_IF_ERROR(CheckBuffer(b));
    for (size_t i = 0; i < ctx.inputs.size(); ++i) RETURN_IF_ERROR(Apply(dev, b.ptr, ctx.input(i).ptr, copies_[i]));
    // With one rank every collective leaves B as it is: a reduction of one rank is its own block.
    // A retired all-reduce bucket (a 1-bit optimizer's after its freeze, or 0/1 Adam's off its
    // variance steps) sends nothing either: its Wait unpacks each rank's own gradients, Y = X.
    std::unique_ptr<CommHandle> handle;
    if (world > 1 && !Retired(ctx)) {
      StatusOr<std::unique_ptr<CommHandle>> h = Issue(ctx.comm, b.ptr, rank);
      if (!h.ok()) return h.status().WithContext(name_);
      handle = std::move(*h);
    }
    if (kind_ == ops::kAllGather) ctx.comm_state->AddGathered(layout_->total);
    return ctx.comm_state->Add(b.ptr, std::move(handle), name_);
  }

 private:
  // An AllGatherStart's inputs are chunks; the gathered sizes n_i (by which stage 3 counts live
  // parameters from the gather's start) are its Wait's outputs, B's only reader.
  Status GatheredSizes(const Node& n) {
    const Node* wait = ops::WaitOf(n);
    if (!wait)
      return InvalidArgument(name_, ": B is read by no CollectiveWait; the gathered sizes are its outputs'");
    if (wait->num_outputs() != n.num_inputs())
      return InvalidArgument(name_, ": ", n.num_inputs(), " members but its wait ", wait->Describe(), " has ",
                             wait->num_outputs(), " outputs");
    numels_.clear();
    for (const Value* y : wait->outputs()) {
      if (!y || !y->type.shape || !IsStatic(*y->type.shape))
        return InvalidArgument(name_, ": the outputs of its wait ", wait->Describe(), " need static shapes");
      int64_t count = 1;
      for (int64_t d : DimValues(*y->type.shape)) count *= d;
      numels_.push_back(count);
    }
    return Status::OK();
  }

  StatusOr<std::unique_ptr<CommHandle>> Issue(Communicator* comm, void* b, int64_t rank) const {
    const int64_t c = layout_->block;
    if (kind_ == ops::kAllReduce) return comm->AllReduce(b, layout_->total, dtype_, op_);
    // In place, in NCCL's form: the rank's own block receives its reduction, and B needs no
    // separate result block (a bucket of the tied embedding's gradient saves a chunk of it).
    if (kind_ == ops::kReduceScatter) return comm->ReduceScatter(b, At(b, rank * c), c, dtype_, op_);
    return comm->AllGather(At(b, rank * c), b, c, dtype_);  // in place: this rank's block is packed
  }

  Status Plan(const KernelContext& ctx, int64_t world, int64_t rank) {
    const size_t k = ctx.inputs.size();
    if (kind_ == ops::kAllGather && k != numels_.size())
      return InvalidArgument(name_, ": ", k, " inputs, its wait gathers ", numels_.size(), " members");
    std::vector<int64_t>& numels = numels_now_;
    numels.resize(k);
    for (size_t i = 0; i < k; ++i) {
      const TensorView& x = ctx.input(i);
      RETURN_IF_ERROR(CheckDType(x, "input", i));
      if (kind_ == ops::kAllGather) {
        numels[i] = numels_[i];
        if (x.numel() != ops::ChunkSize(numels_[i], world))
          return InvalidArgument(name_, ": input ", i, " has ", x.numel(), " elements, expected this rank's chunk ceil(",
                                 numels_[i], " / ", world, ") = ", ops::ChunkSize(numels_[i], world));
      } else {
        numels[i] = x.numel();
      }
    }
    if (Planned(numels, world, rank)) return Status::OK();
    layout_ = std::make_unique<ops::BucketLayout>(numels, world);
    planned_numels_ = numels;
    planned_rank_ = rank;
    copies_.clear();
    for (size_t i = 0; i < k; ++i) copies_.push_back(PackCopies(*layout_, kind_, rank, i));
    return Status::OK();
  }

  std::vector<int64_t> numels_;  // AllGatherStart: n_i, from its Wait
};

// CollectiveWait<kind>(B[, P1..Pk]) -> Y1..Yk: takes B's collective from the table, waits, unpacks.
class BucketWait : protected BucketNode {
 public:
  Status Init(const Node& n) {
    const std::string kind = n.GetString("kind", "");
    if (ops::StartOpOf(kind).empty())
      return InvalidArgument(n.Describe(), ": attribute kind must be AllReduce, ReduceScatter, AllGather or ",
                             "AllGatherInPlace, got \"", kind, "\"");
    RETURN_IF_ERROR(InitBucket(n, kind));
    if (kind_ == ops::kAllGatherInPlace ? n.num_outputs() != 0 || n.num_inputs() < 2
                                        : n.num_outputs() < 1 || n.num_inputs() != 1)
      return InvalidArgument(name_, ": a ", kind_, " wait takes ",
                             kind_ == ops::kAllGatherInPlace ? "B and the state tensors, with no outputs"
                                                             : "B alone, with one output per member");
    return Status::OK();
  }

  Status Wait(KernelContext& ctx, BucketCopier& dev) {
    int64_t world, rank;
    RETURN_IF_ERROR(Group(ctx, &world, &rank));
    RETURN_IF_ERROR(NeedState(ctx));
    const TensorView& b = ctx.input(0);
    ASSIGN_OR_RETURN(std::unique_ptr<CommHandle> h, ctx.comm_state->Take(b.ptr, name_));
    if (h) {
      Status s = h->Wait();
      if (!s.ok()) return s.WithContext(name_);
    }
    RETURN_IF_ERROR(Plan(ctx, world, rank));
    RETURN_IF_ERROR(CheckDType(b, "input", 0));
    RETURN_IF_ERROR(CheckBuffer(b));
    for (size_t i = 0; i < copies_.size(); ++i) RETURN_IF_ERROR(Apply(dev, Member(ctx, i).ptr, b.ptr, copies_[i]));
    return Status::OK();
  }

 private:
  const TensorView& Member(const KernelContext& ctx, size_t i) const {
    return kind_ == ops::kAllGatherInPlace ? ctx.input(i + 1) : ctx.output(i);
  }

  Status Plan(const KernelContext& ctx, int64_t world, int64_t rank) {
    const size_t k = kind_ == ops::kAllGatherInPlace ? ctx.inputs.size() - 1 : ctx.outputs.size();
    std::vector<int64_t>& numels = numels_now_;
    numels.resize(k);
    for (size_t i = 0; i < k; ++i) {
      const TensorView& y = Member(ctx, i);
      RETURN_IF_ERROR(CheckDType(y, kind_ == ops::kAllGatherInPlace ? "input" : "output",
                                 kind_ == ops::kAllGatherInPlace ? i + 1 : i));
      // A reduce-scatter's outputs are chunks: c_i elements stand for any n_i with that chunk.
      numels[i] = kind_ == ops::kReduceScatter ? y.numel() * world : y.numel();
    }
    if (Planned(numels, world, rank)) return Status::OK();
    layout_ = std::make_unique<ops::BucketLayout>(numels, world);
    planned_numels_ = numels;
    planned_rank_ = rank;
    copies_.clear();
    for (size_t i = 0; i < k; ++i) copies_.push_back(UnpackCopies(*layout_, kind_, rank, i));
    return Status::OK();
  }
};

// Release(X1..Xk): the gathered parameters die here; the table's live count drops by their elements.
class BucketRelease {
 public:
  Status Init(const Node& n) {
    name_ = n.Describe();
    return Status::OK();
  }
  Status Release(KernelContext& ctx) const {
    if (!ctx.comm_state)
      return FailedPrecondition(name_, ": no table of collectives in flight (KernelContext::comm_state): ",
                                "bucketed collectives run inside a program executor");
    int64_t n = 0;
    for (const TensorView* x : ctx.inputs)
      if (x) n += x->numel();
    if (n > ctx.comm_state->gathered_live())
      return FailedPrecondition(name_, ": releases ", n, " gathered elements, only ", ctx.comm_state->gathered_live(),
                                " are live (released twice, or never gathered by an AllGatherStart?)");
    ctx.comm_state->ReleaseGathered(n);
    return Status::OK();
  }

 private:
  std::string name_;
};

// Release moves no data on any device: one kernel for all of them.
class ReleaseKernel : public OpKernel, protected BucketRelease {
 public:
  using BucketRelease::Init;
  Status Compute(KernelContext& ctx) override { return Release(ctx); }
};

// Registers a device's Start and Wait kernels (which differ only in how they copy) and Release
// for the four Start ops, CollectiveWait and Release, in float32, float16 and bfloat16.
template <class StartKernel, class WaitKernel>
bool RegisterBucketKernels(DeviceKind device) {
  KernelRegistry& r = KernelRegistry::Global();
  for (DType t : {DType::kFloat32, DType::kFloat16, DType::kBFloat16}) {
    for (const char* op : {ops::kAllReduceStart, ops::kReduceScatterStart, ops::kAllGatherStart,
                           ops::kAllGatherInPlaceStart})
      r.Register(KernelKey{kDscDomain, op, device, t}, MakeFactory<StartKernel>());
    r.Register(KernelKey{kDscDomain, ops::kCollectiveWait, device, t}, MakeFactory<WaitKernel>());
    r.Register(KernelKey{kDscDomain, ops::kRelease, device, t}, MakeFactory<ReleaseKernel>());
  }
  return true;
}

}  // namespace dsc::coll
