// CUDA twin of kernels/cpu/slice.cc: Slice for every movement dtype, as one strided copy. The
// starts/ends/axes/steps (inputs from opset 10, attributes before) must be constants: they are
// read at Init, where the ONNX clamping (kernels/common/index_math.h) gives the copy's geometry.
#include "kernels/common/index_math.h"
#include "kernels/common/slice_node.h"
#include "kernels/cuda/movement_util.cuh"

namespace dsc::cuda {
namespace {

using cpu::ContiguousStrides;
using cpu::Product;
using cpu::StaticDims;

class SliceCuda : public MappedCopyCuda {
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
    ASSIGN_OR_RETURN(const SliceGeometry g, ResolveSlice(x, y, starts, ends, axes, steps));
    ASSIGN_OR_RETURN(map_, MakeStridedMap(y, g.strides, ContiguousStrides(y), Product(x), Product(y), g.base, 0));
    return Status::OK();
  }
};

[[maybe_unused]] const bool kRegistered = RegisterCudaMovement("", "Slice", MakeFactory<SliceCuda>());

}  // namespace
}  // namespace dsc::cuda
