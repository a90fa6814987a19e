// Reading NumPy .npy files (format 1.0-3.0, little-endian, C order) into tensors.
#pragma once

#include <string>

#include "ir/tensor.h"

namespace dsc {

// Supported dtypes: <f4 <f2 <f8 <i8 <i4 |b1 |u1 |i1. Errors name the file.
StatusOr<Tensor> ReadNpy(const std::string& path);
// Writes a tensor as .npy (for tests and tools).
Status WriteNpy(const std::string& path, const Tensor& t);

}  // namespace dsc
