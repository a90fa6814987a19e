// The shape of an RMSNormalization / RMSNormalizationGrad node, read once at Init by the CPU kernels
// (kernels/cpu/rms_norm.cc) and their CUDA twins (kernels/cuda/rms_norm.cu); the per-element math
// is kernels/common/norm_math.h.
//   ASSIGN_OR_RETURN(norm::RmsShape s, norm::ReadRms(node, /*grad=*/false));
#pragma once

#include <vector>

#include "kernels/cpu/nn_util.h"

namespace dsc::norm {

// X viewed as (rows, cols); scale_index[j] is the Scale element column j of a row is multiplied by.
struct RmsShape {
  int64_t rows = 1, cols = 1, scale_numel = 1;
  std::vector<int64_t> scale_index;
};

// grad: the node is RMSNormalizationGrad (dY, X, Scale), its inputs shifted by dY.
inline StatusOr<RmsShape> ReadRms(const Node& node, bool grad) {
  ASSIGN_OR_RETURN(std::vector<int64_t> x, nn::StaticDims(node.input(grad ? 1 : 0), "X"));
  ASSIGN_OR_RETURN(std::vector<int64_t> scale, nn::StaticDims(node.input(grad ? 2 : 1), "Scale"));
  ASSIGN_OR_RETURN(int64_t axis, nn::NormalizeAxis(node.GetInt("axis", -1), static_cast<int64_t>(x.size())));
  std::vector<int64_t> norm(x.begin() + axis, x.end());
  RmsShape s{nn::Product(x, 0, axis), nn::Product(norm), nn::Product(scale), {}};
  if (scale.size() > norm.size())
    return InvalidArgument("Scale ", nn::DimsToString(scale), " has more dims than the normalised shape ",
                           nn::DimsToString(norm));
  // Strides of Scale seen with the normalised shape's rank (0 along broadcast dims).
  const size_t lead = norm.size() - scale.size();
  std::vector<int64_t> stride(norm.size(), 0);
  int64_t acc = 1;
  for (size_t i = scale.size(); i-- > 0;) {
    if (scale[i] != 1 && scale[i] != norm[lead + i])
      return InvalidArgument("Scale ", nn::DimsToString(scale), " does not broadcast to the normalised shape ",
                             nn::DimsToString(norm));
    stride[lead + i] = scale[i] == 1 ? 0 : acc;
    acc *= scale[i];
  }
  s.scale_index.resize(static_cast<size_t>(s.cols));
  for (int64_t j = 0; j < s.cols; ++j) {
    int64_t rem = j, idx = 0;
    for (size_t d = norm.size(); d-- > 0;) {
      idx += (rem % norm[d]) * stride[d];
      rem /= norm[d];
    }
    s.scale_index[static_cast<size_t>(j)] = idx;
  }
  return s;
}

}  // namespace dsc::norm
