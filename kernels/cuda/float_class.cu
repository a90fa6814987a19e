// IsNaN and IsInf CUDA kernels, twins of kernels/cpu/float_class.cc: float32/float64/float16/bfloat16
// in, bool (one byte 0/1) out. Half values are read with the CPU's bit conversions (ew::CastLoad).
#include "kernels/common/elementwise_math.h"
#include "kernels/cuda/elementwise.cuh"

namespace dsc::cuda {
namespace {

template <typename T>
struct FloatClassFn {
  bool is_nan, positive, negative;
  __device__ __forceinline__ uint8_t operator()(T x) const {
    const auto v = ew::CastLoad(x);
    return is_nan ? ew::IsNaNValue(v) : ew::IsInfValue(v, positive, negative);
  }
};

template <typename T>
class FloatClassCuda : public OpKernel {
 public:
  Status Init(const Node& node) {
    f_.is_nan = node.op_type() == "IsNaN";
    f_.positive = node.GetInt("detect_positive", 1) != 0;
    f_.negative = node.GetInt("detect_negative", 1) != 0;
    return ExpectDType(node, node.output(0), DType::kBool, "output");
  }
  Status Compute(KernelContext& ctx) override {
    const TensorView& x = ctx.input(0);
    return LaunchVecMap(ctx, x.numel(), f_, ctx.output(0).data<uint8_t>(), x.data<T>());
  }

 private:
  FloatClassFn<T> f_{false, true, true};
};

#define DSC_REGISTER_CUDA_FLOAT_CLASS(op)                                                   \
  DSC_REGISTER_KERNEL("", op, kCuda, kFloat32, MakeFactory<FloatClassCuda<float>>());       \
  DSC_REGISTER_KERNEL("", op, kCuda, kFloat64, MakeFactory<FloatClassCuda<double>>());      \
  DSC_REGISTER_KERNEL("", op, kCuda, kFloat16, MakeFactory<FloatClassCuda<ew::F16>>());     \
  DSC_REGISTER_KERNEL("", op, kCuda, kBFloat16, MakeFactory<FloatClassCuda<ew::BF16>>())

DSC_REGISTER_CUDA_FLOAT_CLASS("IsNaN");
DSC_REGISTER_CUDA_FLOAT_CLASS("IsInf");

}  // namespace
}  // namespace dsc::cuda
