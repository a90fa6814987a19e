// LSTM, GRU and RNN (what torch.onnx writes for nn.LSTM, nn.GRU and nn.RNN) imported as supported
// ops, unrolled over their static sequence length, so gradients, CUDA kernels, precision and ZeRO
// come from those ops.
//
//   RETURN_IF_ERROR(DecomposeRecurrentOps(&model, dims));   // inside DecomposeOps, before GraphFromOnnx
#pragma once

#include <cstdint>
#include <map>
#include <set>
#include <string>

#include "ir/status.h"
#include "onnx/onnx_pb.h"

namespace dsc {

// The op types DecomposeRecurrentOps rewrites.
const std::set<std::string>& RecurrentOps();

// Rewrites each LSTM/GRU/RNN node of the main graph, per direction d (cuDNN's split of the work):
//   once:      Wt = W[d]^T, Rt = R[d]^T, XW = X·Wt + bias for all T steps in one MatMul, split by step
//   per step:  gates = XW[t] + H·Rt, then the ONNX cell equations (gate orders LSTM iofc, GRU zrh)
//   outputs:   Y = the steps' H concatenated in time order, Y_h/Y_c = the last step's state
// with directions forward/reverse/bidirectional, layout 0/1, optional B, initial_h, initial_c, P,
// activations Sigmoid, Tanh, Relu, LeakyRelu, Elu, HardSigmoid, Softsign, Softplus (alpha/beta
// consumed in order by the ones that take them), clip, LSTM's input_forget and GRU's
// linear_before_reset. The sequence length comes from ONNX shape inference (with data
// propagation) of the model, with the graph inputs' symbolic dims named in `dims` (dscompile
// --dim) bound; a node whose length is still not static is refused, naming it and the symbol to
// bind, and so is a sequence_lens that is not absent or a constant equal to the full length.
Status DecomposeRecurrentOps(onnx::ModelProto* model, const std::map<std::string, int64_t>& dims = {});

}  // namespace dsc
