// DFT (what torch.onnx writes for torch.fft.fft/rfft/ifft/irfft/fftn, e.g. FNet's token mixing)
// imported as a matrix product with a constant DFT matrix, so the gradient, CUDA, precision and
// ZeRO come from MatMul.
//
//   RETURN_IF_ERROR(DecomposeDft(&model, dims));   // inside DecomposeOps, before GraphFromOnnx
#pragma once

#include <cstdint>
#include <map>
#include <string>

#include "ir/status.h"
#include "onnx/onnx_pb.h"

namespace dsc {

// Rewrites each DFT node (opset 17: axis attribute; opset 20: axis input) of the main graph. X has
// shape [..., N, ..., c] with the signal axis of length N and c = 1 (real) or 2 (real, imaginary).
// With L = dft_length (a constant; default N, or 2 (N - 1) for the inverse one-sided DFT):
//   X' = Reshape(Transpose(X, axis to second last), [..., N c]);  Y' = X' · M;
//   Y  = Transpose(Reshape(Y', [..., K, c']), back)
// where M (N c by K c') holds the transform ONNX defines (onnx/reference/ops/op_dft.py): input
// elements past L drop out (truncation) and missing ones are zero (padding); forward: K = L, or
// L/2 + 1 one-sided, c' = 2; inverse: K = L, c' = 2, scaled by 1/L; inverse one-sided (IRFFT):
// K = L real outputs (c' = 1) from the Hermitian extension of the first L/2 + 1 bins, whose DC and
// (even L) Nyquist imaginary parts are ignored. Angles 2 pi (k n mod L) / L are evaluated in double.
// X's rank, N and c must be static after shape inference (with data propagation, `dims` binding
// the graph inputs' symbolic dims); axis and dft_length must be constants or static dims read
// through Shape/Gather/Squeeze (the dynamo exporter's x.size(d) without its optimizer); a matrix
// over 2^26 elements is refused, naming the node.
Status DecomposeDft(onnx::ModelProto* model, const std::map<std::string, int64_t>& dims);

}  // namespace dsc
