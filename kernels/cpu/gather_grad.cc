// GatherGrad: the scatter-add adjoint of ONNX Gather along any axis (see ir/dsc_ops.h).
#include <algorithm>
#include <string>
#include <vector>

#include "ir/dsc_ops.h"
#include "kernels/common/index_math.h"
#include "kernels/cpu/nn_util.h"
#include "kernels/kernel.h"

namespace dsc {
namespace {

// (dY, indices) -> dData;  dData:(outer, A, inner) from its type, indices:(I) flattened,
// dY:(outer, I, inner);  dData[o, idx[i], :] += dY[o, i, :], negative indices counting from A;
// rows equal to the optional padding_idx (>= 0) receive nothing (torch.nn.Embedding's padding_idx).
class GatherGradKernel : public OpKernel {
 public:
  Status Init(const Node& node) {
    ASSIGN_OR_RETURN(std::vector<int64_t> data, nn::StaticDims(node.output(0), "dData"));
    ASSIGN_OR_RETURN(std::vector<int64_t> idx, nn::StaticDims(node.input(1), "indices"));
    ASSIGN_OR_RETURN(std::vector<int64_t> dy, nn::StaticDims(node.input(0), "dY"));
    ASSIGN_OR_RETURN(int64_t axis, nn::NormalizeAxis(node.GetInt("axis", 0), static_cast<int64_t>(data.size())));
    std::vector<int64_t> expect(data.begin(), data.begin() + axis);
    expect.insert(expect.end(), idx.begin(), idx.end());
    expect.insert(expect.end(), data.begin() + axis + 1, data.end());
    if (dy != expect)
      return InvalidArgument("dY ", nn::DimsToString(dy), " must be ", nn::DimsToString(expect), " for dData ",
                             nn::DimsToString(data), ", indices ", nn::DimsToString(idx), " and axis ", axis);
    const DType it = node.input(1)->type.dtype;
    if (it != DType::kInt64 && it != DType::kInt32) return InvalidArgument("indices must be int64 or int32");
    outer_ = nn::Product(data, 0, axis);
    a_ = data[axis];
    inner_ = nn::Product(data, axis + 1, data.size());
    count_ = nn::Product(idx);
    desc_ = node.Describe();
    padding_ = node.GetInt("padding_idx", -1);
    if (padding_ >= a_) return InvalidArgument("padding_idx ", padding_, " is outside [0, ", a_, ")");
    return Status::OK();
  }
  Status Compute(KernelContext& ctx) override {
    const float* dy = ctx.input(0).data<float>();
    const TensorView& iv = ctx.input(1);
    float* dd = ctx.output(0).data<float>();
    std::vector<int64_t> idx(static_cast<size_t>(count_));
    for (int64_t i = 0; i < count_; ++i) {
      const int64_t k = iv.dtype == DType::kInt64 ? iv.data<int64_t>()[i] : iv.data<int32_t>()[i];
      if (!NormalizeIndex(k, a_, &idx[static_cast<size_t>(i)]))
        return InvalidArgument(desc_, ": index ", k, " is outside [", -a_, ", ", a_, ")");
    }
    const int64_t outer = outer_, a = a_, inner = inner_, count = count_;
    std::fill(dd, dd + outer * a * inner, 0.0f);
    // Parallel over `outer` only: repeated indices collide within one outer slice, never across.
#pragma omp parallel for if (outer * count * inner > nn::kParallelThreshold)
    for (int64_t o = 0; o < outer; ++o)
      for (int64_t i = 0; i < count; ++i) {
        if (idx[i] == padding_) continue;  // nn.Embedding's padding row: no gradient
        const float* src = dy + (o * count + i) * inner;
        float* dst = dd + (o * a + idx[i]) * inner;
        for (int64_t j = 0; j < inner; ++j) dst[j] += src[j];
      }
    return Status::OK();
  }

 private:
  int64_t outer_ = 1, a_ = 1, inner_ = 1, count_ = 0, padding_ = -1;
  std::string desc_;
};

DSC_REGISTER_KERNEL(kDscDomain, ops::kGatherGrad, kCpu, kFloat32, MakeFactory<GatherGradKernel>());

}  // namespace
}  // namespace dsc
