// CUDA twin of kernels/cpu/gather_grad.cc: GatherGrad, the scatter-add adjoint of Gather (an
// embedding's gradient), for float32/float16/bfloat16. Deterministic without float atomics: the
// indices are sorted stably (SortedScatter, kernels/cuda/movement_util.cuh) and each row of dData
// sums its dY rows in index order in float, rounding once, as the CPU kernel does.
#include "ir/dsc_ops.h"
#include "kernels/common/index_math.h"
#include "kernels/cuda/movement_util.cuh"

namespace dsc::cuda {
namespace {

// dData[o, key, j] = sum over the i with idx[i] = key, in order, of dY[o, i, j].
template <typename T>
struct GatherGradSum {
  T* dd;
  const T* dy;
  int64_t count, a, inner;
  __device__ float Begin(int64_t, int64_t, int64_t) const { return 0.0f; }
  __device__ float Add(float acc, int64_t o, int64_t i, int64_t j) const {
    return acc + ToFloat(dy[(o * count + i) * inner + j]);
  }
  __device__ void End(int64_t o, int64_t key, int64_t j, float acc) const { dd[(o * a + key) * inner + j] = FromFloat<T>(acc); }
};

// (dY, indices) -> dData;  dData:(outer, A, inner), indices:(I) flattened, dY:(outer, I, inner).
// Rows equal to padding_idx (>= 0) and out-of-range indices (which the CPU kernel reports; a CUDA
// kernel cannot) receive nothing.
template <typename T>
class GatherOpGradCuda : public OpKernel {
 public:
  Status Init(const Node& node) {
    ASSIGN_OR_RETURN(std::vector<int64_t> data, cpu::StaticDims(node.output(0)));
    ASSIGN_OR_RETURN(std::vector<int64_t> idx, cpu::StaticDims(node.input(1)));
    ASSIGN_OR_RETURN(std::vector<int64_t> dy, cpu::StaticDims(node.input(0)));
    ASSIGN_OR_RETURN(int64_t axis, cpu::NormalizeAxis(node.GetInt("axis", 0), static_cast<int64_t>(data.size())));
    std::vector<int64_t> expect(data.begin(), data.begin() + axis);
    expect.insert(expect.end(), idx.begin(), idx.end());
    expect.insert(expect.end(), data.begin() + axis + 1, data.end());
    if (dy != expect)
      return InvalidArgument("dY ", DimsToString(dy), " must be ", DimsToString(expect), " for dData ",
                             DimsToString(data), ", indices ", DimsToString(idx), " and axis ", axis);
    const DType it = node.input(1)->type.dtype;
    if (it != DType::kInt64 && it != DType::kInt32) return InvalidArgument("indices must be int64 or int32");
    is64_ = it == DType::kInt64;
    if (node.output(0)->type.dtype != DTypeOf<T>())
      return Unimplemented("GatherGrad of ", DTypeName(DTypeOf<T>()), " into ", DTypeName(node.output(0)->type.dtype),
                           " (the CUDA kernel writes the dtype of its input)");
    outer_ = cpu::Product(data, 0, static_cast<size_t>(axis));
    a_ = data[static_cast<size_t>(axis)];
    inner_ = cpu::Product(data, static_cast<size_t>(axis) + 1);
    count_ = cpu::Product(idx);
    padding_ = node.GetInt("padding_idx", -1);
    if (padding_ >= a_) return InvalidArgument("padding_idx ", padding_, " is outside [0, ", a_, ")");
    bytes_ = static_cast<size_t>(outer_ * a_ * inner_) * sizeof(T);
    return Status::OK();
  }

  Status Compute(KernelContext& ctx) override {
    ASSIGN_OR_RETURN(Resources * r, Res(ctx));
    T* dd = ctx.output(0).data<T>();
    if (bytes_ > 0) DSC_CUDA_CHECK(cudaMemsetAsync(dd, 0, bytes_, r->compute));
    SortedScatter sorted;
    RETURN_IF_ERROR(sorted.Prepare(ctx, count_, a_));
    int64_t* keys = sorted.keys();
    const void* idx = ctx.input(1).ptr;
    const bool is64 = is64_;
    const int64_t a = a_, padding = padding_;
    RETURN_IF_ERROR(LaunchMap(ctx, count_, [=] __device__(int64_t i) {
      int64_t k;
      keys[i] = NormalizeIndex(LoadIndex(idx, is64, i), a, &k) && k != padding ? k : a;  // a: skipped
    }));
    return sorted.Run(ctx, outer_, inner_, GatherGradSum<T>{dd, ctx.input(0).data<T>(), count_, a_, inner_});
  }

 private:
  bool is64_ = true;
  int64_t outer_ = 1, a_ = 1, inner_ = 1, count_ = 0, padding_ = -1;
  size_t bytes_ = 0;
};

DSC_REGISTER_CUDA_FLOATS(kDscDomain, ops::kGatherGrad, GatherOpGradCuda);

}  // namespace
}  // namespace dsc::cuda
