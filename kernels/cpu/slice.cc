// Slice (opset 10+ inputs starts/ends/axes/steps; opset 1 attributes): ONNX clamping rules,
// negative indices and negative steps.
#include <algorithm>
#include <limits>

#include "kernels/common/index_math.h"
#include "kernels/common/slice_node.h"
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
  // Y[j] = X[base + sum_d j_d * step_d * stride_d] (kernels/common/slice_node.h).
  StatusOr<BroadcastPlan> MakePlan(const std::vector<int64_t>& starts, const std::vector<int64_t>& ends,
                                   const std::vector<int64_t>& axes, const std::vector<int64_t>& steps) {
    ASSIGN_OR_RETURN(SliceGeometry g, ResolveSlice(x_, y_, starts, ends, axes, steps));
    base_ = g.base;
    return StridedPlan(g.len, {g.strides});
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
