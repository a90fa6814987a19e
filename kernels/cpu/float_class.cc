// IsNaN and IsInf<detect_positive, detect_negative>: a float tensor in, a bool tensor (one byte 0/1)
// of the same shape out. The legacy exporter's attention masks them: Where(IsNaN(Softmax(..)), 0, ..).
#include "kernels/common/elementwise_math.h"
#include "kernels/cpu/core_util.h"

namespace dsc::cpu {
namespace {

template <typename T>
class FloatClassKernel : public OpKernel {
 public:
  Status Init(const Node& node) {
    is_nan_ = node.op_type() == "IsNaN";
    positive_ = node.GetInt("detect_positive", 1) != 0;
    negative_ = node.GetInt("detect_negative", 1) != 0;
    return Status::OK();
  }
  Status Compute(KernelContext& ctx) override {
    const TensorView& x = ctx.input(0);
    const T* in = x.data<T>();
    uint8_t* out = ctx.output(0).data<uint8_t>();
    const int64_t n = x.numel();
    const bool is_nan = is_nan_, pos = positive_, neg = negative_;
#pragma omp parallel for if (n >= kParallelMin) schedule(static)
    for (int64_t i = 0; i < n; ++i) {
      const auto v = ew::CastLoad(in[i]);
      out[i] = is_nan ? ew::IsNaNValue(v) : ew::IsInfValue(v, pos, neg);
    }
    return Status::OK();
  }

 private:
  bool is_nan_ = false, positive_ = true, negative_ = true;
};

#define DSC_REGISTER_FLOAT_CLASS(op)                                                      \
  DSC_REGISTER_KERNEL("", op, kCpu, kFloat32, MakeFactory<FloatClassKernel<float>>());    \
  DSC_REGISTER_KERNEL("", op, kCpu, kFloat64, MakeFactory<FloatClassKernel<double>>());   \
  DSC_REGISTER_KERNEL("", op, kCpu, kFloat16, MakeFactory<FloatClassKernel<ew::F16>>());  \
  DSC_REGISTER_KERNEL("", op, kCpu, kBFloat16, MakeFactory<FloatClassKernel<ew::BF16>>())

DSC_REGISTER_FLOAT_CLASS("IsNaN");
DSC_REGISTER_FLOAT_CLASS("IsInf");

}  // namespace
}  // namespace dsc::cpu
