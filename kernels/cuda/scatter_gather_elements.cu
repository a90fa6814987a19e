// CUDA twin of kernels/cpu/scatter_gather_elements.cc: GatherElements and ScatterElements for every
// movement dtype (reductions other than none on float32/float64/int64/int32, as on the CPU) and
// GatherElementsGrad for float32/float16/bfloat16 (kernels/cuda/scatter_gather.cuh).
#include "kernels/cuda/scatter_gather.cuh"

namespace dsc::cuda {
namespace {

class GatherElementsCuda final : public GatherCuda<ElementGeom> {
 public:
  Status Init(const Node& node) {
    ASSIGN_OR_RETURN(auto data, cpu::StaticDims(node.input(0)));
    ASSIGN_OR_RETURN(auto idx, cpu::StaticDims(node.input(1)));
    RETURN_IF_ERROR(cpu::CheckIndexDType(node.input(1)->type.dtype));
    cpu::ElementOffsets plan;
    RETURN_IF_ERROR(plan.Init(data, idx, node.GetInt("axis", 0)));
    RETURN_IF_ERROR(geom_.Init(plan, cpu::Product(data)));
    is64_ = node.input(1)->type.dtype == DType::kInt64;
    esize_ = DTypeSize(node.input(0)->type.dtype);
    return Status::OK();
  }
};

class ScatterElementsCuda final : public ScatterCuda<ElementGeom> {
  Status InitPlan(const Node& node, const std::vector<int64_t>& data, const std::vector<int64_t>& idx,
                  const std::vector<int64_t>& upd) override {
    if (upd != idx)
      return InvalidArgument("updates ", DimsToString(upd), " must be shaped like indices ", DimsToString(idx));
    cpu::ElementOffsets plan;
    RETURN_IF_ERROR(plan.Init(data, idx, node.GetInt("axis", 0)));
    return geom_.Init(plan, cpu::Product(data));
  }
};

template <typename T>
class GatherElementsGradCuda final : public GatherGradCuda<T, ElementGeom> {
  Status InitPlan(const Node& node, const std::vector<int64_t>& data, const std::vector<int64_t>& idx,
                  const std::vector<int64_t>& dy) override {
    if (dy != idx) return InvalidArgument("dY ", DimsToString(dy), " must be shaped like indices ", DimsToString(idx));
    cpu::ElementOffsets plan;
    RETURN_IF_ERROR(plan.Init(data, idx, node.GetInt("axis", 0)));
    return this->geom_.Init(plan, cpu::Product(data));
  }
};

[[maybe_unused]] const bool kGather = RegisterCudaMovement("", "GatherElements", MakeFactory<GatherElementsCuda>());
[[maybe_unused]] const bool kScatter = RegisterCudaMovement("", "ScatterElements", MakeFactory<ScatterElementsCuda>());
DSC_REGISTER_CUDA_FLOATS(kDscDomain, ops::kGatherElementsGrad, GatherElementsGradCuda);

}  // namespace
}  // namespace dsc::cuda
