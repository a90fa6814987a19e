// GatherND (batch_dims), ScatterND (reduction none/add/mul/max/min) and GatherNDGrad, the
// scatter-add adjoint of GatherND (ir/dsc_ops.h). Negative indices count from the end.
#include <cstring>

#include "ir/dsc_ops.h"
#include "kernels/cpu/index_offsets.h"
#include "kernels/cpu/nn_util.h"
#include "kernels/cpu/scatter_gather.h"

namespace dsc::cpu {
namespace {

// data:(B..., N..., inner...), indices:(B..., T..., k) -> Y:(B..., T..., inner...): one slice copy per tuple.
class GatherNDKernel : public OpKernel {
 public:
  Status Init(const Node& node) {
    describe_ = node.Describe();
    ASSIGN_OR_RETURN(auto data, StaticDims(node.input(0)));
    ASSIGN_OR_RETURN(auto idx, StaticDims(node.input(1)));
    RETURN_IF_ERROR(CheckIndexDType(node.input(1)->type.dtype));
    RETURN_IF_ERROR(nd_.Init(data, idx, node.GetInt("batch_dims", 0)));
    elem_ = DTypeSize(node.input(0)->type.dtype);
    return Status::OK();
  }

  Status Compute(KernelContext& ctx) override {
    RETURN_IF_ERROR(nd_.Compute(ctx.input(1), describe_, offsets_));
    const uint8_t* x = ctx.input(0).data<uint8_t>();
    uint8_t* y = ctx.output(0).data<uint8_t>();
    const size_t slice = static_cast<size_t>(nd_.inner) * elem_;
    if (slice == 0) return Status::OK();
    const int64_t n = static_cast<int64_t>(offsets_.size());
#pragma omp parallel for if (n * static_cast<int64_t>(slice) >= 4 * kParallelMin) schedule(static)
    for (int64_t t = 0; t < n; ++t)
      std::memcpy(y + static_cast<size_t>(t) * slice, x + static_cast<size_t>(offsets_[static_cast<size_t>(t)]) * elem_,
                  slice);
    return Status::OK();
  }

 private:
  std::string describe_;
  NdOffsets nd_;
  size_t elem_ = 4;
  std::vector<int64_t> offsets_;  // reused across runs
};

// Y = copy of data, then Y[idx[t]] = f(Y[idx[t]], updates[t]) in index order.
class ScatterNDKernel final : public ScatterKernel<NdOffsets> {
  Status InitPlan(const Node&, const std::vector<int64_t>& data, const std::vector<int64_t>& idx,
                  const std::vector<int64_t>& upd) override {
    RETURN_IF_ERROR(plan_.Init(data, idx, 0));  // ScatterND has no batch_dims
    std::vector<int64_t> expect(idx.begin(), idx.end() - 1);
    expect.insert(expect.end(), data.begin() + plan_.k, data.end());
    if (upd != expect)
      return InvalidArgument("updates ", nn::DimsToString(upd), " must be ", nn::DimsToString(expect));
    return Status::OK();
  }
};

// GatherNDGrad<batch_dims>(dY, indices) -> dData: zeros, then dData[idx[t]] += dY[t].
class GatherNDGradKernel final : public GatherGradKernel<NdOffsets> {
  Status InitPlan(const Node& node, const std::vector<int64_t>& data, const std::vector<int64_t>& idx,
                  const std::vector<int64_t>& dy) override {
    RETURN_IF_ERROR(plan_.Init(data, idx, node.GetInt("batch_dims", 0)));
    if (Product(dy) != plan_.batch * plan_.tuples * plan_.inner)
      return InvalidArgument("dY has ", Product(dy), " elements, GatherND gives ", plan_.batch * plan_.tuples * plan_.inner);
    return Status::OK();
  }
};

[[maybe_unused]] const bool kGatherND = RegisterForMovementDTypes("GatherND", MakeFactory<GatherNDKernel>());
[[maybe_unused]] const bool kScatterND = RegisterForMovementDTypes("ScatterND", MakeFactory<ScatterNDKernel>());
DSC_REGISTER_KERNEL(kDscDomain, ops::kGatherNDGrad, kCpu, kFloat32, MakeFactory<GatherNDGradKernel>());

}  // namespace
}  // namespace dsc::cpu
