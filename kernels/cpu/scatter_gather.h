// The Scatter and Gather-grad kernels of the Elements and ND ops, written once over the offset plan
// (ElementOffsets or NdOffsets). Each op subclasses one and, in InitPlan, reads its attribute and
// checks updates or dY; the op chooses the order, and so which error a bad node reports first.
//
//   class ScatterNDKernel final : public ScatterKernel<NdOffsets> {
//     Status InitPlan(const Node& node, const std::vector<int64_t>& data, const std::vector<int64_t>& idx,
//                     const std::vector<int64_t>& upd) override;  // plan_.Init, then the updates check
//   };
#pragma once

#include <algorithm>
#include <cstring>
#include <string>
#include <vector>

#include "kernels/cpu/index_offsets.h"

namespace dsc::cpu {

// Y = copy of data, then Y[offset(i) + j] = f(Y[offset(i) + j], updates[i * inner + j]) in index order.
template <typename Plan>
class ScatterKernel : public OpKernel {
 public:
  Status Init(const Node& node) {
    describe_ = node.Describe();
    ASSIGN_OR_RETURN(auto data, StaticDims(node.input(0)));
    ASSIGN_OR_RETURN(auto idx, StaticDims(node.input(1)));
    ASSIGN_OR_RETURN(auto upd, StaticDims(node.input(2)));
    RETURN_IF_ERROR(CheckIndexDType(node.input(1)->type.dtype));
    RETURN_IF_ERROR(InitPlan(node, data, idx, upd));
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
    ScatterAnyDType(dtype_, y, ctx.input(2).ptr, offsets_, plan_.inner, reduction_);
    return Status::OK();
  }

 protected:
  // Initialises plan_ from the op's attribute and checks the updates' shape.
  virtual Status InitPlan(const Node& node, const std::vector<int64_t>& data, const std::vector<int64_t>& idx,
                          const std::vector<int64_t>& upd) = 0;
  Plan plan_;

 private:
  std::string describe_;
  DType dtype_ = DType::kFloat32;
  ScatterReduction reduction_ = ScatterReduction::kNone;
  size_t bytes_ = 0;
  std::vector<int64_t> offsets_;  // reused across runs
};

// (dY, indices) -> dData: zeros, then dData[offset(i) + j] += dY[i * inner + j], the adjoint of the gather.
template <typename Plan>
class GatherGradKernel : public OpKernel {
 public:
  Status Init(const Node& node) {
    describe_ = node.Describe();
    ASSIGN_OR_RETURN(auto data, StaticDims(node.output(0)));
    ASSIGN_OR_RETURN(auto idx, StaticDims(node.input(1)));
    ASSIGN_OR_RETURN(auto dy, StaticDims(node.input(0)));
    RETURN_IF_ERROR(CheckIndexDType(node.input(1)->type.dtype));
    RETURN_IF_ERROR(InitPlan(node, data, idx, dy));
    numel_ = Product(data);
    return Status::OK();
  }

  Status Compute(KernelContext& ctx) override {
    RETURN_IF_ERROR(plan_.Compute(ctx.input(1), describe_, offsets_));
    float* dd = ctx.output(0).data<float>();
    std::fill(dd, dd + numel_, 0.0f);
    ScatterSlices(dd, ctx.input(0).data<float>(), offsets_, plan_.inner, ScatterReduction::kAdd);
    return Status::OK();
  }

 protected:
  // Initialises plan_ from the op's attribute and checks dY's shape.
  virtual Status InitPlan(const Node& node, const std::vector<int64_t>& data, const std::vector<int64_t>& idx,
                          const std::vector<int64_t>& dy) = 0;
  Plan plan_;

 private:
  std::string describe_;
  int64_t numel_ = 0;
  std::vector<int64_t> offsets_;  // reused across runs
};

}  // namespace dsc::cpu
