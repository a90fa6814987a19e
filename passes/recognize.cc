// recognize: finds the subgraphs an exporter wrote for an op the graph's opset lacks and puts the
// op back as one node, after precision and before autodiff, so the forward runs one kernel instead
// of a chain and autodiff emits one gradient op instead of the chain's (each link of which reads
// and writes the whole tensor: on a 4-layer GPT the erf GELU alone was five forward and about ten
// backward passes over the MLP's activations).
//
// Rewrites (each pattern must match exactly, every value inside it used only inside it, or nothing
// changes; constants are scalar initializers that are no parameter, compared within 1e-6
// relative; only float32 chains, see below):
//
// | rewrite   | pattern (products in any order and grouping, x/c as x * (1/c))    | becomes                              |
// |-----------|-------------------------------------------------------------------|--------------------------------------|
// | gelu-erf  | 0.5 * x * (1 + Erf(x * (1/sqrt 2)))                                | ai.dscompile.Gelu(x)                 |
// |           | (torch 1.x's F.gelu and nn.GELU at opset < 20, hand-written GELUs) | approximate = "none"                 |
// | gelu-tanh | 0.5 * x * (1 + Tanh(sqrt(2/pi) * (x + 0.044715 * x^3)))            | ai.dscompile.Gelu(x)                 |
// |           | or 0.5 * x * (1 + Tanh(sqrt(2/pi) * x * (1 + 0.044715 * x^2)))      | approximate = "tanh"                 |
// |           | (x^3 as Pow(x, 3) or products of x; GPT-2's "gelu_new")            |                                      |
// | attention | MatMul(P, V), P = Softmax(scale * MatMul(Q, K^T) [+ mask])         | ai.dscompile.Attention(Q, K, V[, m]) |
// |           | (every exporter's SDPA, hand-written attention; in every float     | scale, is_causal for a constant      |
// |           | dtype; "dscompile": {"recognize_attention": false} turns it off)   | causal mask (recognize_attention.cc) |
// | attention | Attention(Transpose(Reshape(x, (B, S, H, D)), (0, 2, 1, 3)), ...) | ai.dscompile.Attention<q_num_heads,  |
// | heads     | for Q, K and V, its Y merged back by Transpose and Reshape to     | kv_num_heads>(xq, xk, xv[, m]) in    |
// |           | (B, S, H*D) (the exporters' head split and merge)                  | (B, S, H*D) (..._heads.cc)           |
//
// ai.dscompile.Gelu is ONNX's Gelu (opset 20) under our domain: an opset-17 graph cannot hold the
// standard op (ONNX's shape inference rejects it), and autodiff differentiates ours as Gelu. The
// result differs from the chain's in the last bits (one kernel rounds once where the chain rounded
// at every link), as PyTorch's fused gelu differs from its decomposition. That is why only chains
// the precision pass left in float32 are rewritten: in bf16 or fp16 the chain's roundings at every
// link are what PyTorch computes for the same model, and one rounding would move the first loss
// by ~3e-5 relative (tests/e2e/mixed_precision_test.cc holds it to 2e-6). Attention is the
// exception (its file says why): the chain's cost is quadratic in the sequence, and torch.compile
// fuses it in every dtype too.
#include <algorithm>
#include <cmath>
#include <optional>
#include <set>

#include "frontend/config/ds_config.h"
#include "ir/dsc_ops.h"
#include "passes/pass.h"
#include "passes/recognize.h"

namespace dsc {
namespace {

using recognize::IsOp;
using recognize::Private;

bool Near(double a, double b) { return std::abs(a - b) <= 1e-6 * std::abs(b); }

bool AllAre(const std::vector<Value*>& factors, const Value* x, size_t count) {
  return factors.size() == count && std::all_of(factors.begin(), factors.end(), [&](Value* f) { return f == x; });
}

// A product: the constant factor and the non-constant factors (with repeats).
struct Product {
  double coef = 1;
  std::vector<Value*> factors;
};

// The pattern matching of one graph. Parameters (select-loss named them) are trained: a scalar
// one is no constant of a pattern.
class Matcher {
 public:
  explicit Matcher(const Graph& g) : parameters_(g.training.parameters.begin(), g.training.parameters.end()) {}

  StatusOr<bool> RecognizeGelu(Graph& g, Node* root) const;

 private:
  std::optional<double> Scalar(const Value* v) const;
  void Flatten(Value* v, bool top, Product& p, std::vector<Node*>& inner) const;
  std::optional<std::pair<Value*, double>> PlusConstant(Value* v, std::vector<Node*>& inner) const;
  std::optional<std::string> GeluKind(const std::string& fn, Value* x, Value* u, std::vector<Node*>& inner) const;

  std::set<std::string> parameters_;
};

// The value of a scalar float initializer that is no parameter.
std::optional<double> Matcher::Scalar(const Value* v) const {
  if (!v || !v->is_initializer() || parameters_.count(v->name())) return std::nullopt;
  const Tensor& t = v->initializer();
  if (t.numel() != 1 || !IsFloat(t.dtype())) return std::nullopt;
  return t.GetAsDouble(0);
}

// `v` as a Product, flattened through Mul, Div by a constant and Pow by a small integer constant.
// `inner` collects the nodes it looked through; each of their outputs except `v` itself must be
// used once (by the product), or the chain could not be removed.
void Matcher::Flatten(Value* v, bool top, Product& p, std::vector<Node*>& inner) const {
  Node* n = v->producer();
  const bool private_value = top || Private(v);
  if (std::optional<double> c = Scalar(v)) {
    p.coef *= *c;
    return;
  }
  if (n && private_value) {
    if (IsOp(n, "Mul")) {
      inner.push_back(n);
      Flatten(n->input(0), false, p, inner);
      Flatten(n->input(1), false, p, inner);
      return;
    }
    if (IsOp(n, "Div")) {
      if (std::optional<double> c = Scalar(n->input(1)); c && *c != 0) {
        inner.push_back(n);
        p.coef /= *c;
        Flatten(n->input(0), false, p, inner);
        return;
      }
    }
    if (IsOp(n, "Pow")) {
      if (std::optional<double> e = Scalar(n->input(1)); e && *e >= 1 && *e <= 4 && *e == std::floor(*e)) {
        inner.push_back(n);
        for (int i = 0; i < static_cast<int>(*e); ++i) Flatten(n->input(0), false, p, inner);
        return;
      }
    }
  }
  p.factors.push_back(v);
}

// `v` = c + t for a scalar constant c, v used only by the chain: returns t and the constant.
std::optional<std::pair<Value*, double>> Matcher::PlusConstant(Value* v, std::vector<Node*>& inner) const {
  Node* n = v->producer();
  if (!IsOp(n, "Add") || !Private(v)) return std::nullopt;
  for (size_t i = 0; i < 2; ++i)
    if (std::optional<double> c = Scalar(n->input(i))) {
      inner.push_back(n);
      return std::make_pair(n->input(1 - i), *c);
    }
  return std::nullopt;
}

// The argument u of the Erf/Tanh (its Product), given the candidate x: returns which GELU it is.
std::optional<std::string> Matcher::GeluKind(const std::string& fn, Value* x, Value* u,
                                             std::vector<Node*>& inner) const {
  Product p;
  Flatten(u, false, p, inner);
  if (fn == "Erf") {
    if (AllAre(p.factors, x, 1) && Near(p.coef, 1 / std::sqrt(2.0))) return "none";
    return std::nullopt;
  }
  const double k1 = std::sqrt(2 / M_PI), k2 = 0.044715;
  if (!Near(p.coef, k1)) return std::nullopt;
  // k1 * (x + k2 * x^3)
  if (p.factors.size() == 1) {
    Node* add = p.factors[0]->producer();
    Value* sum = p.factors[0];
    if (!IsOp(add, "Add") || !Private(sum)) return std::nullopt;
    for (size_t i = 0; i < 2; ++i) {
      if (add->input(i) != x) continue;
      Product cube;
      std::vector<Node*> cube_nodes;
      Flatten(add->input(1 - i), false, cube, cube_nodes);
      if (AllAre(cube.factors, x, 3) && Near(cube.coef, k2)) {
        inner.push_back(add);
        inner.insert(inner.end(), cube_nodes.begin(), cube_nodes.end());
        return "tanh";
      }
    }
    return std::nullopt;
  }
  // k1 * x * (1 + k2 * x^2)
  if (p.factors.size() == 2) {
    for (size_t i = 0; i < 2; ++i) {
      if (p.factors[i] != x) continue;
      std::vector<Node*> more;
      auto t = PlusConstant(p.factors[1 - i], more);
      if (!t || !Near(t->second, 1)) continue;
      Product square;
      Flatten(t->first, false, square, more);
      if (AllAre(square.factors, x, 2) && Near(square.coef, k2)) {
        inner.insert(inner.end(), more.begin(), more.end());
        return "tanh";
      }
    }
  }
  return std::nullopt;
}

// gelu-erf and gelu-tanh, rooted at `root` (the chain's last node, a Mul or a Div).
StatusOr<bool> Matcher::RecognizeGelu(Graph& g, Node* root) const {
  Value* y = root->output(0);
  if (y->type.dtype != DType::kFloat32) return false;
  Product top;
  std::vector<Node*> inner;
  Flatten(y, /*top=*/true, top, inner);
  if (top.factors.size() != 2 || !Near(top.coef, 0.5)) return false;
  for (size_t xi = 0; xi < 2; ++xi) {
    Value* x = top.factors[xi];
    std::vector<Node*> chain = inner;
    auto t = PlusConstant(top.factors[1 - xi], chain);
    if (!t || !Near(t->second, 1)) continue;
    Node* fn = t->first->producer();
    if (!(IsOp(fn, "Erf") || IsOp(fn, "Tanh")) || !Private(t->first)) continue;
    chain.push_back(fn);
    std::optional<std::string> kind = GeluKind(fn->op_type(), x, fn->input(0), chain);
    if (!kind) continue;
    // Every value of the chain but y is private to it (Flatten/PlusConstant checked the ones they
    // looked through) and of y's type: the rewrite then changes no other consumer and no shape.
    if (x->type.dtype != y->type.dtype || !(x->type.shape && y->type.shape && *x->type.shape == *y->type.shape))
      return false;
    Node* gelu = g.AddNode(ops::kGelu, {x}, {g.UniqueName(y->name() + "_gelu")}, kDscDomain, "", root);
    gelu->SetAttr("approximate", *kind);
    Value* out = gelu->output(0);
    const std::string value_name = y->name(), node_name = root->name();
    out->type = y->type;
    g.ReplaceAllUsesWith(y, out);
    // Remove the chain from its end: a node goes once nothing reads its outputs; then the
    // constants only it read.
    std::set<Node*> left(chain.begin(), chain.end());
    left.insert(root);
    std::set<Value*> constants;
    for (Node* n : left)
      for (Value* in : n->inputs())
        if (Scalar(in)) constants.insert(in);
    while (!left.empty()) {
      bool removed = false;
      for (Node* n : left)
        if (std::all_of(n->outputs().begin(), n->outputs().end(),
                        [](const Value* v) { return v->uses().empty() && !v->is_graph_output(); })) {
          RETURN_IF_ERROR(g.RemoveNode(n));
          left.erase(n);
          removed = true;
          break;
        }
      if (!removed) return Internal("recognize: the GELU chain ending at '", node_name, "' is read outside it");
    }
    for (Value* c : constants)
      if (c->uses().empty() && !c->is_graph_input() && !c->is_graph_output()) g.RemoveInitializer(c);
    RETURN_IF_ERROR(g.RenameValue(out, value_name));
    gelu->set_name(node_name);
    return true;
  }
  return false;
}

class RecognizePass : public GraphPass {
 public:
  const char* name() const override { return "recognize"; }

  StatusOr<bool> RunOnGraph(Graph& g, const PassContext& ctx) override {
    const Matcher matcher(g);
    const std::set<std::string> parameters(g.training.parameters.begin(), g.training.parameters.end());
    const bool attention = !ctx.config || ctx.config->dscompile.recognize_attention;
    bool changed = false;
    for (bool again = true; again;) {
      again = false;
      // Node pointers stay valid until a rewrite removes nodes; then the scan restarts.
      for (const auto& owned : g.nodes()) {
        Node* n = owned.get();
        bool fired = false;
        if (IsOp(n, "Mul") || IsOp(n, "Div")) {
          ASSIGN_OR_RETURN(fired, matcher.RecognizeGelu(g, n));
        } else if (attention && IsOp(n, "Softmax")) {
          ASSIGN_OR_RETURN(fired, recognize::RecognizeAttention(g, n, parameters));
        } else if (attention && n->domain() == kDscDomain && n->op_type() == ops::kAttention) {
          ASSIGN_OR_RETURN(fired, recognize::AbsorbHeadLayout(g, n));
        }
        if (fired) {
          again = changed = true;
          break;
        }
      }
    }
    if (changed) g.opsets[kDscDomain] = 1;  // its Gelu and Attention: a dump must import their domain
    return changed;
  }
};

}  // namespace

std::unique_ptr<Pass> CreateRecognizePass() { return std::make_unique<RecognizePass>(); }

}  // namespace dsc
