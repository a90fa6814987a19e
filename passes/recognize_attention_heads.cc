// The recognize pass's head-layout rewrite, after the attention rewrite (recognize_attention.cc):
// exporters split a (B, S, H*D) projection into heads and merge them back around attention,
//   Q = Transpose(Reshape(xq, (B, S, H, D)), perm = (0, 2, 1, 3))      (K, V likewise)
//   Y = Attention(Q, K, V[, mask]);  y = Reshape(Transpose(Y, (0, 2, 1, 3)), (B, S, H*D))
// and each of those Transposes copies the whole tensor, forward and backward. ONNX's Attention
// takes the (B, S, H*D) layout itself (q_num_heads, kv_num_heads), reading head h of row s at
// s * H*D + h * D, so the rewrite gives it xq, xk, xv and lets it write y:
//   y = Attention<q_num_heads = H, kv_num_heads = Hkv>(xq, xk, xv[, mask])
// The same products in the same order: only where the kernels read and write moves.
//
// Fires only when Q, K and V all come from such a split and Y goes only to such a merge, every
// intermediate is read only inside the pattern, the shapes are static and agree, and the node has
// no output but Y (no present_key/present_value).
#include <optional>
#include <string>
#include <vector>

#include "ir/dsc_ops.h"
#include "passes/recognize.h"

namespace dsc::recognize {
namespace {

bool SwapsMiddle(const Node* t) { return IsOp(t, "Transpose") && t->GetInts("perm") == std::vector<int64_t>{0, 2, 1, 3}; }

// The split nodes and source of `q` = Transpose(Reshape(x (B, S, H*D), (B, S, H, D)), (0, 2, 1, 3)).
struct Split {
  Value* x = nullptr;
  Node *reshape = nullptr, *transpose = nullptr;
};
std::optional<Split> SplitOf(Value* q) {
  Node* t = q->producer();
  if (!SwapsMiddle(t) || !Private(q) || !Private(t->input(0))) return std::nullopt;
  Node* r = t->input(0)->producer();
  if (!IsOp(r, "Reshape")) return std::nullopt;
  const auto xd = StaticDims(r->input(0)), rd = StaticDims(r->output(0));
  if (!xd || !rd || xd->size() != 3 || rd->size() != 4 || (*rd)[0] != (*xd)[0] || (*rd)[1] != (*xd)[1] ||
      (*rd)[2] * (*rd)[3] != (*xd)[2])
    return std::nullopt;
  return Split{r->input(0), r, t};
}

// The merge of `y` (B, H, S, D): read only by Transpose(y, (0, 2, 1, 3)), read only by a Reshape to
// (B, S, H*D); returns {transpose, reshape}.
std::optional<std::pair<Node*, Node*>> MergeOf(Value* y) {
  if (!Private(y)) return std::nullopt;
  Node* t = y->uses().front().node;
  if (!SwapsMiddle(t) || !Private(t->output(0))) return std::nullopt;
  Node* r = t->output(0)->uses().front().node;
  const auto yd = StaticDims(y), od = StaticDims(r->output(0));
  if (!IsOp(r, "Reshape") || !yd || !od || yd->size() != 4 || od->size() != 3 || (*od)[0] != (*yd)[0] ||
      (*od)[1] != (*yd)[2] || (*od)[2] != (*yd)[1] * (*yd)[3])
    return std::nullopt;
  return std::make_pair(t, r);
}

}  // namespace

StatusOr<bool> AbsorbHeadLayout(Graph& g, Node* a) {
  if (a->domain() != kDscDomain || a->op_type() != ops::kAttention || a->num_outputs() != 1 || a->num_inputs() < 3)
    return false;
  const auto qd = StaticDims(a->input(0)), kd = StaticDims(a->input(1)), vd = StaticDims(a->input(2));
  if (!qd || !kd || !vd || qd->size() != 4 || kd->size() != 4 || vd->size() != 4) return false;
  std::optional<Split> sq = SplitOf(a->input(0)), sk = SplitOf(a->input(1)), sv = SplitOf(a->input(2));
  if (!sq || !sk || !sv) return false;
  const auto merge = MergeOf(a->output(0));
  if (!merge) return false;
  std::vector<Value*> in = {sq->x, sk->x, sv->x};
  for (size_t i = 3; i < a->num_inputs(); ++i) in.push_back(a->input(i));
  Node* b = g.AddNode(ops::kAttention, in, {g.UniqueName(a->output(0)->name() + "_heads")}, kDscDomain, "", a);
  for (const auto& [name, attr] : a->attrs()) b->SetAttr(name, attr);
  b->SetAttr("q_num_heads", (*qd)[1]);
  b->SetAttr("kv_num_heads", (*kd)[1]);
  Node* reshape = merge->second;
  Value* y = reshape->output(0);
  const std::string y_name = y->name(), node_name = a->name();
  b->output(0)->type = y->type;
  g.ReplaceAllUsesWith(y, b->output(0));
  std::vector<std::string> shapes;  // the Reshapes' shape constants, removed below once unread
  for (Node* r : {reshape, sq->reshape, sk->reshape, sv->reshape})
    if (r->input(1)) shapes.push_back(r->input(1)->name());
  for (Node* dead : {reshape, merge->first, a, sq->transpose, sq->reshape, sk->transpose, sk->reshape, sv->transpose,
                     sv->reshape})
    RETURN_IF_ERROR(g.RemoveNode(dead));
  for (const std::string& name : shapes) {
    Value* c = g.FindValue(name);
    if (c && c->is_initializer() && c->type.dtype == DType::kInt64 && c->uses().empty() && !c->is_graph_output())
      g.RemoveInitializer(c);
  }
  RETURN_IF_ERROR(g.RenameValue(b->output(0), y_name));
  b->set_name(node_name);
  return true;
}

}  // namespace dsc::recognize
