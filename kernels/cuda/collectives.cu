// CUDA kernels of the ZeRO collectives (ir/dsc_ops.h, "Collectives"), twins of
// kernels/cpu/collectives.cc: AllReduce, ReduceScatter, AllGather and AllGatherInPlace over
// KernelContext::comm with device pointers. The communicator a CUDA kernel gets is device-aware
// (runtime/gpu_communicator.h): it orders the collective after the work queued on the compute
// stream and its handle's Wait() orders later compute work after the collective, so nothing here
// blocks the host. Copies and padding go on the compute stream; the padded staging buffer is the
// device's shared scratch (valid until this node's Wait(), which every kernel calls before it
// returns).
#include <string>

#include "ir/dsc_ops.h"
#include "kernels/common/collective_node.h"
#include "kernels/cuda/comm_kernels.h"
#include "kernels/cuda/cuda_util.cuh"
#include "runtime/communicator.h"

namespace dsc::cuda {
namespace {

class CollectiveCuda : public OpKernel, protected coll::CollectiveNode {
 protected:
  // Device copies on the compute stream; the collectives never pass overlapping distinct ranges.
  Status Copy(const Resources& r, void* dst, const void* src, int64_t n) const {
    if (n > 0 && dst != src)
      DSC_CUDA_CHECK(cudaMemcpyAsync(dst, src, static_cast<size_t>(n) * element_size_, cudaMemcpyDeviceToDevice,
                                     r.compute));
    return Status::OK();
  }
  Status CopyZeroPadded(const Resources& r, void* dst, const void* src, int64_t len, int64_t size) const {
    RETURN_IF_ERROR(Copy(r, dst, src, len));
    if (size > len)
      DSC_CUDA_CHECK(cudaMemsetAsync(At(dst, len), 0, static_cast<size_t>(size - len) * element_size_, r.compute));
    return Status::OK();
  }
  StatusOr<char*> Scratch(Resources& r, int64_t count) const {
    ASSIGN_OR_RETURN(void* p, r.Scratch(static_cast<size_t>(count) * element_size_));
    return static_cast<char*>(p);
  }
};

class AllReduceCuda : public CollectiveCuda {
 public:
  Status Init(const Node& n) { return CollectiveNode::Init(n, /*reduction=*/true); }
  Status Compute(KernelContext& ctx) override {
    ASSIGN_OR_RETURN(Resources * r, Res(ctx));
    int64_t world, rank;
    RETURN_IF_ERROR(Group(ctx, &world, &rank));
    const TensorView& x = ctx.input(0);
    TensorView& y = ctx.output(0);
    const int64_t n = x.numel();
    RETURN_IF_ERROR(CheckSameCount(y.numel(), n));
    RETURN_IF_ERROR(Copy(*r, y.ptr, x.ptr, n));
    if (world == 1 || Retired(ctx)) return Status::OK();
    return Finish(ctx.comm->AllReduce(y.ptr, n, dtype_, op_));
  }
};

class ReduceScatterCuda : public CollectiveCuda {
 public:
  Status Init(const Node& n) { return CollectiveNode::Init(n, /*reduction=*/true); }
  Status Compute(KernelContext& ctx) override {
    ASSIGN_OR_RETURN(Resources * r, Res(ctx));
    int64_t world, rank;
    RETURN_IF_ERROR(Group(ctx, &world, &rank));
    const TensorView& x = ctx.input(0);
    TensorView& y = ctx.output(0);
    const int64_t n = x.numel(), c = ops::ChunkSize(n, world);
    RETURN_IF_ERROR(CheckChunk("Y", y.numel(), n, world));
    if (world == 1) return Copy(*r, y.ptr, x.ptr, n);
    const void* send = x.ptr;
    if (n != world * c) {
      ASSIGN_OR_RETURN(char* s, Scratch(*r, world * c));
      RETURN_IF_ERROR(CopyZeroPadded(*r, s, send, n, world * c));
      send = s;
    }
    return Finish(ctx.comm->ReduceScatter(send, y.ptr, c, dtype_, op_));
  }
};

class AllGatherCuda : public CollectiveCuda {
 public:
  Status Init(const Node& n) { return CollectiveNode::Init(n, /*reduction=*/false); }
  Status Compute(KernelContext& ctx) override {
    ASSIGN_OR_RETURN(Resources * r, Res(ctx));
    int64_t world, rank;
    RETURN_IF_ERROR(Group(ctx, &world, &rank));
    const TensorView& x = ctx.input(0);
    TensorView& y = ctx.output(0);
    const int64_t c = x.numel(), n = y.numel();
    RETURN_IF_ERROR(CheckChunk("X", c, n, world));
    if (world == 1) return Copy(*r, y.ptr, x.ptr, n);
    if (n == world * c) return Finish(ctx.comm->AllGather(x.ptr, y.ptr, c, dtype_));
    ASSIGN_OR_RETURN(char* s, Scratch(*r, world * c));
    RETURN_IF_ERROR(Finish(ctx.comm->AllGather(x.ptr, s, c, dtype_)));
    return Copy(*r, y.ptr, s, n);
  }
};

class AllGatherInPlaceCuda : public CollectiveCuda {
 public:
  Status Init(const Node& n) { return CollectiveNode::Init(n, /*reduction=*/false); }
  Status Compute(KernelContext& ctx) override {
    ASSIGN_OR_RETURN(Resources * r, Res(ctx));
    int64_t world, rank;
    RETURN_IF_ERROR(Group(ctx, &world, &rank));
    if (world == 1) return Status::OK();
    const TensorView& p = ctx.input(0);
    void* data = p.ptr;
    const int64_t n = p.numel(), c = ops::ChunkSize(n, world);
    if (n == world * c) return Finish(ctx.comm->AllGather(At(data, rank * c), data, c, dtype_));
    ASSIGN_OR_RETURN(char* s, Scratch(*r, world * c));
    int64_t len;
    const int64_t begin = OwnChunk(n, c, rank, &len);
    RETURN_IF_ERROR(CopyZeroPadded(*r, At(s, rank * c), At(data, begin), len, c));
    RETURN_IF_ERROR(Finish(ctx.comm->AllGather(At(s, rank * c), s, c, dtype_)));
    return Copy(*r, data, s, n);
  }
};

bool RegisterCollectives() {
  KernelRegistry& r = KernelRegistry::Global();
  for (DType t : {DType::kFloat32, DType::kFloat16, DType::kBFloat16}) {
    r.Register(KernelKey{kDscDomain, ops::kAllReduce, DeviceKind::kCuda, t}, MakeFactory<AllReduceCuda>());
    r.Register(KernelKey{kDscDomain, ops::kReduceScatter, DeviceKind::kCuda, t}, MakeFactory<ReduceScatterCuda>());
    r.Register(KernelKey{kDscDomain, ops::kAllGather, DeviceKind::kCuda, t}, MakeFactory<AllGatherCuda>());
    r.Register(KernelKey{kDscDomain, ops::kAllGatherInPlace, DeviceKind::kCuda, t},
               MakeFactory<AllGatherInPlaceCuda>());
  }
  return true;
}
[[maybe_unused]] const bool kCollectivesRegistered = RegisterCollectives();

template <typename T>
__global__ void DivideKernel(T* buf, int64_t count, T by) {
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < count;
       i += static_cast<int64_t>(blockDim.x) * gridDim.x)
    buf[i] /= by;
}

// Half sums: divided in float, rounded once.
template <typename T>
__global__ void DivideHalfKernel(T* buf, int64_t count, float by) {
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < count;
       i += static_cast<int64_t>(blockDim.x) * gridDim.x)
    buf[i] = FromFloat<T>(ToFloat(buf[i]) / by);
}

}  // namespace

Status DivideInPlace(void* buf, int64_t count, DType dtype, int by, cudaStream_t stream) {
  if (count <= 0 || by == 1) return Status::OK();
  const int64_t want = (count + kThreads - 1) / kThreads;
  const unsigned grid = static_cast<unsigned>(want < 4096 ? want : 4096);
  switch (dtype) {
    case DType::kFloat32: DivideKernel<<<grid, kThreads, 0, stream>>>(static_cast<float*>(buf), count, float(by)); break;
    case DType::kFloat64: DivideKernel<<<grid, kThreads, 0, stream>>>(static_cast<double*>(buf), count, double(by)); break;
    case DType::kFloat16: DivideHalfKernel<<<grid, kThreads, 0, stream>>>(static_cast<half*>(buf), count, float(by)); break;
    case DType::kBFloat16: DivideHalfKernel<<<grid, kThreads, 0, stream>>>(static_cast<bf16*>(buf), count, float(by)); break;
    default: return Internal("avg on ", DTypeName(dtype), ": only floating dtypes average");
  }
  DSC_CUDA_CHECK_LAUNCH();
  return Status::OK();
}

}  // namespace dsc::cuda
