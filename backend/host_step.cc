// Where a GPU rank with optimizer offload keeps each state, from what each program reads and writes.
#include "backend/host_step.h"

#include <set>

#include "ir/dsc_ops.h"
#include "ir/swap_ops.h"
#include "ir/tensor.h"

namespace dsc {
namespace {

// Whether `n` may write its input `i`. Only the in-place ops (ops::HasSideEffects) write inputs,
// and of theirs not the ones they only read: an update's or an Accumulate's gradient (input 1),
// an Assign's source, a Release's inputs (it has no effect on data). Any other input of such an
// op counts as written, so an op added later errs on the side of a copy too many.
bool MayWrite(const Node& n, size_t i) {
  if (!ops::HasSideEffects(n.domain(), n.op_type())) return false;
  const std::string& op = n.op_type();
  if (op == ops::kRelease) return false;
  if ((ops::IsOptimizerUpdate(n.domain(), op) || op == ops::kAccumulate || op == ops::kAssign) && i == 1) return false;
  return true;
}

// The states a program takes as inputs, those it may write, and of those the ones it writes only
// with ZeroFill.
struct Access {
  std::set<std::string> uses, writes, zero_fills_only;
};

Access AccessOf(const Graph& g, const Module& m) {
  Access a;
  for (const Value* in : g.inputs())
    if (m.FindState(in->name())) a.uses.insert(in->name());
  std::set<std::string> other_writes;
  for (const auto& n : g.nodes())
    for (size_t i = 0; i < n->num_inputs(); ++i) {
      const Value* v = n->input(i);
      if (!v || !a.uses.count(v->name()) || !MayWrite(*n, i)) continue;
      a.writes.insert(v->name());
      if (!(n->domain() == kDscDomain && n->op_type() == ops::kZeroFill)) other_writes.insert(v->name());
    }
  for (const std::string& s : a.writes)
    if (!other_writes.count(s)) a.zero_fills_only.insert(s);
  return a;
}

}  // namespace

StatusOr<HostStepLayout> HostStepLayoutOf(const Module& plan) {
  const PlanProgram* micro = plan.FindProgram("micro_step");
  const PlanProgram* step = plan.FindProgram("step");
  if (!micro || !micro->graph || !step || !step->graph)
    return FailedPrecondition("the plan has no micro_step/step programs to place the states of");
  const Access m = AccessOf(*micro->graph, plan), s = AccessOf(*step->graph, plan);
  const std::set<std::string> swapped = ops::SwappedStates(plan);
  HostStepLayout out;
  for (const StateInfo& st : plan.state) {
    if (swapped.count(st.name)) continue;  // no buffer: its bytes are in the swap file
    ASSIGN_OR_RETURN(const int64_t numel, NumElements(st.dims));
    const int64_t bytes = numel * static_cast<int64_t>(DTypeSize(st.dtype));
    const bool by_micro = m.uses.count(st.name) > 0, by_step = s.uses.count(st.name) > 0;
    const StatePlace place = !by_step ? StatePlace::kDevice : by_micro ? StatePlace::kMirrored : StatePlace::kHost;
    out.place[st.name] = place;
    if (place != StatePlace::kHost) out.device_bytes += bytes;
    if (place == StatePlace::kDevice) continue;
    out.host_bytes += bytes;
    if (place == StatePlace::kHost) continue;
    out.mirror_bytes += bytes;
    if (m.writes.count(st.name)) {
      out.to_host.push_back(st.name);
      out.to_host_bytes += bytes;
    }
    if (s.zero_fills_only.count(st.name)) {
      out.zero_on_device.push_back(st.name);
    } else if (s.writes.count(st.name)) {
      out.to_device.push_back(st.name);
      out.to_device_bytes += bytes;
    }
  }
  return out;
}

}  // namespace dsc
