// offload-optimizer: with zero_optimization.offload_optimizer.device "nvme" (ZeRO 1-3), the
// optimizer states and the master weights leave memory. Each lives in the rank's swap file
// (runtime/nvme_swap.h) and the step program brings it in for its update and writes it back
// (ir/swap_ops.h), so the arena holds only the tensors of the updates in the swap window, not all
// of them. DeepSpeed's optimizer swappers do the same: each swapped sub-group carries its fp32
// partition with its states (OptimizerStateSwapInfo's first tensor is the parameter).
//
// Contract. Input: the step program after optimizer and zero-partition (and schedule-collectives):
// its optimizer updates (ops::IsOptimizerUpdate) read the optimizer states (StateKind::kOptimizer)
// and the master weights (StateKind::kMaster, fp16/bf16) as graph inputs; an optimizer state is
// read by nothing else, a master also by the refresh of its half parameter after an update (the
// unit's "tail", before the next update). Output: those tensors are no graph inputs of any
// program; for each update U in program order (a "unit"), with swapped tensors S1..Sk:
//   X_i = SwapIn<state=S_i>()  ...  SwapInWait(X_i)  U(..., X_i, ...)  [tail(X_i)]
//   SwapOut(X_i)  ...  SwapOutWait(X_i)
// Placement, from offload_optimizer's keys as DeepSpeed's optimizer swappers read them:
//   buffer_count: at most this many units hold swapped-in states at once (from a SwapIn to its
//     SwapOutWait): the next SwapIn waits for the oldest write-back when the window is full.
//   pipeline_read: unit k+1's SwapIns are issued right after unit k's SwapInWaits, so the read
//     overlaps U_k (DeepSpeed's PipelinedOptimizerSwapper); false: each unit's reads are issued
//     right before it.
//   pipeline_write: a unit's SwapOutWaits are deferred until the window needs the room or the
//     program ends, so writes overlap later updates; false: each SwapOut is waited for at once.
// A tensor read by two units (Lamb's LambMoments and LambApply) is written back and waited for
// before it is read again. Unchanged when the config does not offload to nvme, or when the step
// already swaps (a second run).
#include <algorithm>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "frontend/config/ds_config.h"
#include "ir/dsc_ops.h"
#include "ir/swap_ops.h"
#include "passes/pass.h"

namespace dsc {
namespace {

// A reader of a swapped master after its update: input `input` of `node` reads states[state].
struct TailUse {
  Node* node;
  size_t input;
  size_t state;
};

struct Unit {
  Node* update = nullptr;
  std::vector<size_t> inputs;  // the update's input indices that read swapped tensors
  std::vector<Value*> states;  // the graph inputs they read
  std::vector<Value*> swapped; // X_i, once the SwapIns exist
  std::vector<TailUse> tail;
  Node* last = nullptr;        // the update or its last tail reader: the write-backs follow it
};

class OffloadOptimizerPass : public Pass {
 public:
  const char* name() const override { return "offload-optimizer"; }

  StatusOr<bool> Run(Module& m, const PassContext& ctx) override {
    if (!ctx.config) return false;
    const ZeroConfig& z = ctx.config->zero;
    if (!z.enabled() || !z.offload_optimizer || z.offload_optimizer->device != "nvme") return false;
    const OffloadOptimizerConfig& off = *z.offload_optimizer;
    PlanProgram* step = m.FindProgram("step");
    if (!step || !step->graph) return FailedPrecondition("offload-optimizer: the module has no step program");
    Graph& g = *step->graph;
    for (const auto& n : g.nodes())
      if (n->domain() == kDscDomain && n->op_type() == ops::kSwapIn) return false;
    if (off.buffer_count < 1)
      return FailedPrecondition("zero_optimization.offload_optimizer.buffer_count: ", off.buffer_count,
                                "; swapping optimizer states needs at least 1 buffer");

    // The swapped tensors: optimizer states the step reads, each only through optimizer updates,
    // and master weights an update reads (their other readers are checked as tails below).
    std::set<Value*> swapped;
    for (const StateInfo& s : m.state) {
      if (s.kind != StateKind::kOptimizer && s.kind != StateKind::kMaster) continue;
      const char* what = s.kind == StateKind::kOptimizer ? "optimizer state" : "master weight";
      for (const PlanProgram& p : m.programs)
        if (&p != step && p.graph && p.graph->FindValue(s.name) && p.graph->FindValue(s.name)->is_graph_input())
          return Unimplemented("offload_optimizer.device \"nvme\": program '", p.name, "' reads ", what, " '", s.name,
                               "', which only the step's optimizer updates may read");
      Value* v = g.FindValue(s.name);
      if (!v || !v->is_graph_input()) continue;
      bool updated = false;
      for (const Use& u : v->uses()) {
        const bool update = ops::IsOptimizerUpdate(u.node->domain(), u.node->op_type());
        if (!update && s.kind == StateKind::kOptimizer)
          return Unimplemented("offload_optimizer.device \"nvme\": optimizer state '", s.name, "' is read by ",
                               u.node->Describe(), ", not only by optimizer updates");
        updated = updated || update;
      }
      if (!updated)
        return Unimplemented("offload_optimizer.device \"nvme\": master weight '", s.name,
                             "' is read by no optimizer update of the step");
      swapped.insert(v);
    }
    if (swapped.empty()) return false;

    std::vector<Unit> units;
    for (const auto& n : g.nodes()) {
      if (!ops::IsOptimizerUpdate(n->domain(), n->op_type())) continue;
      Unit u{n.get(), {}, {}, {}, {}, n.get()};
      for (size_t i = 0; i < n->num_inputs(); ++i)
        if (n->input(i) && swapped.count(n->input(i))) {
          u.inputs.push_back(i);
          u.states.push_back(n->input(i));
        }
      if (!u.states.empty()) units.push_back(std::move(u));
    }
    // A master's other readers join the last unit before them that updates it (the half
    // parameter's refresh follows its update); the unit's write-backs wait for them.
    for (Value* v : swapped)
      for (const Use& use : v->uses()) {
        if (ops::IsOptimizerUpdate(use.node->domain(), use.node->op_type())) continue;
        Unit* owner = nullptr;
        size_t state = 0;
        for (Unit& u : units)
          if (g.Precedes(u.update, use.node))
            for (size_t i = 0; i < u.states.size(); ++i)
              if (u.states[i] == v) owner = &u, state = i;
        if (!owner)
          return Unimplemented("offload_optimizer.device \"nvme\": master weight '", v->name(), "' is read by ",
                               use.node->Describe(), " before any optimizer update of it");
        owner->tail.push_back(TailUse{use.node, static_cast<size_t>(use.input_index), state});
        if (g.Precedes(owner->last, use.node)) owner->last = use.node;
      }
    for (size_t k = 0; k + 1 < units.size(); ++k)
      if (!g.Precedes(units[k].last, units[k + 1].update))
        return Unimplemented("offload_optimizer.device \"nvme\": ", units[k].last->Describe(), " reads a swapped "
                             "master weight of ", units[k].update->Describe(), " after the next update, ",
                             units[k + 1].update->Describe());

    const size_t window = static_cast<size_t>(off.buffer_count);
    size_t issued = 0, waited = 0, out_started = 0;  // units [waited, issued) hold swapped-in states
    std::map<Value*, size_t> last_writer;            // state -> the last unit that swaps it out
    Node* end_marker = nullptr;                      // null: append at the end of the program
    auto wait_out = [&](Node* before) {
      for (size_t i = 0; i < units[waited].swapped.size(); ++i) {
        Node* w = g.AddNode(ops::kSwapOutWait, {units[waited].swapped[i]}, {}, kDscDomain, "", before);
        w->SetAttr(ops::kSwapStateAttr, units[waited].states[i]->name());
      }
      ++waited;
    };
    // Issues unit u's reads before `before`, after the write-backs it depends on and the window allows.
    auto swap_in = [&](size_t u, Node* before) {
      for (Value* s : units[u].states)
        if (auto it = last_writer.find(s); it != last_writer.end())
          while (waited <= it->second) wait_out(before);
      while (issued - waited >= window) wait_out(before);
      for (Value* s : units[u].states) {
        Node* in = g.AddNode(ops::kSwapIn, {}, {g.UniqueName(s->name() + "@swapped")}, kDscDomain, "", before);
        in->SetAttr(ops::kSwapStateAttr, s->name());
        in->output(0)->type = s->type;
        units[u].swapped.push_back(in->output(0));
      }
      ++issued;
    };
    // A unit may be read ahead only when no unit still to be swapped out before it shares a state.
    auto may_prefetch = [&](size_t u) {
      for (Value* s : units[u].states)
        for (size_t j = out_started; j < u; ++j)
          if (std::count(units[j].states.begin(), units[j].states.end(), s)) return false;
      return true;
    };
    for (size_t k = 0; k < units.size(); ++k) {
      Unit& unit = units[k];
      Node* u = unit.update;
      if (issued <= k) swap_in(k, u);
      for (size_t i = 0; i < unit.swapped.size(); ++i) {
        Node* w = g.AddNode(ops::kSwapInWait, {unit.swapped[i]}, {}, kDscDomain, "", u);
        w->SetAttr(ops::kSwapStateAttr, unit.states[i]->name());
      }
      if (off.pipeline_read && k + 1 < units.size() && issued == k + 1 && may_prefetch(k + 1)) {
        if (issued - waited >= window && waited < k) wait_out(u);
        if (issued - waited < window) swap_in(k + 1, u);
      }
      for (size_t i = 0; i < unit.inputs.size(); ++i) u->SetInput(unit.inputs[i], unit.swapped[i]);
      for (const TailUse& t : unit.tail) t.node->SetInput(t.input, unit.swapped[t.state]);
      Node* after = g.NextNode(unit.last);
      for (size_t i = 0; i < unit.swapped.size(); ++i) {
        Node* o = g.AddNode(ops::kSwapOut, {unit.swapped[i]}, {}, kDscDomain, "", after);
        o->SetAttr(ops::kSwapStateAttr, unit.states[i]->name());
        last_writer[unit.states[i]] = k;
      }
      out_started = k + 1;
      if (!off.pipeline_write)
        while (waited <= k) wait_out(after);
    }
    while (waited < units.size()) wait_out(end_marker);
    for (Value* v : swapped) g.RemoveInput(v);
    if (ctx.log)
      *ctx.log << "offload-optimizer: " << swapped.size() << " optimizer states and master weights of " << units.size()
               << " updates swapped to nvme (buffer_count " << window << ", pipeline_read "
               << (off.pipeline_read ? "on" : "off") << ", pipeline_write " << (off.pipeline_write ? "on" : "off") << ")\n";
    return true;
  }
};

}  // namespace

std::unique_ptr<Pass> CreateOffloadOptimizerPass() { return std::make_unique<OffloadOptimizerPass>(); }

}  // namespace dsc
