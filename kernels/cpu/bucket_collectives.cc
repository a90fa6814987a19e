// CPU kernels of the bucketed, asynchronous collectives (ir/dsc_ops.h, "Bucketed, asynchronous
// collectives"): AllReduceStart, ReduceScatterStart, AllGatherStart, AllGatherInPlaceStart,
// CollectiveWait and Release, for float32, float16 and bfloat16 (members move as raw elements;
// half reductions round as the communicator says). The node logic is kernels/common/bucket_node.h;
// here the copies are memcpy and memset. With one rank (or no communicator) a Start packs and its
// Wait unpacks, and the table still pairs them.
#include <cstring>

#include "kernels/common/bucket_node.h"
#include "kernels/kernel.h"

namespace dsc::cpu {
namespace {

// Host memory; a bucket's ranges never overlap (members and B are distinct tensors, and B's blocks
// are disjoint).
class HostCopier : public coll::BucketCopier {
 public:
  Status Copy(void* dst, const void* src, size_t bytes) override {
    if (bytes > 0) std::memcpy(dst, src, bytes);
    return Status::OK();
  }
  Status Zero(void* dst, size_t bytes) override {
    if (bytes > 0) std::memset(dst, 0, bytes);  // all-zero bytes are +0 in every float dtype
    return Status::OK();
  }
};

class StartKernel : public OpKernel, protected coll::BucketStart {
 public:
  using BucketStart::Init;
  Status Compute(KernelContext& ctx) override {
    HostCopier c;
    return Start(ctx, c);
  }
};

class WaitKernel : public OpKernel, protected coll::BucketWait {
 public:
  using BucketWait::Init;
  Status Compute(KernelContext& ctx) override {
    HostCopier c;
    return Wait(ctx, c);
  }
};

[[maybe_unused]] const bool kBucketCollectivesRegistered =
    coll::RegisterBucketKernels<StartKernel, WaitKernel>(DeviceKind::kCpu);

}  // namespace
}  // namespace dsc::cpu
