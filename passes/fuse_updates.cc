// fuse's update rewrites (the rows cast-into-update and refresh-into-update of passes/fuse.cc's
// table): per parameter of a mixed-precision plan, the two Casts and the Assign the optimizer pass
// emits around its update (passes/optimizer.cc, "Mixed precision"), three kernels that each read
// and write the whole tensor, fold into the update, which reads the half gradient and writes the
// half parameter (its param_copy input, ir/dsc_ops.h) in its one pass over the master.
//
// They fire only when the result is bit for bit the same:
//  - cast-into-update: Cast(G -> float32) of a float16/bfloat16 G whose every reader takes it as
//    the gradient (input 1) of an update that reads any float gradient (ops::ReadsAnyFloatGradient),
//    and no node between the Cast and an update writes G (a state accumulator).
//  - refresh-into-update: the update writes a float32 master state M whole (no shard attribute),
//    Cast(M -> half) follows it and is read only by Assign<shard>(P, that Cast) of a half state P;
//    no node between the update and the Cast writes M, no node between the update and the Assign
//    reads or writes P (P now changes at the update), and P has M's element count (shard 0) or M
//    is P's chunk (shard 1: ZeRO 1-3, where the AllGatherInPlace after the Assign stays where it
//    is). A skipped step (the skip input) still refreshes P from M, as the Assign did.
// The offload passes run after fuse and see the fused update as any other update.
#include "passes/fuse_updates.h"
#include "passes/fuse_util.h"

#include <algorithm>
#include <vector>

#include "ir/dsc_ops.h"

namespace dsc {
namespace {

bool IsOnnxCast(const Node* n) { return n && n->domain().empty() && n->op_type() == "Cast"; }

int64_t Numel(const Value* v) {
  if (!v || !v->type.shape || !IsStatic(*v->type.shape)) return -1;
  int64_t n = 1;
  for (const Dim& d : *v->type.shape) n *= d.value;
  return n;
}

// True when a node strictly between `a` and `b` reads `v` and, when `writers_only`, may write its
// inputs (ops::HasSideEffects).
bool TouchedBetween(const Graph& g, const Value* v, const Node* a, const Node* b, bool writers_only) {
  for (const Use& u : v->uses()) {
    const Node* n = u.node;
    if (!g.Precedes(a, n) || !g.Precedes(n, b)) continue;
    if (!writers_only || ops::HasSideEffects(n->domain(), n->op_type())) return true;
  }
  return false;
}

// cast-into-update: `cast` widens a half G to float32 for updates only.
StatusOr<bool> CastIntoUpdate(Graph& g, Node* cast) {
  Value* x = cast->input(0);
  Value* y = cast->output(0);
  if (!x || !IsHalf(x->type.dtype) || y->type.dtype != DType::kFloat32 || y->uses().empty() || y->is_graph_output() ||
      NamedByTraining(g, y) || Numel(x) < 0 || Numel(x) != Numel(y))
    return false;
  for (const Use& u : y->uses())
    if (u.input_index != 1 || !ops::ReadsAnyFloatGradient(u.node->domain(), u.node->op_type()) ||
        TouchedBetween(g, x, cast, u.node, /*writers_only=*/true))
      return false;
  g.ReplaceAllUsesWith(y, x);
  RETURN_IF_ERROR(g.RemoveNode(cast));
  return true;
}

// refresh-into-update: `update` writes the float32 master M; Assign(P, Cast(M)) follows.
StatusOr<bool> RefreshIntoUpdate(Graph& g, Node* update, int world_size) {
  const int index = ops::ParamCopyInput(*update);
  Value* m = update->input(0);
  if (index < 0 || (static_cast<int>(update->num_inputs()) > index && update->input(static_cast<size_t>(index))) ||
      update->GetInt("shard", 0) != 0 || !m || !m->is_graph_input() || m->type.dtype != DType::kFloat32)
    return false;
  for (const Use& cu : m->uses()) {
    Node* cast = cu.node;
    if (!IsOnnxCast(cast) || !g.Precedes(update, cast)) continue;
    Value* half = cast->output(0);
    if (!IsHalf(half->type.dtype) || half->uses().size() != 1 || half->is_graph_output() || NamedByTraining(g, half))
      continue;
    Node* assign = half->uses()[0].node;
    if (assign->domain() != kDscDomain || assign->op_type() != ops::kAssign || half->uses()[0].input_index != 1)
      continue;
    Value* p = assign->input(0);
    if (!p || p == m || !p->is_graph_input() || p->type.dtype != half->type.dtype) continue;
    const bool shard = assign->GetInt("shard", 0) != 0;
    const int64_t world = assign->HasAttr("world") ? assign->GetInt("world", 1) : world_size;
    if (update->HasAttr("world") && assign->HasAttr("world") && update->GetInt("world", 1) != world) continue;
    const int64_t n = Numel(p), mn = Numel(m);
    if (n < 0 || mn != (shard ? ops::ChunkSize(n, world) : n)) continue;
    if (TouchedBetween(g, m, update, cast, /*writers_only=*/true) ||
        TouchedBetween(g, p, update, assign, /*writers_only=*/false))
      continue;
    if (assign->HasAttr("world") && !update->HasAttr("world")) update->SetAttr("world", world);
    if (shard) update->SetAttr("copy_shard", int64_t{1});
    RETURN_IF_ERROR(g.RemoveNode(assign));
    RETURN_IF_ERROR(g.RemoveNode(cast));  // m's uses change: return before the loop goes on
    while (update->num_inputs() <= static_cast<size_t>(index)) update->AddInput(nullptr);
    update->SetInput(static_cast<size_t>(index), p);
    return true;
  }
  return false;
}

}  // namespace

StatusOr<bool> FuseUpdates(Graph& g, int world_size, bool cast_into_update, bool refresh_into_update) {
  std::vector<Node*> casts, updates;
  for (const auto& n : g.nodes()) {
    if (IsOnnxCast(n.get())) casts.push_back(n.get());
    else if (ops::ParamCopyInput(*n) >= 0) updates.push_back(n.get());
  }
  bool changed = false;
  if (cast_into_update)
    for (Node* c : casts) {
      ASSIGN_OR_RETURN(bool fired, CastIntoUpdate(g, c));
      changed = changed || fired;
    }
  if (refresh_into_update)
    for (Node* u : updates) {
      ASSIGN_OR_RETURN(bool fired, RefreshIntoUpdate(g, u, world_size));
      changed = changed || fired;
    }
  return changed;
}

}  // namespace dsc
