// What the LayerNormalization / BatchNormalization kernels (and their gradients) read at Init, shared
// by the CPU kernels (kernels/cpu/norm.cc) and their CUDA twins (kernels/cuda/norm.cu), which hold it
// as a base; the per-element math is kernels/common/norm_math.h.
//   class LayerNormKernel : public OpKernel, protected norm::LayerNormNode {
//     Status Init(const Node& node) { return LayerNormNode::Init(node, /*grad=*/false); } ... };
#pragma once

#include <vector>

#include "kernels/cpu/nn_util.h"

namespace dsc::norm {

// X viewed as (rows, cols): rows = prod(dims[:axis]), cols = prod(dims[axis:]) are normalised together.
struct LayerNormShape {
  int64_t rows = 1, cols = 1;
};

inline StatusOr<LayerNormShape> ReadLayerNorm(const Node& node, bool grad) {
  ASSIGN_OR_RETURN(std::vector<int64_t> x, nn::StaticDims(node.input(grad ? 1 : 0), "X"));
  ASSIGN_OR_RETURN(std::vector<int64_t> scale, nn::StaticDims(node.input(grad ? 2 : 1), "Scale"));
  ASSIGN_OR_RETURN(int64_t axis, nn::NormalizeAxis(node.GetInt("axis", -1), static_cast<int64_t>(x.size())));
  LayerNormShape s{nn::Product(x, 0, axis), nn::Product(x, axis, x.size())};
  if (nn::Product(scale) != s.cols)
    return Unimplemented("Scale ", nn::DimsToString(scale), " must hold the normalised shape of X ",
                         nn::DimsToString(x), " from axis ", axis, " (no broadcasting)");
  return s;
}

// LayerNormalization (X, Scale[, B]) and LayerNormalizationGrad (dY, X, Scale): grad shifts the inputs.
struct LayerNormNode {
  Status Init(const Node& node, bool grad) {
    ASSIGN_OR_RETURN(s_, ReadLayerNorm(node, grad));
    eps_ = node.GetFloat("epsilon", 1e-5f);
    return Status::OK();
  }
  LayerNormShape s_;
  float eps_ = 1e-5f;
};

// X:(N,C,spatial...) viewed as (N, C, S).
struct BatchNormShape {
  int64_t n = 1, c = 1, s = 1;
};

inline StatusOr<BatchNormShape> ReadBatchNorm(const Value* xv) {
  ASSIGN_OR_RETURN(std::vector<int64_t> x, nn::StaticDims(xv, "X"));
  if (x.size() < 2) return InvalidArgument("X ", nn::DimsToString(x), " needs rank >= 2 (N,C,...)");
  return BatchNormShape{x[0], x[1], nn::Product(x, 2, x.size())};
}

// BatchNormalization (X, scale, B, input_mean, input_var) -> Y[, running_mean, running_var].
struct BatchNormNode {
  Status Init(const Node& node) {
    ASSIGN_OR_RETURN(b_, ReadBatchNorm(node.input(0)));
    eps_ = node.GetFloat("epsilon", 1e-5f);
    momentum_ = node.GetFloat("momentum", 0.9f);
    training_ = node.GetInt("training_mode", 0) != 0;
    if (node.num_outputs() > 3)
      return Unimplemented("BatchNormalization before opset 14 (saved_mean/saved_var outputs) is not supported");
    for (size_t i = 1; i < 5; ++i) {
      ASSIGN_OR_RETURN(std::vector<int64_t> d, nn::StaticDims(node.input(i), "per-channel input"));
      if (nn::Product(d) != b_.c)
        return InvalidArgument("input ", i, " ", nn::DimsToString(d), " must hold C=", b_.c, " values");
    }
    return Status::OK();
  }
  BatchNormShape b_;
  float eps_ = 1e-5f, momentum_ = 0.9f;
  bool training_ = false;
};

// BatchNormalizationGrad (dY, X, Scale) -> dX, dScale, dBias.
struct BatchNormGradNode {
  Status Init(const Node& node) {
    ASSIGN_OR_RETURN(b_, ReadBatchNorm(node.input(1)));
    eps_ = node.GetFloat("epsilon", 1e-5f);
    ASSIGN_OR_RETURN(std::vector<int64_t> s, nn::StaticDims(node.input(2), "Scale"));
    if (nn::Product(s) != b_.c) return InvalidArgument("Scale ", nn::DimsToString(s), " must hold C=", b_.c, " values");
    return Status::OK();
  }
  BatchNormShape b_;
  float eps_ = 1e-5f;
};

}  // namespace dsc::norm
