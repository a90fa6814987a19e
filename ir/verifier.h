// The IR verifier run between passes: SSA and topological order, no dangling values, types, metadata.
#pragma once

#include "ir/graph.h"

namespace dsc {

struct VerifyOptions {
  bool require_types = false;          // every value has an element type
  bool require_static_shapes = false;  // every value has a fully static shape (after specialize)
};

// Returns the first violation found, naming the node and value.
Status VerifyGraph(const Graph& g, const VerifyOptions& opts = {});

}  // namespace dsc
