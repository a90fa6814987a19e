// schedule-collectives: ZeRO's per-tensor collectives become bucketed, asynchronous ones with
// static issue and wait points, stage-3 prefetch, parameter reuse and the live-parameter limit.
//
// Contract. Input: micro_step and step after zero-partition (per-tensor AllReduce, ReduceScatter,
// AllGather and AllGatherInPlace nodes, metadata dsc.zero_stage); a plan without them (one rank)
// is unchanged, as is one already scheduled. Output: every per-tensor collective is a member of a
// bucket: one <Kind>Start node packs the members and issues one collective, one CollectiveWait
// waits and unpacks (ir/dsc_ops.h); bucket ids are unique in the module. Sizes come from
// zero_optimization and count elements, as DeepSpeed's do:
//  Buckets hold members of one kind, reduce op and dtype, at least one member each, in order
//  (all-reduces also of one until_step, var_update_scaler and step_offset, which the Start
//  carries: the 1-bit optimizers' warm-up all-reduces retire together,
//  kernels/common/collective_node.h; a when_retired all-reduce is never bucketed):
//   - reductions (AllReduce, ReduceScatter) in the order their inputs are produced (the
//     backward's order in micro_step), up to reduce_bucket_size elements;
//   - AllGatherInPlace (stages 1-2, step) in update order, up to allgather_bucket_size;
//   - AllGather (stage 3, micro_step) in order of first use, up to stage3_prefetch_bucket_size
//     and stage3_max_live_parameters.
//   A member joins the open bucket only while the bucket can still be issued after every
//   member's input exists and waited for before any member's result is read.
//  Placement. overlap_comm false: each Start is followed at once by its Wait (synchronous):
//   reductions where the bucket is complete, gathers right before the first use.
//   overlap_comm true: a reduction bucket is issued right after its last member is produced and
//   waited for when the next bucket is issued or where a result is first read, whichever comes
//   first (at most two in flight, like DeepSpeed's double-buffered reduce buckets). Gather bucket
//   k+1 is issued where bucket k is waited for, the first one at the start of the program: one
//   bucket of at most stage3_prefetch_bucket_size elements is fetched ahead of its use.
//   A node that only writes state (no outputs: Accumulate) and reads a reduced value runs right
//   after the last of its inputs is ready, usually the reduction's Wait, when no node in between
//   touches its inputs: reduced gradients and chunks die at once.
//  Stage 3. A parameter gathered for the forward and again for the backward (one gather read on
//   both sides of the loss is split in two first) keeps its forward copy when the elements of other parameters first needed between its last forward read and
//   its first backward read are at most stage3_max_reuse_distance; the backward gather goes.
//   Each gathered parameter has a Release after its last reader. A parameter counts as live from
//   its bucket's Start to its Release; the live elements never exceed stage3_max_live_parameters:
//   prefetches are delayed, then kept copies dropped (longest reuse distance first), until they
//   fit. Parameters read by one node together can exceed a too small limit; a warning names them.
// Checked at the end by VerifyBucketedCollectives (ir/verifier.h), as plan loading checks it:
// each Start has one Wait and no other reader; each gathered value one Release, after its last
// reader.
#include <algorithm>
#include <cstdint>
#include <map>
#include <set>
#include <unordered_map>

#include "frontend/config/ds_config.h"
#include "ir/dsc_ops.h"
#include "ir/verifier.h"
#include "passes/pass.h"

namespace dsc {
namespace {

int64_t NumelOf(const Value* v) {
  int64_t n = 1;
  for (const Dim& d : *v->type.shape) n *= d.value;
  return n;
}

// A per-tensor collective and where it may move to. Positions index the program's nodes as the
// pass found them; a "slot" s is the gap right before node s (slot N: the end).
struct Member {
  Node* node = nullptr;
  std::string kind;  // its op type
  std::string op;    // reductions: "avg" | "sum"
  Value* x = nullptr;
  Value* y = nullptr;  // null for AllGatherInPlace
  DType dtype = DType::kUndefined;
  int64_t numel = 0;  // elements of the whole tensor (n)
  int pos = 0;
  int ready = -1;  // the last node before it that touches its input: the Start goes after it
  int need = 0;    // the first node after it that reads its result: the Wait goes before it
  int last_use = -1;  // gathers: the last reader of the result
  // All-reduces of the 1-bit optimizers: the step after which, and the variance steps on which,
  // they communicate (0: always), counted in optimizer calls step_offset ahead of the steps.
  int64_t until_step = 0, var_update_scaler = 0, step_offset = 0;
};

// Gathered elements live at each slot: range add, the peak, and the latest slot of a range where
// a bucket would not fit, each in O(log n) (a per-slot array made these O(slots) per parameter).
class LiveElements {
 public:
  explicit LiveElements(int slots) {
    while (size_ < slots) size_ *= 2;
    max_.assign(2 * static_cast<size_t>(size_), 0);
    add_.assign(2 * static_cast<size_t>(size_), 0);
  }
  void Add(int lo, int hi, int64_t v) { Add(1, 0, size_ - 1, lo, hi, v); }  // slots [lo, hi]
  int64_t Peak() const { return max_[1]; }
  // The latest slot s in [lo, hi] with live[s] > limit, or -1.
  int LastAbove(int lo, int hi, int64_t limit) const { return LastAbove(1, 0, size_ - 1, lo, hi, limit, 0); }

 private:
  void Add(size_t n, int l, int r, int lo, int hi, int64_t v) {
    if (hi < l || r < lo) return;
    if (lo <= l && r <= hi) {
      max_[n] += v;
      add_[n] += v;
      return;
    }
    const int m = l + (r - l) / 2;
    Add(2 * n, l, m, lo, hi, v);
    Add(2 * n + 1, m + 1, r, lo, hi, v);
    max_[n] = add_[n] + std::max(max_[2 * n], max_[2 * n + 1]);
  }
  int LastAbove(size_t n, int l, int r, int lo, int hi, int64_t limit, int64_t above) const {
    if (hi < l || r < lo || above + max_[n] <= limit) return -1;
    if (l == r) return l;
    const int m = l + (r - l) / 2;
    const int right = LastAbove(2 * n + 1, m + 1, r, lo, hi, limit, above + add_[n]);
    return right >= 0 ? right : LastAbove(2 * n, l, m, lo, hi, limit, above + add_[n]);
  }
  int size_ = 1;
  std::vector<int64_t> max_, add_;  // max_[n]: the subtree's maximum including add_[n]
};

struct Bucket {
  std::vector<Member*> members;
  std::string kind, op;
  DType dtype = DType::kUndefined;
  int64_t until_step = 0, var_update_scaler = 0, step_offset = 0;
  int64_t elems = 0;
  int max_ready = -1, min_need = 0;
  int start = 0, wait = 0;  // slots
  int64_t id = 0;
};

// Inserted nodes in one slot run Releases first, then Starts, then Waits.
enum Phase { kReleasePhase = 0, kStartPhase = 1, kWaitPhase = 2 };

class ScheduleCollectivesPass : public Pass {
 public:
  const char* name() const override { return "schedule-collectives"; }

  StatusOr<bool> Run(Module& m, const PassContext& ctx) override {
    bool any = false;
    for (PlanProgram& p : m.programs)
      for (const auto& n : p.graph->nodes()) {
        if (n->domain() != kDscDomain) continue;
        if (!ops::KindOfStart(n->op_type()).empty()) return false;  // already scheduled
        any = any || IsPerTensor(*n);
      }
    if (!any) return false;
    if (!ctx.config) return FailedPrecondition("schedule-collectives needs the DeepSpeed config");
    zero_ = &ctx.config->zero;
    ctx_ = &ctx;
    for (PlanProgram& p : m.programs) {
      Status s = Schedule(*p.graph);
      if (!s.ok()) return s.WithContext(StrCat("program '", p.name, "'"));
    }
    if (ctx.log) {
      *ctx.log << "schedule-collectives: " << next_id_ << " buckets (reduce " << zero_->reduce_bucket_size
               << ", allgather " << zero_->allgather_bucket_size << " elements), overlap_comm "
               << (zero_->overlap_comm ? "on" : "off");
      if (peak_ > 0) *ctx.log << "; stage 3: at most " << peak_ << " gathered elements live";
      *ctx.log << "\n";
    }
    return true;
  }

 private:
  static bool IsPerTensor(const Node& n) {
    if (n.domain() != kDscDomain) return false;
    const std::string& op = n.op_type();
    if (op != ops::kAllReduce && op != ops::kReduceScatter && op != ops::kAllGather && op != ops::kAllGatherInPlace)
      return false;
    const DType t = n.input(0)->type.dtype;
    return t == DType::kFloat32 || t == DType::kFloat16 || t == DType::kBFloat16;
  }

  // A gathered parameter read on both sides of the loss through one gather (fuse lets the
  // backward's GEMMs read the forward's gathered weight instead of its transposed copy) gets its
  // own backward gather, like every other parameter, so that the reuse distance and the live
  // limit decide whether the forward copy is kept.
  static void SplitAcrossLoss(Graph& g) {
    const Value* loss = g.FindValue(g.training.loss);
    if (!loss || !loss->producer()) return;
    std::vector<Node*> gathers;
    std::unordered_map<const Node*, int> pos;
    int loss_pos = -1;
    for (const auto& n : g.nodes()) {
      const int i = static_cast<int>(pos.size());
      pos[n.get()] = i;
      if (n.get() == loss->producer()) loss_pos = i;
      if (loss_pos < 0 && n->domain() == kDscDomain && n->op_type() == ops::kAllGather) gathers.push_back(n.get());
    }
    for (Node* gather : gathers) {
      Value* y = gather->output(0);
      std::vector<Use> late;
      Node* first = nullptr;  // the first backward reader: the new gather goes before it
      for (const Use& u : y->uses())
        if (pos.at(u.node) > loss_pos) {
          late.push_back(u);
          if (!first || pos.at(u.node) < pos.at(first)) first = u.node;
        }
      if (late.empty() || late.size() == y->uses().size()) continue;
      Node* again = g.AddNode(ops::kAllGather, {gather->input(0)}, {g.UniqueName(y->name() + "_bwd")}, kDscDomain, "", first);
      again->output(0)->type = y->type;
      for (const auto& [name, attr] : gather->attrs()) again->SetAttr(name, attr);
      for (const Use& u : late) u.node->SetInput(static_cast<size_t>(u.input_index), again->output(0));
    }
  }

  Status Schedule(Graph& g) {
    SplitAcrossLoss(g);
    std::vector<Node*> nodes;
    for (const auto& n : g.nodes()) nodes.push_back(n.get());
    const int num = static_cast<int>(nodes.size());
    std::unordered_map<const Node*, int> pos;
    for (int i = 0; i < num; ++i) pos[nodes[i]] = i;
    std::vector<std::unique_ptr<Member>> all;
    for (Node* n : nodes) {
      // The overflow verdict of a 1-bit plan under fp16 (one flag that communicates only once
      // the gradient all-reduces retire) stays a collective of its own.
      if (!IsPerTensor(*n) || n->GetInt("when_retired", 0) != 0) continue;
      auto mem = std::make_unique<Member>();
      mem->node = n;
      mem->kind = n->op_type();
      mem->op = n->GetString("op", "");
      mem->x = n->input(0);
      mem->y = n->num_outputs() ? n->output(0) : nullptr;
      mem->dtype = mem->x->type.dtype;
      mem->numel = NumelOf(mem->kind == ops::kAllGather ? mem->y : mem->x);
      mem->pos = pos.at(n);
      mem->until_step = n->GetInt("until_step", 0);
      mem->var_update_scaler = n->GetInt("var_update_scaler", 0);
      mem->step_offset = n->GetInt("step_offset", 0);
      if (const Node* prod = mem->x->producer(); prod && IsPerTensor(*prod))
        return Internal("the input of ", n->Describe(), " comes from another collective, ", prod->Describe());
      if (world_ == 0) world_ = n->GetInt("world", 1);
      if (n->GetInt("world", 1) != world_)
        return Internal(n->Describe(), " is compiled for ", n->GetInt("world", 1), " ranks, others for ", world_);
      all.push_back(std::move(mem));
    }
    if (all.empty()) return Status::OK();
    for (auto& mem : all) Bounds(*mem, pos, num);

    std::vector<Member*> reductions, gathers;
    for (auto& mem : all) (mem->kind == ops::kAllGather ? gathers : reductions).push_back(mem.get());
    std::vector<Bucket> buckets = BucketReductions(reductions, num);
    std::map<Node*, Value*> dropped;  // a backward gather whose parameter keeps its forward copy -> that copy
    if (!gathers.empty()) {
      ASSIGN_OR_RETURN(std::vector<Bucket> gb, ScheduleGathers(gathers, num, &dropped));
      for (Bucket& b : gb) buckets.push_back(std::move(b));
    }
    return Rewrite(g, nodes, pos, buckets, dropped);
  }

  // Where the member's Start and Wait may go.
  static void Bounds(Member& mem, const std::unordered_map<const Node*, int>& pos, int num) {
    auto touch_before = [&](const Value* v) {
      int last = -1;
      if (v->producer()) last = std::max(last, pos.at(v->producer()) < mem.pos ? pos.at(v->producer()) : -1);
      for (const Use& u : v->uses())
        if (u.node != mem.node && pos.at(u.node) < mem.pos) last = std::max(last, pos.at(u.node));
      return last;
    };
    mem.ready = touch_before(mem.x);
    mem.need = num;
    if (mem.y) {
      for (const Use& u : mem.y->uses()) {
        mem.need = std::min(mem.need, pos.at(u.node));
        mem.last_use = std::max(mem.last_use, pos.at(u.node));
      }
      if (mem.y->is_graph_output()) mem.last_use = num;
    } else {
      for (const Use& u : mem.x->uses())
        if (u.node != mem.node && pos.at(u.node) > mem.pos) mem.need = std::min(mem.need, pos.at(u.node));
    }
  }

  // Reductions and in-place gathers: in production order, by size, while still placeable.
  std::vector<Bucket> BucketReductions(std::vector<Member*> members, int num) {
    std::stable_sort(members.begin(), members.end(),
                     [](const Member* a, const Member* b) { return std::tie(a->ready, a->pos) < std::tie(b->ready, b->pos); });
    std::vector<Bucket> done;
    std::map<std::tuple<std::string, std::string, DType, int64_t, int64_t, int64_t>, Bucket> open;
    for (Member* mem : members) {
      const int64_t cap = mem->kind == ops::kAllGatherInPlace ? zero_->allgather_bucket_size : zero_->reduce_bucket_size;
      auto key =
          std::make_tuple(mem->kind, mem->op, mem->dtype, mem->until_step, mem->var_update_scaler, mem->step_offset);
      auto it = open.find(key);
      if (it != open.end() && (it->second.elems + mem->numel > cap ||
                               std::max(it->second.max_ready, mem->ready) >= std::min(it->second.min_need, mem->need))) {
        done.push_back(std::move(it->second));
        open.erase(it);
        it = open.end();
      }
      if (it == open.end()) it = open.emplace(key, NewBucket(*mem, num)).first;
      Add(it->second, mem);
    }
    for (auto& [key, b] : open) done.push_back(std::move(b));
    // Issue order: where each bucket completes.
    for (Bucket& b : done) b.start = b.max_ready + 1;
    std::stable_sort(done.begin(), done.end(), [](const Bucket& a, const Bucket& b) {
      return std::tie(a.start, a.members.front()->ready, a.members.front()->pos) <
             std::tie(b.start, b.members.front()->ready, b.members.front()->pos);
    });
    for (size_t k = 0; k < done.size(); ++k) {
      Bucket& b = done[k];
      if (!zero_->overlap_comm) {
        b.wait = b.start;
      } else {
        b.wait = b.min_need;
        if (k + 1 < done.size()) b.wait = std::min(b.wait, done[k + 1].max_ready + 1);
      }
    }
    return done;
  }

  static Bucket NewBucket(const Member& mem, int num) {
    Bucket b;
    b.kind = mem.kind;
    b.op = mem.op;
    b.dtype = mem.dtype;
    b.until_step = mem.until_step;
    b.var_update_scaler = mem.var_update_scaler;
    b.step_offset = mem.step_offset;
    b.min_need = num;
    return b;
  }

  static void Add(Bucket& b, Member* mem) {
    b.members.push_back(mem);
    b.elems += mem->numel;
    b.max_ready = std::max(b.max_ready, mem->ready);
    b.min_need = std::min(b.min_need, mem->need);
  }

  // Stage-3 gathers: reuse decisions, buckets in order of first use, prefetch and the live limit.
  StatusOr<std::vector<Bucket>> ScheduleGathers(const std::vector<Member*>& gathers, int num,
                                                std::map<Node*, Value*>* dropped) {
    // A parameter's forward and backward gathers read the same chunk; the first is the forward.
    std::map<const Value*, std::vector<Member*>> by_chunk;
    for (Member* g : gathers) by_chunk[g->x].push_back(g);
    struct Candidate {
      Member* fwd;
      Member* bwd;
      int64_t distance;
    };
    // Gathered elements by the slot that needs them, for the distances: a prefix sum instead of
    // a pass over every gather per parameter.
    std::vector<std::pair<int, int64_t>> by_need;
    for (const Member* o : gathers) by_need.emplace_back(o->need, o->numel);
    std::sort(by_need.begin(), by_need.end());
    std::vector<int64_t> prefix(by_need.size() + 1, 0);
    for (size_t i = 0; i < by_need.size(); ++i) prefix[i + 1] = prefix[i] + by_need[i].second;
    auto needed_between = [&](int lo, int hi) {  // elements of gathers with lo < need < hi
      if (hi <= lo + 1) return int64_t{0};
      auto first = std::upper_bound(by_need.begin(), by_need.end(), std::make_pair(lo, INT64_MAX));
      auto end = std::lower_bound(by_need.begin(), by_need.end(), std::make_pair(hi, INT64_MIN));
      return prefix[static_cast<size_t>(end - by_need.begin())] - prefix[static_cast<size_t>(first - by_need.begin())];
    };
    std::vector<Candidate> keep;
    for (auto& [chunk, list] : by_chunk) {
      if (list.size() != 2) continue;
      std::sort(list.begin(), list.end(), [](const Member* a, const Member* b) { return a->need < b->need; });
      Member* fwd = list[0];
      Member* bwd = list[1];
      if (fwd->last_use >= bwd->need) continue;
      // Every gather needed strictly between, except the chunk's own two.
      int64_t distance = needed_between(fwd->last_use, bwd->need);
      for (const Member* own : list)
        if (own->need > fwd->last_use && own->need < bwd->need) distance -= own->numel;
      if (distance <= zero_->max_reuse_distance) keep.push_back(Candidate{fwd, bwd, distance});
    }
    // Longest distance last, so dropping from the back gives up the least useful copies first.
    std::stable_sort(keep.begin(), keep.end(), [](const Candidate& a, const Candidate& b) { return a.distance < b.distance; });
    const int64_t limit = zero_->max_live_parameters;
    for (;;) {
      std::set<const Member*> gone;
      std::map<const Member*, int> extended_last_use;
      for (const Candidate& c : keep) {
        gone.insert(c.bwd);
        extended_last_use[c.fwd] = c.bwd->last_use;
      }
      std::vector<Member*> live_members;
      for (Member* g : gathers)
        if (!gone.count(g)) live_members.push_back(g);
      std::vector<int> last_use;
      for (Member* g : live_members)
        last_use.push_back(extended_last_use.count(g) ? std::max(g->last_use, extended_last_use[g]) : g->last_use);
      int64_t peak = 0;
      std::vector<Bucket> buckets = PlaceGathers(live_members, last_use, num, &peak);
      if (peak <= limit || keep.empty()) {
        if (peak > limit && ctx_->warn)
          *ctx_->warn << "dscompile: warning: zero_optimization.stage3_max_live_parameters = " << limit
                      << " elements, but " << peak << " gathered elements must be live at once (parameters read "
                      << "together, or one larger than the limit)\n";
        dropped->clear();
        for (const Candidate& c : keep) (*dropped)[c.bwd->node] = c.fwd->y;
        peak_ = peak;
        return buckets;
      }
      keep.pop_back();
    }
  }

  // Buckets in order of first use; Start slots by prefetch, delayed to honour the live limit.
  std::vector<Bucket> PlaceGathers(std::vector<Member*> members, const std::vector<int>& last_use_in, int num,
                                   int64_t* peak) {
    std::map<const Member*, int> last_use;
    for (size_t i = 0; i < members.size(); ++i) last_use[members[i]] = std::max(last_use_in[i], members[i]->need);
    std::stable_sort(members.begin(), members.end(),
                     [](const Member* a, const Member* b) { return std::tie(a->need, a->pos) < std::tie(b->need, b->pos); });
    const int64_t cap = std::min(zero_->prefetch_bucket_size, zero_->max_live_parameters);
    std::vector<Bucket> buckets;
    for (Member* mem : members) {
      Bucket* b = buckets.empty() ? nullptr : &buckets.back();
      // Without overlap nothing is fetched ahead: a bucket holds what one node needs first.
      const bool same_chunk = b && std::any_of(b->members.begin(), b->members.end(),
                                               [&](const Member* o) { return o->x == mem->x; });
      if (!b || b->dtype != mem->dtype || b->elems + mem->numel > cap || same_chunk ||
          (!zero_->overlap_comm && mem->need != b->min_need) ||
          std::max(b->max_ready, mem->ready) >= std::min(b->min_need, mem->need)) {
        buckets.push_back(NewBucket(*mem, num));
        b = &buckets.back();
      }
      Add(*b, mem);
    }
    // live[s]: gathered elements live at slot s (a parameter from its Start through its last reader).
    LiveElements live(num + 1);
    const int64_t limit = zero_->max_live_parameters;
    int prev_wait = 0;
    for (size_t k = 0; k < buckets.size(); ++k) {
      Bucket& b = buckets[k];
      b.wait = b.min_need;
      int start = zero_->overlap_comm ? std::max(k == 0 ? 0 : prev_wait, b.max_ready + 1) : b.wait;
      start = std::min(start, b.wait);
      // The latest slot before the Wait where the whole bucket does not fit yet: start after it.
      if (start <= b.wait - 1)
        if (int s = live.LastAbove(start, b.wait - 1, limit - b.elems); s >= 0) start = s + 1;
      b.start = start;
      for (const Member* mem : b.members)
        if (b.start <= std::min(last_use.at(mem), num)) live.Add(b.start, std::min(last_use.at(mem), num), mem->numel);
      prev_wait = b.wait;
    }
    *peak = live.Peak();
    return buckets;
  }

  Status Rewrite(Graph& g, const std::vector<Node*>& nodes, const std::unordered_map<const Node*, int>& pos,
                 std::vector<Bucket>& buckets, const std::map<Node*, Value*>& dropped) {
    const int num = static_cast<int>(nodes.size());
    // (slot, phase, order) of every inserted node.
    std::vector<std::pair<std::tuple<int, int, int>, Node*>> inserted;
    std::set<Node*> removed;
    std::vector<Value*> gathered;  // AllGather Wait outputs: each gets a Release
    std::vector<Value*> reduced;   // AllReduce and ReduceScatter Wait outputs
    // The backward gathers of kept parameters go; their readers read the forward copy.
    for (const auto& [n, copy] : dropped) {
      g.ReplaceAllUsesWith(n->output(0), copy);
      removed.insert(n);
    }
    std::vector<std::pair<Value*, std::string>> renames;  // once the old values are gone
    // Ids in issue order.
    std::stable_sort(buckets.begin(), buckets.end(), [](const Bucket& a, const Bucket& b) { return a.start < b.start; });
    for (Bucket& b : buckets) {
      b.id = next_id_++;
      const ops::BucketLayout layout([&] {
        std::vector<int64_t> n;
        for (const Member* mem : b.members) n.push_back(mem->numel);
        return n;
      }(), world_);
      std::vector<Value*> xs;
      for (const Member* mem : b.members) xs.push_back(mem->x);
      const std::string start_op = ops::StartOpOf(b.kind);
      Node* start = g.AddNode(start_op, xs, {g.UniqueName(StrCat("dsc::bucket", b.id))}, kDscDomain);
      start->output(0)->type = TensorType{b.dtype, Shape{Dim::Static(layout.BufferElements(b.kind))}};
      start->SetAttr("world", world_);
      start->SetAttr("bucket", b.id);
      if (!b.op.empty()) start->SetAttr("op", b.op);
      if (b.until_step > 0) start->SetAttr("until_step", b.until_step);
      if (b.var_update_scaler > 0) start->SetAttr("var_update_scaler", b.var_update_scaler);
      if (b.step_offset != 0) start->SetAttr("step_offset", b.step_offset);
      std::vector<Value*> wait_in = {start->output(0)};
      std::vector<std::string> outs;
      if (b.kind == ops::kAllGatherInPlace) {
        for (Value* x : xs) wait_in.push_back(x);
      } else {
        for (const Member* mem : b.members) outs.push_back(g.UniqueName(mem->y->name() + "@bucket"));
      }
      Node* wait = g.AddNode(ops::kCollectiveWait, wait_in, outs, kDscDomain);
      wait->SetAttr("kind", b.kind);
      wait->SetAttr("world", world_);
      wait->SetAttr("bucket", b.id);
      for (size_t i = 0; i < outs.size(); ++i) {
        Value* old = b.members[i]->y;
        wait->output(i)->type = old->type;
        g.ReplaceAllUsesWith(old, wait->output(i));
        if (b.kind == ops::kAllGather) gathered.push_back(wait->output(i));
        if (b.kind == ops::kAllReduce || b.kind == ops::kReduceScatter) reduced.push_back(wait->output(i));
      }
      for (const Member* mem : b.members) removed.insert(mem->node);
      inserted.push_back({{b.start, kStartPhase, static_cast<int>(b.id)}, start});
      inserted.push_back({{b.wait, kWaitPhase, static_cast<int>(b.id)}, wait});
      for (size_t i = 0; i < outs.size(); ++i) renames.emplace_back(wait->output(i), b.members[i]->y->name());
    }
    for (Node* n : removed) RETURN_IF_ERROR(g.RemoveNode(n));
    for (auto& [v, name] : renames) RETURN_IF_ERROR(g.RenameValue(v, name));
    // Releases: after the last reader of each gathered parameter, one node per slot.
    std::map<int, std::vector<Value*>> release_at;
    for (Value* v : gathered) {
      int last = -1;
      for (const Use& u : v->uses()) {
        auto it = pos.find(u.node);
        if (it == pos.end()) return Internal("gathered '", v->name(), "' is read by an inserted node ", u.node->Describe());
        last = std::max(last, it->second);
      }
      if (last < 0) return Internal("gathered '", v->name(), "' has no reader");
      if (v->is_graph_output()) return Internal("gathered '", v->name(), "' is a graph output");
      release_at[last + 1].push_back(v);
    }
    for (auto& [slot, vals] : release_at) {
      Node* rel = g.AddNode(ops::kRelease, vals, {}, kDscDomain, StrCat("release@", vals.front()->name()));
      inserted.push_back({{slot, kReleasePhase, 0}, rel});
    }

    std::stable_sort(inserted.begin(), inserted.end(),
                     [](const auto& a, const auto& b) { return a.first < b.first; });
    std::vector<Node*> order;
    size_t next = 0;
    for (int s = 0; s <= num; ++s) {
      for (; next < inserted.size() && std::get<0>(inserted[next].first) == s; ++next) order.push_back(inserted[next].second);
      if (s < num && !removed.count(nodes[static_cast<size_t>(s)])) order.push_back(nodes[static_cast<size_t>(s)]);
    }
    HoistStateWrites(order, reduced);
    RETURN_IF_ERROR(g.Reorder(order));
    Status made = VerifyBucketedCollectives(g, world_);
    return made.ok() ? made : Internal("schedule-collectives made a schedule that breaks the contract: ", made.message());
  }

  // A node whose only effect is to write state (no outputs: Accumulate, Assign, ...) and that reads
  // a reduced value moves up to right after the last producer of its inputs, typically the Wait:
  // the reduced gradient or chunk then dies at once instead of living to the end of the program,
  // where accumulate put the Accumulates (before any bucket was placed). It moves only past nodes
  // that touch none of its inputs, so every value and state it reads or writes sees the same
  // accesses in the same order.
  static void HoistStateWrites(std::vector<Node*>& order, const std::vector<Value*>& reduced) {
    std::unordered_map<const Node*, int> at;
    for (size_t i = 0; i < order.size(); ++i) at[order[i]] = static_cast<int>(i);
    std::set<Node*> sinks;
    for (const Value* y : reduced)
      for (const Use& u : y->uses())
        if (u.node->num_outputs() == 0 && ops::HasSideEffects(u.node->domain(), u.node->op_type()) &&
            u.node->op_type() != ops::kCollectiveWait && u.node->op_type() != ops::kRelease &&
            ops::KindOfStart(u.node->op_type()).empty() && u.node->op_type() != ops::kAllGatherInPlace)
          sinks.insert(u.node);
    std::map<int, std::vector<Node*>> after;  // anchor position -> sinks moved right after it, in order
    std::set<Node*> moved;
    for (Node* sink : sinks) {
      const int here = at.at(sink);
      int anchor = -1;
      for (const Value* v : sink->inputs())
        if (v && v->producer()) anchor = std::max(anchor, at.at(v->producer()));
      bool commutes = anchor + 1 < here;
      for (const Value* v : sink->inputs()) {
        if (!commutes || !v) break;
        for (const Use& u : v->uses())
          if (u.node != sink && at.at(u.node) > anchor && at.at(u.node) < here) commutes = false;
      }
      if (!commutes) continue;
      after[anchor].push_back(sink);
      moved.insert(sink);
    }
    if (moved.empty()) return;
    std::vector<Node*> hoisted;
    hoisted.reserve(order.size());
    auto emit = [&](int anchor) {
      auto it = after.find(anchor);
      if (it == after.end()) return;
      std::sort(it->second.begin(), it->second.end(), [&](Node* a, Node* b) { return at.at(a) < at.at(b); });
      for (Node* n : it->second) hoisted.push_back(n);
    };
    emit(-1);
    for (size_t i = 0; i < order.size(); ++i) {
      if (!moved.count(order[i])) hoisted.push_back(order[i]);
      emit(static_cast<int>(i));
    }
    order = std::move(hoisted);
  }

  const ZeroConfig* zero_ = nullptr;
  const PassContext* ctx_ = nullptr;
  int64_t world_ = 0;
  int64_t next_id_ = 0;
  int64_t peak_ = 0;
};

}  // namespace

std::unique_ptr<Pass> CreateScheduleCollectivesPass() { return std::make_unique<ScheduleCollectivesPass>(); }

}  // namespace dsc
