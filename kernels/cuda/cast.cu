// Cast and CastLike CUDA kernels, twins of kernels/cpu/cast.cc: float32/float16/bfloat16/float64/
// int64/int32/bool, every direction, with the CPU's conversions (ew::CastLoad/CastStore), so half
// results are bit-identical to it.
#include "kernels/common/cast_node.h"
#include "kernels/common/elementwise_math.h"
#include "kernels/cuda/elementwise.cuh"

namespace dsc::cuda {
namespace {

template <typename S, typename D>
struct CastFn {
  __device__ __forceinline__ D operator()(S s) const { return ew::CastStore<D>(ew::CastLoad(s)); }
};

using ew::DispatchCastType;

class CastCuda : public OpKernel, protected ew::CastNode {
 public:
  Status Init(const Node& node) { return CastNode::Init(node); }

  Status Compute(KernelContext& ctx) override {
    const TensorView& x = ctx.input(0);
    TensorView& y = ctx.output(0);
    if (from_ == to_) {
      if (x.ptr == y.ptr || x.nbytes() == 0) return Status::OK();
      ASSIGN_OR_RETURN(Resources * r, Res(ctx));
      DSC_CUDA_CHECK(cudaMemcpyAsync(y.ptr, x.ptr, x.nbytes(), cudaMemcpyDeviceToDevice, r->compute));
      return Status::OK();
    }
    Status status;
    DispatchCastType(from_, [&](auto s) {
      DispatchCastType(to_, [&](auto d) {
        using S = decltype(s);
        using D = decltype(d);
        status = LaunchVecMap(ctx, x.numel(), CastFn<S, D>{}, y.data<D>(), x.data<S>());
      });
    });
    return status;
  }
};

#define DSC_REGISTER_CUDA_CAST(op)                                            \
  DSC_REGISTER_KERNEL("", op, kCuda, kFloat32, MakeFactory<CastCuda>());      \
  DSC_REGISTER_KERNEL("", op, kCuda, kFloat16, MakeFactory<CastCuda>());      \
  DSC_REGISTER_KERNEL("", op, kCuda, kBFloat16, MakeFactory<CastCuda>());     \
  DSC_REGISTER_KERNEL("", op, kCuda, kFloat64, MakeFactory<CastCuda>());      \
  DSC_REGISTER_KERNEL("", op, kCuda, kInt64, MakeFactory<CastCuda>());        \
  DSC_REGISTER_KERNEL("", op, kCuda, kInt32, MakeFactory<CastCuda>());        \
  DSC_REGISTER_KERNEL("", op, kCuda, kBool, MakeFactory<CastCuda>())

DSC_REGISTER_CUDA_CAST("Cast");
// CastLike takes its target dtype from input 1's type, which is also the output's.
DSC_REGISTER_CUDA_CAST("CastLike");

}  // namespace
}  // namespace dsc::cuda
