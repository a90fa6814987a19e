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

// The bucketed collectives' contract (ir/dsc_ops.h), which the executor's table of collectives in
// flight and its count of live gathered parameters rely on: each Start carries bucket and world
// (world_size), holds members of one dtype, and its buffer B is read by exactly one CollectiveWait
// of its kind and bucket id (after the Start: VerifyGraph checks the order), which unpacks one
// value per member of the size its kind gives; a bucket id is not reused while in flight; every
// value an AllGather Wait makes is released exactly once and read by nothing after its Release.
// Run by plan verification on every load and by schedule-collectives on what it made.
Status VerifyBucketedCollectives(const Graph& g, int64_t world_size);

}  // namespace dsc
