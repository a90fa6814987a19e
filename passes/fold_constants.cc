// fold-constants: evaluates at compile time everything that does not depend on data or parameters.
//
// Contract: Constant nodes become initializers; Shape and Size of values with static shapes
// become initializers; any node whose inputs are all constant (non-trainable initializers) and
// whose op the constant evaluator knows is replaced by initializers holding its results (same
// value names). Shapes are re-inferred and the process repeats until nothing folds. Before
// select-loss has run, float initializers count as possibly trainable and are not folded through.
// Afterwards every value must have a static shape: what stays symbolic is listed in the error.
// Outputs larger than the evaluator's limit are left as nodes. A Gather whose constant indices are
// 0, 1, ..., n-1 along an axis of size n (what an indexed Pad imported from a legacy export gives the
// axes it does not pad) is removed, its uses reading its data instead.
#include <algorithm>
#include <unordered_set>

#include "ir/shape_inference.h"
#include "passes/const_eval.h"
#include "passes/pass.h"

namespace dsc {
namespace {

class FoldConstantsPass : public GraphPass {
 public:
  const char* name() const override { return "fold-constants"; }
  bool establishes_static_shapes() const override { return true; }

  StatusOr<bool> RunOnGraph(Graph& g, const PassContext&) override {
    bool changed = false;
    for (int round = 0; round < 64; ++round) {
      ASSIGN_OR_RETURN(bool folded, FoldOnce(g));
      if (!folded) break;
      changed = true;
      RETURN_IF_ERROR(InferShapes(g));
    }
    RETURN_IF_ERROR(CheckStatic(g));
    return changed;
  }

 private:
  static bool IsConstant(const Graph& g, const std::unordered_set<std::string>& params, const Value* v) {
    if (!v->is_initializer()) return false;
    if (g.training.loss.empty()) return !IsFloat(v->type.dtype);  // trainability not decided yet
    return !params.count(v->name());
  }

  // Static shape of `v` as an int64 vector, or nullopt.
  static std::optional<std::vector<int64_t>> StaticDims(const Value* v) {
    if (!v || !v->type.shape || !IsStatic(*v->type.shape)) return std::nullopt;
    std::vector<int64_t> dims;
    for (const Dim& d : *v->type.shape) dims.push_back(d.value);
    return dims;
  }

  // Results of a node computable now, or nullopt.
  static StatusOr<std::optional<std::vector<Tensor>>> TryFold(const Graph& g, const std::unordered_set<std::string>& params,
                                                              const Node& n) {
    using Result = std::optional<std::vector<Tensor>>;
    if (!n.domain().empty() && !CanEvaluate(n)) return Result();  // StopGradient of a constant folds
    if (n.op_type() == "Shape" || n.op_type() == "Size") {
      // Only the shape matters, so the input need not be constant.
      auto dims = StaticDims(n.input(0));
      if (!dims) return Result();
      if (n.op_type() == "Size") {
        ASSIGN_OR_RETURN(int64_t count, NumElements(*dims));
        return Result(std::vector<Tensor>{Tensor::FromVector<int64_t>(DType::kInt64, {}, {count})});
      }
      int64_t rank = static_cast<int64_t>(dims->size());
      int64_t start = n.GetInt("start", 0), end = n.GetInt("end", rank);
      if (start < 0) start += rank;
      if (end < 0) end += rank;
      start = std::clamp<int64_t>(start, 0, rank);
      end = std::clamp<int64_t>(end, 0, rank);
      std::vector<int64_t> slice;
      for (int64_t i = start; i < end; ++i) slice.push_back((*dims)[static_cast<size_t>(i)]);
      Tensor out(DType::kInt64, {static_cast<int64_t>(slice.size())});
      for (size_t i = 0; i < slice.size(); ++i) out.SetFromInt(static_cast<int64_t>(i), slice[i]);
      return Result(std::vector<Tensor>{out});
    }
    if (!CanEvaluate(n)) return Result();
    if (n.op_type() == "CastLike" && n.num_inputs() == 2 && n.input(0) && n.input(1) &&
        IsConstant(g, params, n.input(0)) && !IsConstant(g, params, n.input(1)) &&
        n.input(1)->type.dtype != DType::kUndefined) {
      // Only the target's dtype matters (dynamo casts SDPA's scale like the query this way), so
      // the target need not be constant, as Shape's input need not be.
      const Tensor like(n.input(1)->type.dtype, {0});
      StatusOr<std::vector<Tensor>> out = EvaluateNode(n, {&n.input(0)->initializer(), &like});
      if (!out.ok()) return out.status();
      return Result(std::move(*out));
    }
    std::vector<const Tensor*> inputs;
    for (size_t i = 0; i < n.num_inputs(); ++i) {
      const Value* v = n.input(i);
      if (!v) {
        inputs.push_back(nullptr);
        continue;
      }
      if (!IsConstant(g, params, v)) return Result();
      inputs.push_back(&v->initializer());
    }
    StatusOr<std::vector<Tensor>> out = EvaluateNode(n, inputs);
    if (!out.ok()) {
      // Too large to materialise: keep the node, the runtime computes it.
      if (out.status().code() == StatusCode::kOutOfRange) return Result();
      return out.status();
    }
    return Result(std::move(*out));
  }

  // A Gather that copies its data unchanged.
  static bool IsIdentityGather(const Graph& g, const std::unordered_set<std::string>& params, const Node& n) {
    if (!n.domain().empty() || n.op_type() != "Gather" || n.num_inputs() != 2 || n.num_outputs() != 1) return false;
    const Value* idx = n.input(1);
    auto dims = StaticDims(n.input(0));
    if (!idx || !IsConstant(g, params, idx) || !dims || n.output(0)->is_graph_output()) return false;
    const Tensor& t = idx->initializer();
    const int64_t rank = static_cast<int64_t>(dims->size());
    int64_t axis = n.GetInt("axis", 0);
    if (axis < 0) axis += rank;
    if (axis < 0 || axis >= rank || t.dims().size() != 1 || (t.dtype() != DType::kInt64 && t.dtype() != DType::kInt32))
      return false;
    if (t.numel() != (*dims)[static_cast<size_t>(axis)]) return false;
    for (int64_t i = 0; i < t.numel(); ++i)
      if (t.GetAsInt(i) != i) return false;
    return true;
  }

  static StatusOr<bool> FoldOnce(Graph& g) {
    std::unordered_set<std::string> params(g.training.parameters.begin(), g.training.parameters.end());
    std::vector<Node*> order;
    for (const auto& n : g.nodes()) order.push_back(n.get());
    bool changed = false;
    for (Node* n : order) {
      if (IsIdentityGather(g, params, *n)) {
        g.ReplaceAllUsesWith(n->output(0), n->input(0));
        RETURN_IF_ERROR(g.RemoveNode(n));
        changed = true;
        continue;
      }
      ASSIGN_OR_RETURN(auto results, TryFold(g, params, *n));
      if (!results) continue;
      if (results->size() != n->num_outputs())
        return Internal(n->Describe(), ": evaluator returned ", results->size(), " results for ", n->num_outputs(), " outputs");
      std::vector<std::pair<Value*, std::string>> renames;
      for (size_t i = 0; i < n->num_outputs(); ++i) {
        Value* out = n->output(i);
        if (out->uses().empty() && !out->is_graph_output()) continue;
        Value* init = g.AddInitializer(g.UniqueName(out->name() + "__folded"), std::move((*results)[i]));
        g.ReplaceAllUsesWith(out, init);
        renames.emplace_back(init, out->name());
      }
      RETURN_IF_ERROR(g.RemoveNode(n));
      for (auto& [v, name] : renames) RETURN_IF_ERROR(g.RenameValue(v, name));
      changed = true;
    }
    return changed;
  }

  static Status CheckStatic(const Graph& g) {
    std::string list;
    int count = 0;
    const Node* nonzero = nullptr;  // the first NonZero of data: the usual source, worth a hint
    for (const auto& n : g.nodes())
      for (const Value* v : n->outputs()) {
        if (v->uses().empty() && !v->is_graph_output()) continue;  // unused side outputs
        if (v->type.shape && IsStatic(*v->type.shape)) continue;
        if (++count <= 8) list += StrCat("\n  '", v->name(), "' ", TypeToString(v->type), " from ", n->Describe());
        if (!nonzero && n->domain().empty() && n->op_type() == "NonZero") nonzero = n.get();
      }
    if (count == 0) return Status::OK();
    const std::string hint =
        nonzero ? StrCat("\n", nonzero->Describe(),
                         " makes a shape from the data (torch.nonzero, x[mask], one-argument torch.where; PyG's "
                         "add_remaining_self_loops and remove_self_loops): plans have static shapes, so compute with "
                         "masks instead (torch.where(cond, a, b), masked_fill), e.g. GCNConv(add_self_loops=False) "
                         "with the self loops in the input edges")
                : "";
    return Unimplemented(count, " values still have non-static shapes after specialization and folding ",
                         "(data-dependent shapes are not supported):", list, count > 8 ? "\n  ..." : "", hint);
  }
};

}  // namespace

std::unique_ptr<Pass> CreateFoldConstantsPass() { return std::make_unique<FoldConstantsPass>(); }

}  // namespace dsc
