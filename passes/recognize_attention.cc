// The recognize pass's attention rewrite: an exporter's scaled-dot-product chain becomes one
// ai.dscompile.Attention (ONNX's Attention of opset 23 under our domain, ir/dsc_ops.h), so the
// forward runs one kernel instead of MatMul, Add, Softmax, MatMul and their Transposes, and
// autodiff emits one AttentionGrad instead of the chain's gradients.
//
// Pattern, rooted at a Softmax over the last axis (constants are scalar initializers that are no
// parameter; Casts between float types may sit anywhere inside the chain, as the precision pass
// puts them around an fp32 softmax under autocast):
//   Q' = Q * c1 | Q / c1          (any number of scalar factors, dynamo scales Q and K^T by
//   Kt' = Kt * c2 | Kt / c2        sqrt(scale) each)
//   S = MatMul(Q', Kt') [* c3 | / c3]
//   Z = S | S + M | M + S | Where(C, -inf, S) | Where(C, S, -inf)   (-inf or the dtype's lowest)
//   P = Softmax(Z, axis=-1) [then Where(IsNaN(P), 0, P), dynamo's guard for masked rows]
//   Y = MatMul(P, V)
// becomes Y = ai.dscompile.Attention<scale = c1 c2 c3 (the product), is_causal>(Q, K, V[, mask]).
// K is Kt with its last two axes swapped: Kt's own Transpose composed with the swap, or the
// dynamo exporter's Reshape -> Transpose(0,2,1) -> Reshape chain undone, else a new Transpose.
// A constant mask that masks exactly the keys j > i (0 elsewhere; the torch exporters' Trilu
// masks, GPT-2's buffer) becomes is_causal = 1, which the flash kernels use to skip whole blocks;
// any other mask is Attention's attn_mask (float: added; Where's condition: bool, true = attend).
//
// Nothing changes unless every value inside the chain is read only inside it, Q, K and V are 3-D
// or 4-D with equal static batch and head dims (3-D: one head), Q, K, V and Y share one float
// dtype, the mask's dims broadcast to the scores' without growing them and cover every key (a
// half mask no trained parameter flows into: dAttnMask is float32 only), and the scale is positive. A Dropout between Softmax and MatMul, a non-constant scale or a second
// reader of any intermediate leave the chain as it is.
//
// Numbers: in float32 the result differs from the chain's by rounding only (the kernel rounds once
// where the chain rounded the scores, the probabilities and the scaled operands). A row whose keys
// are all masked gives 0 where the chain gave NaN (-inf) or a uniform average (the lowest float):
// dynamo's guard writes 0 too. In bf16/fp16 the chain's roundings at every link are gone as well,
// as in torch.compile's fused attention; "dscompile": {"recognize_attention": false} keeps chains.
#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <optional>
#include <set>

#include "ir/dsc_ops.h"
#include "passes/recognize.h"

namespace dsc::recognize {
namespace {

// A Cast between float dtypes.
bool IsFloatCast(const Node* n) {
  return IsOp(n, "Cast") && n->input(0) && IsFloat(n->input(0)->type.dtype) && IsFloat(n->output(0)->type.dtype);
}

// The most negative finite value of a float dtype: torch's masks use it (finfo.min) as well as -inf.
double Lowest(DType t) {
  switch (t) {
    case DType::kFloat16: return -65504.0;
    case DType::kBFloat16: return -3.3895313892515355e38;
    default: return -std::numeric_limits<float>::max();
  }
}

// A value a softmax turns into exactly 0 probability.
bool Masking(double v, DType t) { return v == -std::numeric_limits<double>::infinity() || v <= Lowest(t); }

// What the matcher found, before anything changes.
struct Chain {
  std::set<Node*> nodes;  // removed by the rewrite (every output read only inside, but the root's)
  Node* root = nullptr;   // MatMul(P, V)
  Value *q = nullptr, *kt = nullptr, *v = nullptr;
  double scale = 1;
  Value* mask = nullptr;        // additive float mask, or Where's condition
  bool where_mask = false;      // mask is a bool condition
  bool condition_masks = false; // Where(C, -inf, S): C true masks the key (else C true attends)
};

class AttentionMatcher {
 public:
  explicit AttentionMatcher(const std::set<std::string>& parameters) : parameters_(parameters) {}

  std::optional<Chain> Match(Node* softmax) const;
  StatusOr<bool> Rewrite(Graph& g, const Chain& c) const;

 private:
  std::optional<double> Scalar(const Value* v) const;
  const Tensor* Constant(const Value* v) const;
  Value* ThroughCasts(Value* v, Chain& c) const;
  Value* Scaled(Value* v, Chain& c) const;
  bool Causal(const Chain& c, const std::vector<int64_t>& score_dims) const;
  bool MaskFits(const Chain& c, const std::vector<int64_t>& score_dims, size_t rank) const;
  bool DependsOnParameter(const Value* v, std::set<const Value*>& seen) const;
  StatusOr<Value*> KeyFromTransposed(Graph& g, Value* kt, Node* before) const;
  Status RemoveIfDead(Graph& g, const std::string& name) const;

  const std::set<std::string>& parameters_;
};

std::optional<double> AttentionMatcher::Scalar(const Value* v) const {
  const Tensor* t = Constant(v);
  if (!t || t->numel() != 1 || !IsFloat(t->dtype())) return std::nullopt;
  return t->GetAsDouble(0);
}

// An initializer that is no parameter.
const Tensor* AttentionMatcher::Constant(const Value* v) const {
  if (!v || !v->is_initializer() || v->is_graph_input() || parameters_.count(v->name())) return nullptr;
  return &v->initializer();
}

// Steps back over float Casts whose result only the chain reads, collecting them.
Value* AttentionMatcher::ThroughCasts(Value* v, Chain& c) const {
  while (Private(v) && IsFloatCast(v->producer())) {
    c.nodes.insert(v->producer());
    v = v->producer()->input(0);
  }
  return v;
}

// Steps back over Casts and multiplications/divisions by scalar constants whose results only the
// chain reads, folding them into c.scale.
Value* AttentionMatcher::Scaled(Value* v, Chain& c) const {
  for (;;) {
    v = ThroughCasts(v, c);
    if (!Private(v)) return v;
    Node* n = v->producer();
    if (IsOp(n, "Mul")) {
      const size_t k = Scalar(n->input(1)) ? 1 : Scalar(n->input(0)) ? 0 : 2;
      if (k == 2) return v;
      c.scale *= *Scalar(n->input(k));
      c.nodes.insert(n);
      v = n->input(1 - k);
    } else if (IsOp(n, "Div") && Scalar(n->input(1)) && *Scalar(n->input(1)) != 0) {
      c.scale /= *Scalar(n->input(1));
      c.nodes.insert(n);
      v = n->input(0);
    } else {
      return v;
    }
  }
}

std::optional<Chain> AttentionMatcher::Match(Node* softmax) const {
  Chain c;
  c.nodes.insert(softmax);
  // Forward: P -> [Casts, guard] -> MatMul(P, V).
  Value* p = softmax->output(0);
  for (;;) {
    const auto& uses = p->uses();
    if (uses.size() == 1 && IsFloatCast(uses[0].node)) {
      c.nodes.insert(uses[0].node);
      p = uses[0].node->output(0);
      continue;
    }
    if (uses.size() == 2) {  // Where(IsNaN(P), 0, P)
      Node* isnan = IsOp(uses[0].node, "IsNaN") ? uses[0].node : IsOp(uses[1].node, "IsNaN") ? uses[1].node : nullptr;
      Node* where = isnan == uses[0].node ? uses[1].node : uses[0].node;
      if (!isnan || !IsOp(where, "Where") || where->input(0) != isnan->output(0) || where->input(2) != p ||
          Scalar(where->input(1)) != 0.0)
        return std::nullopt;
      c.nodes.insert(isnan);
      c.nodes.insert(where);
      p = where->output(0);
      continue;
    }
    if (uses.size() == 1 && IsOp(uses[0].node, "MatMul") && uses[0].input_index == 0) {
      c.root = uses[0].node;
      c.v = c.root->input(1);
      break;
    }
    return std::nullopt;
  }
  c.nodes.insert(c.root);
  // Backward: Z -> mask -> scores -> MatMul(Q', Kt').
  Value* z = ThroughCasts(softmax->input(0), c);
  Node* zn = z->producer();
  Node* scores = nullptr;
  auto score_matmul = [&](Value* s, Chain& cc) -> Node* {
    Node* mm = Scaled(s, cc)->producer();
    return IsOp(mm, "MatMul") ? mm : nullptr;
  };
  if (IsOp(zn, "Add")) {
    for (size_t i = 0; i < 2 && !scores; ++i) {
      Chain trial = c;
      if (Node* mm = score_matmul(zn->input(i), trial)) {
        c = trial;
        scores = mm;
        c.mask = zn->input(1 - i);
      }
    }
    if (scores) c.nodes.insert(zn);
  } else if (IsOp(zn, "Where") && zn->input(0)->type.dtype == DType::kBool) {
    for (size_t i = 1; i < 3 && !scores; ++i) {
      const std::optional<double> other = Scalar(zn->input(3 - i));
      if (!other || !Masking(*other, zn->input(3 - i)->type.dtype)) continue;
      Chain trial = c;
      if (Node* mm = score_matmul(zn->input(i), trial)) {
        c = trial;
        scores = mm;
        c.mask = zn->input(0);
        c.where_mask = true;
        c.condition_masks = i == 2;
      }
    }
    if (scores) c.nodes.insert(zn);
  } else {
    scores = score_matmul(z, c);
  }
  if (!scores) return std::nullopt;
  c.nodes.insert(scores);
  c.q = Scaled(scores->input(0), c);
  c.kt = Scaled(scores->input(1), c);
  // Every value inside is read only inside; the root's output is the chain's result.
  for (Node* n : c.nodes) {
    if (n == c.root) continue;
    for (const Value* o : n->outputs()) {
      if (!o || o->is_graph_output()) return std::nullopt;
      for (const Use& u : o->uses())
        if (!c.nodes.count(u.node)) return std::nullopt;
    }
  }
  if (!(c.scale > 0) || !std::isfinite(c.scale)) return std::nullopt;
  return c;
}

// The mask's dims, padded in front with 1s, broadcast to the scores' (B, H, S, L) without growing
// them, and it has a column per key (Attention reads a shorter mask as masking the keys past it).
// With 3-D operands (one head) Attention puts the mask's leading dim at the head axis: only
// masks without a batch dim fit.
bool AttentionMatcher::MaskFits(const Chain& c, const std::vector<int64_t>& score_dims, size_t rank) const {
  std::optional<std::vector<int64_t>> md = StaticDims(c.mask);
  if (!md || md->empty() || md->size() > rank || md->back() != score_dims.back()) return false;
  if (c.where_mask ? c.mask->type.dtype != DType::kBool : c.mask->type.dtype != c.q->type.dtype) return false;
  for (size_t i = 0; i < md->size(); ++i) {
    const int64_t s = score_dims[rank - md->size() + i];
    if ((*md)[i] != 1 && (*md)[i] != s) return false;
  }
  return rank == 4 || md->size() < 3 || (*md)[0] == 1;
}

// Whether a trained parameter flows into `v` (T5's relative position bias does into its mask).
bool AttentionMatcher::DependsOnParameter(const Value* v, std::set<const Value*>& seen) const {
  if (!v || !seen.insert(v).second) return false;
  if (parameters_.count(v->name())) return true;
  if (const Node* n = v->producer())
    for (const Value* in : n->inputs())
      if (DependsOnParameter(in, seen)) return true;
  return false;
}

// A constant mask that masks exactly the keys j > i of every (batch, head) row i.
bool AttentionMatcher::Causal(const Chain& c, const std::vector<int64_t>& score_dims) const {
  const Tensor* t = Constant(c.mask);
  if (!t || t->rank() < 2) return false;
  const int64_t rows = t->dims()[t->rank() - 2], cols = t->dims().back();
  if (rows != score_dims[score_dims.size() - 2] || cols != score_dims.back()) return false;
  for (int64_t e = 0; e < t->numel(); ++e) {
    const int64_t i = e / cols % rows, j = e % cols;
    bool masked;
    if (c.where_mask) {
      masked = (t->GetAsDouble(e) != 0) == c.condition_masks;
    } else {
      const double x = t->GetAsDouble(e);
      masked = Masking(x, t->dtype());
      if (!masked && x != 0) return false;
    }
    if (masked != (j > i)) return false;
  }
  return true;
}

// K for the Kt the scores read: the swap of Kt's last two axes, undone where Kt was made by one.
StatusOr<Value*> AttentionMatcher::KeyFromTransposed(Graph& g, Value* kt, Node* before) const {
  std::optional<std::vector<int64_t>> ktd = StaticDims(kt);
  const size_t r = ktd->size();
  Node* n = kt->producer();
  std::vector<int64_t> perm(r);
  std::iota(perm.begin(), perm.end(), 0);
  std::swap(perm[r - 2], perm[r - 1]);
  Value* source = kt;
  if (IsOp(n, "Transpose") && n->HasAttr("perm") && n->GetInts("perm").size() == r) {
    // Kt = Transpose(X, p), K = Transpose(Kt, swap) = Transpose(X, p composed with the swap).
    const std::vector<int64_t> p = n->GetInts("perm");
    std::vector<int64_t> q(r);
    for (size_t i = 0; i < r; ++i) q[i] = p[static_cast<size_t>(perm[i])];
    source = n->input(0);
    perm = q;
  } else if (IsOp(n, "Reshape") && r == 4) {
    // dynamo: Kt = Reshape(Transpose(Reshape(K, [B*H, L, d]), (0, 2, 1)), [B, H, d, L]).
    Node* t = n->input(0)->producer();
    Node* inner = t && IsOp(t, "Transpose") ? t->input(0)->producer() : nullptr;
    if (inner && IsOp(inner, "Reshape") && t->GetInts("perm") == std::vector<int64_t>{0, 2, 1}) {
      std::optional<std::vector<int64_t>> kd = StaticDims(inner->input(0));
      std::optional<std::vector<int64_t>> rd = StaticDims(inner->output(0));
      const std::vector<int64_t>& d = *ktd;
      if (kd && rd && *kd == std::vector<int64_t>{d[0], d[1], d[3], d[2]} &&
          *rd == std::vector<int64_t>{d[0] * d[1], d[3], d[2]})
        return inner->input(0);
    }
  }
  if (std::is_sorted(perm.begin(), perm.end())) return source;
  std::optional<std::vector<int64_t>> sd = StaticDims(source);
  if (!sd) return Internal("recognize: the keys '", source->name(), "' have no static shape");
  Node* tr = g.AddNode("Transpose", {source}, {g.UniqueName(kt->name() + "_keys")}, "", "", before);
  tr->SetAttr("perm", perm);
  Shape shape;
  for (int64_t p : perm) shape.push_back(Dim::Static((*sd)[static_cast<size_t>(p)]));
  tr->output(0)->type = TensorType{source->type.dtype, shape};
  return tr->output(0);
}

// Removes what computed the value named `name` once nothing reads it: its node when none of its
// outputs is read, and then that node's inputs likewise; a constant (no parameter) nothing reads.
// By name: a value may be gone by the time a second reader's removal gets to it.
Status AttentionMatcher::RemoveIfDead(Graph& g, const std::string& name) const {
  Value* v = g.FindValue(name);
  if (!v || !v->uses().empty() || v->is_graph_output() || v->is_graph_input()) return Status::OK();
  if (v->is_initializer()) {
    if (!parameters_.count(v->name())) g.RemoveInitializer(v);
    return Status::OK();
  }
  Node* n = v->producer();
  if (!n) return Status::OK();
  for (const Value* o : n->outputs())
    if (o && (!o->uses().empty() || o->is_graph_output())) return Status::OK();
  std::vector<std::string> inputs;
  for (const Value* in : n->inputs())
    if (in) inputs.push_back(in->name());
  RETURN_IF_ERROR(g.RemoveNode(n));
  for (const std::string& in : inputs) RETURN_IF_ERROR(RemoveIfDead(g, in));
  return Status::OK();
}

StatusOr<bool> AttentionMatcher::Rewrite(Graph& g, const Chain& c) const {
  Value* y = c.root->output(0);
  std::optional<std::vector<int64_t>> qd = StaticDims(c.q), ktd = StaticDims(c.kt), vd = StaticDims(c.v),
                                      yd = StaticDims(y);
  if (!qd || !ktd || !vd || !yd) return false;
  const size_t rank = qd->size();
  if ((rank != 3 && rank != 4) || ktd->size() != rank || vd->size() != rank) return false;
  // Equal batch (and head) dims: MatMul's broadcasting of K/V over heads is not rewritten.
  for (size_t i = 0; i + 2 < rank; ++i)
    if ((*ktd)[i] != (*qd)[i] || (*vd)[i] != (*qd)[i]) return false;
  if ((*ktd)[rank - 2] != (*qd)[rank - 1] || (*vd)[rank - 2] != (*ktd)[rank - 1]) return false;
  const DType dt = c.q->type.dtype;
  if (!IsFloat(dt) || c.kt->type.dtype != dt || c.v->type.dtype != dt || y->type.dtype != dt) return false;
  std::vector<int64_t> score_dims(qd->begin(), qd->end() - 1);
  score_dims.push_back(ktd->back());
  bool causal = false;
  if (c.mask) {
    if (!MaskFits(c, score_dims, rank)) return false;
    causal = Causal(c, score_dims);
    // AttentionGrad's dAttnMask is float32 only (autodiff refuses a half one).
    std::set<const Value*> seen;
    if (!c.where_mask && dt != DType::kFloat32 && DependsOnParameter(c.mask, seen)) return false;
  }

  // Decided: from here on the graph changes.
  ASSIGN_OR_RETURN(Value * k, KeyFromTransposed(g, c.kt, c.root));
  std::vector<Value*> inputs{c.q, k, c.v};
  if (c.mask && !causal) {
    Value* mask = c.mask;
    if (c.where_mask && c.condition_masks) {  // Attention's bool mask says which keys attend
      if (const Tensor* t = Constant(mask)) {
        Tensor keep(DType::kBool, t->dims());
        for (int64_t e = 0; e < t->numel(); ++e) keep.SetFromInt(e, t->GetAsDouble(e) == 0 ? 1 : 0);
        mask = g.AddInitializer(g.UniqueName(mask->name() + "_attend"), std::move(keep));
      } else {
        Node* n = g.AddNode("Not", {mask}, {g.UniqueName(mask->name() + "_attend")}, "", "", c.root);
        n->output(0)->type = mask->type;
        mask = n->output(0);
      }
    }
    inputs.push_back(mask);
  }
  Node* att = g.AddNode(ops::kAttention, inputs, {g.UniqueName(y->name() + "_attention")}, kDscDomain, "", c.root);
  att->SetAttr("scale", static_cast<float>(c.scale));
  if (causal) att->SetAttr("is_causal", int64_t{1});
  if (rank == 3) {
    att->SetAttr("q_num_heads", int64_t{1});
    att->SetAttr("kv_num_heads", int64_t{1});
  }
  Value* out = att->output(0);
  out->type = y->type;
  const std::string value_name = y->name(), node_name = c.root->name();
  g.ReplaceAllUsesWith(y, out);
  // The chain goes from its end, and with it whatever only it read (Kt's Transposes, a causal
  // mask's constant, the scale constants).
  RETURN_IF_ERROR(RemoveIfDead(g, value_name));
  RETURN_IF_ERROR(g.RenameValue(out, value_name));
  att->set_name(node_name);
  return true;
}

}  // namespace

StatusOr<bool> RecognizeAttention(Graph& g, Node* softmax, const std::set<std::string>& parameters) {
  if (!IsOp(softmax, "Softmax")) return false;
  std::optional<std::vector<int64_t>> dims = StaticDims(softmax->input(0));
  if (!dims || dims->empty()) return false;
  const int64_t axis = softmax->GetInt("axis", -1);
  if (axis != -1 && axis != static_cast<int64_t>(dims->size()) - 1) return false;
  // Before opset 13 Softmax's default axis and its meaning (a 2-D coercion) differ.
  auto opset = g.opsets.find("");
  if (opset != g.opsets.end() && opset->second < 13) return false;
  const AttentionMatcher matcher(parameters);
  std::optional<Chain> chain = matcher.Match(softmax);
  if (!chain) return false;
  return matcher.Rewrite(g, *chain);
}

}  // namespace dsc::recognize
