// GatherElements, ScatterElements (axis, reduction none/add/mul/max/min) and GatherElementsGrad,
// the scatter-add adjoint of GatherElements (ir/dsc_ops.h). Negative indices count from the end.
#include <algorithm>
#include <cstring>

#include "ir/dsc_ops.h"
#include "kernels/cpu/index_offsets.h"
#include "kernels/cpu/nn_util.h"

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
class ScatterElementsKernel : public OpKernel {
 public:
  Status Init(const Node& node) {
    describe_ = node.Describe();
    ASSIGN_OR_RETURN(auto data, StaticDims(node.input(0)));
    ASSIGN_OR_RETURN(auto idx, StaticDims(node.input(1)));
    ASSIGN_OR_RETURN(auto upd, StaticDims(node.input(2)));
    RETURN_IF_ERROR(CheckIndexDType(node.input(1)->type.dtype));
    if (upd != idx)
      return InvalidArgument("updates ", nn::DimsToString(upd), " must be shaped like indices ", nn::DimsToString(idx));
    RETURN_IF_ERROR(plan_.Init(data, idx, node.GetInt("axis", 0)));
    dtype_ = node.input(0)->type.dtype;
    ASSIGN_OR_RETURN(reduction_, ParseScatterReduction(node.GetString("reduction", "none")));
    if (!ScatterDTypeSupports(dtype_, reduction_))
      return Unimplemented("reduction '", node.GetString("reduction", "none"), "' on ", DTypeName(dtype_));
    bytes_ = static_cast<size_t>(Product(data)) * DTypeSize(dtype_);
    return Status::OK();
  }

  Status Compute(KernelContext& ctx) override {
    RETURN_IF_ERROR(plan_.Compute(ctx.input(1), describe_, offsets_));
    void* y = ctx.output(0).ptr;
    if (y != ctx.input(0).ptr && bytes_ > 0) std::memcpy(y, ctx.input(0).ptr, bytes_);
    ScatterAnyDType(dtype_, y, ctx.input(2).ptr, offsets_, 1, reduction_);
    return Status::OK();
  }

 private:
  std::string describe_;
  ElementOffsets plan_;
  DType dtype_ = DType::kFloat32;
  ScatterReduction reduction_ = ScatterReduction::kNone;
  size_t bytes_ = 0;
  std::vector<int64_t> offsets_;
};

// GatherElementsGrad<axis>(dY, indices) -> dData: zeros, then dData[offset(e)] += dY[e].
class GatherElementsGradKernel : public OpKernel {
 public:
  Status Init(const Node& node) {
    describe_ = node.Describe();
    ASSIGN_OR_RETURN(auto data, StaticDims(node.output(0)));
    ASSIGN_OR_RETURN(auto idx, StaticDims(node.input(1)));
    ASSIGN_OR_RETURN(auto dy, StaticDims(node.input(0)));
    RETURN_IF_ERROR(CheckIndexDType(node.input(1)->type.dtype));
    if (dy != idx) return InvalidArgument("dY ", nn::DimsToString(dy), " must be shaped like indices ", nn::DimsToString(idx));
    RETURN_IF_ERROR(plan_.Init(data, idx, node.GetInt("axis", 0)));
    numel_ = Product(data);
    return Status::OK();
  }

  Status Compute(KernelContext& ctx) override {
    RETURN_IF_ERROR(plan_.Compute(ctx.input(1), describe_, offsets_));
    float* dd = ctx.output(0).data<float>();
    std::fill(dd, dd + numel_, 0.0f);
    ScatterSlices(dd, ctx.input(0).data<float>(), offsets_, 1, ScatterReduction::kAdd);
    return Status::OK();
  }

 private:
  std::string describe_;
  ElementOffsets plan_;
  int64_t numel_ = 0;
  std::vector<int64_t> offsets_;
};

[[maybe_unused]] const bool kGather = RegisterForMovementDTypes("GatherElements", MakeFactory<GatherElementsKernel>());
[[maybe_unused]] const bool kScatter = RegisterForMovementDTypes("ScatterElements", MakeFactory<ScatterElementsKernel>());
DSC_REGISTER_KERNEL(kDscDomain, ops::kGatherElementsGrad, kCpu, kFloat32, MakeFactory<GatherElementsGradKernel>());

}  // namespace
}  // namespace dsc::cpu
