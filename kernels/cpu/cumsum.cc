// CumSum<exclusive, reverse>(X, axis) -> Y: running sums of X along one axis (position ids from an
// attention mask; the gradient of CumSum is a CumSum with `reverse` flipped).
#include "kernels/common/cumsum_math.h"
#include "kernels/cpu/core_util.h"

namespace dsc::cpu {
namespace {

template <typename T>
class CumSumKernel : public OpKernel {
 public:
  Status Init(const Node& node) {
    ASSIGN_OR_RETURN(dims_, StaticDims(node.input(0)));
    exclusive_ = node.GetInt("exclusive", 0) != 0;
    reverse_ = node.GetInt("reverse", 0) != 0;
    axis_.Init(node, 1);
    if (!axis_.present()) return InvalidArgument("CumSum needs its axis input");
    if (axis_.constant()) return ResolveAxis(axis_.constant_values()).status();
    return Status::OK();
  }

  Status Compute(KernelContext& ctx) override {
    ASSIGN_OR_RETURN(int64_t axis, ResolveAxis(axis_.Get(ctx)));
    // X viewed as (outer, len, inner) around the axis.
    const int64_t outer = Product(dims_, 0, static_cast<size_t>(axis));
    const int64_t len = dims_[static_cast<size_t>(axis)];
    const int64_t inner = Product(dims_, static_cast<size_t>(axis) + 1);
    const T* x = ctx.input(0).data<T>();
    T* y = ctx.output(0).data<T>();
    const bool exclusive = exclusive_, reverse = reverse_;
#pragma omp parallel for collapse(2) if (outer * inner * len >= kParallelMin) schedule(static)
    for (int64_t o = 0; o < outer; ++o)
      for (int64_t in = 0; in < inner; ++in) {
        const T* xl = x + o * len * inner + in;
        T* yl = y + o * len * inner + in;
        cumsum::Line<T>(
            len, exclusive, reverse, [&](int64_t i) { return xl[i * inner]; },
            [&](int64_t i, T acc) { yl[i * inner] = acc; });
      }
    return Status::OK();
  }

 private:
  StatusOr<int64_t> ResolveAxis(const std::vector<int64_t>& v) const {
    if (v.size() != 1) return InvalidArgument("CumSum axis must hold one value, has ", v.size());
    return NormalizeAxis(v[0], static_cast<int64_t>(dims_.size()));
  }

  std::vector<int64_t> dims_;
  bool exclusive_ = false, reverse_ = false;
  IntsInput axis_;
};

DSC_REGISTER_KERNEL("", "CumSum", kCpu, kFloat32, MakeFactory<CumSumKernel<float>>());
DSC_REGISTER_KERNEL("", "CumSum", kCpu, kFloat64, MakeFactory<CumSumKernel<double>>());
DSC_REGISTER_KERNEL("", "CumSum", kCpu, kInt64, MakeFactory<CumSumKernel<int64_t>>());
DSC_REGISTER_KERNEL("", "CumSum", kCpu, kInt32, MakeFactory<CumSumKernel<int32_t>>());

}  // namespace
}  // namespace dsc::cpu
