// The recognize pass's rewrites that live in files of their own (passes/recognize.cc runs them).
//
//   ASSIGN_OR_RETURN(bool fired, recognize::RecognizeAttention(g, softmax_node, parameter_names));
#pragma once

#include <set>
#include <string>

#include "ir/graph.h"
#include "ir/status.h"

namespace dsc::recognize {

// The attention chain whose Softmax is `softmax`, as one ai.dscompile.Attention
// (passes/recognize_attention.cc has the pattern); false, and nothing changed, when it does not match.
StatusOr<bool> RecognizeAttention(Graph& g, Node* softmax, const std::set<std::string>& parameters);

// An ai.dscompile.Attention between an exporter's head split and merge, given the unsplit
// (B, S, H*D) tensors instead (passes/recognize_attention_heads.cc); false, and nothing changed,
// when the pattern does not match.
StatusOr<bool> AbsorbHeadLayout(Graph& g, Node* attention);

}  // namespace dsc::recognize
