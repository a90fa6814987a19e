// CUDA CumSum, the twin of kernels/cpu/cumsum.cc: one thread per line along the axis, summing in
// the CPU's order (coalesced across the inner dims); half values sum in float.
#include <type_traits>

#include "kernels/common/cumsum_math.h"
#include "kernels/cpu/core_util.h"
#include "kernels/cuda/row_util.cuh"

namespace dsc::cuda {
namespace {

template <typename T>
using AccOf = std::conditional_t<std::is_same_v<T, half> || std::is_same_v<T, bf16>, float, T>;

template <typename T>
__global__ void CumSumLines(const T* x, T* y, int64_t outer, int64_t len, int64_t inner, bool exclusive,
                            bool reverse) {
  using Acc = AccOf<T>;
  const int64_t lines = outer * inner;
  for (int64_t l = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; l < lines;
       l += static_cast<int64_t>(blockDim.x) * gridDim.x) {
    const int64_t base = (l / inner) * len * inner + l % inner;
    const T* xl = x + base;
    T* yl = y + base;
    cumsum::Line<Acc>(
        len, exclusive, reverse,
        [&](int64_t i) -> Acc {
          if constexpr (std::is_same_v<Acc, T>) return xl[i * inner];
          else return ToFloat(xl[i * inner]);
        },
        [&](int64_t i, Acc acc) {
          if constexpr (std::is_same_v<Acc, T>) yl[i * inner] = acc;
          else yl[i * inner] = FromFloat<T>(acc);
        });
  }
}

template <typename T>
class CumSumCuda : public OpKernel {
 public:
  Status Init(const Node& node) {
    ASSIGN_OR_RETURN(std::vector<int64_t> dims, cpu::StaticDims(node.input(0)));
    exclusive_ = node.GetInt("exclusive", 0) != 0;
    reverse_ = node.GetInt("reverse", 0) != 0;
    const Value* av = node.input(1);
    if (!av) return InvalidArgument("CumSum needs its axis input");
    if (!av->is_initializer()) return Unimplemented("CumSum on CUDA needs a constant axis");
    const std::vector<int64_t> v = av->initializer().ToInt64Vector();
    if (v.size() != 1) return InvalidArgument("CumSum axis must hold one value, has ", v.size());
    ASSIGN_OR_RETURN(int64_t axis, cpu::NormalizeAxis(v[0], static_cast<int64_t>(dims.size())));
    outer_ = cpu::Product(dims, 0, static_cast<size_t>(axis));
    len_ = dims[static_cast<size_t>(axis)];
    inner_ = cpu::Product(dims, static_cast<size_t>(axis) + 1);
    return Status::OK();
  }
  Status Compute(KernelContext& ctx) override {
    ASSIGN_OR_RETURN(Resources * r, Res(ctx));
    const int64_t lines = outer_ * inner_;
    if (lines == 0 || len_ == 0) return Status::OK();
    CumSumLines<T><<<GridFor(*r, lines), kThreads, 0, r->compute>>>(ctx.input(0).data<T>(), ctx.output(0).data<T>(),
                                                                     outer_, len_, inner_, exclusive_, reverse_);
    DSC_CUDA_CHECK_LAUNCH();
    return Status::OK();
  }

 private:
  int64_t outer_ = 1, len_ = 1, inner_ = 1;
  bool exclusive_ = false, reverse_ = false;
};

DSC_REGISTER_CUDA_FLOATS("", "CumSum", CumSumCuda);
DSC_REGISTER_KERNEL("", "CumSum", kCuda, kFloat64, MakeFactory<CumSumCuda<double>>());
DSC_REGISTER_KERNEL("", "CumSum", kCuda, kInt64, MakeFactory<CumSumCuda<int64_t>>());
DSC_REGISTER_KERNEL("", "CumSum", kCuda, kInt32, MakeFactory<CumSumCuda<int32_t>>());

}  // namespace
}  // namespace dsc::cuda
