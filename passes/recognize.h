// The recognize pass's rewrites that live in files of their own (passes/recognize.cc runs them).
//
//   ASSIGN_OR_RETURN(bool fired, recognize::RecognizeAttention(g, softmax_node, parameter_names));
#pragma once

#include <optional>
#include <set>
#include <string>
#include <vector>

#include "ir/graph.h"
#include "ir/status.h"

namespace dsc::recognize {

// What the recognize pass's matchers share.
inline bool IsOp(const Node* n, const char* op) { return n && n->domain().empty() && n->op_type() == op; }

// Read by one node only and no graph output: a value a rewrite may remove with its reader.
inline bool Private(const Value* v) { return v->uses().size() == 1 && !v->is_graph_output(); }

inline std::optional<std::vector<int64_t>> StaticDims(const Value* v) {
  if (!v || !v->type.shape || !IsStatic(*v->type.shape)) return std::nullopt;
  return DimValues(*v->type.shape);
}

// The attention chain whose Softmax is `softmax`, as one ai.dscompile.Attention
// (passes/recognize_attention.cc has the pattern); false, and nothing changed, when it does not match.
StatusOr<bool> RecognizeAttention(Graph& g, Node* softmax, const std::set<std::string>& parameters);

// An ai.dscompile.Attention between an exporter's head split and merge, given the unsplit
// (B, S, H*D) tensors instead (passes/recognize_attention_heads.cc); false, and nothing changed,
// when the pattern does not match.
StatusOr<bool> AbsorbHeadLayout(Graph& g, Node* attention);

}  // namespace dsc::recognize
