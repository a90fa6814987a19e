// offload-param: with zero_optimization.offload_param.device "nvme" at ZeRO 3, the parameter
// chunks zero-partition made (parameters with shard_of_numel > 0, or on one rank the whole
// parameters it would chunk; persistent parameters stay resident, as DeepSpeed keeps them) leave
// memory: each lives in the rank's swap file
// (runtime/nvme_swap.h) and every program brings it in just before a node reads it (the
// AllGather/Start of the forward and backward gathers in micro_step, the update in step) through
// the swap ops of ir/swap_ops.h, so the arena holds at most `buffer_count` chunks at once. (On one
// rank no gather exists: every node that reads a parameter is a unit.)
//
// Contract. Input: the programs after zero-partition, schedule-collectives and offload-optimizer.
// Output: the chosen chunks are no graph inputs of any program; for each node N (a "unit", in
// program order) that reads chunks P1..Pk:
//   X_i = SwapIn<state=P_i>()  ...  SwapInWait(X_i)  N(..., X_i, ...)  [SwapOut(X_i)  SwapOutWait(X_i)]
// The write-back follows only a node that may write its inputs in place (ops::HasSideEffects: the
// optimizer updates, the Assign of a half parameter's refresh); a gather only reads its chunk, and
// the copy in memory dies after it, as DeepSpeed releases a swapped-in partition's buffer.
// Keys, as DeepSpeed's AsyncPartitionedParameterSwapper and stage3.py read them:
//   buffer_count: at most this many chunks are in memory at once (from a SwapIn to the unit's end);
//     the reads of the next units are issued as soon as the window has room (prefetch), never
//     past an earlier unit that writes the same chunk back.
//   buffer_size: elements per buffer; a chunk larger than that is refused (DeepSpeed asserts).
//   max_in_cpu: the first chunks, in state order, whose elements add up to at most this many stay
//     in memory (DeepSpeed swaps them in "permanently to CPU"; it decides per sub-group).
// Unchanged when the config does not offload parameters to nvme, or when a program already swaps a
// parameter (a second run).
#include <algorithm>
#include <set>
#include <string>
#include <vector>

#include "frontend/config/ds_config.h"
#include "ir/dsc_ops.h"
#include "ir/swap_ops.h"
#include "passes/pass.h"

namespace dsc {
namespace {

struct Unit {
  Node* node = nullptr;
  std::vector<size_t> inputs;  // the node's input indices that read swapped chunks
  std::vector<Value*> states;  // the chunks it reads, each once
  std::vector<Value*> swapped; // X_i, once the SwapIns exist
  bool writes = false;
};

// Swaps the `chosen` chunks `g` reads around their readers, with at most `window` in memory.
Status RewriteProgram(Graph& g, const std::set<std::string>& chosen, size_t window) {
  std::vector<Unit> units;
  for (const auto& n : g.nodes()) {
    Unit u;
    u.node = n.get();
    for (size_t i = 0; i < n->num_inputs(); ++i) {
      Value* v = n->input(i);
      if (!v || !v->is_graph_input() || !chosen.count(v->name())) continue;
      u.inputs.push_back(i);
      if (!std::count(u.states.begin(), u.states.end(), v)) u.states.push_back(v);
    }
    if (u.states.empty()) continue;
    if (u.states.size() > window)
      return FailedPrecondition("zero_optimization.offload_param.buffer_count: ", window, " buffers, but ",
                                n->Describe(), " reads ", u.states.size(), " offloaded parameter chunks at once; "
                                "raise buffer_count or lower zero_optimization.stage3_prefetch_bucket_size");
    u.writes = ops::HasSideEffects(n->domain(), n->op_type());
    units.push_back(std::move(u));
  }
  if (units.empty()) return Status::OK();
  std::set<Value*> inputs;
  for (const Unit& u : units) inputs.insert(u.states.begin(), u.states.end());

  size_t next = 0, done = 0, in_memory = 0;  // units [done, next) have their reads issued
  // A unit may be read ahead only when no unit before it still to run writes one of its chunks back.
  auto blocked = [&](size_t j) {
    for (size_t i = done; i < j; ++i)
      if (units[i].writes)
        for (Value* s : units[j].states)
          if (std::count(units[i].states.begin(), units[i].states.end(), s)) return true;
    return false;
  };
  auto issue = [&](Node* before) {
    while (next < units.size() && in_memory + units[next].states.size() <= window && !blocked(next)) {
      for (Value* s : units[next].states) {
        Node* in = g.AddNode(ops::kSwapIn, {}, {g.UniqueName(s->name() + "@swapped")}, kDscDomain, "", before);
        in->SetAttr(ops::kSwapStateAttr, s->name());
        in->output(0)->type = s->type;
        units[next].swapped.push_back(in->output(0));
      }
      in_memory += units[next].states.size();
      ++next;
    }
  };
  issue(g.nodes().front().get());
  for (size_t k = 0; k < units.size(); ++k) {
    Unit& u = units[k];
    if (next <= k) return Internal("offload-param: the reads of ", u.node->Describe(), " were not issued");
    for (size_t i = 0; i < u.states.size(); ++i) {
      Node* w = g.AddNode(ops::kSwapInWait, {u.swapped[i]}, {}, kDscDomain, "", u.node);
      w->SetAttr(ops::kSwapStateAttr, u.states[i]->name());
    }
    for (size_t i : u.inputs) {
      const size_t s = std::find(u.states.begin(), u.states.end(), u.node->input(i)) - u.states.begin();
      u.node->SetInput(i, u.swapped[s]);
    }
    Node* after = g.NextNode(u.node);
    if (u.writes)
      for (const char* op : {ops::kSwapOut, ops::kSwapOutWait})
        for (size_t i = 0; i < u.states.size(); ++i) {
          Node* o = g.AddNode(op, {u.swapped[i]}, {}, kDscDomain, "", after);
          o->SetAttr(ops::kSwapStateAttr, u.states[i]->name());
        }
    in_memory -= u.states.size();
    done = k + 1;
    issue(after);
  }
  for (Value* v : inputs) g.RemoveInput(v);
  return Status::OK();
}

class OffloadParamPass : public Pass {
 public:
  const char* name() const override { return "offload-param"; }

  StatusOr<bool> Run(Module& m, const PassContext& ctx) override {
    if (!ctx.config) return false;
    const ZeroConfig& z = ctx.config->zero;
    if (z.stage != 3 || !z.offload_param || z.offload_param->device != "nvme") return false;
    const OffloadParamConfig& off = *z.offload_param;
    std::set<std::string> chosen;
    // On one rank zero-partition keeps every parameter whole (its "chunk" is all of it), so the
    // persistent ones are told apart by its own rule; on more, they are the unchunked ones.
    const bool whole = ctx.world_size <= 1;
    int64_t offset = 0, resident = 0, persistent = 0;  // offset: stage3.py's flat_offset, every chunk counts
    for (const StateInfo& s : m.state) {
      if (s.kind != StateKind::kParameter) continue;
      int64_t numel = 1;
      for (int64_t d : s.dims) numel *= d;
      if (!whole && s.shard_of_numel == 0) continue;
      if (whole && numel <= z.param_persistence_threshold && numel <= z.model_persistence_threshold - persistent) {
        persistent += numel;
        continue;
      }
      offset += numel;
      if (offset <= off.max_in_cpu) {  // DeepSpeed keeps these in host memory
        resident += numel;
        continue;
      }
      if (numel > off.buffer_size)
        return FailedPrecondition("zero_optimization.offload_param.buffer_size: ", off.buffer_size,
                                  " elements, but the chunk of parameter '", s.owner.empty() ? s.name : s.owner,
                                  "' ('", s.name, "') has ", numel);
      chosen.insert(s.name);
    }
    for (const std::string& swapped : ops::SwappedStates(m))
      if (chosen.count(swapped)) return false;  // a second run
    if (chosen.empty()) return false;
    if (off.buffer_count < 1)
      return FailedPrecondition("zero_optimization.offload_param.buffer_count: ", off.buffer_count,
                                "; swapping parameters needs at least 1 buffer");
    for (PlanProgram& p : m.programs)
      if (p.graph) RETURN_IF_ERROR(RewriteProgram(*p.graph, chosen, static_cast<size_t>(off.buffer_count)));
    if (ctx.log)
      *ctx.log << "offload-param: " << chosen.size() << " parameter chunks swapped to nvme (buffer_count "
               << off.buffer_count << ", " << resident << " elements kept in memory by max_in_cpu)\n";
    return true;
  }
};

}  // namespace

std::unique_ptr<Pass> CreateOffloadParamPass() { return std::make_unique<OffloadParamPass>(); }

}  // namespace dsc
