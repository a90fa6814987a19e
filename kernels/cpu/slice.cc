// Slice (opset 10+ inputs starts/ends/axes/steps; opset 1 attributes): ONNX clamping rules,
// negative indices and negative steps.
#include <algorithm>
#include <limits>

#include "kernels/common/index_math.h"
#include "kernels/cpu/broadcast.h"

namespace dsc::cpu {
namespace {

class SliceKernel : public OpKernel {
 public:
  Status Init(const Node& node) {
    describe_ = node.Describe();
    ASSIGN_OR_RETURN(x_, StaticDims(node.input(0)));
    ASSIGN_OR_RETURN(y_, StaticDims(node.output(0)));
    element_size_ = DTypeSize(node.input(0)->type.dtype);
    if (node.num_inputs() == 1) {  // opset 1: attributes
      attr_starts_ = node.GetInts("starts");
      attr_ends_ = node.GetInts("ends");
      attr_axes_ = node.GetInts("axes");
      ASSIGN_OR_RETURN(plan_, MakePlan(attr_starts_, attr_ends_, attr_axes_, {}));
      return Status::OK();
    }
    starts_.Init(node, 1);
    ends_.Init(node, 2);
    axes_.Init(node, 3);
    steps_.Init(node, 4);
    runtime_ = !starts_.constant() || !ends_.constant() || (axes_.present() && !axes_.constant()) ||
               (steps_.present() && !steps_.constant());
    if (!runtime_) {
      ASSIGN_OR_RETURN(plan_, MakePlan(starts_.constant_values(), ends_.constant_values(),
                                       axes_.constant_values(), steps_.constant_values()));
    }
    return Status::OK();
  }

  Status Compute(KernelContext& ctx) override {
    if (runtime_) {
      auto plan = MakePlan(starts_.Get(ctx), ends_.Get(ctx), axes_.Get(ctx), steps_.Get(ctx));
      if (!plan.ok()) return plan.status().WithContext(describe_);
      plan_ = std::move(plan).value();
    }
    DispatchByElementSize(element_size_, [&](auto word) {
      using W = decltype(word);
      const W* x = ctx.input(0).data<W>() + base_;
      W* y = ctx.output(0).data<W>();
      const int64_t n = plan_.inner(), s = plan_.inner_stride(0);
      ForEachRow(plan_, [&](int64_t o, const int64_t* off) {
        for (int64_t i = 0; i < n; ++i) y[o + i] = x[off[0] + i * s];
      });
    });
    return Status::OK();
  }

 private:
  // Y[j] = X[base + sum_d j_d * step_d * stride_d]; the per-axis rules are the ONNX spec's.
  StatusOr<BroadcastPlan> MakePlan(const std::vector<int64_t>& starts, const std::vector<int64_t>& ends,
                                   const std::vector<int64_t>& axes_in, const std::vector<int64_t>& steps) {
    const int64_t rank = static_cast<int64_t>(x_.size());
    if (starts.size() != ends.size()) return InvalidArgument("starts and ends differ in length");
    std::vector<int64_t> axes = axes_in;
    if (axes.empty())
      for (size_t i = 0; i < starts.size(); ++i) axes.push_back(static_cast<int64_t>(i));
    if (axes.size() != starts.size() || (!steps.empty() && steps.size() != starts.size()))
      return InvalidArgument("starts, ends, axes and steps differ in length");
    std::vector<int64_t> begin(x_.size(), 0), step(x_.size(), 1), len = x_;
    for (size_t i = 0; i < starts.size(); ++i) {
      ASSIGN_OR_RETURN(int64_t a, NormalizeAxis(axes[i], rank));
      const int64_t dim = x_[static_cast<size_t>(a)];
      const int64_t st = steps.empty() ? 1 : steps[i];
      if (st == 0) return InvalidArgument("Slice step is 0 on axis ", a);
      SliceAxis(starts[i], ends[i], st, dim, &begin[static_cast<size_t>(a)], &len[static_cast<size_t>(a)]);
      step[static_cast<size_t>(a)] = st;
    }
    if (len != y_) return InvalidArgument("slice gives ", len.size(), "-D result that differs from the output shape");
    std::vector<int64_t> xs = ContiguousStrides(x_), strides(x_.size());
    base_ = 0;
    for (size_t d = 0; d < x_.size(); ++d) {
      if (len[d] > 0) base_ += begin[d] * xs[d];
      // With two or more elements |step| < dim, so the stride cannot overflow; otherwise it is never applied.
      strides[d] = len[d] > 1 ? step[d] * xs[d] : 0;
    }
    return StridedPlan(len, {strides});
  }

  std::string describe_;
  std::vector<int64_t> x_, y_, attr_starts_, attr_ends_, attr_axes_;
  size_t element_size_ = 4;
  IntsInput starts_, ends_, axes_, steps_;
  bool runtime_ = false;
  int64_t base_ = 0;
  BroadcastPlan plan_;
};

[[maybe_unused]] const bool kRegistered = RegisterForMovementDTypes("Slice", MakeFactory<SliceKernel>());

}  // namespace
}  // namespace dsc::cpu
