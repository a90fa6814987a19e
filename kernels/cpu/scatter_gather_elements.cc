// GatherElements, ScatterElements (axis, reduction none/add/mul/max/min) and GatherElementsGrad,
// the scatter-add adjoint of GatherElements (ir/dsc_ops.h). Negative indices count from the end.
#include "ir/dsc_ops.h"
#include "kernels/cpu/index_offsets.h"
#include "kernels/cpu/nn_util.h"
#include "kernels/cpu/scatter_gather.h"

namespace dsc::cpu {
namespace {

// Y[e] = data[offset(e)], Y shaped like indices (torch.gather).
class GatherElementsKernel : public OpKernel {
 public:
  Status Init(const Node& node) {
    describe_ = node.Describe();
    ASSIGN_OR_RETURN(auto data, StaticDims(node.input(0)));
    ASSIGN_OR_RETURN(auto idx, StaticDims(node.input(1)));
    RETURN_IF_ERROR(CheckIndexDType(node.input(1)->type.dtype));
    RETURN_IF_ERROR(plan_.Init(data, idx, node.GetInt("axis", 0)));
    elem_ = DTypeSize(node.input(0)->type.dtype);
    return Status::OK();
  }

  Status Compute(KernelContext& ctx) override {
    RETURN_IF_ERROR(plan_.Compute(ctx.input(1), describe_, offsets_));
    DispatchByElementSize(elem_, [&](auto w) {
      using W = decltype(w);
      const W* x = ctx.input(0).data<W>();
      W* y = ctx.output(0).data<W>();
      for (size_t e = 0; e < offsets_.size(); ++e) y[e] = x[offsets_[e]];
    });
    return Status::OK();
  }

 private:
  std::string describe_;
  ElementOffsets plan_;
  size_t elem_ = 4;
  std::vector<int64_t> offsets_;
};

// Y = copy of data, then Y[offset(e)] = f(Y[offset(e)], updates[e]) in index order.
class ScatterElementsKernel final : public ScatterKernel<ElementOffsets> {
  Status InitPlan(const Node& node, const std::vector<int64_t>& data, const std::vector<int64_t>& idx,
                  const std::vector<int64_t>& upd) override {
    if (upd != idx)
      return InvalidArgument("updates ", nn::DimsToString(upd), " must be shaped like indices ", nn::DimsToString(idx));
    return plan_.Init(data, idx, node.GetInt("axis", 0));
  }
};

// GatherElementsGrad<axis>(dY, indices) -> dData: zeros, then dData[offset(e)] += dY[e].
class GatherElementsGradKernel final : public GatherGradKernel<ElementOffsets> {
  Status InitPlan(const Node& node, const std::vector<int64_t>& data, const std::vector<int64_t>& idx,
                  const std::vector<int64_t>& dy) override {
    if (dy != idx) return InvalidArgument("dY ", nn::DimsToString(dy), " must be shaped like indices ", nn::DimsToString(idx));
    return plan_.Init(data, idx, node.GetInt("axis", 0));
  }
};

[[maybe_unused]] const bool kGather = RegisterForMovementDTypes("GatherElements", MakeFactory<GatherElementsKernel>());
[[maybe_unused]] const bool kScatter = RegisterForMovementDTypes("ScatterElements", MakeFactory<ScatterElementsKernel>());
DSC_REGISTER_KERNEL(kDscDomain, ops::kGatherElementsGrad, kCpu, kFloat32, MakeFactory<GatherElementsGradKernel>());

}  // namespace
}  // namespace dsc::cpu
