// GatherND (batch_dims), ScatterND (reduction none/add/mul/max/min) and GatherNDGrad, the
// scatter-add adjoint of GatherND (ir/dsc_ops.h). Negative indices count from the end.
#include <algorithm>
#include <cstring>

#include "ir/dsc_ops.h"
#include "kernels/cpu/index_offsets.h"
#include "kernels/cpu/nn_util.h"

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
class ScatterNDKernel : public OpKernel {
 public:
  Status Init(const Node& node) {
    describe_ = node.Describe();
    ASSIGN_OR_RETURN(auto data, StaticDims(node.input(0)));
    ASSIGN_OR_RETURN(auto idx, StaticDims(node.input(1)));
    ASSIGN_OR_RETURN(auto upd, StaticDims(node.input(2)));
    RETURN_IF_ERROR(CheckIndexDType(node.input(1)->type.dtype));
    RETURN_IF_ERROR(nd_.Init(data, idx, 0));
    std::vector<int64_t> expect(idx.begin(), idx.end() - 1);
    expect.insert(expect.end(), data.begin() + nd_.k, data.end());
    if (upd != expect)
      return InvalidArgument("updates ", nn::DimsToString(upd), " must be ", nn::DimsToString(expect));
    dtype_ = node.input(0)->type.dtype;
    ASSIGN_OR_RETURN(reduction_, ParseScatterReduction(node.GetString("reduction", "none")));
    if (!ScatterDTypeSupports(dtype_, reduction_))
      return Unimplemented("reduction '", node.GetString("reduction", "none"), "' on ", DTypeName(dtype_));
    bytes_ = static_cast<size_t>(Product(data)) * DTypeSize(dtype_);
    return Status::OK();
  }

  Status Compute(KernelContext& ctx) override {
    RETURN_IF_ERROR(nd_.Compute(ctx.input(1), describe_, offsets_));
    void* y = ctx.output(0).ptr;
    if (y != ctx.input(0).ptr && bytes_ > 0) std::memcpy(y, ctx.input(0).ptr, bytes_);
    ScatterAnyDType(dtype_, y, ctx.input(2).ptr, offsets_, nd_.inner, reduction_);
    return Status::OK();
  }

 private:
  std::string describe_;
  NdOffsets nd_;
  DType dtype_ = DType::kFloat32;
  ScatterReduction reduction_ = ScatterReduction::kNone;
  size_t bytes_ = 0;
  std::vector<int64_t> offsets_;
};

// GatherNDGrad<batch_dims>(dY, indices) -> dData: zeros, then dData[idx[t]] += dY[t].
class GatherNDGradKernel : public OpKernel {
 public:
  Status Init(const Node& node) {
    describe_ = node.Describe();
    ASSIGN_OR_RETURN(auto data, StaticDims(node.output(0)));
    ASSIGN_OR_RETURN(auto idx, StaticDims(node.input(1)));
    ASSIGN_OR_RETURN(auto dy, StaticDims(node.input(0)));
    RETURN_IF_ERROR(CheckIndexDType(node.input(1)->type.dtype));
    RETURN_IF_ERROR(nd_.Init(data, idx, node.GetInt("batch_dims", 0)));
    if (Product(dy) != nd_.batch * nd_.tuples * nd_.inner)
      return InvalidArgument("dY has ", Product(dy), " elements, GatherND gives ", nd_.batch * nd_.tuples * nd_.inner);
    numel_ = Product(data);
    return Status::OK();
  }

  Status Compute(KernelContext& ctx) override {
    RETURN_IF_ERROR(nd_.Compute(ctx.input(1), describe_, offsets_));
    float* dd = ctx.output(0).data<float>();
    std::fill(dd, dd + numel_, 0.0f);
    ScatterSlices(dd, ctx.input(0).data<float>(), offsets_, nd_.inner, ScatterReduction::kAdd);
    return Status::OK();
  }

 private:
  std::string describe_;
  NdOffsets nd_;
  int64_t numel_ = 0;
  std::vector<int64_t> offsets_;
};

[[maybe_unused]] const bool kGatherND = RegisterForMovementDTypes("GatherND", MakeFactory<GatherNDKernel>());
[[maybe_unused]] const bool kScatterND = RegisterForMovementDTypes("ScatterND", MakeFactory<ScatterNDKernel>());
DSC_REGISTER_KERNEL(kDscDomain, ops::kGatherNDGrad, kCpu, kFloat32, MakeFactory<GatherNDGradKernel>());

}  // namespace
}  // namespace dsc::cpu
