// CUDA twin of kernels/cpu/scatter_gather_nd.cc: GatherND (batch_dims) and ScatterND for every
// movement dtype (reductions other than none on float32/float64/int64/int32, as on the CPU) and
// GatherNDGrad for float32/float16/bfloat16 (kernels/cuda/scatter_gather.cuh).
#include "kernels/cuda/scatter_gather.cuh"

namespace dsc::cuda {
namespace {

class GatherNDCuda final : public GatherCuda<NdGeom> {
 public:
  Status Init(const Node& node) {
    ASSIGN_OR_RETURN(auto data, cpu::StaticDims(node.input(0)));
    ASSIGN_OR_RETURN(auto idx, cpu::StaticDims(node.input(1)));
    RETURN_IF_ERROR(cpu::CheckIndexDType(node.input(1)->type.dtype));
    cpu::NdOffsets plan;
    RETURN_IF_ERROR(plan.Init(data, idx, node.GetInt("batch_dims", 0)));
    RETURN_IF_ERROR(geom_.Init(plan));
    is64_ = node.input(1)->type.dtype == DType::kInt64;
    esize_ = DTypeSize(node.input(0)->type.dtype);
    return Status::OK();
  }
};

class ScatterNDCuda final : public ScatterCuda<NdGeom> {
  Status InitPlan(const Node&, const std::vector<int64_t>& data, const std::vector<int64_t>& idx,
                  const std::vector<int64_t>& upd) override {
    cpu::NdOffsets plan;
    RETURN_IF_ERROR(plan.Init(data, idx, 0));  // ScatterND has no batch_dims
    std::vector<int64_t> expect(idx.begin(), idx.end() - 1);
    expect.insert(expect.end(), data.begin() + plan.k, data.end());
    if (upd != expect) return InvalidArgument("updates ", DimsToString(upd), " must be ", DimsToString(expect));
    return geom_.Init(plan);
  }
};

template <typename T>
class GatherNDGradCuda final : public GatherGradCuda<T, NdGeom> {
  Status InitPlan(const Node& node, const std::vector<int64_t>& data, const std::vector<int64_t>& idx,
                  const std::vector<int64_t>& dy) override {
    cpu::NdOffsets plan;
    RETURN_IF_ERROR(plan.Init(data, idx, node.GetInt("batch_dims", 0)));
    if (cpu::Product(dy) != plan.batch * plan.tuples * plan.inner)
      return InvalidArgument("dY has ", cpu::Product(dy), " elements, GatherND gives ", plan.batch * plan.tuples * plan.inner);
    return this->geom_.Init(plan);
  }
};

[[maybe_unused]] const bool kGatherND = RegisterCudaMovement("", "GatherND", MakeFactory<GatherNDCuda>());
[[maybe_unused]] const bool kScatterND = RegisterCudaMovement("", "ScatterND", MakeFactory<ScatterNDCuda>());
DSC_REGISTER_CUDA_FLOATS(kDscDomain, ops::kGatherNDGrad, GatherNDGradCuda);

}  // namespace
}  // namespace dsc::cuda
