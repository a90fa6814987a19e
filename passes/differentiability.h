// Which node inputs and outputs carry gradients: shared by select-loss and autodiff.
#pragma once

#include "ir/graph.h"

namespace dsc {

// False for integer/bool inputs and for inputs that only steer the computation (shapes, axes,
// indices, masks, BatchNormalization's running statistics, Dropout's ratio).
bool IsDifferentiableInput(const Node& n, size_t input_index);
// False for non-float outputs and side outputs (BatchNormalization's running stats, Dropout's mask).
bool IsDifferentiableOutput(const Node& n, size_t output_index);

}  // namespace dsc
