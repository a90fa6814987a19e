// CUDA kernels of ToHost and FromHost (ir/host_copy_ops.h): cudaMemcpyAsync between the device
// arena and the program's page-locked host arena, on the compute stream. Stream order is what
// makes it correct: the kernels that read X finished before ToHost copies it (so its device bytes
// may be reused after), and a host slot is overwritten by a later ToHost only after the FromHost
// that read it. The copies do not overlap compute (no copy stream yet).
#include "ir/host_copy_ops.h"
#include "kernels/common/host_copy_node.h"
#include "kernels/cuda/movement_util.cuh"

namespace dsc::cuda {
namespace {

class HostCopyCuda : public OpKernel {
 public:
  explicit HostCopyCuda(cudaMemcpyKind kind) : kind_(kind) {}
  Status Init(const Node& node) { return host_copy::CheckNode(node); }
  Status Compute(KernelContext& ctx) override {
    const TensorView& x = ctx.input(0);
    TensorView& y = ctx.output(0);
    if (x.nbytes() == 0) return Status::OK();
    ASSIGN_OR_RETURN(Resources * r, Res(ctx));
    DSC_CUDA_CHECK(cudaMemcpyAsync(y.ptr, x.ptr, x.nbytes(), kind_, r->compute));
    return Status::OK();
  }

 private:
  cudaMemcpyKind kind_;
};

template <cudaMemcpyKind kKind>
KernelFactory Factory() {
  return [](const Node& n) -> StatusOr<std::unique_ptr<OpKernel>> {
    auto k = std::make_unique<HostCopyCuda>(kKind);
    Status s = k->Init(n);
    if (!s.ok()) return s.WithContext(n.Describe());
    return std::unique_ptr<OpKernel>(std::move(k));
  };
}

[[maybe_unused]] const bool kRegistered = [] {
  RegisterCudaMovement(kDscDomain, ops::kToHost, Factory<cudaMemcpyDeviceToHost>());
  RegisterCudaMovement(kDscDomain, ops::kFromHost, Factory<cudaMemcpyHostToDevice>());
  return true;
}();

}  // namespace
}  // namespace dsc::cuda
