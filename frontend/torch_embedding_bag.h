// nn.EmbeddingBag / F.embedding_bag, which torch's exporters write as an ONNX Loop over the bags,
// imported as a gather of the rows and a segment reduction that dscompile trains.
//
//   RETURN_IF_ERROR(EmbeddingBagAsSegmentReduction(&model));   // after the checker, before GraphFromOnnx
#pragma once

#include "ir/status.h"
#include "onnx/onnx_pb.h"

namespace dsc {

// The dynamo exporter (onnxscript's torchlib) writes aten.embedding_bag.padding_idx (and
// aten._embedding_bag, aten.embedding_bag) as a cluster of nodes around a Loop that slices each bag
// out of the gathered rows and collects the rows in a sequence; every node of the cluster carries the
// call in its metadata ("pkg.torch.onnx.fx_node": weight, indices, offsets, scale_grad_by_freq,
// mode, sparse, per_sample_weights, include_last_offset, padding_idx). For each such call, the
// cluster's result (the ConcatFromSequence, or its Cast) is recomputed from the call's arguments, as
// PyTorch defines it (aten/src/ATen/native/EmbeddingBag.cpp), with I the flat indices [N],
// R = W[I] * per_sample_weights, bag b = positions [O[b], O[b+1]) (the last to N, or to O[B] with
// include_last_offset), positions holding padding_idx left out of every bag:
//   seg   = CumSum(ScatterElements(0[N+1], O[0:B], 1, add))[0:N] - 1     the bag of each position
//   sum   = ScatterND(0[B, D], seg, R, add)
//   mean  = sum / max(count, 1)                            an empty bag gives 0
//   max   = GatherElements(R, first position of the bag's maximum, per column), 0 for an empty bag:
//           the gradient reaches that position only, as torch's max_indices (ties: the first)
// so the gradients of the weight (through Gather) and of per_sample_weights are the exact ones. The
// nodes of the cluster nothing reads any more are removed. An argument whose fx name the exporter's
// optimizer merged away (two bags over the same ids) is read off torchlib's nodes instead. With
// include_last_offset, torch documents the last offset as N; positions from it on are in no bag
// (for a smaller one torch's CPU kernels disagree among the modes). sparse=True only chooses torch's
// gradient layout, with the same values, and is imported as a dense gradient. Refused, naming the
// node and the argument: scale_grad_by_freq=True, per_sample_weights outside mode sum (torch refuses
// them too), an argument the file has no value for, a result other than the bag values that is read.
//
// The legacy exporter writes a Loop without metadata whose body slices bag i = [S[i], E[i]) of the
// indices, gathers its rows (times the same slice of per_sample_weights) and reduces them into a scan
// output; that body is recognised and computed the same way, for bags [S[b], E[b]), b < the trip
// count (its ReduceMean/ReduceMax of an empty bag give NaN/-inf in the file, 0 in torch and here).
// Another Loop with such a body (a stripped dynamo file) is refused, naming it and how to export.
Status EmbeddingBagAsSegmentReduction(onnx::ModelProto* model);

}  // namespace dsc
