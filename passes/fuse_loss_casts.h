// fuse's loss-cast rewrite (passes/fuse_loss_casts.cc), kept apart from its Transpose rewrites.
#pragma once

#include "ir/graph.h"
#include "ir/status.h"

namespace dsc {

// Lets every classification-loss gradient whose scores were widened from a half type read them
// unwidened and write its result in that type (see the .cc); returns whether any fired.
StatusOr<bool> FuseLossCasts(Graph& g);

}  // namespace dsc
