// fuse's update rewrites (passes/fuse_updates.cc), kept apart from its Transpose rewrites.
#pragma once

#include "ir/graph.h"
#include "ir/status.h"

namespace dsc {

// Folds each mixed-precision update's gradient Cast (cast_into_update) and its master refresh,
// Assign(P, Cast(M)) (refresh_into_update), into the update where that is exact (see the .cc);
// `world_size` is the plan's, for an Assign<shard = 1> without a world attribute. Returns whether
// any fired.
StatusOr<bool> FuseUpdates(Graph& g, int world_size, bool cast_into_update, bool refresh_into_update);

}  // namespace dsc
