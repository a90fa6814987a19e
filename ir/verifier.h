// The IR verifier run at import, between passes and on loaded plans: SSA and topological order, no
// dangling values, types, metadata, names, and each node's attributes and shapes.
#pragma once

#include "ir/graph.h"

namespace dsc {

struct VerifyOptions {
  bool require_types = false;          // every value has an element type
  bool require_static_shapes = false;  // every value has a fully static shape (after specialize)
};

// Returns the first violation found, naming the node and value. Beyond the graph's structure it
// checks what kernels rely on: names are UTF-8, and every node passes CheckNode (ir/node_checks.h)
// with its known shapes, so a graph that verifies never crashes a kernel or gradient builder.
Status VerifyGraph(const Graph& g, const VerifyOptions& opts = {});

}  // namespace dsc
