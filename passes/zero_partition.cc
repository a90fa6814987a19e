// zero-partition: data parallelism and ZeRO stages 0-3 over the micro_step/step programs.
//
// Contract. Input: the two programs and state of accumulate + optimizer; ctx.world_size ranks;
// zero_optimization.stage from ctx.config. With one rank nothing changes (every stage is the
// plain run). Otherwise each parameter P of n elements is split into world chunks of
// c = ceil(n / world) elements (DeepSpeed partitions stage-3 parameters one by one the same way;
// we use the per-parameter layout at every stage so one rule covers all):
//  stage 0: step averages every accumulator over ranks (AllReduce avg) before the norm and the
//           update; everything else is replicated. With 1-bit Adam or Lamb these all-reduces carry
//           until_step (they stop after its freeze: the optimizer compresses its momentum); with
//           0/1 Adam also var_update_scaler (they run on its variance steps only); under fp16/bf16
//           also step_offset = 1 (they count the optimizer's calls, one made before training); an
//           overflow check (fp16) is then agreed over the ranks on the steps they skip (an
//           AllReduce<when_retired> of the verdict, as DeepSpeed's CheckOverflow does). With one
//           micro-step per step (gradient_accumulation_steps 1) the micro-step averages each
//           gradient instead, before accumulating it: the same numbers, and the reduction can
//           overlap the backward, as DeepSpeed's and DDP's do at the accumulation boundary.
//  stage 1: step reduce-scatters every accumulator (avg) into a chunk; the norm is the square
//           root of the all-reduced sum of the chunks' squares; the optimizer updates only this
//           rank's chunk (shard = 1) with chunk-sized states (a per-parameter scalar state,
//           NAdam's mu_product, stays whole: every rank advances it alike); AllGatherInPlace(P)
//           shares it.
//           Lamb's per-tensor sums of squares (the one lamb_sums tensor its LambApply nodes
//           read) are all-reduced (sum) the same way, so each trust ratio is the whole tensor's;
//           a LambMoments that reads a chunk (a sharded master, stage 3) gets chunk_of = n so
//           the chunk's padding does not count. Muon's momentum update (MuonMomentum's output,
//           a chunk like its momentum buffer) is all-gathered before MuonApply, which
//           orthogonalises the whole matrix on every rank and writes this rank's chunk
//           (chunk_of = n when the parameter or master it updates is itself the chunk): the
//           numbers of unsharded training, at the cost of one gather of n floats per matrix.
//  stage 2: as 1, but micro_step reduce-scatters each micro-batch's gradient into a chunk-sized
//           accumulator, so full gradients never persist.
//  stage 3: as 2, and every parameter is kept as a chunk only, except the persistent ones (as
//           DeepSpeed's engine decides, in parameter order: at most
//           stage3_param_persistence_threshold elements, while the persistent total stays within
//           stage3_model_persistence_threshold): micro_step all-gathers it before its first use
//           in the forward and again before its first use in the backward. The step updates the
//           chunk directly.
// Mixed precision: a parameter with a master copy (accumulate, optimizer) is updated through the
// master, which stages 1-3 shard like the optimizer states; the half compute copy is refreshed
// from the updated master chunk: Assign<shard=1>(P, Cast(master chunk)) then
// AllGatherInPlace(P) at stages 1-2 (the gather moves half, as DeepSpeed's), Assign(P chunk, ...)
// at stage 3. Gradients are reduced in communication_data_type: a Cast before the collective
// when it differs from the gradient's dtype (readers accept either). Cast nodes of step take their
// input's (possibly chunk) shape.
// Averaging over ranks composes with autodiff's 1/gas seed: the result is the gradient of the
// mean loss over train_batch_size samples, as on one rank. With gradient_allreduce_op "sum" every
// gradient reduction sums instead (world times that, as DeepSpeed's gradient_average = False).
// Every collective node records the world size it was compiled for (attribute `world`), so a plan
// run on another size fails.
// Checked at the end: each parameter's gradient is reduced exactly once per program run, and
// each sharded parameter is gathered exactly twice (forward, backward) in micro_step.
// The collectives are per tensor and synchronous here; schedule-collectives
// (passes/schedule_collectives.cc) groups them into buckets, places their issue and wait points,
// and applies stage 3's prefetch, reuse and live-parameter limits.
#include <map>
#include <unordered_map>

#include "frontend/config/ds_config.h"
#include "ir/dsc_ops.h"
#include "passes/pass.h"
#include "passes/precision_policy.h"
#include "passes/zero_layout.h"

namespace dsc {
namespace {

TensorType ChunkType(DType dtype, int64_t c) { return TensorType{dtype, Shape{Dim::Static(c)}}; }

// The earliest reader of `v` in g's order that `among` accepts: O(uses of v).
template <typename Pred>
Node* FindFirstUse(const Graph& g, const Value* v, Pred among) {
  Node* first = nullptr;
  for (const Use& u : v->uses())
    if (among(u.node) && (!first || g.Precedes(u.node, first))) first = u.node;
  return first;
}

// An optimizer update (ops::IsOptimizerUpdate: AdamStep, SGDStep, OptimStep, Lamb's, Muon's) of `v`.
auto IsUpdateOf(const Value* v) {
  return [v](const Node* u) { return ops::IsOptimizerUpdate(u->domain(), u->op_type()) && u->input(0) == v; };
}

template <typename Pred>
Node* FindLastUse(const Graph& g, const Value* v, Pred among) {
  Node* last = nullptr;
  for (const Use& u : v->uses())
    if (among(u.node) && (!last || g.Precedes(last, u.node))) last = u.node;
  return last;
}

class ZeroPartitionPass : public Pass {
 public:
  const char* name() const override { return "zero-partition"; }

  StatusOr<bool> Run(Module& m, const PassContext& ctx) override {
    if (!ctx.config) return FailedPrecondition("zero-partition needs the DeepSpeed config");
    const int stage = ctx.config->zero.stage;
    world_ = ctx.world_size;
    if (world_ <= 1) return false;
    PlanProgram* micro = m.FindProgram("micro_step");
    PlanProgram* step = m.FindProgram("step");
    if (!micro || !step) return FailedPrecondition("zero-partition runs after accumulate and optimizer");
    Graph& mg = *micro->graph;
    Graph& sg = *step->graph;
    if (mg.metadata.count("dsc.zero_stage")) return false;  // already partitioned
    threshold_ = stage == 3 ? ctx.config->zero.param_persistence_threshold : 0;
    comm_dtype_ = PrecisionDTypeFromName(ctx.config->effective_communication_data_type());
    // gradient_allreduce_op "sum" (DeepSpeed's gradient_average = False): the ranks' gradients are
    // summed, not averaged, with no predivide or prescale.
    grad_op_ = ctx.config->gradient_allreduce_op == "sum" ? "sum" : "avg";

    std::vector<const StateInfo*> params;
    states_.clear();
    for (StateInfo& s : m.state) {
      states_.emplace(s.name, &s);  // first of a name, as a scan would find
      if (s.kind == StateKind::kParameter) params.push_back(&s);
    }
    micro_reduce_ = ReducesInMicroStep(stage, ctx.config->gradient_accumulation_steps);
    if (stage == 0) {
      for (const StateInfo* p : params)
        RETURN_IF_ERROR(micro_reduce_ ? ReduceInMicroStep(mg, p->name, ops::kAllReduce, 0) : Stage0(sg, p->name));
      if (IsOnebitOptimizer(*ctx.config)) {
        RetireAfterFreeze(mg, sg, ctx.config->optimizer, OnebitCallsBeforeTraining(*ctx.config));
        RETURN_IF_ERROR(AgreeOnOverflowWhenRetired(mg, sg));
      }
    } else {
      RETURN_IF_ERROR(ShardNorm(sg));
      RETURN_IF_ERROR(ShardLambSums(sg));
      int64_t persistent = 0;
      for (const StateInfo* p : params) {
        int64_t n = 1;
        for (int64_t d : p->dims) n *= d;
        const bool persists = n <= threshold_ && n <= ctx.config->zero.model_persistence_threshold - persistent;
        if (stage == 3 && persists) persistent += n;
        const bool shard_param = stage == 3 && !persists;
        RETURN_IF_ERROR(ShardGradient(mg, sg, p->name, n, /*in_micro_step=*/stage >= 2));
        RETURN_IF_ERROR(ShardOptimizer(sg, p->name, n, /*param_is_chunk=*/shard_param));
        if (shard_param) RETURN_IF_ERROR(ShardParameter(mg, sg, p->name, n));
      }
    }
    // Casts keep elementwise shapes: those reading a reduced chunk become chunks.
    for (const auto& n : sg.nodes())
      if (n->domain().empty() && n->op_type() == "Cast") n->output(0)->type.shape = n->input(0)->type.shape;
    mg.metadata["dsc.zero_stage"] = std::to_string(stage);
    sg.metadata["dsc.zero_stage"] = std::to_string(stage);
    RETURN_IF_ERROR(mg.TopoSort());
    RETURN_IF_ERROR(sg.TopoSort());
    RETURN_IF_ERROR(CheckCollectives(m, mg, sg, stage));
    if (ctx.log) *ctx.log << "zero-partition: stage " << stage << " over " << world_ << " ranks\n";
    return true;
  }

 private:
  Node* Collective(Graph& g, const std::string& op, const std::vector<Value*>& ins, const std::string& out,
                   TensorType type, Node* before) {
    std::vector<std::string> outs;
    if (!out.empty()) outs.push_back(g.UniqueName(out));
    Node* n = g.AddNode(op, ins, outs, kDscDomain, "", before);
    n->SetAttr("world", static_cast<int64_t>(world_));
    if (!out.empty()) n->output(0)->type = std::move(type);
    return n;
  }

  static Node* FirstNode(const Graph& g) { return g.nodes().empty() ? nullptr : g.nodes().front().get(); }

  // Rewires every reader of the accumulator `from` to the reduced `to`; ZeroFill keeps clearing
  // the accumulator itself, and `collective` keeps reading it.
  static void RewireReaders(Value* from, Value* to, const Node* collective) {
    std::vector<Use> uses = from->uses();
    for (const Use& u : uses)
      if (u.node != collective && u.node->op_type() != ops::kZeroFill)
        u.node->SetInput(static_cast<size_t>(u.input_index), to);
  }

  // `v` in the communication dtype (a Cast before `before` when it differs).
  Value* ForComm(Graph& g, Value* v, Node* before) {
    if (v->type.dtype == comm_dtype_ || !IsFloat(v->type.dtype)) return v;
    return g.AddCast(v, comm_dtype_, StrCat(v->name(), "@", DTypeName(comm_dtype_)), "", before);
  }

  // 1-bit Adam: DeepSpeed's engine stops all-reducing gradients once the optimizer freezes (each
  // rank's own gradient goes into its momentum, which CompressedAllReduce then reduces), so every
  // gradient all-reduce of stage 0 runs only up to the last uncompressed step. 0/1 Adam: only on
  // its variance steps up to its freeze (zoadam.py turns enable_backward_allreduce on for them).
  // Both count the optimizer's calls: step_offset is those DeepSpeed's fp16/bf16 wrapper made
  // before training (OnebitCallsBeforeTraining).
  static void RetireAfterFreeze(Graph& mg, Graph& sg, const OptimizerConfig& opt, int64_t step_offset) {
    const bool zoadam = opt.implementation == "ZeroOneAdam";
    for (Graph* g : {&mg, &sg})
      for (const auto& n : g->nodes())
        if (n->domain() == kDscDomain && n->op_type() == ops::kAllReduce) {
          n->SetAttr("until_step", zoadam ? opt.zoadam_last_variance_step() : opt.onebit_last_uncompressed_step());
          if (zoadam) n->SetAttr("var_update_scaler", opt.var_update_scaler);
          if (step_offset) n->SetAttr("step_offset", step_offset);
        }
  }

  // While the 1-bit optimizer's gradients are each rank's own, so is the overflow verdict, and
  // DeepSpeed's CheckOverflow.has_overflow then all-reduces it (MAX) over the world
  // (runtime/utils.py:308: `enable_backward_allreduce is False`), so every rank skips together.
  // Here: dsc::overflow = Greater(AllReduce<sum, when_retired>(Cast(the rank's verdict)), 0), the
  // AllReduce carrying the retiring ones' schedule and running exactly on the steps they skip.
  // The retiring AllReduces are in step, or in micro_step with one micro-step per step.
  Status AgreeOnOverflowWhenRetired(const Graph& mg, Graph& sg) {
    Value* local = sg.FindValue(ops::kOverflowOutput);
    if (!local || !local->producer()) return Status::OK();
    const Node* retired = nullptr;
    for (const Graph* g : {&mg, static_cast<const Graph*>(&sg)})
      for (const auto& n : g->nodes())
        if (n->domain() == kDscDomain && n->op_type() == ops::kAllReduce && n->GetInt("until_step", 0) > 0)
          retired = n.get();
    if (!retired) return Internal("zero-partition: no retiring gradient AllReduce for the overflow verdict");
    const std::vector<Use> uses = local->uses();
    Node* before = sg.NextNode(local->producer());
    RETURN_IF_ERROR(sg.RenameValue(local, sg.UniqueName("grad_overflow_local")));
    Value* as_float = sg.AddCast(local, DType::kFloat32, sg.UniqueName("grad_overflow_local@float"), "", before);
    Node* ar = Collective(sg, ops::kAllReduce, {as_float}, "grad_overflow_ranks", as_float->type, before);
    ar->SetAttr("op", std::string("sum"));
    for (const char* attr : {"until_step", "var_update_scaler", "step_offset"})
      if (retired->HasAttr(attr)) ar->SetAttr(attr, retired->GetInt(attr, 0));
    ar->SetAttr("when_retired", int64_t{1});
    Value* zero = sg.AddInitializer(sg.UniqueName("grad_overflow_zero"), Tensor::Scalar(DType::kFloat32, 0.0));
    Node* agree = sg.AddNode("Greater", {ar->output(0), zero}, {ops::kOverflowOutput}, "", "", before);
    agree->output(0)->type = local->type;
    for (const Use& u : uses) u.node->SetInput(static_cast<size_t>(u.input_index), agree->output(0));
    std::vector<Value*> outs;
    for (Value* v : sg.outputs()) outs.push_back(v == local ? agree->output(0) : v);
    sg.SetOutputs(outs);
    return Status::OK();
  }

  Status Stage0(Graph& sg, const std::string& p) {
    Value* acc = sg.FindValue(ops::GradAccName(p));
    if (!acc) return Internal("step has no accumulator for '", p, "'");
    Node* first = FirstNode(sg);
    Value* sent = ForComm(sg, acc, first);
    Node* ar = Collective(sg, ops::kAllReduce, {sent}, acc->name() + "@" + grad_op_, sent->type, first);
    ar->SetAttr("op", grad_op_);
    // The norm and the update read the average (or the sum).
    RewireReaders(acc, ar->output(0), sent == acc ? ar : sent->producer());
    return Status::OK();
  }

  // sqrt(AllReduce(sum of chunk squares)): the chunks tile each gradient exactly once.
  Status ShardNorm(Graph& sg) {
    for (const auto& n : sg.nodes()) {
      if (n->domain() != kDscDomain || n->op_type() != ops::kSumSquares) continue;
      Value* local = n->output(0);
      Node* after = nullptr;
      for (const Use& u : local->uses()) after = u.node;
      Node* ar = Collective(sg, ops::kAllReduce, {local}, local->name() + "@all", local->type, after);
      ar->SetAttr("op", std::string("sum"));
      std::vector<Use> uses = local->uses();
      for (const Use& u : uses)
        if (u.node != ar) u.node->SetInput(static_cast<size_t>(u.input_index), ar->output(0));
      return Status::OK();
    }
    return Internal("step has no SumSquares node");
  }

  // Lamb: the per-parameter sums its LambApply nodes read (one Concat output) become their sum
  // over ranks, in one AllReduce right after the Concat.
  Status ShardLambSums(Graph& sg) {
    Value* local = nullptr;
    for (const auto& n : sg.nodes())
      if (n->domain() == kDscDomain && n->op_type() == ops::kLambApply) {
        if (local && n->input(1) != local) return Internal("LambApply nodes read different sums");
        local = n->input(1);
      }
    if (!local) return Status::OK();
    Node* ar = Collective(sg, ops::kAllReduce, {local}, local->name() + "@all", local->type, sg.NextNode(local->producer()));
    ar->SetAttr("op", std::string("sum"));
    std::vector<Use> uses = local->uses();
    for (const Use& u : uses)
      if (u.node != ar) u.node->SetInput(static_cast<size_t>(u.input_index), ar->output(0));
    return Status::OK();
  }

  // A LambMoments or MuonApply among `p`'s updates whose target is a chunk: only n of them are the
  // tensor's.
  static void MarkChunk(Value* target, int64_t n) {
    for (const Use& u : target->uses())
      if (u.node->domain() == kDscDomain && u.input_index == 0 &&
          (u.node->op_type() == ops::kLambMoments || u.node->op_type() == ops::kMuonApply))
        u.node->SetAttr("chunk_of", n);
  }

  // Muon: the momentum update of `target`'s MuonMomentum is a chunk now (as its momentum
  // buffer); MuonApply reads it gathered whole.
  Status GatherMuonUpdate(Graph& sg, Value* target, int64_t n) {
    for (const Use& u : std::vector<Use>(target->uses())) {
      Node* momentum = u.node;
      if (momentum->domain() != kDscDomain || momentum->op_type() != ops::kMuonMomentum || u.input_index != 0) continue;
      Value* update = momentum->output(0);
      const TensorType full = update->type;
      update->type = ChunkType(full.dtype, ops::ChunkSize(n, world_));
      Node* gather = Collective(sg, ops::kAllGather, {update}, update->name() + "@gathered", full, sg.NextNode(momentum));
      for (const Use& r : std::vector<Use>(update->uses()))
        if (r.node != gather) r.node->SetInput(static_cast<size_t>(r.input_index), gather->output(0));
    }
    return Status::OK();
  }

  Status ShardGradient(Graph& mg, Graph& sg, const std::string& p, int64_t n, bool in_micro_step) {
    const int64_t c = ops::ChunkSize(n, world_);
    Value* acc_step = sg.FindValue(ops::GradAccName(p));
    if (!acc_step) return Internal("step has no accumulator for '", p, "'");
    if (!in_micro_step) {
      // Stage 1: the full accumulator persists; reduce-scatter it once per step.
      Node* first = FirstNode(sg);
      Value* sent = ForComm(sg, acc_step, first);
      Node* rs = Collective(sg, ops::kReduceScatter, {sent}, acc_step->name() + "@chunk",
                            ChunkType(sent->type.dtype, c), first);
      rs->SetAttr("op", grad_op_);
      RewireReaders(acc_step, rs->output(0), sent == acc_step ? rs : sent->producer());
      return Status::OK();
    }
    // Stage 2+: each micro-step's gradient is reduce-scattered into a chunk-sized accumulator.
    RETURN_IF_ERROR(ReduceInMicroStep(mg, p, ops::kReduceScatter, c));
    mg.FindValue(ops::GradAccName(p))->type = ChunkType(acc_step->type.dtype, c);
    acc_step->type = ChunkType(acc_step->type.dtype, c);
    return Reshard(ops::GradAccName(p), n);
  }

  // Each micro-step's gradient of `p` is averaged over ranks before it is accumulated: whole
  // (AllReduce) or into this rank's chunk of c elements (ReduceScatter).
  Status ReduceInMicroStep(Graph& mg, const std::string& p, const char* op, int64_t c) {
    Value* acc_micro = mg.FindValue(ops::GradAccName(p));
    if (!acc_micro) return Internal("micro_step has no accumulator for '", p, "'");
    const bool whole = std::string(op) == ops::kAllReduce;
    for (const Use& u : std::vector<Use>(acc_micro->uses())) {
      if (u.node->op_type() != ops::kAccumulate || u.input_index != 0) continue;
      Value* grad = ForComm(mg, u.node->input(1), u.node);
      Node* r = Collective(mg, op, {grad}, u.node->input(1)->name() + (whole ? "@" + grad_op_ : "@chunk"),
                           whole ? grad->type : ChunkType(grad->type.dtype, c), u.node);
      r->SetAttr("op", grad_op_);
      u.node->SetInput(1, r->output(0));
    }
    return Status::OK();
  }

  Status ShardOptimizer(Graph& sg, const std::string& p, int64_t n, bool param_is_chunk) {
    Value* param = sg.FindValue(p);
    Value* master = sg.FindValue(ops::MasterName(p));
    if (master) return ShardMaster(sg, param, master, n, param_is_chunk);
    // Every update of P (Lamb has two), the gather after the last.
    Node* last = param ? FindLastUse(sg, param, IsUpdateOf(param)) : nullptr;
    if (!last) return Internal("step has no optimizer update for '", p, "'");
    for (const Use& u : std::vector<Use>(param->uses())) {
      if (!IsUpdateOf(param)(u.node)) continue;
      if (!param_is_chunk) u.node->SetAttr("shard", int64_t{1});
      RETURN_IF_ERROR(ShardOptimizerStates(*u.node, n));
    }
    RETURN_IF_ERROR(GatherMuonUpdate(sg, param, n));
    if (param_is_chunk) MarkChunk(param, n);
    if (!param_is_chunk) Collective(sg, ops::kAllGatherInPlace, {param}, "", {}, sg.NextNode(last));
    return Status::OK();
  }

  // The master and the optimizer states become chunks, updated whole (no shard attribute); the
  // Assign that refreshes P from the master writes this rank's chunk of P, then P is gathered
  // (stages 1-2), or is itself the chunk (stage 3).
  Status ShardMaster(Graph& sg, Value* param, Value* master, int64_t n, bool param_is_chunk) {
    const int64_t c = ops::ChunkSize(n, world_);
    // The last such nodes in program order, found among the readers of master and param.
    Node* update = FindLastUse(sg, master, IsUpdateOf(master));
    Node* assign = param ? FindLastUse(sg, param, [&](const Node* u) {
      return u->domain() == kDscDomain && u->op_type() == ops::kAssign && u->input(0) == param;
    }) : nullptr;
    if (!update || !assign) return Internal("step has no master update and refresh for '", param->name(), "'");
    // Every update's states (Muon's momentum is MuonMomentum's, not the last update's).
    for (const Use& u : std::vector<Use>(master->uses()))
      if (IsUpdateOf(master)(u.node)) RETURN_IF_ERROR(ShardOptimizerStates(*u.node, n));
    RETURN_IF_ERROR(GatherMuonUpdate(sg, master, n));
    MarkChunk(master, n);
    master->type = ChunkType(master->type.dtype, c);
    RETURN_IF_ERROR(Reshard(master->name(), n));
    if (!param_is_chunk) {
      assign->SetAttr("shard", int64_t{1});
      Collective(sg, ops::kAllGatherInPlace, {param}, "", {}, sg.NextNode(assign));
    }
    return Status::OK();
  }

  // The update's own optimizer states (inputs 2.. that are optimizer state) become chunks, but
  // for a per-parameter scalar (ops::WholeStateInput: NAdam's mu_product), whole on every rank.
  Status ShardOptimizerStates(const Node& update, int64_t n) {
    const int whole = ops::WholeStateInput(update);
    for (size_t i = 2; i < update.num_inputs(); ++i) {
      if (static_cast<int>(i) == whole) continue;
      Value* v = update.input(i);
      auto it = v ? states_.find(v->name()) : states_.end();
      const StateInfo* st = it == states_.end() ? nullptr : it->second;
      if (!st || st->kind != StateKind::kOptimizer) continue;
      v->type = ChunkType(v->type.dtype, ops::ChunkSize(n, world_));
      RETURN_IF_ERROR(Reshard(v->name(), n));
    }
    return Status::OK();
  }

  // Stage 3: the parameter itself persists as a chunk and is gathered where the micro-step uses it.
  Status ShardParameter(Graph& mg, Graph& sg, const std::string& p, int64_t n) {
    const int64_t c = ops::ChunkSize(n, world_);
    Value* chunk = mg.FindValue(p);
    const TensorType full = chunk->type;
    // Backward nodes are the ones autodiff appended after the node producing the loss.
    const Value* loss = mg.FindValue(mg.training.loss);
    const Node* loss_node = loss ? loss->producer() : nullptr;
    auto backward = [&](const Node* u) { return loss_node && mg.Precedes(loss_node, u); };
    auto forward = [&](const Node* u) { return !backward(u); };
    Node* fwd_use = FindFirstUse(mg, chunk, forward);
    Node* bwd_use = FindFirstUse(mg, chunk, backward);
    std::vector<Use> uses = chunk->uses();
    if (fwd_use) {
      Node* g = Collective(mg, ops::kAllGather, {chunk}, p + "@gathered", full, fwd_use);
      for (const Use& u : uses)
        if (forward(u.node)) u.node->SetInput(static_cast<size_t>(u.input_index), g->output(0));
    }
    if (bwd_use) {
      Node* g = Collective(mg, ops::kAllGather, {chunk}, p + "@gathered_bwd", full, bwd_use);
      for (const Use& u : uses)
        if (backward(u.node)) u.node->SetInput(static_cast<size_t>(u.input_index), g->output(0));
    }
    chunk->type = ChunkType(full.dtype, c);
    if (Value* sp = sg.FindValue(p)) sp->type = chunk->type;
    return Reshard(p, n);
  }

  Status Reshard(const std::string& name, int64_t n) {
    auto it = states_.find(name);
    if (it == states_.end()) return Internal("no state tensor '", name, "'");
    it->second->dims = {ops::ChunkSize(n, world_)};
    it->second->shard_of_numel = n;
    return Status::OK();
  }

  // Each gradient reduced exactly once per program run; each sharded parameter gathered exactly
  // twice in the micro-step (its copies are freed by liveness after their last use).
  Status CheckCollectives(const Module& m, const Graph& mg, const Graph& sg, int stage) {
    std::map<std::string, int> reduced, gathered;
    for (const Graph* g : {&mg, &sg})
      for (const auto& n : g->nodes()) {
        if (n->domain() != kDscDomain) continue;
        const std::string& in = n->input(0) ? n->input(0)->name() : std::string();
        if ((n->op_type() == ops::kAllReduce || n->op_type() == ops::kReduceScatter) && in.find("::grad") != std::string::npos)
          ++reduced[in.substr(0, in.find("::grad"))];
        if (n->op_type() == ops::kAllGather) ++gathered[in];
      }
    // Accumulations fed by a micro-step collective, per accumulator: one scan, not one per parameter.
    std::unordered_map<std::string, int> reduced_in_micro;
    if (micro_reduce_)
      for (const auto& n : mg.nodes())
        if (n->op_type() == ops::kAccumulate && n->input(1)->producer() &&
            (n->input(1)->producer()->op_type() == ops::kReduceScatter ||
             n->input(1)->producer()->op_type() == ops::kAllReduce))
          ++reduced_in_micro[n->input(0)->name()];
    for (const StateInfo& s : m.state) {
      if (s.kind != StateKind::kParameter) continue;
      // A micro-step reduction reads the micro-step gradient value (named after the forward
      // value), so count the accumulations fed by a collective instead.
      int r = reduced[s.name];
      if (micro_reduce_) {
        auto it = reduced_in_micro.find(ops::GradAccName(s.name));
        if (it != reduced_in_micro.end()) r += it->second;
      }
      if (r != 1) return Internal("zero-partition: the gradient of '", s.name, "' is reduced ", r, " times, not once");
      if (s.shard_of_numel > 0 && stage == 3 && gathered[s.name] != 2 && gathered[s.name] != 1)
        return Internal("zero-partition: parameter '", s.name, "' is gathered ", gathered[s.name], " times");
    }
    return Status::OK();
  }

  std::unordered_map<std::string, StateInfo*> states_;  // m.state by name, for this run
  int world_ = 1;
  std::string grad_op_ = "avg";  // the gradients' reduction over ranks: "avg" | "sum"
  bool micro_reduce_ = false;  // gradients are reduced in micro_step (stage 2+, or stage 0 at gas 1)
  int64_t threshold_ = 0;
  DType comm_dtype_ = DType::kFloat32;
};

}  // namespace

std::unique_ptr<Pass> CreateZeroPartitionPass() { return std::make_unique<ZeroPartitionPass>(); }

}  // namespace dsc
