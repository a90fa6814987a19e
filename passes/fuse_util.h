// What the fuse pass's rewrite files (fuse.cc, fuse_updates.cc, fuse_loss_casts.cc) share.
#pragma once

#include <algorithm>

#include "ir/graph.h"

namespace dsc {

// The loss or a parameter's gradient: values the training metadata names, which no rewrite may
// remove or rename.
inline bool NamedByTraining(const Graph& g, const Value* v) {
  const auto& grads = g.training.gradients;
  return v->name() == g.training.loss || std::find(grads.begin(), grads.end(), v->name()) != grads.end();
}

}  // namespace dsc
