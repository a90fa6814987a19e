// CUDA twin of kernels/cpu/gather.cc: Gather along any axis for every movement dtype, int64 or
// int32 indices, negative ones counting from the end. One thread per output element.
#include "kernels/common/index_math.h"
#include "kernels/cuda/movement_util.cuh"

namespace dsc::cuda {
namespace {

// X:(outer, N, inner), indices:(I...) -> Y:(outer, I..., inner). An index out of range writes zeros
// to its row (a kernel cannot fail); the CPU kernel reports it.
class GatherOpCuda : public OpKernel {
 public:
  Status Init(const Node& node) {
    ASSIGN_OR_RETURN(auto x, cpu::StaticDims(node.input(0)));
    ASSIGN_OR_RETURN(auto idx, cpu::StaticDims(node.input(1)));
    ASSIGN_OR_RETURN(int64_t axis, cpu::NormalizeAxis(node.GetInt("axis", 0), static_cast<int64_t>(x.size())));
    const DType it = node.input(1)->type.dtype;
    if (it != DType::kInt64 && it != DType::kInt32)
      return InvalidArgument("Gather indices must be int64 or int32, not ", DTypeName(it));
    is64_ = it == DType::kInt64;
    outer_ = cpu::Product(x, 0, static_cast<size_t>(axis));
    n_ = x[static_cast<size_t>(axis)];
    inner_ = cpu::Product(x, static_cast<size_t>(axis) + 1);
    count_ = cpu::Product(idx);
    esize_ = DTypeSize(node.input(0)->type.dtype);
    return Status::OK();
  }

  Status Compute(KernelContext& ctx) override {
    return DispatchWords(esize_, [&](auto w) { return Run<decltype(w)>(ctx); });
  }

  // Public: nvcc refuses extended lambdas in private member functions.
  template <typename W>
  Status Run(KernelContext& ctx) {
    const W* x = ctx.input(0).data<W>();
    const void* idx = ctx.input(1).ptr;
    W* y = ctx.output(0).data<W>();
    const int64_t n = n_, inner = inner_, count = count_;
    const bool is64 = is64_;
    return LaunchMap(ctx, outer_ * count_ * inner_, [=] __device__(int64_t t) {
      const int64_t e = t % inner, j = t / inner % count, o = t / (inner * count);
      int64_t i;
      y[t] = NormalizeIndex(LoadIndex(idx, is64, j), n, &i) ? x[(o * n + i) * inner + e] : W{0};
    });
  }

 private:
  bool is64_ = true;
  int64_t outer_ = 1, n_ = 0, inner_ = 1, count_ = 0;
  size_t esize_ = 4;
};

[[maybe_unused]] const bool kRegistered = RegisterCudaMovement("", "Gather", MakeFactory<GatherOpCuda>());

}  // namespace
}  // namespace dsc::cuda
