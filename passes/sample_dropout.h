// How specialize tells the sample-dropout pass where the batch lies in each Dropout's data.
//
// specialize knows the batch symbol (dim 0 of the graph inputs) while shapes are still symbolic;
// sample-dropout, after autodiff, knows the final static shapes. The graph's metadata carries
// {Dropout output name: the dim of its data named by the batch symbol, or -1} between them.
#pragma once

#include <string>

#include "ir/graph.h"

namespace dsc {

inline constexpr const char* kDropoutBatchAxesKey = "dsc.dropout_batch_axes";

// Records, for every Dropout of `g`, which dim of its data carries `batch_symbol` (-1: none).
void RecordDropoutBatchAxes(Graph& g, const std::string& batch_symbol);

}  // namespace dsc
