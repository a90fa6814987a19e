// memory-plan: liveness analysis and arena placement; the pass records the plan in each program.
//
// Contract: every program gets metadata "dsc.memory_plan" (JSON: version, arena_bytes,
// unshared_bytes, unaliased_arena_bytes, an offset/size per node output and the aliased values;
// with ToHost nodes also host_slots and host_arena_bytes).
// Must run last: any later change to the graph invalidates it (the executor recomputes a plan that
// does not cover the graph, so stale plans are harmless).
#include "passes/memory_plan.h"
#include "passes/rematerialize.h"

#include <algorithm>
#include <iterator>
#include <map>
#include <nlohmann/json.hpp>
#include <unordered_map>

#include "ir/dsc_ops.h"
#include "ir/host_copy_ops.h"
#include "ir/swap_ops.h"
#include "kernels/common/slice_node.h"
#include "passes/pass.h"

namespace dsc {
namespace {

struct Interval {
  int64_t bytes;
  int begin, end;  // node indices, inclusive
  int64_t align = kArenaAlignment;  // the offset is a multiple of it
  int64_t offset = -1;
};

int64_t RoundUp(int64_t x, int64_t align) { return (x + align - 1) / align * align; }

// Offset ranges merged into disjoint runs [start, end): touching or overlapping ranges become one.
// A sorted vector: searches walk it far more often than values are added, and a walk over
// contiguous pairs is several times faster than one over tree nodes.
class Runs {
 public:
  void Add(int64_t lo, int64_t hi) {
    auto first = std::upper_bound(runs_.begin(), runs_.end(), lo,
                                  [](int64_t x, const Run& r) { return x < r.first; });
    if (first != runs_.begin() && std::prev(first)->second >= lo) --first;
    auto last = first;
    while (last != runs_.end() && last->first <= hi) ++last;
    if (first != last) {
      lo = std::min(lo, first->first);
      hi = std::max(hi, std::prev(last)->second);
      *first = {lo, hi};
      runs_.erase(std::next(first), last);
    } else {
      runs_.insert(first, {lo, hi});
    }
  }
  bool empty() const { return runs_.empty(); }

  // The runs in order of their starts, for one best-fit search.
  class Walk {
   public:
    explicit Walk(const Runs& r) : it_(r.runs_.data()), end_(r.runs_.data() + r.runs_.size()) {}
    bool done() const { return it_ == end_; }
    int64_t start() const { return it_->first; }
    int64_t end() const { return it_->second; }
    void Next() { ++it_; }

   private:
    const std::pair<int64_t, int64_t>*it_, *end_;
  };

 private:
  using Run = std::pair<int64_t, int64_t>;
  std::vector<Run> runs_;
};

// The bytes taken by placed values, indexed by lifetime: a segment tree over node positions. A
// placed [begin, end] x [offset, offset + bytes) goes into `own` of the O(log n) nodes covering
// [begin, end] and into `sub` of those nodes and all their ancestors. A value placed earlier
// overlaps [b, e] in time exactly when it is in `sub` of a node covering [b, e] or in `own` of one
// of those nodes' ancestors, so the occupied bytes over [b, e] are the union of O(log n) run sets;
// the free gaps are walked run by run instead of gathering and sorting the byte range of every
// overlapping value (values saved for backward overlap nearly all others: quadratic).
class Occupancy {
 public:
  explicit Occupancy(int positions) {
    while (size_ < positions) size_ *= 2;
    const size_t nodes = 2 * static_cast<size_t>(size_);
    own_.resize(nodes);
    sub_.resize(nodes);
    stamp_.assign(nodes, 0);
  }

  void Insert(int begin, int end, int64_t lo, int64_t hi) {
    ++epoch_;
    ForCover(begin, end, [&](size_t v) {
      own_[v].Add(lo, hi);
      for (size_t a = v; a >= 1 && stamp_[a] != epoch_; a >>= 1) {
        stamp_[a] = epoch_;
        sub_[a].Add(lo, hi);
      }
    });
  }

  // Best fit for `bytes` > 0 at a multiple of `align` over [begin, end]: the lowest such offset
  // in the smallest gap between occupied runs that holds it, else the end of the last run rounded
  // up (0 when nothing overlaps).
  int64_t BestFit(int begin, int end, int64_t bytes, int64_t align) {
    sets_.clear();
    ++epoch_;
    ForCover(begin, end, [&](size_t v) {
      if (!sub_[v].empty()) sets_.emplace_back(sub_[v]);
      for (size_t a = v >> 1; a >= 1 && stamp_[a] != epoch_; a >>= 1) {
        stamp_[a] = epoch_;
        if (!own_[a].empty()) sets_.emplace_back(own_[a]);
      }
    });
    // The sets' runs merged by start (a heap of each set's next run): the cursor is the end of
    // the occupied bytes so far, and a run starting beyond it closes a free gap.
    heap_.clear();
    for (size_t i = 0; i < sets_.size(); ++i) heap_.push_back({sets_[i].start(), i});
    std::make_heap(heap_.begin(), heap_.end(), std::greater<>());
    int64_t cursor = 0, best = -1, best_gap = -1;
    while (!heap_.empty()) {
      std::pop_heap(heap_.begin(), heap_.end(), std::greater<>());
      const auto [start, i] = heap_.back();
      Runs::Walk& w = sets_[i];
      const int64_t run_end = w.end();
      w.Next();
      if (w.done()) {
        heap_.pop_back();
      } else {
        heap_.back() = {w.start(), i};
        std::push_heap(heap_.begin(), heap_.end(), std::greater<>());
      }
      if (start > cursor) {
        const int64_t gap = start - cursor, at = RoundUp(cursor, align);
        if (start - at >= bytes && (best < 0 || gap < best_gap)) {
          best = at;
          best_gap = gap;
          if (gap == bytes) break;  // no later gap fits more tightly
        }
      }
      cursor = std::max(cursor, run_end);
    }
    return best >= 0 ? best : RoundUp(cursor, align);
  }

 private:
  // Calls f(node) for the canonical cover of positions [begin, end].
  template <typename F>
  void ForCover(int begin, int end, F f) {
    for (int l = begin + size_, r = end + size_ + 1; l < r; l >>= 1, r >>= 1) {
      if (l & 1) f(static_cast<size_t>(l++));
      if (r & 1) f(static_cast<size_t>(--r));
    }
  }

  int size_ = 1;
  std::vector<Runs> own_, sub_;
  std::vector<uint64_t> stamp_;  // last Insert/BestFit that visited the node
  uint64_t epoch_ = 0;
  std::vector<Runs::Walk> sets_;
  std::vector<std::pair<int64_t, size_t>> heap_;  // (next run's start, set)
};

// The in-place table: ops whose CPU kernels (kernels/cpu/unary.cc, trig.cc, binary.cc,
// activation.cc, activation_grad.cc; half dtypes through half_adaptor.cc, which widens every
// input before writing) and CUDA kernels (LaunchVecMap, LaunchBroadcast: one thread per output
// element) read each element of the donating input before writing the output at that index and
// at no other. `donors` lists the inputs that may give their slot: Sum/Max/Min on the CPU fold
// inputs 2.. into Y after writing op(X0, X1), so only X0 and X1 may; Where's condition is bool.
// tests/passes/memory_plan_test.cc runs every row in place and out of place and compares bits.
constexpr uint32_t kX = 1u, kXY = 3u, kWhereXY = 6u;
constexpr InPlaceOp kInPlaceTable[] = {
    // Unary: y[i] = f(x[i]).
    {"", "Neg", kX}, {"", "Abs", kX}, {"", "Sign", kX}, {"", "Sqrt", kX}, {"", "Reciprocal", kX},
    {"", "Exp", kX}, {"", "Log", kX}, {"", "Erf", kX}, {"", "Tanh", kX}, {"", "Sigmoid", kX},
    {"", "Relu", kX}, {"", "LeakyRelu", kX}, {"", "Clip", kX}, {"", "Cos", kX}, {"", "Sin", kX},
    {"", "Gelu", kX}, {"", "Mish", kX}, {"", "HardSwish", kX}, {"", "HardSigmoid", kX},
    {"", "Softplus", kX}, {"", "Elu", kX}, {"", "Selu", kX}, {"", "Softsign", kX},
    {"", "Celu", kX}, {"", "Atan", kX},
    // Binary with broadcasting: y[i] = op(a[ia(i)], b[ib(i)]); the donor is the full-shape side.
    {"", "Add", kXY}, {"", "Sub", kXY}, {"", "Mul", kXY}, {"", "Div", kXY}, {"", "Pow", kX},
    {"", "Sum", kXY}, {"", "Max", kXY}, {"", "Min", kXY}, {"", "Where", kWhereXY},
    // ai.dscompile.Gelu: the same ActivationKernel as ONNX Gelu (kernels/cpu/activation.cc).
    {kDscDomain, ops::kGelu, kX},
    // Pointwise gradients (dY, X) -> dX, all one shape.
    {kDscDomain, ops::kReluGrad, kXY}, {kDscDomain, ops::kLeakyReluGrad, kXY},
    {kDscDomain, ops::kSigmoidGrad, kXY}, {kDscDomain, ops::kTanhGrad, kXY},
    {kDscDomain, ops::kGeluGrad, kXY}, {kDscDomain, ops::kMishGrad, kXY},
    {kDscDomain, ops::kHardSwishGrad, kXY}, {kDscDomain, ops::kHardSigmoidGrad, kXY},
    {kDscDomain, ops::kSoftplusGrad, kXY}, {kDscDomain, ops::kEluGrad, kXY},
    {kDscDomain, ops::kSeluGrad, kXY}, {kDscDomain, ops::kSoftsignGrad, kXY},
    {kDscDomain, ops::kCeluGrad, kXY},
};

bool IsStaticValue(const Value* v) { return v && v->type.shape && IsStatic(*v->type.shape); }

// A Wait with one output (see MayWriteInPlace).
bool IsIdentityWait(const Node& n) {
  return n.domain() == kDscDomain && n.op_type() == ops::kCollectiveWait && n.num_inputs() == 1 && n.num_outputs() == 1;
}

}  // namespace

std::span<const InPlaceOp> InPlaceOps() { return kInPlaceTable; }

bool MayWriteInPlace(const Node& n, size_t input) {
  if (n.num_outputs() != 1 || input >= 32) return false;
  if (IsIdentityWait(n)) return input == 0;
  for (const InPlaceOp& r : kInPlaceTable)
    if (n.domain() == r.domain && n.op_type() == r.op) return (r.donors >> input) & 1u;
  return false;
}

std::optional<int64_t> ViewOffset(const Node& n) {
  const bool stop_gradient = ops::IsStopGradient(n);  // Identity's kernels (kernels/cpu/movement.cc)
  if ((!n.domain().empty() && !stop_gradient) || n.num_outputs() != 1 || n.num_inputs() == 0) return std::nullopt;
  const Value* x = n.input(0);
  const Value* y = n.output(0);
  if (!IsStaticValue(x) || !IsStaticValue(y) || x->type.dtype != y->type.dtype) return std::nullopt;
  const std::vector<int64_t> xd = DimValues(*x->type.shape), yd = DimValues(*y->type.shape);
  StatusOr<int64_t> xn = NumElements(xd), yn = NumElements(yd);
  if (!xn.ok() || !yn.ok()) return std::nullopt;
  const std::string& op = n.op_type();
  if (op == "Reshape" || op == "Flatten" || op == "Squeeze" || op == "Unsqueeze" || op == "Identity" || stop_gradient) {
    if (*xn != *yn) return std::nullopt;
    return 0;
  }
  if (op != "Slice" || *yn == 0) return std::nullopt;
  // The kernel's own geometry (kernels/common/slice_node.h), from constant inputs or opset-1 attributes.
  std::vector<int64_t> lists[4];
  if (n.num_inputs() == 1) {
    lists[0] = n.GetInts("starts");
    lists[1] = n.GetInts("ends");
    lists[2] = n.GetInts("axes");
  } else {
    for (size_t i = 1; i < n.num_inputs() && i <= 4; ++i) {
      const Value* v = n.input(i);
      if (!v) continue;
      if (!v->is_initializer()) return std::nullopt;
      lists[i - 1] = v->initializer().ToInt64Vector();
    }
  }
  StatusOr<SliceGeometry> geo = ResolveSlice(xd, yd, lists[0], lists[1], lists[2], lists[3]);
  if (!geo.ok()) return std::nullopt;
  // Y is one contiguous run of X when every axis it walks steps by Y's own contiguous stride.
  int64_t stride = 1;
  for (size_t d = yd.size(); d-- > 0;) {
    if (yd[d] > 1 && geo->strides[d] != stride) return std::nullopt;
    stride *= yd[d];
  }
  const int64_t offset = geo->base * static_cast<int64_t>(DTypeSize(x->type.dtype));
  if (offset % kArenaAlignment != 0) return std::nullopt;
  return offset;
}

namespace {

// Greedy best-fit by decreasing size; sets every interval's offset, returns the arena size.
// Best fit takes the smallest gap between the byte ranges of the placed values whose lifetimes
// overlap, the lowest such gap on ties, else the end of the highest range.
int64_t Place(std::vector<Interval>& intervals, int positions) {
  std::vector<size_t> order(intervals.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) { return intervals[a].bytes > intervals[b].bytes; });
  Occupancy occupied(positions);
  std::vector<std::pair<int64_t, int64_t>> busy;
  int64_t arena = 0;
  for (size_t i : order) {
    Interval& iv = intervals[i];
    if (iv.bytes > 0) {
      iv.offset = occupied.BestFit(iv.begin, iv.end, iv.bytes, iv.align);
      occupied.Insert(iv.begin, iv.end, iv.offset, iv.offset + iv.bytes);
    } else {
      // Empty values come last in the order. A gap of 0 bytes fits them, and such gaps (a range
      // starting where the ones below it end, an empty range placed before) are lost when ranges
      // merge into runs: they scan every placed value instead.
      busy.clear();
      for (size_t j : order) {
        const Interval& p = intervals[j];
        if (p.offset >= 0 && p.begin <= iv.end && iv.begin <= p.end) busy.emplace_back(p.offset, p.offset + p.bytes);
      }
      std::sort(busy.begin(), busy.end());
      int64_t best = -1, best_gap = -1, cursor = 0;
      for (const auto& [b, e] : busy) {
        const int64_t gap = b - cursor;
        if (gap >= 0 && (best < 0 || gap < best_gap)) {
          best = cursor;
          best_gap = gap;
        }
        cursor = std::max(cursor, e);
      }
      iv.offset = best >= 0 ? best : cursor;
    }
    arena = std::max(arena, iv.offset + iv.bytes);
  }
  return arena;
}

}  // namespace

StatusOr<MemoryPlan> ComputeMemoryPlan(const Graph& g, const MemoryPlanOptions& opts) {
  // Every node output: its aligned size, producer and last reader (graph outputs: the end).
  struct Val {
    const Value* v;
    int64_t bytes;
    int begin, last;
    int64_t align = kArenaAlignment;
    size_t group = 0;   // its interval: values that alias share one
    int64_t delta = 0;  // byte offset inside the group's interval
  };
  std::vector<Val> vals, host_vals;  // host_vals: ToHost outputs, in the host arena
  std::unordered_map<const Value*, size_t> index, host_index;
  int pos = 0;
  const int last = static_cast<int>(g.num_nodes());
  MemoryPlan plan;
  for (const auto& n : g.nodes()) {
    for (const Value* v : n->outputs()) {
      if (!v->type.shape || !IsStatic(*v->type.shape))
        return FailedPrecondition("memory planning needs static shapes: '", v->name(), "' is ", TypeToString(v->type));
      std::vector<int64_t> dims;
      for (const Dim& d : *v->type.shape) dims.push_back(d.value);
      StatusOr<int64_t> bytes = NumBytes(dims, v->type.dtype);
      int64_t aligned = 0;
      if (!bytes.ok() || !CheckedAdd(*bytes, kArenaAlignment - 1, &aligned))
        return OutOfRange("value '", v->name(), "' of type ", TypeToString(v->type), " is too large to plan");
      aligned = aligned / kArenaAlignment * kArenaAlignment;
      // Every offset is at most the sum of all sizes, so a sum that fits int64 keeps all of them in range.
      if (!CheckedAdd(plan.unshared_bytes, aligned, &plan.unshared_bytes))
        return OutOfRange("the values of the graph need more than 2^63 bytes (at '", v->name(), "')");
      if (ops::IsToHost(*n)) {
        if (v->is_graph_output())
          return FailedPrecondition("'", v->name(), "' lives in host memory (", n->Describe(), ") and cannot be a graph output");
        host_index[v] = host_vals.size();
        host_vals.push_back(Val{v, aligned, pos, pos});
        continue;
      }
      index[v] = vals.size();
      // Unused outputs still get written by their kernel, so they need bytes for that instant.
      vals.push_back(Val{v, aligned, pos, v->is_graph_output() ? last : pos});
      // A swapped state's buffer starts on a page so that O_DIRECT reads and writes reach it
      // without a bounce copy (runtime/nvme_swap.h).
      if (n->domain() == kDscDomain && n->op_type() == ops::kSwapIn) vals.back().align = ops::kSwapBufferAlignment;
    }
    for (const Value* v : n->inputs()) {
      auto it = v ? index.find(v) : index.end();
      if (it != index.end()) vals[it->second].last = std::max(vals[it->second].last, pos);
      auto h = v ? host_index.find(v) : host_index.end();
      if (h == host_index.end()) continue;
      // Kernels other than FromHost's take device pointers.
      if (!ops::IsFromHost(*n))
        return FailedPrecondition(n->Describe(), " reads '", v->name(), "', which lives in host memory (a ToHost output): only FromHost may");
      host_vals[h->second].last = std::max(host_vals[h->second].last, pos);
    }
    ++pos;
  }

  // One interval per group of values sharing bytes: the first value's size and producer, the
  // last read of any member. A node output joins its input's group when it is a view of it, or
  // when it writes over it in place and no member of that group is read after this node.
  std::vector<Interval> intervals;
  auto own_group = [&](Val& o) {
    o.group = intervals.size();
    intervals.push_back(Interval{o.bytes, o.begin, o.last, o.align});
  };
  auto join = [&](Val& o, const Val& in, int64_t delta, MemoryPlan::AliasKind kind) {
    o.group = in.group;
    o.delta = delta;
    intervals[o.group].end = std::max(intervals[o.group].end, o.last);
    plan.aliases[o.v->name()] = MemoryPlan::Alias{in.v->name(), kind};
  };
  pos = 0;
  for (const auto& n : g.nodes()) {
    if (ops::IsToHost(*n)) {  // its output is in the host arena
      ++pos;
      continue;
    }
    const size_t first_out = n->num_outputs() ? index.at(n->output(0)) : 0;
    bool aliased = false;
    if (opts.aliasing && n->num_outputs() == 1 && n->num_inputs() > 0) {
      Val& o = vals[first_out];
      auto in_arena = [&](const Value* v) { return v ? index.find(v) : index.end(); };
      if (std::optional<int64_t> off = ViewOffset(*n)) {
        auto it = in_arena(n->input(0));
        if (it != index.end()) {
          const Val& in = vals[it->second];
          if (in.delta + *off + o.bytes <= intervals[in.group].bytes) {
            join(o, in, in.delta + *off, MemoryPlan::AliasKind::kView);
            aliased = true;
          }
        }
      }
      for (size_t k = 0; !aliased && k < n->num_inputs(); ++k) {
        if (!MayWriteInPlace(*n, k)) continue;
        auto it = in_arena(n->input(k));
        if (it == index.end()) continue;
        const Val& in = vals[it->second];
        // A one-output Wait as large as its B unpacks onto the same elements (any shape).
        const bool same_shape = IsIdentityWait(*n) || DimValues(*in.v->type.shape) == DimValues(*o.v->type.shape);
        if (in.v->type.dtype != o.v->type.dtype || in.bytes != o.bytes || !same_shape || intervals[in.group].end != pos)
          continue;
        bool shared = false;
        for (size_t j = 0; j < n->num_inputs(); ++j) {
          auto other = j == k ? index.end() : in_arena(n->input(j));
          shared = shared || (other != index.end() && vals[other->second].group == in.group);
        }
        if (shared) continue;
        join(o, in, in.delta, MemoryPlan::AliasKind::kInPlace);
        aliased = true;
      }
    }
    for (size_t i = 0; i < n->num_outputs(); ++i)
      if (!aliased || i > 0) own_group(vals[first_out + i]);
    ++pos;
  }

  plan.arena_bytes = Place(intervals, last + 1);
  for (const Val& o : vals)
    plan.slots[o.v->name()] = MemoryPlan::Slot{intervals[o.group].offset + o.delta, o.bytes};
  plan.unaliased_arena_bytes = plan.arena_bytes;
  if (!plan.aliases.empty()) {
    // The same placement with one interval per value: what ComputeMemoryPlan(g, {.aliasing = false}) gives.
    std::vector<Interval> flat;
    flat.reserve(vals.size());
    for (const Val& o : vals) flat.push_back(Interval{o.bytes, o.begin, o.last, o.align});
    plan.unaliased_arena_bytes = Place(flat, last + 1);
  }
  if (!host_vals.empty()) {
    std::vector<Interval> host;
    for (const Val& o : host_vals) host.push_back(Interval{o.bytes, o.begin, o.last, o.align});
    plan.host_arena_bytes = Place(host, last + 1);
    for (size_t i = 0; i < host_vals.size(); ++i)
      plan.host_slots[host_vals[i].v->name()] = MemoryPlan::Slot{host[i].offset, host_vals[i].bytes};
  }
  return plan;
}

const char* AliasKindName(MemoryPlan::AliasKind kind) {
  return kind == MemoryPlan::AliasKind::kView ? "view" : "in-place";
}

std::string MemoryPlanToJson(const MemoryPlan& plan) {
  nlohmann::json j;
  j["version"] = plan.host_slots.empty() ? 2 : kMemoryPlanVersion;
  j["arena_bytes"] = plan.arena_bytes;
  j["unshared_bytes"] = plan.unshared_bytes;
  j["unaliased_arena_bytes"] = plan.unaliased_arena_bytes;
  nlohmann::json slots = nlohmann::json::object();
  for (const auto& [name, s] : plan.slots) slots[name] = {s.offset, s.bytes};
  j["slots"] = slots;
  nlohmann::json aliases = nlohmann::json::object();
  for (const auto& [name, a] : plan.aliases) aliases[name] = {a.of, AliasKindName(a.kind)};
  j["aliases"] = aliases;
  if (!plan.host_slots.empty()) {
    nlohmann::json host = nlohmann::json::object();
    for (const auto& [name, s] : plan.host_slots) host[name] = {s.offset, s.bytes};
    j["host_slots"] = host;
    j["host_arena_bytes"] = plan.host_arena_bytes;
  }
  return j.dump();
}

StatusOr<MemoryPlan> MemoryPlanFromJson(const std::string& text) {
  MemoryPlan plan;
  try {
    nlohmann::json j = nlohmann::json::parse(text);
    const int version = j.value("version", 1);
    if (version < 1 || version > kMemoryPlanVersion)
      return DataLoss("memory plan metadata has version ", version, "; this build reads versions 1 to ", kMemoryPlanVersion);
    plan.arena_bytes = j.at("arena_bytes").get<int64_t>();
    plan.unshared_bytes = j.at("unshared_bytes").get<int64_t>();
    plan.unaliased_arena_bytes = j.value("unaliased_arena_bytes", plan.arena_bytes);
    for (const auto& [name, s] : j.at("slots").items())
      plan.slots[name] = MemoryPlan::Slot{s.at(0).get<int64_t>(), s.at(1).get<int64_t>()};
    if (j.contains("aliases"))
      for (const auto& [name, a] : j.at("aliases").items()) {
        const std::string kind = a.at(1).get<std::string>();
        if (kind != "view" && kind != "in-place") return DataLoss("memory plan metadata: alias '", name, "' of kind '", kind, "'");
        plan.aliases[name] = MemoryPlan::Alias{a.at(0).get<std::string>(),
                                               kind == "view" ? MemoryPlan::AliasKind::kView : MemoryPlan::AliasKind::kInPlace};
      }
    if (version >= 3 && j.contains("host_slots")) {
      plan.host_arena_bytes = j.at("host_arena_bytes").get<int64_t>();
      for (const auto& [name, s] : j.at("host_slots").items())
        plan.host_slots[name] = MemoryPlan::Slot{s.at(0).get<int64_t>(), s.at(1).get<int64_t>()};
    }
  } catch (const std::exception& e) {
    return DataLoss("memory plan metadata is malformed: ", e.what());
  }
  // A plan comes from a file: every slot must lie inside the arena it claims, an alias inside the
  // slot of the value it aliases.
  if (plan.arena_bytes < 0 || plan.unshared_bytes < 0 || plan.unaliased_arena_bytes < 0 || plan.host_arena_bytes < 0)
    return DataLoss("memory plan metadata has a negative arena size");
  for (const auto* slots : {&plan.slots, &plan.host_slots}) {
    const bool host = slots == &plan.host_slots;
    const int64_t arena = host ? plan.host_arena_bytes : plan.arena_bytes;
    for (const auto& [name, s] : *slots) {
      int64_t end = 0;
      if (s.offset < 0 || s.bytes < 0 || !CheckedAdd(s.offset, s.bytes, &end) || end > arena)
        return DataLoss("memory plan metadata: slot '", name, "' [", s.offset, ", +", s.bytes, ") lies outside the ",
                        host ? "host arena" : "arena", " of ", arena, " bytes");
      if (host && plan.slots.count(name)) return DataLoss("memory plan metadata: '", name, "' has a slot in both arenas");
    }
  }
  for (const auto& [name, a] : plan.aliases) {
    auto s = plan.slots.find(name), of = plan.slots.find(a.of);
    if (s == plan.slots.end() || of == plan.slots.end())
      return DataLoss("memory plan metadata: alias '", name, "' of '", a.of, "' names a value without a slot");
    if (s->second.offset < of->second.offset ||
        s->second.offset - of->second.offset > of->second.bytes - s->second.bytes)
      return DataLoss("memory plan metadata: alias '", name, "' lies outside the slot of '", a.of, "'");
  }
  return plan;
}

namespace {

class MemoryPlanPass : public GraphPass {
 public:
  const char* name() const override { return "memory-plan"; }
  StatusOr<bool> RunOnGraph(Graph& g, const PassContext& ctx) override {
    const MemoryPlanOptions options{.aliasing = ctx.memory_aliasing};
    ASSIGN_OR_RETURN(MemoryPlan plan, ComputeMemoryPlan(g, options));
    std::string text = MemoryPlanToJson(plan);
    auto it = g.metadata.find(kMemoryPlanKey);
    if (it != g.metadata.end() && it->second == text) return false;
    g.metadata[kMemoryPlanKey] = text;
    // What activation checkpointing saves: the same program planned with the backward reading the
    // originals (absent when later passes renamed what rematerialize recorded).
    g.metadata.erase(kRematArenaWithoutKey);
    if (std::unique_ptr<Graph> without = WithoutRematerialization(g)) {
      StatusOr<MemoryPlan> before = ComputeMemoryPlan(*without, options);
      if (before.ok()) g.metadata[kRematArenaWithoutKey] = std::to_string(before->arena_bytes);
    }
    // What cpu_checkpointing saves on the device: the same program with the checkpoints kept there.
    g.metadata.erase(kHostCheckpointArenaWithoutKey);
    if (!plan.host_slots.empty()) {
      StatusOr<MemoryPlan> on_device = ComputeMemoryPlan(*WithoutHostCheckpoints(g), options);
      if (on_device.ok()) g.metadata[kHostCheckpointArenaWithoutKey] = std::to_string(on_device->arena_bytes);
    }
    return true;
  }
};

}  // namespace

std::unique_ptr<Pass> CreateMemoryPlanPass() { return std::make_unique<MemoryPlanPass>(); }

}  // namespace dsc
