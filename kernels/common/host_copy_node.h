// The checks a ToHost/FromHost node (ir/host_copy_ops.h) passes at Init, shared by the CPU kernel
// (kernels/cpu/host_copy.cc) and its CUDA twin (kernels/cuda/host_copy.cu).
#pragma once

#include "ir/host_copy_ops.h"
#include "kernels/cpu/core_util.h"

namespace dsc::host_copy {

// One input and one output of the same static shape and dtype: the bytes move as they are.
inline Status CheckNode(const Node& node) {
  if (node.num_inputs() != 1 || node.num_outputs() != 1 || !node.input(0))
    return InvalidArgument("takes one input and makes one output");
  ASSIGN_OR_RETURN(auto x, cpu::StaticDims(node.input(0)));
  ASSIGN_OR_RETURN(auto y, cpu::StaticDims(node.output(0)));
  if (x != y || node.input(0)->type.dtype != node.output(0)->type.dtype)
    return InvalidArgument("input and output must have one type");
  return Status::OK();
}

}  // namespace dsc::host_copy
