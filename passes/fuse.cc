// fuse: rewrites patterns of the finished training graph into fewer, cheaper nodes that compute
// the same numbers. Runs after autodiff and the ZeRO pass (it sees the whole step) and before
// memory planning (values it removes take no arena space).
//
// Rewrites (applied until none fires; each row's pattern must match exactly or nothing changes):
//
// | rewrite              | pattern                                   | becomes                          | why it is exact                      |
// |----------------------|-------------------------------------------|----------------------------------|--------------------------------------|
// | cancel-transposes    | Transpose(Transpose(X, p1), p2) with      | X                                | a permutation and its inverse move   |
// |                      | p1 then p2 the identity                   |                                  | no element                           |
// | transpose-into-gemm  | Transpose(X, [1, 0]) feeding only Gemms   | the Gemms' transA/transB flipped | sgemm reads X transposed instead of  |
// |                      |                                           |                                  | a transposed copy of it: the same    |
// |                      |                                           |                                  | products, summed in BLAS's order     |
// | transpose-into-      | Transpose(X, swap of the last two axes)   | FusedMatMul<transA/transB> with  | as above (ir/dsc_ops.h: FusedMatMul) |
// | matmul               | feeding only MatMul/FusedMatMul operands  | X as that operand                |                                      |
// | transposed-gemm      | Transpose(Gemm(A, B, no C), [1, 0]), the  | Gemm(B, A) with the flags        | (op(A) op(B))^T = op(B)^T op(A)^T:   |
// |                      | Gemm used only by the Transpose           | swapped and flipped              | the same dot products, written       |
// |                      |                                           |                                  | transposed                           |
// | loss-casts           | LossGrad(dl, Cast(X half -> float32), t)  | LossGrad(dl, X, t) writing dX in | the kernel widens X and rounds dX as |
// |                      | read only by Casts back to X's dtype      | X's dtype                        | the Casts did                        |
// |                      | (SoftmaxCrossEntropy/NLL gradients)       | (passes/fuse_loss_casts.cc)      |                                      |
// | cast-into-update     | Cast(G -> float32) of a float16/bfloat16  | the updates read G               | their kernels widen each element     |
// |                      | G, read only as the gradient (input 1) of | (passes/fuse_updates.cc)         | exactly as Cast does (ir/dsc_ops.h)  |
// |                      | AdamStep/SGDStep/OptimStep/LambMoments/   |                                  |                                      |
// |                      | MuonMomentum                              |                                  |                                      |
// | refresh-into-update  | AdamStep/SGDStep/OptimStep/LambApply(M),  | the update with param_copy P     | the update rounds the new M as Cast  |
// |                      | then Assign<shard>(P, Cast(M -> P's half  | (copy_shard = shard;             | does and writes it where the Assign  |
// |                      | dtype)), the Cast read only by the Assign | passes/fuse_updates.cc)          | would, skipped steps included        |
//
// dscompile --disable-fuse-rewrite NAME (PassContext::fuse_disabled) turns a row off by its name,
// to compare a plan with and without it.
//
// sgemm with a transposed operand may sum a dot product in a different order than sgemm on the
// transposed copy, so results can differ in the last bits (tests compare within 1e-5 relative).
//
// A Transpose is only removed when every consumer takes it (other consumers would still need the
// copy), when it is no graph output, and when the MatMul's operands and result share one float
// dtype (FusedMatMul's kernels multiply one dtype) and both operands have rank >= 2 (numpy's 1-D
// promotion stays MatMul's). Rewritten nodes keep the names of the nodes and values they replace.
#include <algorithm>
#include <numeric>
#include <functional>
#include <set>

#include "ir/dsc_ops.h"
#include "passes/fuse_loss_casts.h"
#include "passes/fuse_util.h"
#include "passes/fuse_updates.h"
#include "passes/pass.h"

namespace dsc {
namespace {

std::vector<int64_t> Perm(const Node& t) {
  std::vector<int64_t> perm = t.GetInts("perm");
  if (perm.empty() && t.input(0) && t.input(0)->type.shape) {  // ONNX default: reverse the axes
    perm.resize(t.input(0)->type.shape->size());
    std::iota(perm.rbegin(), perm.rend(), 0);
  }
  return perm;
}

bool IsTranspose(const Node* n) { return n && n->domain().empty() && n->op_type() == "Transpose"; }

// A Transpose that swaps the last two axes and keeps the others.
bool SwapsLastTwo(const Node& t) {
  const std::vector<int64_t> p = Perm(t);
  const size_t r = p.size();
  if (r < 2 || p[r - 2] != static_cast<int64_t>(r - 1) || p[r - 1] != static_cast<int64_t>(r - 2)) return false;
  for (size_t i = 0; i + 2 < r; ++i)
    if (p[i] != static_cast<int64_t>(i)) return false;
  return true;
}

bool IsMatMul(const Node* n) {
  return (n->domain().empty() && n->op_type() == "MatMul") ||
         (n->domain() == kDscDomain && n->op_type() == ops::kFusedMatMul);
}
bool IsGemm(const Node* n) { return n->domain().empty() && n->op_type() == "Gemm"; }

size_t Rank(const Value* v) { return v && v->type.shape ? v->type.shape->size() : 0; }

bool FloatDType(DType t) { return t == DType::kFloat32 || t == DType::kFloat16 || t == DType::kBFloat16; }

// Whether a MatMul can become (or already is) a FusedMatMul.
bool FusableMatMul(const Node* mm) {
  const DType t = mm->output(0)->type.dtype;
  return FloatDType(t) && mm->input(0)->type.dtype == t && mm->input(1)->type.dtype == t &&
         Rank(mm->input(0)) >= 2 && Rank(mm->input(1)) >= 2;
}

const char* TransAttr(size_t input) { return input == 0 ? "transA" : "transB"; }

// Replaces node `old` (one output) by `fresh`, which computes the same value: uses move over,
// `old` is removed and its output's name and its node name pass to `fresh`.
Status Replace(Graph& g, Node* old, Node* fresh) {
  Value* from = old->output(0);
  Value* to = fresh->output(0);
  const std::string value_name = from->name(), node_name = old->name();
  to->type = from->type;
  g.ReplaceAllUsesWith(from, to);
  RETURN_IF_ERROR(g.RemoveNode(old));
  RETURN_IF_ERROR(g.RenameValue(to, value_name));
  fresh->set_name(node_name);
  return Status::OK();
}

// What a rewrite touched, for the pass's worklist: the Transposes whose rewrites may now fire
// are the producers and readers of these values. Transposes leave the worklist before they are
// removed.
struct Changes {
  std::function<void(Node*)> removing;
  std::vector<Value*> touched;
};

// The table's rows, by name.
constexpr const char* kRewrites[] = {"cancel-transposes", "transpose-into-gemm", "transpose-into-matmul",
                                     "transposed-gemm",   "loss-casts",          "cast-into-update",
                                     "refresh-into-update"};

// Whether a rewrite of the table is on (--disable-fuse-rewrite turns it off).
struct Enabled {
  std::set<std::string> off;
  bool operator()(const char* rewrite) const { return !off.count(rewrite); }
};

// cancel-transposes: `t`'s input is a Transpose and the two permutations compose to the identity.
StatusOr<bool> CancelTransposes(Graph& g, Node* t, Changes& ch, const Enabled& on) {
  if (!on("cancel-transposes")) return false;
  Node* inner = t->input(0)->producer();
  if (!IsTranspose(inner) || t->output(0)->is_graph_output() || NamedByTraining(g, t->output(0))) return false;
  const std::vector<int64_t> p1 = Perm(*inner), p2 = Perm(*t);
  if (p1.empty() || p1.size() != p2.size()) return false;
  for (size_t i = 0; i < p2.size(); ++i)
    if (p1[static_cast<size_t>(p2[i])] != static_cast<int64_t>(i)) return false;
  g.ReplaceAllUsesWith(t->output(0), inner->input(0));
  ch.touched.push_back(inner->input(0));
  ch.removing(t);
  RETURN_IF_ERROR(g.RemoveNode(t));
  if (inner->output(0)->uses().empty() && !inner->output(0)->is_graph_output()) {
    ch.removing(inner);
    RETURN_IF_ERROR(g.RemoveNode(inner));
  } else {
    ch.touched.push_back(inner->output(0));
  }
  return true;
}

// transpose-into-gemm and transpose-into-matmul: every use of `t` is a Gemm's or a fusable
// MatMul's A or B.
StatusOr<bool> FoldTransposeIntoConsumers(Graph& g, Node* t, Changes& ch, const Enabled& on) {
  Value* tv = t->output(0);
  if (tv->uses().empty() || tv->is_graph_output() || NamedByTraining(g, tv) || !SwapsLastTwo(*t)) return false;
  std::set<Node*> consumers;
  for (const Use& u : tv->uses()) {
    Node* c = u.node;
    const bool ok = u.input_index <= 1 && ((IsGemm(c) && Rank(tv) == 2 && on("transpose-into-gemm")) ||
                                           (IsMatMul(c) && FusableMatMul(c) && on("transpose-into-matmul")));
    if (!ok) return false;
    consumers.insert(c);
  }
  Value* x = t->input(0);
  ch.touched.push_back(x);
  for (Node* c : consumers) {
    if (IsGemm(c) || c->domain() == kDscDomain) {  // flags flip in place
      for (size_t i = 0; i < 2; ++i)
        if (c->input(i) == tv) {
          c->SetInput(i, x);
          if (c->GetInt(TransAttr(i), 0) != 0) c->RemoveAttr(TransAttr(i));  // 0 is the default
          else c->SetAttr(TransAttr(i), int64_t{1});
        }
      continue;
    }
    std::vector<Value*> in{c->input(0), c->input(1)};
    Node* f = g.AddNode(ops::kFusedMatMul, {in[0] == tv ? x : in[0], in[1] == tv ? x : in[1]},
                        {g.UniqueName(c->output(0)->name() + "_fused")}, kDscDomain, "", c);
    for (size_t i = 0; i < 2; ++i)
      if (in[i] == tv) f->SetAttr(TransAttr(i), int64_t{1});
    RETURN_IF_ERROR(Replace(g, c, f));
    for (Value* v : {in[0], in[1], f->output(0)})
      if (v != tv) ch.touched.push_back(v);  // tv dies with t below
  }
  ch.removing(t);
  RETURN_IF_ERROR(g.RemoveNode(t));
  return true;
}

// transposed-gemm: `t` transposes the result of a Gemm without C that nothing else reads.
StatusOr<bool> TransposeGemmResult(Graph& g, Node* t, Changes& ch, const Enabled& on) {
  if (!on("transposed-gemm")) return false;
  Node* gemm = t->input(0)->producer();
  if (!gemm || !IsGemm(gemm) || gemm->input(2) || Rank(t->output(0)) != 2 || !SwapsLastTwo(*t)) return false;
  const Value* gv = gemm->output(0);
  if (gv->uses().size() != 1 || gv->is_graph_output() || NamedByTraining(g, gv)) return false;
  const bool ta = gemm->GetInt("transA", 0) != 0, tb = gemm->GetInt("transB", 0) != 0;
  Node* f = g.AddNode("Gemm", {gemm->input(1), gemm->input(0)}, {g.UniqueName(t->output(0)->name() + "_fused")}, "",
                      "", t);
  if (gemm->HasAttr("alpha")) f->SetAttr("alpha", gemm->attrs().at("alpha"));
  if (!tb) f->SetAttr("transA", int64_t{1});
  if (!ta) f->SetAttr("transB", int64_t{1});
  ch.removing(t);
  RETURN_IF_ERROR(Replace(g, t, f));
  RETURN_IF_ERROR(g.RemoveNode(gemm));
  ch.touched.insert(ch.touched.end(), {f->input(0), f->input(1), f->output(0)});
  return true;
}

class FusePass : public GraphPass {
 public:
  const char* name() const override { return "fuse"; }

  StatusOr<bool> RunOnGraph(Graph& g, const PassContext& ctx) override {
    RETURN_IF_ERROR(CheckFuseRewriteNames(ctx.fuse_disabled));
    const Enabled on{std::set<std::string>(ctx.fuse_disabled.begin(), ctx.fuse_disabled.end())};
    // Always the earliest Transpose whose rewrite fires, as a rescan from the first node after
    // each rewrite would find, but only the Transposes a rewrite touched are checked again: a
    // rewrite changes nothing another Transpose's rewrites read except through those values.
    auto earlier = [&g](const Node* a, const Node* b) { return g.Precedes(a, b); };
    std::set<Node*, decltype(earlier)> pending(earlier);
    for (const auto& owned : g.nodes())
      if (IsTranspose(owned.get())) pending.insert(owned.get());
    Changes ch;
    ch.removing = [&](Node* n) { pending.erase(n); };
    bool changed = false;
    while (!pending.empty()) {
      Node* n = *pending.begin();
      pending.erase(pending.begin());
      if (!n->input(0)) continue;
      ch.touched.clear();
      for (auto rewrite : {CancelTransposes, TransposeGemmResult, FoldTransposeIntoConsumers}) {
        ASSIGN_OR_RETURN(bool fired, rewrite(g, n, ch, on));
        if (fired) {
          changed = true;
          break;
        }
      }
      for (Value* v : ch.touched) {
        if (!v) continue;
        if (v->producer() && IsTranspose(v->producer())) pending.insert(v->producer());
        for (const Use& u : v->uses())
          if (IsTranspose(u.node)) pending.insert(u.node);
      }
    }
    ASSIGN_OR_RETURN(bool loss_casts, on("loss-casts") ? FuseLossCasts(g) : StatusOr<bool>(false));
    ASSIGN_OR_RETURN(bool updates, FuseUpdates(g, ctx.world_size, on("cast-into-update"), on("refresh-into-update")));
    return changed || loss_casts || updates;
  }
};

}  // namespace

std::unique_ptr<Pass> CreateFusePass() { return std::make_unique<FusePass>(); }

Status CheckFuseRewriteNames(const std::vector<std::string>& names) {
  for (const std::string& r : names)
    if (!std::count(std::begin(kRewrites), std::end(kRewrites), r)) {
      std::string known;
      for (const char* k : kRewrites) known += StrCat(known.empty() ? "" : ", ", k);
      return InvalidArgument("--disable-fuse-rewrite ", r, ": no such fuse rewrite (", known, ")");
    }
  return Status::OK();
}

}  // namespace dsc
