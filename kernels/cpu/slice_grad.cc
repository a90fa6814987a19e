// SliceGrad: the adjoint of ONNX Slice (opset 13), zeros with dY written into the sliced positions.
#include <algorithm>
#include <string>
#include <vector>

#include "ir/dsc_ops.h"
#include "kernels/common/index_math.h"
#include "kernels/cpu/nn_util.h"
#include "kernels/kernel.h"

namespace dsc {
namespace {

StatusOr<std::vector<int64_t>> IntVector(const KernelContext& ctx, size_t i) {
  const TensorView& t = ctx.input(i);
  if (t.dims.size() != 1) return InvalidArgument("input ", i, " of Slice must be 1-D");
  std::vector<int64_t> v(static_cast<size_t>(t.numel()));
  for (int64_t k = 0; k < t.numel(); ++k) {
    if (t.dtype == DType::kInt64)
      v[k] = t.data<int64_t>()[k];
    else if (t.dtype == DType::kInt32)
      v[k] = t.data<int32_t>()[k];
    else
      return InvalidArgument("input ", i, " of Slice must be int64 or int32");
  }
  return v;
}

// (dY, starts, ends[, axes][, steps]) -> dX;  dX has the forward input's shape (from its type), dY the
// slice's. Starts and ends are clamped as ONNX Slice does, so dY lands exactly where Slice read from.
class SliceGradKernel : public nn::DescribedKernel {
 public:
  Status Init(const Node& node) {
    ASSIGN_OR_RETURN(dy_dims_, nn::StaticDims(node.input(0), "dY"));
    ASSIGN_OR_RETURN(dx_dims_, nn::StaticDims(node.output(0), "dX"));
    if (dy_dims_.size() != dx_dims_.size())
      return InvalidArgument("dY ", nn::DimsToString(dy_dims_), " and dX ", nn::DimsToString(dx_dims_),
                             " differ in rank");
    desc_ = node.Describe();
    return Status::OK();
  }

 private:
  Status Run(KernelContext& ctx) override {
    const int64_t rank = static_cast<int64_t>(dx_dims_.size());
    ASSIGN_OR_RETURN(std::vector<int64_t> starts, IntVector(ctx, 1));
    ASSIGN_OR_RETURN(std::vector<int64_t> ends, IntVector(ctx, 2));
    std::vector<int64_t> axes, steps;
    if (ctx.has_input(3)) {
      ASSIGN_OR_RETURN(axes, IntVector(ctx, 3));
    } else {
      for (int64_t a = 0; a < static_cast<int64_t>(starts.size()); ++a) axes.push_back(a);
    }
    if (ctx.has_input(4)) {
      ASSIGN_OR_RETURN(steps, IntVector(ctx, 4));
    } else {
      steps.assign(starts.size(), 1);
    }
    if (ends.size() != starts.size() || axes.size() != starts.size() || steps.size() != starts.size())
      return InvalidArgument("starts, ends, axes and steps differ in length");
    std::vector<int64_t> first(rank, 0), step(rank, 1);
    std::vector<bool> seen(rank, false);
    for (size_t k = 0; k < starts.size(); ++k) {
      if (axes[k] < -rank || axes[k] >= rank) return InvalidArgument("axis ", axes[k], " out of range");
      const int64_t a = axes[k] < 0 ? axes[k] + rank : axes[k];
      if (seen[a]) return InvalidArgument("axis ", a, " repeated");
      seen[a] = true;
      const int64_t d = dx_dims_[a], s = steps[k];
      if (s == 0) return InvalidArgument("step 0 on axis ", a);
      int64_t b, len;
      SliceAxis(starts[k], ends[k], s, d, &b, &len);
      if (len != dy_dims_[a])
        return InvalidArgument("slice of length ", len, " on axis ", a, " but dY has ", dy_dims_[a]);
      first[a] = b, step[a] = s;
    }
    for (int64_t a = 0; a < rank; ++a)
      if (!seen[a] && dy_dims_[a] != dx_dims_[a])
        return InvalidArgument("unsliced axis ", a, " differs between dY and dX");
    // Strides of dX, then each element of dY goes to first + i * step along every axis.
    std::vector<int64_t> xstride(rank, 1);
    for (int64_t a = rank - 2; a >= 0; --a) xstride[a] = xstride[a + 1] * dx_dims_[a + 1];
    const float* dy = ctx.input(0).data<float>();
    float* dx = ctx.output(0).data<float>();
    const int64_t nx = nn::Product(dx_dims_), ny = nn::Product(dy_dims_);
    std::fill(dx, dx + nx, 0.0f);
    const std::vector<int64_t>& ydims = dy_dims_;
#pragma omp parallel for if (ny > nn::kParallelThreshold)
    for (int64_t e = 0; e < ny; ++e) {
      int64_t rest = e, off = 0;
      for (int64_t a = rank - 1; a >= 0; --a) {
        const int64_t i = rest % ydims[a];
        rest /= ydims[a];
        off += (first[a] + i * step[a]) * xstride[a];
      }
      dx[off] = dy[e];
    }
    return Status::OK();
  }

  std::vector<int64_t> dy_dims_, dx_dims_;
};

DSC_REGISTER_KERNEL(kDscDomain, ops::kSliceGrad, kCpu, kFloat32, MakeFactory<SliceGradKernel>());

}  // namespace
}  // namespace dsc
