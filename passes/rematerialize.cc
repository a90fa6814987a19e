// rematerialize: activation checkpointing as a pass: the forward is cut into segments, and the
// activations a segment saves for the backward are dropped after the forward and recomputed from
// the segment's inputs just before the backward first needs them.
//
// Contract. Runs on the differentiated "train" program (after autodiff and sample-dropout, before
// accumulate) when the config has an activation_checkpointing section; otherwise, or when the
// graph records segments already (kRematSegmentsKey), it changes nothing.
//  - The forward is every node a graph output depends on; the rest is the backward autodiff
//    appended. A value is saved when the forward makes it and the backward reads it.
//  - Segments: number_checkpoints of them (automatic when null or < 1: the square root of the
//    number of forward nodes that make saved values, at least 2), cut where the saved bytes reach
//    each segment's share, each cut moved within half a segment to where the fewest bytes cross it
//    (between blocks, where only the residual stream does; the nearest of those within 10% of the
//    fewest). The last segment is not recomputed: the backward starts with it.
//  - A segment's values read by a later segment's forward are its checkpoints and stay; its
//    other saved values are dropped: copies of the nodes that make them (and of the nodes those
//    need inside the segment) go just before the first backward node that reads one, and the
//    backward reads the copies. The memory plan then frees the originals after their last forward
//    use.
//  - The copies compute exactly what the originals did (same kernels, same inputs), and a copied
//    Dropout names the original in its `replays` attribute so it draws the same mask: the
//    trajectory is bit for bit the one without checkpointing.
//  - Nodes that draw random numbers otherwise (RandomNormal & co.) or write state are never
//    copied; what they make stays saved.
//  - cpu_checkpointing: the checkpoints of the recomputed segments (what a later segment's forward
//    or the backward reads of their kept values, and what their copies read of the forward) of at
//    least kHostCheckpointMinBytes move to host memory in between: ToHost after the value's last
//    forward reader, FromHost before its first backward-side reader (a copy or the backward),
//    and those readers read the copy back (ir/host_copy_ops.h). The bytes come back as they went,
//    so the trajectory is still the same; the memory plan puts the ToHost outputs in a host arena.
// The graph's metadata records each segment (kRematSegmentsKey, JSON), which dsinspect prints;
// memory-plan adds the arena the program would need without the copies.
#include "passes/rematerialize.h"

#include <algorithm>
#include <cmath>
#include <tuple>
#include <unordered_map>
#include <unordered_set>

#include <nlohmann/json.hpp>

#include "frontend/config/ds_config.h"
#include "ir/dsc_ops.h"
#include "ir/host_copy_ops.h"
#include "passes/pass.h"

namespace dsc {
namespace {

inline constexpr const char* kTrainProgram = "train";

int64_t Bytes(const Value* v) {
  if (!v->type.shape || !IsStatic(*v->type.shape)) return 0;
  std::vector<int64_t> dims;
  for (const Dim& d : *v->type.shape) dims.push_back(d.value);
  StatusOr<int64_t> bytes = NumBytes(dims, v->type.dtype);
  return bytes.ok() ? *bytes : 0;
}

bool IsDropout(const Node& n) {
  return (n.op_type() == "Dropout" && n.domain().empty()) ||
         (n.op_type() == ops::kSampleDropout && n.domain() == kDscDomain);
}

// A copy of `n` computes the same outputs: no other randomness, no state written.
bool Copyable(const Node& n) {
  if (n.num_outputs() == 0) return false;
  static const std::unordered_set<std::string> random = {"RandomNormal", "RandomNormalLike", "RandomUniform",
                                                         "RandomUniformLike", "Multinomial", "Bernoulli"};
  if (n.domain().empty()) return !random.count(n.op_type());
  // Our forward ops that stand for a standard op (the recognize pass's, the import's StopGradient)
  // are as pure as it.
  return n.domain() != kDscDomain || IsDropout(n) || n.op_type() == ops::kGelu || n.op_type() == ops::kAttention ||
         n.op_type() == ops::kStopGradient;
}

class RematerializePass : public Pass {
 public:
  const char* name() const override { return "rematerialize"; }

  StatusOr<bool> Run(Module& m, const PassContext& ctx) override {
    if (!ctx.config || !ctx.config->activation_checkpointing.present) return false;
    PlanProgram* program = m.FindProgram(kTrainProgram);
    if (!program) return false;  // split already (accumulate ran): too late to checkpoint
    Graph& g = *program->graph;
    if (g.metadata.count(kRematSegmentsKey)) return false;
    if (g.training.gradients.empty())
      return FailedPrecondition("rematerialize needs the backward (run autodiff first)");

    // Forward: what the graph outputs depend on. Positions in the node list.
    std::vector<Node*> nodes;
    for (const auto& n : g.nodes()) nodes.push_back(n.get());
    std::unordered_map<const Node*, size_t> pos;
    for (size_t i = 0; i < nodes.size(); ++i) pos[nodes[i]] = i;
    std::unordered_set<const Value*> needed(g.outputs().begin(), g.outputs().end());
    std::unordered_set<const Node*> forward;
    for (auto it = nodes.rbegin(); it != nodes.rend(); ++it) {
      Node* n = *it;
      bool feeds = false;
      for (Value* o : n->outputs()) feeds = feeds || needed.count(o);
      if (!feeds) continue;
      forward.insert(n);
      for (Value* in : n->inputs())
        if (in) needed.insert(in);
    }
    std::vector<Node*> fw;
    for (Node* n : nodes)
      if (forward.count(n)) fw.push_back(n);
    if (fw.size() < 4) return false;
    std::unordered_map<const Node*, size_t> fpos;
    for (size_t i = 0; i < fw.size(); ++i) fpos[fw[i]] = i;

    // Per forward node: the bytes it saves for the backward, and where its outputs' forward
    // lifetimes end (for the bytes crossing each possible cut).
    std::vector<int64_t> saved(fw.size(), 0);
    std::vector<int64_t> cross_delta(fw.size() + 1, 0);
    int64_t saving_nodes = 0;
    for (size_t i = 0; i < fw.size(); ++i) {
      for (Value* o : fw[i]->outputs()) {
        size_t last = i;
        bool backward_use = false;
        for (const Use& u : o->uses()) {
          auto f = fpos.find(u.node);
          if (f != fpos.end()) last = std::max(last, f->second);
          else backward_use = true;
        }
        if (o->is_graph_output()) last = fw.size();
        if (backward_use) saved[i] += Bytes(o);
        cross_delta[i] += Bytes(o);  // live across cuts i .. last-1
        cross_delta[last] -= Bytes(o);
      }
      saving_nodes += saved[i] > 0;
    }
    std::vector<int64_t> crossing(fw.size(), 0);  // bytes live across the cut after fw[i]
    for (size_t i = 0, run = 0; i < fw.size(); ++i) crossing[i] = static_cast<int64_t>(run += cross_delta[i]);

    const auto& ac = ctx.config->activation_checkpointing;
    int64_t segments = ac.number_checkpoints.value_or(0);
    if (segments < 1) segments = std::max<int64_t>(2, std::llround(std::sqrt(static_cast<double>(saving_nodes))));
    segments = std::min<int64_t>(segments, static_cast<int64_t>(fw.size()) / 2);
    if (segments < 2) return false;

    // Cuts: the node after which each segment ends.
    int64_t total = 0;
    for (int64_t b : saved) total += b;
    std::vector<size_t> ends;
    {
      int64_t run = 0;
      size_t i = 0;
      for (int64_t s = 1; s < segments; ++s) {
        const int64_t target = total * s / segments;
        while (i + 1 < fw.size() && run + saved[i] < target) run += saved[i++];
        // Within half a segment of the target, the cut the fewest bytes cross (a block boundary,
        // where only the residual stream does); of those within 10% of it, the nearest.
        const size_t span = std::max<size_t>(1, fw.size() / static_cast<size_t>(segments) / 2);
        const size_t lo = std::max(ends.empty() ? 0 : ends.back() + 1, i > span ? i - span : 0);
        const size_t hi = std::min(fw.size() - 2, i + span);
        if (lo > hi) continue;
        int64_t least = crossing[lo];
        for (size_t j = lo; j <= hi; ++j) least = std::min(least, crossing[j]);
        size_t best = hi + 1;
        for (size_t j = lo; j <= hi; ++j) {
          const auto distance = [&](size_t x) { return x > i ? x - i : i - x; };
          if (10 * crossing[j] <= 11 * least && (best > hi || distance(j) < distance(best))) best = j;
        }
        ends.push_back(best);
      }
      ends.push_back(fw.size() - 1);
    }

    nlohmann::json report = nlohmann::json::array();
    bool changed = false;
    // cpu_checkpointing's candidates: the recomputed segments' checkpoints, in the order found.
    std::vector<Value*> checkpoints;
    std::unordered_set<const Value*> is_checkpoint;
    auto add_checkpoint = [&](Value* v) {
      if (v && v->producer() && forward.count(v->producer()) && is_checkpoint.insert(v).second) checkpoints.push_back(v);
    };
    size_t begin = 0;
    for (size_t s = 0; s < ends.size(); begin = ends[s] + 1, ++s) {
      const size_t end = ends[s];
      nlohmann::json seg = {{"first", fw[begin]->name()}, {"last", fw[end]->name()}, {"nodes", end - begin + 1}};
      auto in_segment = [&](const Node* n) {
        auto f = fpos.find(n);
        return f != fpos.end() && f->second >= begin && f->second <= end;
      };
      // Checkpoints: values read by a later segment's forward or output by the graph.
      std::unordered_set<const Value*> kept;
      int64_t kept_bytes = 0, dropped_bytes = 0;
      std::vector<Value*> dropped, kept_for_backward;
      for (size_t i = begin; i <= end; ++i) {
        for (Value* o : fw[i]->outputs()) {
          bool later = o->is_graph_output(), backward_use = false;
          for (const Use& u : o->uses()) {
            auto f = fpos.find(u.node);
            if (f == fpos.end()) backward_use = true;
            else if (f->second > end) later = true;
          }
          if (later || !Copyable(*fw[i])) {
            kept.insert(o);
            if (backward_use) {
              kept_bytes += Bytes(o);
              kept_for_backward.push_back(o);
            }
          } else if (backward_use) {
            dropped.push_back(o);
          }
        }
      }
      const bool last = s + 1 == ends.size();
      if (last || dropped.empty()) {
        for (Value* o : dropped) kept_bytes += Bytes(o);
        seg["recomputed"] = false;
        seg["saved_bytes"] = kept_bytes;
        report.push_back(seg);
        continue;
      }
      // The nodes to copy: the makers of the dropped values and, inside the segment, of what
      // they read that is not a checkpoint.
      std::unordered_set<const Node*> copy;
      std::vector<Value*> work = dropped;
      while (!work.empty()) {
        Value* v = work.back();
        work.pop_back();
        Node* p = v->producer();
        if (!p || !in_segment(p) || !copy.insert(p).second) continue;
        for (Value* in : p->inputs())
          if (in && !kept.count(in) && in->producer() && in_segment(in->producer())) work.push_back(in);
      }
      // Before the first backward reader of a dropped value.
      Node* before = nullptr;
      for (Value* v : dropped)
        for (const Use& u : v->uses())
          if (!forward.count(u.node) && (!before || pos[u.node] < pos[before])) before = u.node;
      std::unordered_map<const Value*, Value*> twin;
      nlohmann::json twins = nlohmann::json::array();
      int64_t copied = 0;
      for (size_t i = begin; i <= end; ++i) {
        Node* n = fw[i];
        if (!copy.count(n)) continue;
        std::vector<Value*> in;
        for (Value* x : n->inputs()) {
          auto t = x ? twin.find(x) : twin.end();
          in.push_back(t != twin.end() ? t->second : x);
          if (t == twin.end()) add_checkpoint(x);  // what the recomputation reads of the forward
        }
        std::vector<std::string> names;
        for (Value* o : n->outputs()) names.push_back(g.UniqueName(o->name() + "@remat"));
        Node* c = g.AddNode(n->op_type(), in, names, n->domain(), g.UniqueName(n->name() + "@remat"), before);
        for (const auto& [k, a] : n->attrs()) c->SetAttr(k, a);
        if (IsDropout(*n)) c->SetAttr("replays", n->GetString("replays", n->output(0)->name()));
        for (size_t o = 0; o < n->num_outputs(); ++o) {
          c->output(o)->type = n->output(o)->type;
          twin[n->output(o)] = c->output(o);
          twins.push_back({n->output(o)->name(), c->output(o)->name()});
        }
        ++copied;
      }
      // The backward reads the copies.
      for (Value* v : dropped) {
        dropped_bytes += Bytes(v);
        std::vector<Use> uses = v->uses();
        for (const Use& u : uses)
          if (!forward.count(u.node)) u.node->SetInput(u.input_index, twin.at(v));
      }
      seg["recomputed"] = true;
      seg["copied_nodes"] = copied;
      seg["saved_bytes"] = kept_bytes;
      seg["dropped_bytes"] = dropped_bytes;
      seg["twins"] = twins;
      report.push_back(seg);
      changed = true;
      for (Value* v : kept_for_backward) add_checkpoint(v);
    }
    if (!changed) return false;
    if (ac.cpu_checkpointing) {
      const auto [moved, bytes, small] = MoveToHost(g, forward, checkpoints);
      if (moved == 0 && ctx.warn)
        *ctx.warn << "dscompile: warning: activation_checkpointing.cpu_checkpointing: none of the " << small
                  << " checkpoints of the recomputed segments has " << kHostCheckpointMinBytes
                  << " bytes or more, so none moves to host memory\n";
      if (ctx.log)
        *ctx.log << "rematerialize: cpu_checkpointing: " << moved << " checkpoints (" << bytes
                 << " bytes) wait in host memory, " << small << " under " << kHostCheckpointMinBytes
                 << " bytes stay on the device\n";
    }
    g.metadata[kRematSegmentsKey] = report.dump();
    return true;
  }

 private:
  // cpu_checkpointing: each checkpoint large enough, read by the forward last before the backward
  // side first reads it, goes to host memory in between (see the contract).
  // Returns {values moved, their bytes, values too small to move}.
  static std::tuple<int64_t, int64_t, int64_t> MoveToHost(Graph& g, const std::unordered_set<const Node*>& forward,
                                                         const std::vector<Value*>& checkpoints) {
    int64_t moved = 0, moved_bytes = 0, small = 0;
    std::vector<Node*> nodes;
    for (const auto& n : g.nodes()) nodes.push_back(n.get());
    std::unordered_map<const Node*, size_t> pos;
    for (size_t i = 0; i < nodes.size(); ++i) pos[nodes[i]] = i;
    for (Value* v : checkpoints) {
      if (v->is_graph_output()) continue;
      if (Bytes(v) < kHostCheckpointMinBytes) {
        ++small;
        continue;
      }
      size_t last_forward = pos.at(v->producer()), first_backward = nodes.size();
      for (const Use& u : v->uses()) {
        if (forward.count(u.node)) last_forward = std::max(last_forward, pos.at(u.node));
        else first_backward = std::min(first_backward, pos.at(u.node));
      }
      if (first_backward == nodes.size() || first_backward <= last_forward) continue;
      Node* to = g.AddNode(ops::kToHost, {v}, {g.UniqueName(v->name() + "@host")}, kDscDomain,
                           g.UniqueName(v->name() + "@to_host"), nodes[last_forward + 1]);
      to->output(0)->type = v->type;
      Node* back = g.AddNode(ops::kFromHost, {to->output(0)}, {g.UniqueName(v->name() + "@device")}, kDscDomain,
                             g.UniqueName(v->name() + "@from_host"), nodes[first_backward]);
      back->output(0)->type = v->type;
      std::vector<Use> uses = v->uses();
      for (const Use& u : uses)
        if (!forward.count(u.node) && u.node != to) u.node->SetInput(u.input_index, back->output(0));
      ++moved;
      moved_bytes += Bytes(v);
    }
    return {moved, moved_bytes, small};
  }

};

}  // namespace

std::unique_ptr<Graph> WithoutHostCheckpoints(const Graph& g) {
  std::unique_ptr<Graph> out = g.Clone();
  std::vector<Node*> backs;
  for (const auto& n : out->nodes())
    if (ops::IsFromHost(*n) && n->input(0) && n->input(0)->producer() && ops::IsToHost(*n->input(0)->producer()))
      backs.push_back(n.get());
  for (Node* back : backs) {
    Node* to = back->input(0)->producer();
    out->ReplaceAllUsesWith(back->output(0), to->input(0));
    if (!out->RemoveNode(back).ok()) continue;
    if (to->output(0)->uses().empty()) (void)out->RemoveNode(to);
  }
  return out;
}

std::unique_ptr<Graph> WithoutRematerialization(const Graph& g) {
  auto meta = g.metadata.find(kRematSegmentsKey);
  if (meta == g.metadata.end()) return nullptr;
  const nlohmann::json segments = nlohmann::json::parse(meta->second, nullptr, /*allow_exceptions=*/false);
  if (!segments.is_array()) return nullptr;
  std::unique_ptr<Graph> out = WithoutHostCheckpoints(g);
  std::unordered_set<std::string> copies;
  for (const nlohmann::json& seg : segments) {
    if (!seg.is_object() || !seg.contains("twins")) continue;
    for (const nlohmann::json& pair : seg["twins"]) {
      if (!pair.is_array() || pair.size() != 2 || !pair[0].is_string() || !pair[1].is_string()) return nullptr;
      Value* original = out->FindValue(pair[0].get<std::string>());
      Value* copy = out->FindValue(pair[1].get<std::string>());
      if (!original && !copy) continue;  // both folded away by a later pass (fuse) alike
      if (!original || !copy || !copy->producer()) return nullptr;
      out->ReplaceAllUsesWith(copy, original);
      copies.insert(copy->name());
    }
  }
  std::vector<Node*> doomed;
  for (const auto& n : out->nodes())
    for (const Value* v : n->outputs())
      if (copies.count(v->name())) {
        doomed.push_back(n.get());
        break;
      }
  for (auto it = doomed.rbegin(); it != doomed.rend(); ++it)
    if (!out->RemoveNode(*it).ok()) return nullptr;
  out->metadata.erase(kRematSegmentsKey);
  return out;
}

std::unique_ptr<Pass> CreateRematerializePass() { return std::make_unique<RematerializePass>(); }

}  // namespace dsc
