// CUDA twin of kernels/cpu/slice.cc: Slice for every movement dtype, as one strided copy. The
// starts/ends/axes/steps (inputs from opset 10, attributes before) must be constants: they are
// read at Init, where the ONNX clamping (kernels/common/index_math.h) gives the copy's geometry.
#include "kernels/common/index_math.h"
#include "kernels/cuda/movement_util.cuh"

namespace dsc::cuda {
namespace {

using cpu::ContiguousStrides;
using cpu::NormalizeAxis;
using cpu::Product;
using cpu::StaticDims;

class SliceCuda : public OpKernel {
 public:
  Status Init(const Node& node) {
    ASSIGN_OR_RETURN(auto x, StaticDims(node.input(0)));
    ASSIGN_OR_RETURN(auto y, StaticDims(node.output(0)));
    esize_ = DTypeSize(node.input(0)->type.dtype);
    std::vector<int64_t> starts, ends, axes, steps;
    if (node.num_inputs() == 1) {  // opset 1: attributes
      starts = node.GetInts("starts");
      ends = node.GetInts("ends");
      axes = node.GetInts("axes");
    } else {
      const char* names[] = {"starts", "ends", "axes", "steps"};
      std::vector<int64_t>* lists[] = {&starts, &ends, &axes, &steps};
      for (size_t i = 1; i <= 4; ++i) {
        const Value* v = node.input(i);
        if (!v) continue;
        if (!v->is_initializer())
          return Unimplemented("Slice with non-constant ", names[i - 1], " on CUDA (they are read at Init)");
        *lists[i - 1] = v->initializer().ToInt64Vector();
      }
    }
    const int64_t rank = static_cast<int64_t>(x.size());
    if (starts.size() != ends.size()) return InvalidArgument("starts and ends differ in length");
    if (axes.empty())
      for (size_t i = 0; i < starts.size(); ++i) axes.push_back(static_cast<int64_t>(i));
    if (axes.size() != starts.size() || (!steps.empty() && steps.size() != starts.size()))
      return InvalidArgument("starts, ends, axes and steps differ in length");
    std::vector<int64_t> begin(x.size(), 0), step(x.size(), 1), len = x;
    for (size_t i = 0; i < starts.size(); ++i) {
      ASSIGN_OR_RETURN(int64_t a, NormalizeAxis(axes[i], rank));
      const size_t ai = static_cast<size_t>(a);
      const int64_t st = steps.empty() ? 1 : steps[i];
      if (st == 0) return InvalidArgument("Slice step is 0 on axis ", a);
      SliceAxis(starts[i], ends[i], st, x[ai], &begin[ai], &len[ai]);
      step[ai] = st;
    }
    if (len != y) return InvalidArgument("slice gives ", len.size(), "-D result that differs from the output shape");
    const std::vector<int64_t> xstr = ContiguousStrides(x);
    std::vector<int64_t> xs(x.size());
    int64_t base = 0;
    for (size_t d = 0; d < x.size(); ++d) {
      if (len[d] > 0) base += begin[d] * xstr[d];
      xs[d] = len[d] > 1 ? step[d] * xstr[d] : 0;  // |step| < dim here, so no overflow
    }
    ASSIGN_OR_RETURN(map_, MakeStridedMap(y, xs, ContiguousStrides(y), Product(x), Product(y), base, 0));
    return Status::OK();
  }

  Status Compute(KernelContext& ctx) override {
    return DispatchWords(esize_, [&](auto w) {
      return StridedCopy<decltype(w)>(ctx, map_, ctx.input(0).ptr, ctx.output(0).ptr);
    });
  }

 private:
  size_t esize_ = 4;
  StridedMap map_;
};

[[maybe_unused]] const bool kRegistered = RegisterCudaMovement("", "Slice", MakeFactory<SliceCuda>());

}  // namespace
}  // namespace dsc::cuda
