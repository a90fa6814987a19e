// Cast and CastLike CUDA kernels, twins of kernels/cpu/cast.cc: float32/float16/bfloat16/float64/
// int64/int32/bool, every direction, with the CPU's conversions (ew::CastLoad/CastStore), so half
// results are bit-identical to it.
#include "kernels/common/elementwise_math.h"
#include "kernels/cuda/elementwise.cuh"

namespace dsc::cuda {
namespace {

template <typename S, typename D>
struct CastFn {
  __device__ __forceinline__ D operator()(S s) const { return ew::CastStore<D>(ew::CastLoad(s)); }
};

// Calls fn(T{}) with the storage type of `t`; false for a dtype Cast does not handle.
template <typename Fn>
bool DispatchCastType(DType t, Fn&& fn) {
  switch (t) {
    case DType::kFloat32: fn(float{}); return true;
    case DType::kFloat16: fn(ew::F16{}); return true;
    case DType::kBFloat16: fn(ew::BF16{}); return true;
    case DType::kFloat64: fn(double{}); return true;
    case DType::kInt64: fn(int64_t{}); return true;
    case DType::kInt32: fn(int32_t{}); return true;
    case DType::kBool: fn(ew::Bool{}); return true;
    default: return false;
  }
}

class CastCuda : public OpKernel {
 public:
  Status Init(const Node& node) {
    from_ = node.input(0)->type.dtype;
    to_ = node.output(0)->type.dtype;
    if (node.HasAttr("to")) {
      StatusOr<DType> to = DTypeFromOnnx(static_cast<int>(node.GetInt("to", 0)));
      if (to.ok() && *to != to_)
        return InvalidArgument("attribute to=", DTypeName(*to), " but the output is ", DTypeName(to_));
    }
    if (!DispatchCastType(to_, [](auto) {}) || !DispatchCastType(from_, [](auto) {}))
      return Unimplemented("Cast from ", DTypeName(from_), " to ", DTypeName(to_));
    return Status::OK();
  }

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

 private:
  DType from_ = DType::kUndefined, to_ = DType::kUndefined;
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
