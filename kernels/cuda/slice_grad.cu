// CUDA twin of kernels/cpu/slice_grad.cc: SliceGrad (dY, starts, ends[, axes][, steps]) -> dX,
// zeros with dY written where Slice read, for float32/float16/bfloat16. The starts/ends/axes/steps
// must be constants (read at Init, clamped as Slice does: kernels/common/index_math.h).
#include "ir/dsc_ops.h"
#include "kernels/common/index_math.h"
#include "kernels/cuda/movement_util.cuh"

namespace dsc::cuda {
namespace {

using cpu::ContiguousStrides;
using cpu::Product;
using cpu::StaticDims;

class SliceGradCuda : public OpKernel {
 public:
  Status Init(const Node& node) {
    ASSIGN_OR_RETURN(auto dy, StaticDims(node.input(0)));
    ASSIGN_OR_RETURN(auto dx, StaticDims(node.output(0)));
    if (dy.size() != dx.size())
      return InvalidArgument("dY ", DimsToString(dy), " and dX ", DimsToString(dx), " differ in rank");
    esize_ = DTypeSize(node.input(0)->type.dtype);
    if (node.output(0)->type.dtype != node.input(0)->type.dtype)
      return Unimplemented("SliceGrad of ", DTypeName(node.input(0)->type.dtype), " into ",
                           DTypeName(node.output(0)->type.dtype), " (the CUDA kernel writes the dtype of dY)");
    std::vector<int64_t> lists[4];
    const char* names[] = {"starts", "ends", "axes", "steps"};
    for (size_t i = 1; i <= 4; ++i) {
      const Value* v = node.input(i);
      if (!v) continue;
      if (!v->is_initializer())
        return Unimplemented("SliceGrad with non-constant ", names[i - 1], " on CUDA (they are read at Init)");
      lists[i - 1] = v->initializer().ToInt64Vector();
    }
    const std::vector<int64_t>& starts = lists[0];
    const std::vector<int64_t>& ends = lists[1];
    std::vector<int64_t> axes = lists[2], steps = lists[3];
    if (!node.input(3))
      for (int64_t a = 0; a < static_cast<int64_t>(starts.size()); ++a) axes.push_back(a);
    if (!node.input(4)) steps.assign(starts.size(), 1);
    if (ends.size() != starts.size() || axes.size() != starts.size() || steps.size() != starts.size())
      return InvalidArgument("starts, ends, axes and steps differ in length");
    const int64_t rank = static_cast<int64_t>(dx.size());
    std::vector<int64_t> first(dx.size(), 0), step(dx.size(), 1);
    std::vector<bool> seen(dx.size(), false);
    for (size_t k = 0; k < starts.size(); ++k) {
      if (axes[k] < -rank || axes[k] >= rank) return InvalidArgument("axis ", axes[k], " out of range");
      const size_t a = static_cast<size_t>(axes[k] < 0 ? axes[k] + rank : axes[k]);
      if (seen[a]) return InvalidArgument("axis ", a, " repeated");
      seen[a] = true;
      if (steps[k] == 0) return InvalidArgument("step 0 on axis ", a);
      int64_t len;
      SliceAxis(starts[k], ends[k], steps[k], dx[a], &first[a], &len);
      if (len != dy[a]) return InvalidArgument("slice of length ", len, " on axis ", a, " but dY has ", dy[a]);
      step[a] = steps[k];
    }
    for (size_t a = 0; a < dx.size(); ++a)
      if (!seen[a] && dy[a] != dx[a]) return InvalidArgument("unsliced axis ", a, " differs between dY and dX");
    const std::vector<int64_t> xstr = ContiguousStrides(dx);
    std::vector<int64_t> ys(dx.size());  // the map's "y" is dX: written at first + i * step
    int64_t base = 0;
    for (size_t a = 0; a < dx.size(); ++a) {
      if (dy[a] > 0) base += first[a] * xstr[a];
      ys[a] = dy[a] > 1 ? step[a] * xstr[a] : 0;
    }
    dx_bytes_ = static_cast<size_t>(Product(dx)) * esize_;
    ASSIGN_OR_RETURN(map_, MakeStridedMap(dy, ContiguousStrides(dy), ys, Product(dy), Product(dx), 0, base));
    return Status::OK();
  }

  Status Compute(KernelContext& ctx) override {
    ASSIGN_OR_RETURN(Resources * r, Res(ctx));
    if (dx_bytes_ > 0) DSC_CUDA_CHECK(cudaMemsetAsync(ctx.output(0).ptr, 0, dx_bytes_, r->compute));
    return DispatchWords(esize_, [&](auto w) {
      return StridedCopy<decltype(w)>(ctx, map_, ctx.input(0).ptr, ctx.output(0).ptr);
    });
  }

 private:
  size_t esize_ = 4, dx_bytes_ = 0;
  StridedMap map_;
};

DSC_REGISTER_KERNEL(kDscDomain, ops::kSliceGrad, kCuda, kFloat32, MakeFactory<SliceGradCuda>());
DSC_REGISTER_KERNEL(kDscDomain, ops::kSliceGrad, kCuda, kFloat16, MakeFactory<SliceGradCuda>());
DSC_REGISTER_KERNEL(kDscDomain, ops::kSliceGrad, kCuda, kBFloat16, MakeFactory<SliceGradCuda>());

}  // namespace
}  // namespace dsc::cuda
