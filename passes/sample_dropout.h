// How specialize tells the sample-dropout pass where the samples lie in each Dropout's data.
//
// specialize sees the graph before the batch is bound, so it can find which dim of a Dropout's
// data moves with the batch; sample-dropout, after autodiff, rewrites the nodes. The graph's
// metadata carries {Dropout output name: [axis, rows per sample]} between them.
#pragma once

#include <map>
#include <string>

#include "ir/graph.h"

namespace dsc {

inline constexpr const char* kDropoutSampleLayoutsKey = "dsc.dropout_sample_layouts";

// Records the sample layout of every Dropout's data in `g`, whose inputs still have their batch
// dim (dim 0) unbound; `dims` binds the other symbols. The layout is found by inferring shapes
// with the batch at two unusual sizes: the dim that is rows * batch in both is the batch's, with
// `rows` per sample. Dropouts whose data no dim (or more than one) scales with are left out.
void RecordDropoutSampleLayouts(Graph& g, const std::map<std::string, int64_t>& dims);

}  // namespace dsc
