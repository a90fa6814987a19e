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

[[maybe_unused]] const bool kBucketCollectivesRegistered =
    coll::RegisterBucketKernels<StartCuda, WaitCuda>(DeviceKind::kCuda);

}  // namespace
}  // namespace dsc::cuda
