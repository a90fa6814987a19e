// CPU kernels of the ZeRO collectives (ir/dsc_ops.h, "Collectives"): AllReduce, ReduceScatter,
// AllGather and AllGatherInPlace over KernelContext::comm, for float32, float16 and bfloat16.
// Half tensors move as 2-byte elements and are reduced by the communicator in their own dtype
// (each partial sum computed in float and rounded, runtime/communicator.h), never widened to
// float32 on the wire: that is the point of communicating in half.
//
// A tensor of n elements is split into `world` chunks of c = ceil(n / world) elements; the last
// chunk is zero-padded. When n is not a multiple of world the kernels stage the data in a padded
// scratch buffer of world*c elements (allocated on the first Compute, when the world size is
// known, and kept). With no communicator or a single rank every collective is a copy (and
// AllGatherInPlace does nothing). Every kernel waits for its collective before returning.
//
// The ZeRO pass records the world size the plan was compiled for as the node attribute `world`
// (int, missing = 1); a communicator of another size is an error naming the node.
#include <cstring>
#include <string>
#include <vector>

#include "ir/dsc_ops.h"
#include "kernels/common/collective_node.h"
#include "kernels/kernel.h"
#include "runtime/communicator.h"

namespace dsc::cpu {
namespace {

// What every collective kernel keeps from its node (kernels/common/collective_node.h), and the
// host staging buffer.
class CollectiveKernel : public OpKernel, protected coll::CollectiveNode {
 protected:
  // The padded scratch buffer of `count` elements, allocated once.
  char* Scratch(int64_t count) {
    const size_t bytes = static_cast<size_t>(count) * element_size_;
    if (scratch_.size() != bytes) scratch_.assign(bytes, 0);
    return scratch_.data();
  }

  void Copy(void* dst, const void* src, int64_t n) const {
    if (n > 0 && dst != src) std::memmove(dst, src, static_cast<size_t>(n) * element_size_);
  }

  // dst[0, size) = src[0, len) followed by zeros (len <= size): a chunk staged with its padding
  // (all-zero bytes are +0 in every float dtype).
  void CopyZeroPadded(void* dst, const void* src, int64_t len, int64_t size) const {
    Copy(dst, src, len);
    std::memset(At(dst, len), 0, static_cast<size_t>(size - len) * element_size_);
  }

  std::vector<char> scratch_;
};

// AllReduce<op>(X) -> Y: Y = reduction of X over ranks.
class AllReduceKernel : public CollectiveKernel {
 public:
  Status Init(const Node& n) { return CollectiveNode::Init(n, /*reduction=*/true); }
  Status Compute(KernelContext& ctx) override {
    int64_t world, rank;
    RETURN_IF_ERROR(Group(ctx, &world, &rank));
    const TensorView& x = ctx.input(0);
    TensorView& y = ctx.output(0);
    const int64_t n = x.numel();
    RETURN_IF_ERROR(CheckSameCount(y.numel(), n));
    Copy(y.ptr, x.ptr, n);
    if (world == 1 || Retired(ctx)) return Status::OK();
    return Finish(ctx.comm->AllReduce(y.ptr, n, dtype_, op_));
  }
};

// ReduceScatter<op>(X) -> Y: Y (c elements) = this rank's chunk of the reduction of X.
class ReduceScatterKernel : public CollectiveKernel {
 public:
  Status Init(const Node& n) { return CollectiveNode::Init(n, /*reduction=*/true); }
  Status Compute(KernelContext& ctx) override {
    int64_t world, rank;
    RETURN_IF_ERROR(Group(ctx, &world, &rank));
    const TensorView& x = ctx.input(0);
    TensorView& y = ctx.output(0);
    const int64_t n = x.numel(), c = ops::ChunkSize(n, world);
    RETURN_IF_ERROR(CheckChunk("Y", y.numel(), n, world));
    if (world == 1) {
      Copy(y.ptr, x.ptr, n);
      return Status::OK();
    }
    const void* send = x.ptr;
    if (n != world * c) {  // pad X to world*c with zeros
      char* s = Scratch(world * c);
      CopyZeroPadded(s, send, n, world * c);
      send = s;
    }
    return Finish(ctx.comm->ReduceScatter(send, y.ptr, c, dtype_, op_));
  }
};

// AllGather(X_chunk) -> Y: Y = the first n elements of the concatenated chunks.
class AllGatherKernel : public CollectiveKernel {
 public:
  Status Init(const Node& n) { return CollectiveNode::Init(n, /*reduction=*/false); }
  Status Compute(KernelContext& ctx) override {
    int64_t world, rank;
    RETURN_IF_ERROR(Group(ctx, &world, &rank));
    const TensorView& x = ctx.input(0);
    TensorView& y = ctx.output(0);
    const int64_t c = x.numel(), n = y.numel();
    RETURN_IF_ERROR(CheckChunk("X", c, n, world));
    if (world == 1) {
      Copy(y.ptr, x.ptr, n);
      return Status::OK();
    }
    if (n == world * c) return Finish(ctx.comm->AllGather(x.ptr, y.ptr, c, dtype_));
    char* s = Scratch(world * c);
    RETURN_IF_ERROR(Finish(ctx.comm->AllGather(x.ptr, s, c, dtype_)));
    Copy(y.ptr, s, n);
    return Status::OK();
  }
};

// AllGatherInPlace(P): rank r's chunk P[r*c, min(n, (r+1)*c)) is copied to every rank.
class AllGatherInPlaceKernel : public CollectiveKernel {
 public:
  Status Init(const Node& n) { return CollectiveNode::Init(n, /*reduction=*/false); }
  Status Compute(KernelContext& ctx) override {
    int64_t world, rank;
    RETURN_IF_ERROR(Group(ctx, &world, &rank));
    if (world == 1) return Status::OK();
    const TensorView& p = ctx.input(0);
    void* data = p.ptr;
    const int64_t n = p.numel(), c = ops::ChunkSize(n, world);
    if (n == world * c) return Finish(ctx.comm->AllGather(At(data, rank * c), data, c, dtype_));
    char* s = Scratch(world * c);
    int64_t len;
    const int64_t begin = OwnChunk(n, c, rank, &len);
    CopyZeroPadded(At(s, rank * c), At(data, begin), len, c);
    RETURN_IF_ERROR(Finish(ctx.comm->AllGather(At(s, rank * c), s, c, dtype_)));
    Copy(data, s, n);
    return Status::OK();
  }
};

bool RegisterCollectives() {
  KernelRegistry& r = KernelRegistry::Global();
  for (DType t : {DType::kFloat32, DType::kFloat16, DType::kBFloat16}) {
    r.Register(KernelKey{kDscDomain, ops::kAllReduce, DeviceKind::kCpu, t}, MakeFactory<AllReduceKernel>());
    r.Register(KernelKey{kDscDomain, ops::kReduceScatter, DeviceKind::kCpu, t}, MakeFactory<ReduceScatterKernel>());
    r.Register(KernelKey{kDscDomain, ops::kAllGather, DeviceKind::kCpu, t}, MakeFactory<AllGatherKernel>());
    r.Register(KernelKey{kDscDomain, ops::kAllGatherInPlace, DeviceKind::kCpu, t},
               MakeFactory<AllGatherInPlaceKernel>());
  }
  return true;
}
[[maybe_unused]] const bool kCollectivesRegistered = RegisterCollectives();

}  // namespace
}  // namespace dsc::cpu
