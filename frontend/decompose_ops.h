// Ops imported as a few supported ones (so they get kernels, gradients and constant folding from
// those): InstanceNormalization (what torch.onnx writes for nn.GroupNorm/InstanceNorm, e.g.
// wav2vec 2.0's feature encoder), ReduceL2 (torch.linalg.vector_norm, weight_norm), ReduceL1
// (vector_norm with ord=1), ReduceLogSumExp (torch.logsumexp), PRelu (nn.PReLU), DepthToSpace /
// SpaceToDepth (nn.PixelShuffle / PixelUnshuffle in super-resolution and vocoders), Pad in modes
// reflect/edge/wrap (frontend/decompose_pad.h), Col2Im (F.fold: timm's VOLO outlook attention),
// LSTM, GRU and RNN (frontend/decompose_rnn.h), and DFT (torch.fft, frontend/decompose_dft.h).
//
//   RETURN_IF_ERROR(DecomposeOps(&model, dims));   // after the checker, before GraphFromOnnx
#pragma once

#include <cstdint>
#include <map>
#include <set>
#include <string>

#include "ir/status.h"
#include "onnx/onnx_pb.h"

namespace dsc {

// The op types DecomposeOps rewrites (for `dscompile --list-ops`).
const std::set<std::string>& DecomposedOps();

// Rewrites, in the main graph, each
//   InstanceNormalization(X, scale, B) (any rank >= 3) into, over X3 = Reshape(X, [0, 0, -1]):
//     D = X3 - ReduceMean(X3, [2]);  Y3 = D / Sqrt(ReduceMean(D * D, [2]) + epsilon) * scale[:, None] + B[:, None]
//     Y = Reshape(Y3, Shape(X))
//   ReduceL2(X[, axes]) into Sqrt(ReduceSum(X * X[, axes])) with the same keepdims/noop_with_empty_axes,
//   ReduceL1(X[, axes]) into ReduceSum(Abs(X)[, axes]) likewise,
//   ReduceLogSumExp(X[, axes]) into, with M = Where(IsInf(m), CastLike(0, m), m) for m = ReduceMax(X[, axes], keepdims=1):
//     Y = Log(ReduceSum(Exp(X - M)[, axes])) + ReduceMax(M[, axes])   (the last drops M's axes as keepdims says)
//   PRelu(X, slope) into Where(X > 0, X, slope * X) (torch.prelu's values and gradients, x = 0 included),
//   DepthToSpace<blocksize, mode DCR|CRD>(X) and SpaceToDepth<blocksize>(X) into Reshape(Transpose(
//     Reshape(X))) with targets computed from Shape(X),
//   Col2Im(X, image_shape, block_shape) (constant shapes, 1 to 3 spatial dims) into a ConvTranspose
//     of Reshape(X, [-1, K, L...]) with a constant one-hot kernel (K, 1, block...), reshaped to
//     (N, C, image...),
// in the model's opset form (axes as attribute or input), Pad<mode reflect|edge|wrap> as
// DecomposeIndexedPad does, LSTM/GRU/RNN as DecomposeRecurrentOps does, and DFT as DecomposeDft
// does. New nodes keep the original's metadata. A blocksize below 1 or an unknown DepthToSpace
// mode is an error naming the node.
// `dims` binds symbolic dims for what needs static shapes (ImportOptions::dims).
Status DecomposeOps(onnx::ModelProto* model, const std::map<std::string, int64_t>& dims = {});

}  // namespace dsc
