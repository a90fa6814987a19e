// loss-casts, a rewrite of the fuse pass: mixed precision runs the loss in float32 (autocast
// widens the scores of cross entropy), so the precision pass writes
//   X32 = Cast(X, to = float32);  loss = SoftmaxCrossEntropyLoss(X32, labels)
// and autodiff adds the gradient and its way back to X's half dtype:
//   dX32 = SoftmaxCrossEntropyLossGrad(dloss, X32, labels);  dX = Cast(dX32, to = X's dtype)
// On a language model X is (tokens, vocabulary): on GPT-2 small with 8 x 1024 tokens X32 and dX32
// are 1.6 GB each. The rewrite lets the gradient read X itself and write dX in X's dtype:
//   dX = SoftmaxCrossEntropyLossGrad(dloss, X, labels)
// (NegativeLogLikelihoodLossGrad likewise), so dX32 is never written and X32 dies with the forward
// loss instead of living until the gradient. It computes the same numbers: the gradient kernels
// widen each half score exactly, as the Cast did, compute in float32 as before, and round dX to
// nearest even once, as the Cast did (on the CPU through the half adaptor,
// kernels/cpu/half_adaptor.cc; the CUDA kernels read half scores and write half gradients).
// The forward loss keeps X32: ONNX gives a loss and its scores one type.
//
// Fires for a gradient whose scores come from such a Cast when every reader of its result is a
// Cast back to X's dtype and neither X32 nor dX32 is a graph output or named by the training
// metadata (the narrowed result may be: the gradient's result takes its name and place); a
// widening Cast left without readers goes too.
#include "passes/fuse_loss_casts.h"

#include <algorithm>
#include <vector>

#include "ir/dsc_ops.h"
#include "passes/fuse_util.h"

namespace dsc {
namespace {

bool IsLossGrad(const Node* n) {
  return n->domain() == kDscDomain &&
         (n->op_type() == ops::kSoftmaxCrossEntropyLossGrad || n->op_type() == ops::kNegativeLogLikelihoodLossGrad);
}

bool IsCast(const Node* n) { return n && n->domain().empty() && n->op_type() == "Cast"; }

bool Pinned(const Graph& g, const Value* v) { return v->is_graph_output() || NamedByTraining(g, v); }

// The rewrite for one loss gradient; false when its pattern does not match.
StatusOr<bool> FuseOne(Graph& g, Node* grad) {
  Value* x32 = grad->input(1);
  Node* widen = x32 ? x32->producer() : nullptr;
  if (!IsCast(widen) || x32->type.dtype != DType::kFloat32 || !widen->input(0)) return false;
  Value* x = widen->input(0);
  Value* dx = grad->output(0);
  if (!IsHalf(x->type.dtype) || Pinned(g, x32) || Pinned(g, dx) || dx->uses().empty()) return false;
  std::vector<Node*> narrow;
  for (const Use& r : dx->uses()) {
    if (!IsCast(r.node) || r.node->output(0)->type.dtype != x->type.dtype) return false;
    if (std::find(narrow.begin(), narrow.end(), r.node) == narrow.end()) narrow.push_back(r.node);
  }
  grad->SetInput(1, x);
  dx->type.dtype = x->type.dtype;
  if (!dx->type.shape) dx->type.shape = narrow.front()->output(0)->type.shape;
  // The first Cast's result keeps its name (readers and dumps refer to it); any other narrowing
  // Cast of the same value is the same value.
  const std::string name = narrow.front()->output(0)->name();
  for (Node* cast : narrow) {
    g.ReplaceAllUsesWith(cast->output(0), dx);
    RETURN_IF_ERROR(g.RemoveNode(cast));
  }
  RETURN_IF_ERROR(g.RenameValue(dx, name));
  if (x32->uses().empty()) RETURN_IF_ERROR(g.RemoveNode(widen));
  return true;
}

}  // namespace

StatusOr<bool> FuseLossCasts(Graph& g) {
  std::vector<Node*> grads;
  for (const auto& n : g.nodes())
    if (IsLossGrad(n.get())) grads.push_back(n.get());
  bool changed = false;
  for (Node* grad : grads) {
    ASSIGN_OR_RETURN(bool fired, FuseOne(g, grad));
    changed = changed || fired;
  }
  return changed;
}

}  // namespace dsc
