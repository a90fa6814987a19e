// CUDA twin of kernels/cpu/trilu.cc: Trilu<upper>(X, k) for every movement dtype, one thread per
// element keeping it or writing zero by the shared row rule (kernels/common/trilu_math.h). k must
// be a constant (it is read at Init).
#include "kernels/common/trilu_math.h"
#include "kernels/cuda/movement_util.cuh"

namespace dsc::cuda {
namespace {

class TriluCuda : public OpKernel {
 public:
  Status Init(const Node& node) {
    ASSIGN_OR_RETURN(std::vector<int64_t> dims, cpu::StaticDims(node.input(0)));
    if (dims.size() < 2) return InvalidArgument("Trilu input must have rank >= 2, has rank ", dims.size());
    rows_ = dims[dims.size() - 2];
    cols_ = dims.back();
    numel_ = cpu::Product(dims);
    upper_ = node.GetInt("upper", 1) != 0;
    esize_ = DTypeSize(node.input(0)->type.dtype);
    if (const Value* kv = node.input(1)) {
      if (!kv->is_initializer()) return Unimplemented("Trilu with a non-constant k on CUDA (it is read at Init)");
      const std::vector<int64_t> v = kv->initializer().ToInt64Vector();
      if (v.size() != 1) return InvalidArgument("Trilu k must hold one value, has ", v.size());
      k_ = v[0];
    }
    return Status::OK();
  }

  Status Compute(KernelContext& ctx) override {
    return DispatchWords(esize_, [&](auto w) { return Run<decltype(w)>(ctx); });
  }

  // Public: nvcc refuses extended lambdas in private member functions.
  template <typename W>
  Status Run(KernelContext& ctx) {
    const W* x = ctx.input(0).data<W>();
    W* y = ctx.output(0).data<W>();
    const int64_t rows = rows_, cols = cols_, k = k_;
    const bool upper = upper_;
    return LaunchMap(ctx, numel_, [=] __device__(int64_t e) {
      const int64_t j = e % cols, i = e / cols % rows;
      int64_t lo, hi;
      TriluRowRange(upper, k, i, cols, &lo, &hi);
      y[e] = j >= lo && j < hi ? x[e] : W{0};
    });
  }

 private:
  int64_t rows_ = 0, cols_ = 0, numel_ = 0, k_ = 0;
  bool upper_ = true;
  size_t esize_ = 4;
};

[[maybe_unused]] const bool kRegistered = RegisterCudaMovement("", "Trilu", MakeFactory<TriluCuda>());

}  // namespace
}  // namespace dsc::cuda
