// CUDA kernels of the bucketed, asynchronous collectives (ir/dsc_ops.h, "Bucketed, asynchronous
// collectives"), twins of kernels/cpu/bucket_collectives.cc: the same node logic
// (kernels/common/bucket_node.h) with the packing and unpacking as cudaMemcpyAsync/cudaMemsetAsync
// on the compute stream. The device communicator (runtime/gpu_communicator.h) orders each
// collective after the work queued on the compute stream, so the packed B is what it sends, and a
// handle's Wait() orders later compute work (the unpacking first) after the collective: the host
// never blocks, and a Start issued early overlaps the compute queued after it.
#include "kernels/common/bucket_node.h"
#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/cuda_resources.h"
#include "kernels/cuda/cuda_util.cuh"

namespace dsc::cuda {
namespace {

class StreamCopier : public coll::BucketCopier {
 public:
  explicit StreamCopier(cudaStream_t s) : stream_(s) {}
  Status Copy(void* dst, const void* src, size_t bytes) override {
    if (bytes > 0) DSC_CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice, stream_));
    return Status::OK();
  }
  Status Zero(void* dst, size_t bytes) override {
    if (bytes > 0) DSC_CUDA_CHECK(cudaMemsetAsync(dst, 0, bytes, stream_));
    return Status::OK();
  }

 private:
  cudaStream_t stream_;
};

class StartCuda : public OpKernel, protected coll::BucketStart {
 public:
  using BucketStart::Init;
  Status Compute(KernelContext& ctx) override {
    ASSIGN_OR_RETURN(Resources * r, Res(ctx));
    StreamCopier c(r->compute);
    return Start(ctx, c);
  }
};

class WaitCuda : public OpKernel, protected coll::BucketWait {
 public:
  using BucketWait::Init;
  Status Compute(KernelContext& ctx) override {
    ASSIGN_OR_RETURN(Resources * r, Res(ctx));
    StreamCopier c(r->compute);
    return Wait(ctx, c);
  }
};

// No data moves: only the table's count of live gathered elements.
class ReleaseCuda : public OpKernel, protected coll::BucketRelease {
 public:
  using BucketRelease::Init;
  Status Compute(KernelContext& ctx) override { return Release(ctx); }
};

bool RegisterBucketCollectives() {
  KernelRegistry& r = KernelRegistry::Global();
  for (DType t : {DType::kFloat32, DType::kFloat16, DType::kBFloat16}) {
    for (const char* op : {ops::kAllReduceStart, ops::kReduceScatterStart, ops::kAllGatherStart,
                           ops::kAllGatherInPlaceStart})
      r.Register(KernelKey{kDscDomain, op, DeviceKind::kCuda, t}, MakeFactory<StartCuda>());
    r.Register(KernelKey{kDscDomain, ops::kCollectiveWait, DeviceKind::kCuda, t}, MakeFactory<WaitCuda>());
    r.Register(KernelKey{kDscDomain, ops::kRelease, DeviceKind::kCuda, t}, MakeFactory<ReleaseCuda>());
  }
  return true;
}
[[maybe_unused]] const bool kBucketCollectivesRegistered = RegisterBucketCollectives();

}  // namespace
}  // namespace dsc::cuda
