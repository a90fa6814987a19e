// The bucketed collectives' contract (ir/verifier.h: VerifyBucketedCollectives), shared by
// plan verification and the pass that makes the buckets.
#include <map>
#include <unordered_map>

#include "ir/dsc_ops.h"
#include "ir/verifier.h"

namespace dsc {

Status VerifyBucketedCollectives(const Graph& g, int64_t world_size) {
  std::map<int64_t, const Node*> in_flight;  // bucket id -> its Start, until its Wait
  std::unordered_map<const Value*, const Node*> released;  // gathered value -> its Release (null: not yet)
  auto is = [](const Node& n, const char* op) { return n.domain() == kDscDomain && n.op_type() == op; };
  for (const auto& node : g.nodes()) {
    const Node& n = *node;
    const std::string where = n.Describe();
    for (const Value* x : is(n, ops::kRelease) ? std::vector<Value*>{} : n.inputs()) {
      auto r = x ? released.find(x) : released.end();
      if (r != released.end() && r->second)
        return InvalidArgument(where, " reads '", x->name(), "' after ", r->second->Describe(), " released it");
    }
    if (n.domain() != kDscDomain) continue;
    const std::string kind = ops::KindOfStart(n.op_type());
    if (!kind.empty()) {
      if (!n.HasAttr("bucket") || !n.HasAttr("world"))
        return InvalidArgument(where, " needs the attributes bucket and world");
      if (n.GetInt("world", 0) != world_size)
        return InvalidArgument(where, " has world = ", n.GetInt("world", 0), " in a plan for ", world_size, " ranks");
      const int64_t id = n.GetInt("bucket", -1);
      if (auto f = in_flight.find(id); f != in_flight.end())
        return InvalidArgument(where, " starts bucket ", id, " while ", f->second->Describe(), " still has it in flight");
      for (const Value* x : n.inputs())
        if (!x || x->type.dtype != n.input(0)->type.dtype)
          return InvalidArgument(where, ": member '", x ? x->name() : "", "' is ",
                                 x ? DTypeName(x->type.dtype) : "omitted", ", not ", DTypeName(n.input(0)->type.dtype),
                                 " as the first member: a bucket holds one dtype");
      const Value* b = n.output(0);
      const Node* wait = nullptr;
      for (const Use& u : b->uses()) {
        if (!is(*u.node, ops::kCollectiveWait) || u.input_index != 0 || wait)
          return InvalidArgument(where, ": its buffer '", b->name(), "' is read by ", u.node->Describe(),
                                 "; only its one CollectiveWait may read it");
        wait = u.node;
      }
      if (!wait || b->is_graph_output())
        return InvalidArgument(where, ": its buffer '", b->name(), "' ", wait ? "is a graph output" : "is never waited for",
                               " (a CollectiveWait must read it)");
      const std::string wait_where = wait->Describe();
      if (wait->GetString("kind", "") != kind)
        return InvalidArgument(wait_where, " has kind '", wait->GetString("kind", ""), "' but waits for ", where);
      if (wait->GetInt("bucket", -1) != id)
        return InvalidArgument(wait_where, " has bucket ", wait->GetInt("bucket", -1), " but waits for bucket ", id, " (",
                               where, ")");
      const size_t k = n.num_inputs();
      if (kind == ops::kAllGatherInPlace) {
        bool same = wait->num_inputs() == k + 1 && wait->num_outputs() == 0;
        for (size_t i = 0; same && i < k; ++i) same = wait->input(i + 1) == n.input(i);
        if (!same)
          return InvalidArgument(wait_where, " must take the buffer and then the ", k, " state tensors of ", where,
                                 " in its order, and have no outputs");
      } else {
        if (wait->num_inputs() != 1 || wait->num_outputs() != k)
          return InvalidArgument(wait_where, " must read only the buffer and make one value per member of ", where, " (", k,
                                 "), not ", wait->num_outputs());
        for (size_t i = 0; i < k; ++i) {
          const Value* x = n.input(i);
          const Value* y = wait->output(i);
          if (y->type.dtype != x->type.dtype)
            return InvalidArgument(wait_where, " output '", y->name(), "' is ", DTypeName(y->type.dtype), ", not ",
                                   DTypeName(x->type.dtype), " as member '", x->name(), "'");
          if (!x->type.shape || !y->type.shape || !IsStatic(*x->type.shape) || !IsStatic(*y->type.shape)) continue;
          StatusOr<int64_t> sx = NumElements(DimValues(*x->type.shape)), sy = NumElements(DimValues(*y->type.shape));
          if (!sx.ok() || !sy.ok()) continue;  // VerifyGraph has refused sizes that overflow
          const int64_t nx = *sx, ny = *sy;
          const int64_t want = kind == ops::kReduceScatter ? ops::ChunkSize(nx, world_size) : nx;
          const bool ok = kind == ops::kAllGather ? ops::ChunkSize(ny, world_size) == nx : ny == want;
          if (!ok)
            return InvalidArgument(wait_where, " output '", y->name(), "' has ", ny, " elements, which does not fit member '",
                                   x->name(), "' (", nx, " elements) of a ", kind, " over ", world_size, " ranks");
        }
      }
      in_flight[id] = &n;
    } else if (n.op_type() == ops::kCollectiveWait) {
      const Node* start = n.num_inputs() ? n.input(0)->producer() : nullptr;
      if (!start || start->domain() != kDscDomain || ops::KindOfStart(start->op_type()).empty())
        return InvalidArgument(where, " waits for '", n.num_inputs() ? n.input(0)->name() : "", "', which no Start node made");
      in_flight.erase(start->GetInt("bucket", -1));
      if (n.GetString("kind", "") == ops::kAllGather)
        for (const Value* y : n.outputs()) released.emplace(y, nullptr);
    } else if (n.op_type() == ops::kRelease) {
      for (const Value* x : n.inputs()) {
        auto r = released.find(x);
        if (r == released.end())
          return InvalidArgument(where, " releases '", x ? x->name() : "", "', which is not an output of an AllGather CollectiveWait");
        if (r->second) return InvalidArgument(where, " releases '", x->name(), "' again (", r->second->Describe(), " did)");
        r->second = &n;
      }
    }
  }
  for (const auto& [v, release] : released)
    if (!release) return InvalidArgument("the gathered parameter '", v->name(), "' is never released");
  return Status::OK();
}

}  // namespace dsc
