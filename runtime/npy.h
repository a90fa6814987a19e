// Reading NumPy .npy files (format 1.0-3.0, little-endian, C order) into tensors.
#pragma once

#include <istream>
#include <string>

#include "ir/tensor.h"

namespace dsc {

// Supported dtypes: <f4 <f2 <f8 <i8 <i4 |b1 |u1 |i1. Errors name the file.
StatusOr<Tensor> ReadNpy(const std::string& path);
// The same for a .npy file's bytes already in memory (fuzz/fuzz_npy.cc); errors name `name`.
StatusOr<Tensor> ParseNpy(const std::string& bytes, const std::string& name);
// The same for any seekable stream positioned at the magic; errors name `name`.
StatusOr<Tensor> ReadNpyStream(std::istream& in, const std::string& name);
// Writes a tensor as .npy (for tests and tools).
Status WriteNpy(const std::string& path, const Tensor& t);

}  // namespace dsc
