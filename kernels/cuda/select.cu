// CUDA TopK and ArgMax/ArgMin, the twins of kernels/cpu/select.cc: one thread per line of X
// (outer, len, inner), coalesced across the inner dims, walking the line in the CPU's order with
// the same comparisons (kernels/common/select_math.h), so both devices pick the same indices.
// Half values compare in float (exactly, as widening is exact); TopK copies the selected values.
#include <type_traits>

#include "kernels/common/select_math.h"
#include "kernels/common/select_node.h"
#include "kernels/cuda/cuda_util.cuh"

namespace dsc::cuda {
namespace {

template <typename T>
__device__ __forceinline__ auto LoadCmp(T v) {
  if constexpr (std::is_same_v<T, half> || std::is_same_v<T, bf16>) return ToFloat(v);
  else return v;
}

template <typename T>
class TopKCuda : public OpKernel {
 public:
  Status Init(const Node& node) {
    ASSIGN_OR_RETURN(l_, select::ReadLines(node));
    return Status::OK();
  }
  Status Compute(KernelContext& ctx) override {
    if (l_.k == 0) return Status::OK();
    const select::Lines l = l_;
    const T* x = ctx.input(0).data<T>();
    T* yv = ctx.output(0).data<T>();
    int64_t* yi = ctx.output(1).data<int64_t>();
    return LaunchMap(ctx, l.lines(), [=] __device__(int64_t line) {
      const int64_t o = line / l.inner, in = line % l.inner;
      const T* xl = x + o * l.len * l.inner + in;
      int64_t* il = yi + o * l.k * l.inner + in;
      T* vl = yv + o * l.k * l.inner + in;
      select::TopKLine(
          l.len, l.k, l.largest, [&](int64_t i) { return LoadCmp(xl[i * l.inner]); },
          [&](int64_t j) { return il[j * l.inner]; }, [&](int64_t j, int64_t i) { il[j * l.inner] = i; });
      for (int64_t j = 0; j < l.k; ++j) vl[j * l.inner] = xl[il[j * l.inner] * l.inner];
    });
  }

 private:
  select::Lines l_;
};

template <typename T>
class ArgCuda : public OpKernel {
 public:
  Status Init(const Node& node) {
    ASSIGN_OR_RETURN(l_, select::ReadLines(node));
    return Status::OK();
  }
  Status Compute(KernelContext& ctx) override {
    const select::Lines l = l_;
    const T* x = ctx.input(0).data<T>();
    int64_t* y = ctx.output(0).data<int64_t>();
    return LaunchMap(ctx, l.lines(), [=] __device__(int64_t line) {
      const int64_t o = line / l.inner, in = line % l.inner;
      const T* xl = x + o * l.len * l.inner + in;
      y[line] = select::ArgLine(l.len, l.largest, l.select_last, [&](int64_t i) { return LoadCmp(xl[i * l.inner]); });
    });
  }

 private:
  select::Lines l_;
};

DSC_REGISTER_CUDA_FLOATS("", "TopK", TopKCuda);
DSC_REGISTER_KERNEL("", "TopK", kCuda, kFloat64, MakeFactory<TopKCuda<double>>());
DSC_REGISTER_KERNEL("", "TopK", kCuda, kInt64, MakeFactory<TopKCuda<int64_t>>());
DSC_REGISTER_KERNEL("", "TopK", kCuda, kInt32, MakeFactory<TopKCuda<int32_t>>());
DSC_REGISTER_CUDA_FLOATS("", "ArgMax", ArgCuda);
// Hugging Face's pooling positions are ArgMax over int32 ((input_ids == pad).int()) in GPT-2's
// sequence classifier and CLIP's text model.
DSC_REGISTER_KERNEL("", "ArgMax", kCuda, kFloat64, MakeFactory<ArgCuda<double>>());
DSC_REGISTER_KERNEL("", "ArgMax", kCuda, kInt64, MakeFactory<ArgCuda<int64_t>>());
DSC_REGISTER_KERNEL("", "ArgMax", kCuda, kInt32, MakeFactory<ArgCuda<int32_t>>());
DSC_REGISTER_CUDA_FLOATS("", "ArgMin", ArgCuda);
DSC_REGISTER_KERNEL("", "ArgMin", kCuda, kFloat64, MakeFactory<ArgCuda<double>>());
DSC_REGISTER_KERNEL("", "ArgMin", kCuda, kInt64, MakeFactory<ArgCuda<int64_t>>());
DSC_REGISTER_KERNEL("", "ArgMin", kCuda, kInt32, MakeFactory<ArgCuda<int32_t>>());

}  // namespace
}  // namespace dsc::cuda
