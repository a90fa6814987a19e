// What the Softmax/LogSoftmax kernels and their gradients read at Init, shared by the CPU kernels
// (kernels/cpu/softmax.cc) and their CUDA twins (kernels/cuda/softmax.cu), which hold SoftmaxNode
// as a base; the per-row math is kernels/common/softmax_math.h.
//   Status Init(const Node& node) { return SoftmaxNode::Init(node, /*grad=*/false); }
#pragma once

#include <vector>

#include "kernels/cpu/nn_util.h"

namespace dsc::softmax {

// Every tensor is viewed as (outer, n, inner) around the axis; a "row" is the n elements at stride inner.
struct AxisView {
  int64_t outer = 1, n = 1, inner = 1;
};

inline StatusOr<AxisView> ReadAxis(const Node& node, const Value* v) {
  ASSIGN_OR_RETURN(std::vector<int64_t> dims, nn::StaticDims(v, "input"));
  if (dims.empty()) return InvalidArgument("softmax needs a tensor of rank >= 1");
  ASSIGN_OR_RETURN(int64_t axis, nn::NormalizeAxis(node.GetInt("axis", -1), static_cast<int64_t>(dims.size())));
  return AxisView{nn::Product(dims, 0, axis), dims[axis], nn::Product(dims, axis + 1, dims.size())};
}

// X -> Y reads X's view; the gradients (dY, Y) -> dX read Y's (input 1).
struct SoftmaxNode {
  Status Init(const Node& node, bool grad) {
    ASSIGN_OR_RETURN(a_, ReadAxis(node, node.input(grad ? 1 : 0)));
    return Status::OK();
  }
  AxisView a_;
};

}  // namespace dsc::softmax
