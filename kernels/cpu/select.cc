// TopK(X, K)<axis, largest, sorted> -> (Values, Indices) and ArgMax/ArgMin(X)<axis, keepdims,
// select_last_index> -> int64 indices: one line of X (outer, len, inner) per loop iteration.
// TopK always returns its values sorted (sorted = 0 leaves the order to the implementation).
#include "kernels/common/select_math.h"
#include "kernels/common/select_node.h"

namespace dsc::cpu {
namespace {

template <typename T>
class TopKKernel : public OpKernel {
 public:
  Status Init(const Node& node) {
    ASSIGN_OR_RETURN(l_, select::ReadLines(node));
    return Status::OK();
  }

  Status Compute(KernelContext& ctx) override {
    const select::Lines l = l_;
    const T* x = ctx.input(0).data<T>();
    T* yv = ctx.output(0).data<T>();
    int64_t* yi = ctx.output(1).data<int64_t>();
#pragma omp parallel for collapse(2) if (l.lines() * l.len * l.k >= kParallelMin) schedule(static)
    for (int64_t o = 0; o < l.outer; ++o)
      for (int64_t in = 0; in < l.inner; ++in) {
        const T* xl = x + o * l.len * l.inner + in;
        int64_t* il = yi + o * l.k * l.inner + in;
        T* vl = yv + o * l.k * l.inner + in;
        select::TopKLine(
            l.len, l.k, l.largest, [&](int64_t i) { return xl[i * l.inner]; },
            [&](int64_t j) { return il[j * l.inner]; }, [&](int64_t j, int64_t i) { il[j * l.inner] = i; });
        for (int64_t j = 0; j < l.k; ++j) vl[j * l.inner] = xl[il[j * l.inner] * l.inner];
      }
    return Status::OK();
  }

 private:
  select::Lines l_;
};

template <typename T>
class ArgKernel : public OpKernel {
 public:
  Status Init(const Node& node) {
    ASSIGN_OR_RETURN(l_, select::ReadLines(node));
    return Status::OK();
  }

  Status Compute(KernelContext& ctx) override {
    const select::Lines l = l_;
    const T* x = ctx.input(0).data<T>();
    int64_t* y = ctx.output(0).data<int64_t>();
#pragma omp parallel for collapse(2) if (l.lines() * l.len >= kParallelMin) schedule(static)
    for (int64_t o = 0; o < l.outer; ++o)
      for (int64_t in = 0; in < l.inner; ++in) {
        const T* xl = x + o * l.len * l.inner + in;
        y[o * l.inner + in] =
            select::ArgLine(l.len, l.largest, l.select_last, [&](int64_t i) { return xl[i * l.inner]; });
      }
    return Status::OK();
  }

 private:
  select::Lines l_;
};

DSC_REGISTER_KERNEL("", "TopK", kCpu, kFloat32, MakeFactory<TopKKernel<float>>());
DSC_REGISTER_KERNEL("", "TopK", kCpu, kFloat64, MakeFactory<TopKKernel<double>>());
DSC_REGISTER_KERNEL("", "TopK", kCpu, kInt64, MakeFactory<TopKKernel<int64_t>>());
DSC_REGISTER_KERNEL("", "TopK", kCpu, kInt32, MakeFactory<TopKKernel<int32_t>>());
DSC_REGISTER_KERNEL("", "ArgMax", kCpu, kFloat32, MakeFactory<ArgKernel<float>>());
DSC_REGISTER_KERNEL("", "ArgMax", kCpu, kFloat64, MakeFactory<ArgKernel<double>>());
DSC_REGISTER_KERNEL("", "ArgMax", kCpu, kInt64, MakeFactory<ArgKernel<int64_t>>());
DSC_REGISTER_KERNEL("", "ArgMax", kCpu, kInt32, MakeFactory<ArgKernel<int32_t>>());
DSC_REGISTER_KERNEL("", "ArgMin", kCpu, kFloat32, MakeFactory<ArgKernel<float>>());
DSC_REGISTER_KERNEL("", "ArgMin", kCpu, kFloat64, MakeFactory<ArgKernel<double>>());
DSC_REGISTER_KERNEL("", "ArgMin", kCpu, kInt64, MakeFactory<ArgKernel<int64_t>>());
DSC_REGISTER_KERNEL("", "ArgMin", kCpu, kInt32, MakeFactory<ArgKernel<int32_t>>());

}  // namespace
}  // namespace dsc::cpu
