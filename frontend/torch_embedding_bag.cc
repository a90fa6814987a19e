// torch's embedding_bag Loop rewritten as a gather and a segment reduction (see torch_embedding_bag.h).
#include "frontend/torch_embedding_bag.h"

#include <algorithm>
#include <cstring>
#include <functional>
#include <limits>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "frontend/proto_rewriter.h"
#include "frontend/torch_node_metadata.h"

namespace dsc {
namespace {

// The aten overloads torchlib writes as the per-bag Loop, all with embedding_bag.padding_idx's
// arguments (weight, indices, offsets, scale_grad_by_freq, mode, sparse, per_sample_weights,
// include_last_offset, padding_idx); in _embedding_bag a padding_idx of -1 means none.
const std::vector<std::string>& Targets() {
  static const std::vector<std::string> t = {"aten.embedding_bag.padding_idx", "aten.embedding_bag.default",
                                             "aten._embedding_bag.default",
                                             "aten._embedding_bag_forward_only.default"};
  return t;
}

// The call as written: which target, its arguments.
struct Call {
  std::string target;
  std::vector<std::string> args;
};

std::optional<Call> EmbeddingBagCall(const onnx::NodeProto& n) {
  const std::string* fx = FindProp(n.metadata_props(), kFxNodeKey);
  if (!fx) return std::nullopt;
  for (const std::string& t : Targets()) {
    std::vector<std::string> args = FxCallArgs(*fx, t);
    if (!args.empty()) return Call{t, std::move(args)};
  }
  return std::nullopt;
}

// The arguments, read and checked.
struct Bag {
  std::string weight, indices, offsets, per_sample_weights;  // values of the file ("" when None)
  int64_t mode = 0;                                           // 0 sum, 1 mean, 2 max
  bool include_last_offset = false;
  std::optional<int64_t> padding_idx;
  // The legacy exporter's form: bag b is [offsets[b], ends[b]) for b < count (a scalar).
  std::string ends, count;
};

// Where the file's values come from: graph inputs, initializers, node outputs.
struct Names {
  std::set<std::string> values;
  std::vector<std::string> initializers;
};

// The file's value for the fx argument `%name`: the value of that name (the dynamo exporter names a
// node's output after its fx node), or the initializer torch.export's placeholder p_/b_/c_<name>
// stands for (dots as underscores).
std::optional<std::string> ValueOf(const std::string& arg, const Names& names) {
  if (arg.size() < 2 || arg[0] != '%') return std::nullopt;
  const std::string fx = arg.substr(1);
  if (names.values.count(fx)) return fx;
  for (const std::string& t : names.initializers) {
    const std::string u = FxUnderscored(t);
    if (fx == "p_" + u || fx == "b_" + u || fx == "c_" + u) return t;
  }
  return std::nullopt;
}

// Resolves argument i (0 weight, 1 indices, 2 offsets, 6 per_sample_weights) written `text` to a value.
using Resolver = std::function<std::optional<std::string>(size_t i, const std::string& text)>;

Status ReadBag(const onnx::NodeProto& n, const Call& call, const Resolver& resolve, Bag* bag) {
  auto refuse = [&](const std::string& what) {
    return Unimplemented("node '", n.name(), "' (", n.op_type(), ", torch's ", call.target, "): ", what);
  };
  const std::vector<std::string>& a = call.args;
  if (a.size() < 3) return refuse("its metadata records " + std::to_string(a.size()) + " arguments, not the call");
  auto arg = [&](size_t i, const char* dflt) { return i < a.size() ? a[i] : std::string(dflt); };
  auto tensor = [&](size_t i, const char* what, std::string* out) -> Status {
    const std::string text = arg(i, "None");
    if (text == "None") return Status::OK();
    std::optional<std::string> v = resolve(i, text);
    if (!v) return refuse(std::string(what) + " is " + text + ", which names no value of the file, and the "
                          "exporter's nodes around the loop do not show which value it is");
    *out = *v;
    return Status::OK();
  };
  auto flag = [&](size_t i, const char* what, bool* out) -> Status {
    const std::string text = arg(i, "False");
    if (text != "True" && text != "False") return refuse(std::string(what) + " is '" + text + "', not a literal");
    *out = text == "True";
    return Status::OK();
  };
  RETURN_IF_ERROR(tensor(0, "weight", &bag->weight));
  RETURN_IF_ERROR(tensor(1, "indices", &bag->indices));
  RETURN_IF_ERROR(tensor(2, "offsets", &bag->offsets));
  if (bag->weight.empty() || bag->indices.empty() || bag->offsets.empty())
    return refuse("weight, indices and offsets must be tensors");
  bool scale = false, sparse = false;
  RETURN_IF_ERROR(flag(3, "scale_grad_by_freq", &scale));
  if (scale)
    return refuse("scale_grad_by_freq=True (the weight's gradient divided by each index's count in the batch) "
                  "is not supported; use scale_grad_by_freq=False");
  const std::optional<int64_t> mode = FxIntLiteral(arg(4, "0"));
  if (!mode || *mode < 0 || *mode > 2) return refuse("mode is '" + arg(4, "0") + "', not 0 (sum), 1 (mean) or 2 (max)");
  bag->mode = *mode;
  RETURN_IF_ERROR(flag(5, "sparse", &sparse));  // the gradient's layout only: the same values, dense here
  RETURN_IF_ERROR(tensor(6, "per_sample_weights", &bag->per_sample_weights));
  if (!bag->per_sample_weights.empty() && bag->mode != 0)
    return refuse("per_sample_weights with mode " + std::string(bag->mode == 1 ? "mean" : "max") +
                  " (PyTorch takes them in mode sum only)");
  RETURN_IF_ERROR(flag(7, "include_last_offset", &bag->include_last_offset));
  const bool underscored = call.target.rfind("aten._", 0) == 0;
  const std::string pad = arg(8, underscored ? "-1" : "None");
  if (pad != "None") {
    const std::optional<int64_t> p = FxIntLiteral(pad);
    if (!p) return refuse("padding_idx is '" + pad + "', not an integer literal");
    if (underscored && *p == -1) return Status::OK();
    if (*p < 0) return refuse("padding_idx is " + pad + " (F.embedding_bag passes it non-negative)");
    bag->padding_idx = *p;
  }
  return Status::OK();
}

// Every value a node reads, its subgraphs' reads from the enclosing scopes included.
void Reads(const onnx::NodeProto& n, std::set<std::string>* out) {
  for (const auto& i : n.input())
    if (!i.empty()) out->insert(i);
  for (const auto& a : n.attribute()) {
    std::vector<const onnx::GraphProto*> graphs;
    if (a.has_g()) graphs.push_back(&a.g());
    for (const auto& g : a.graphs()) graphs.push_back(&g);
    for (const onnx::GraphProto* g : graphs)
      for (const auto& sub : g->node()) Reads(sub, out);
  }
}

// The call's tensor arguments as torchlib's nodes read them, for a file whose optimizer merged an
// argument into an equal value of another name (two EmbeddingBags over the same ids): among the
// embedding_bag nodes the result depends on (`deps`), the rows are Gather(weight, indices) (after a
// Reshape(indices, [-1]) when there is no padding_idx), per_sample_weights are Unsqueeze'd into the
// Mul of the rows, and offsets are what Concat / ScatterElements / Size read besides the indices.
struct Roles {
  std::optional<std::string> weight, indices, offsets, per_sample_weights;
};

Roles RolesOf(const std::vector<const onnx::NodeProto*>& deps, const std::map<std::string, const onnx::NodeProto*>& made) {
  Roles r;
  std::set<std::string> defined;
  for (const onnx::NodeProto* n : deps)
    for (const auto& o : n->output()) defined.insert(o);
  auto external = [&](const std::string& v) { return !v.empty() && !defined.count(v); };
  const onnx::NodeProto* gather = nullptr;
  for (const onnx::NodeProto* n : deps)
    if (n->op_type() == "Gather" && n->input_size() == 2 && external(n->input(0))) {
      if (gather) return Roles{};  // two tables: not one call's nodes
      gather = n;
    }
  if (!gather) return r;
  r.weight = gather->input(0);
  std::string idx = gather->input(1);
  if (auto p = made.find(idx); !external(idx) && p != made.end() && p->second->op_type() == "Reshape")
    idx = p->second->input(0);
  if (!external(idx)) return r;
  r.indices = idx;
  std::set<std::string> offsets, weights;
  for (const onnx::NodeProto* n : deps) {
    const std::string& op = n->op_type();
    if ((op == "Concat" || op == "ScatterElements" || op == "Size") && n->input_size() > 0 && external(n->input(0)) &&
        n->input(0) != idx)
      offsets.insert(n->input(0));
    if (op == "Unsqueeze" && n->input_size() > 0 && external(n->input(0))) weights.insert(n->input(0));
  }
  if (offsets.size() == 1) r.offsets = *offsets.begin();
  if (weights.size() == 1) r.per_sample_weights = *weights.begin();
  return r;
}

onnx::TensorProto* ValueAttr(ProtoRewriter& r, int32_t type) {
  onnx::TensorProto* t = r.TensorAttr("value");
  t->set_data_type(type);
  t->add_dims(1);
  return t;
}

// The bag values [B, D] of `bag`, written to `result`.
void SegmentReduce(const onnx::NodeProto& node, const Bag& bag, int64_t opset, const std::string& result,
                   std::vector<onnx::NodeProto>* out) {
  ProtoRewriter r(node, opset, out, "embedding_bag");
  const std::string idx = r.Add("Reshape", {bag.indices, r.Ints({-1})});  // [N]
  const std::string n1 = r.Add("Shape", {idx});                            // [1]: N
  const std::string n = r.Add("Size", {idx});                              // N
  std::string rows = r.Add("Gather", {bag.weight, idx});                   // [N, D]
  r.SetInt("axis", 0);
  auto unsqueeze1 = [&](const std::string& x) { return r.Add("Unsqueeze", {x, r.Ints({1})}); };
  if (!bag.per_sample_weights.empty())
    rows = r.Add("Mul", {rows, unsqueeze1(r.Add("Reshape", {bag.per_sample_weights, r.Ints({-1})}))});

  // Bag b starts at O[b]: positions [0, N) counted past the starts at or before them. Offsets may
  // be int32 (with int32 indices); the bag arithmetic is int64.
  auto int64 = [&](const std::string& x) {
    const std::string y = r.Add("Cast", {x});
    r.SetInt("to", onnx::TensorProto::INT64);
    return y;
  };
  const std::string offsets = int64(bag.offsets);
  std::string starts = offsets;
  const std::string count1 = bag.count.empty() ? "" : r.Add("Reshape", {bag.count, r.Ints({1})});
  if (!bag.count.empty()) starts = r.Add("Slice", {offsets, r.Ints({0}), count1, r.Ints({0})});
  else if (bag.include_last_offset) starts = r.Add("Slice", {offsets, r.Ints({0}), r.Ints({-1}), r.Ints({0})});
  const std::string b1 = r.Add("Shape", {starts});  // [1]: B
  const std::string marks0 = r.Add("ConstantOfShape", {r.Add("Add", {n1, r.Ints({1})})});
  ValueAttr(r, onnx::TensorProto::INT64)->add_int64_data(0);
  const std::string ones_b = r.Add("ConstantOfShape", {b1});
  ValueAttr(r, onnx::TensorProto::INT64)->add_int64_data(1);
  const std::string marks = r.Add("ScatterElements", {marks0, starts, ones_b});
  r.SetInt("axis", 0);
  r.SetString("reduction", "add");
  const std::string counted = r.Add("CumSum", {marks, r.IntScalar(0)});
  const std::string seg = r.Add("Sub", {r.Add("Slice", {counted, r.Ints({0}), n1, r.Ints({0})}), r.Ints({1})});
  const std::string seg2 = unsqueeze1(seg);  // [N, 1]: ScatterND's index tuples

  // Positions in no bag: past their bag's end (the legacy form), past O[B] (include_last_offset),
  // and those holding padding_idx.
  std::string valid;
  auto both = [&](const std::string& m) { valid = valid.empty() ? m : r.Add("And", {valid, m}); };
  const std::string pos = r.Add("Range", {r.IntScalar(0), n, r.IntScalar(1)});  // [N]
  if (!bag.ends.empty()) {
    const std::string ends = r.Add("Slice", {int64(bag.ends), r.Ints({0}), count1, r.Ints({0})});
    both(r.Add("Less", {pos, r.Add("Gather", {ends, seg})}));
  } else if (bag.include_last_offset)
    both(r.Add("Less", {pos, r.Add("Gather", {offsets, r.IntScalar(-1)})}));
  if (bag.padding_idx)
    both(r.Add("Not", {r.Add("Equal", {idx, r.Add("CastLike", {r.IntScalar(*bag.padding_idx), idx})})}));
  const std::string valid2 = valid.empty() ? "" : unsqueeze1(valid);  // [N, 1]

  const std::string d1 = r.Add("Slice", {r.Add("Shape", {bag.weight}), r.Ints({1}), r.Ints({2}), r.Ints({0})});
  const std::string bd = r.Add("Concat", {b1, d1});
  r.SetInt("axis", 0);
  auto scatter = [&](const std::string& data, const std::string& updates, const char* reduction,
                     const std::string& name = "") {
    const std::string y = r.Add("ScatterND", {data, seg2, updates}, name);
    r.SetString("reduction", reduction);
    return y;
  };
  const std::string zero = r.FloatLike(0.f, rows);

  if (bag.mode != 2) {
    if (!valid2.empty()) rows = r.Add("Where", {valid2, rows, zero});
    const std::string zeros_bd = r.Add("Expand", {zero, bd});
    if (bag.mode == 0) {
      scatter(zeros_bd, rows, "add", result);
      return;
    }
    const std::string sum = scatter(zeros_bd, rows, "add");
    const std::string one = r.FloatLike(1.f, rows);
    const std::string members = valid.empty() ? r.Add("Expand", {one, n1}) : r.Add("CastLike", {valid, rows});
    const std::string count = scatter(r.Add("Expand", {zero, b1}), members, "add");  // [B]
    r.Add("Div", {sum, unsqueeze1(r.Add("Max", {count, one}))}, result);
    return;
  }

  // max: each column's first maximal position in the bag, found through comparisons (no gradient
  // flows through Equal, so autodiff never needs ScatterND max's); the values are read at it, so the
  // gradient reaches that position only.
  std::string held = rows;
  const std::string low = r.FloatLike(-std::numeric_limits<float>::infinity(), rows);
  if (!valid2.empty()) held = r.Add("Where", {valid2, held, low});
  const std::string peak = scatter(r.Add("Expand", {low, bd}), held, "max");  // [B, D]
  std::string hit = r.Add("Equal", {held, r.Add("Gather", {peak, seg})});  // [N, D]
  if (!valid2.empty()) hit = r.Add("And", {hit, valid2});
  const std::string col = r.Add("Expand", {unsqueeze1(pos), r.Add("Shape", {rows})});
  const std::string first = scatter(r.Add("Expand", {n, bd}), r.Add("Where", {hit, col, n}), "min");  // [B, D]
  const std::string nonempty = r.Add("Less", {first, n});
  const std::string at = r.Add("Where", {nonempty, first, r.Add("CastLike", {r.IntScalar(0), first})});
  const std::string picked = r.Add("GatherElements", {rows, at});
  r.SetInt("axis", 0);
  r.Add("Where", {nonempty, picked, zero}, result);
}

// The legacy exporter's embedding_bag (torch/onnx/symbolic_opset10.py): Loop(M, cond) whose body
// slices bag i = [S[i], E[i]) of the indices, gathers its rows, scales them by the same slice of the
// per_sample_weights when given, and reduces them (ReduceSum / ReduceMean / ReduceMax over axis 0) into
// its one scan output; nothing else is computed. The bags, weight and mode, or nullopt.
std::optional<Bag> LegacyBag(const onnx::NodeProto& loop, const std::map<std::string, const onnx::TensorProto*>& consts) {
  if (loop.op_type() != "Loop" || !(loop.domain().empty() || loop.domain() == "ai.onnx") || loop.input_size() != 2 ||
      loop.input(0).empty() || loop.output_size() != 1)
    return std::nullopt;
  const onnx::AttributeProto* body_attr = FindAttr(loop, "body");
  if (!body_attr || !body_attr->has_g()) return std::nullopt;
  const onnx::GraphProto& body = body_attr->g();
  if (body.input_size() != 2 || body.output_size() != 2) return std::nullopt;
  const std::string& iter = body.input(0).name();
  std::map<std::string, const onnx::NodeProto*> made;
  for (const auto& n : body.node())
    for (const auto& o : n.output()) made[o] = &n;
  auto node = [&](const std::string& v, const char* op) -> const onnx::NodeProto* {
    auto it = made.find(v);
    return it != made.end() && it->second->op_type() == op ? it->second : nullptr;
  };
  auto outer = [&](const std::string& v) { return !v.empty() && v != iter && !made.count(v); };
  // A constant of the body or the main graph holding int64 [want] (an axes input).
  auto axes_are = [&](const std::string& v, int64_t want) {
    const onnx::TensorProto* t = nullptr;
    if (const onnx::NodeProto* c = node(v, "Constant")) {
      const onnx::AttributeProto* a = FindAttr(*c, "value");
      t = a && a->has_t() ? &a->t() : nullptr;
    } else if (auto it = consts.find(v); outer(v) && it != consts.end()) {
      t = it->second;
    }
    if (!t || t->data_type() != onnx::TensorProto::INT64) return false;
    if (t->int64_data_size() == 1) return t->int64_data(0) == want;
    int64_t x = 0;
    if (t->raw_data().size() != sizeof(x)) return false;
    std::memcpy(&x, t->raw_data().data(), sizeof(x));
    return x == want;
  };
  // Unsqueeze(Gather(X, i), [0]) -> X
  auto bound = [&](const std::string& v) -> std::optional<std::string> {
    const onnx::NodeProto* u = node(v, "Unsqueeze");
    if (!u || u->input_size() != 2 || !axes_are(u->input(1), 0)) return std::nullopt;
    const onnx::NodeProto* gi = node(u->input(0), "Gather");
    if (!gi || gi->input_size() != 2 || gi->input(1) != iter || !outer(gi->input(0))) return std::nullopt;
    return gi->input(0);
  };
  // Slice(X, start, end, [0]) of bag i -> (X, S, E)
  struct Sliced {
    std::string of, starts, ends;
  };
  auto bag_slice = [&](const std::string& v) -> std::optional<Sliced> {
    const onnx::NodeProto* sl = node(v, "Slice");
    if (!sl || sl->input_size() < 3 || sl->input_size() > 4 || !outer(sl->input(0))) return std::nullopt;
    if (sl->input_size() == 4 && !axes_are(sl->input(3), 0)) return std::nullopt;
    std::optional<std::string> s = bound(sl->input(1)), e = bound(sl->input(2));
    if (!s || !e) return std::nullopt;
    return Sliced{sl->input(0), *s, *e};
  };

  const onnx::NodeProto* reduce = nullptr;
  if (auto it = made.find(body.output(1).name()); it != made.end()) reduce = it->second;
  static const std::map<std::string, int64_t> kModes = {{"ReduceSum", 0}, {"ReduceMean", 1}, {"ReduceMax", 2}};
  if (!reduce || !kModes.count(reduce->op_type())) return std::nullopt;
  const onnx::AttributeProto* keep = FindAttr(*reduce, "keepdims");
  const onnx::AttributeProto* axes = FindAttr(*reduce, "axes");
  const bool over_0 = axes ? axes->ints_size() == 1 && axes->ints(0) == 0
                           : reduce->input_size() == 2 && axes_are(reduce->input(1), 0);
  if (!keep || keep->i() != 0 || !over_0) return std::nullopt;
  Bag bag;
  bag.mode = kModes.at(reduce->op_type());
  std::string rows = reduce->input(0);
  if (const onnx::NodeProto* mul = node(rows, "Mul"); mul && mul->input_size() == 2 && bag.mode == 0) {
    const onnx::NodeProto* u = node(mul->input(1), "Unsqueeze");
    if (!u || u->input_size() != 2 || !axes_are(u->input(1), 1)) return std::nullopt;
    std::optional<Sliced> w = bag_slice(u->input(0));
    if (!w) return std::nullopt;
    bag.per_sample_weights = w->of;
    bag.offsets = w->starts;
    bag.ends = w->ends;
    rows = mul->input(0);
  }
  const onnx::NodeProto* gather = node(rows, "Gather");
  const onnx::AttributeProto* gather_axis = gather ? FindAttr(*gather, "axis") : nullptr;
  if (!gather || gather->input_size() != 2 || !outer(gather->input(0)) || (gather_axis && gather_axis->i() != 0))
    return std::nullopt;
  std::optional<Sliced> ids = bag_slice(gather->input(1));
  if (!ids || (!bag.offsets.empty() && (ids->starts != bag.offsets || ids->ends != bag.ends))) return std::nullopt;
  bag.weight = gather->input(0);
  bag.indices = ids->of;
  bag.offsets = ids->starts;
  bag.ends = ids->ends;
  bag.count = loop.input(0);
  return bag;
}

// A Loop that slices rows per bag and collects them (torchlib's SequenceInsert, or the legacy
// exporter's scan output of a ReduceSum/Mean/Max over a Gather of indices sliced per iteration).
bool LooksLikeBagLoop(const onnx::NodeProto& n) {
  if (n.op_type() != "Loop" || !(n.domain().empty() || n.domain() == "ai.onnx")) return false;
  bool insert = false, slice = false, gather = false, reduce = false;
  std::function<void(const onnx::GraphProto&)> walk = [&](const onnx::GraphProto& g) {
    for (const auto& s : g.node()) {
      insert |= s.op_type() == "SequenceInsert";
      slice |= s.op_type() == "Slice";
      gather |= s.op_type() == "Gather";
      reduce |= s.op_type() == "ReduceSum" || s.op_type() == "ReduceMean" || s.op_type() == "ReduceMax";
      for (const auto& a : s.attribute()) {
        if (a.has_g()) walk(a.g());
        for (const auto& sub : a.graphs()) walk(sub);
      }
    }
  };
  for (const auto& a : n.attribute())
    if (a.name() == "body" && a.has_g()) walk(a.g());
  return slice && reduce && (insert || gather);
}

}  // namespace

Status EmbeddingBagAsSegmentReduction(onnx::ModelProto* model) {
  onnx::GraphProto* g = model->mutable_graph();
  const int64_t opset = OnnxOpset(*model);
  // The clusters: node positions by the fx node they all carry.
  std::map<std::string, std::vector<int>> clusters;
  std::vector<std::string> order;
  for (int i = 0; i < g->node_size(); ++i) {
    if (!EmbeddingBagCall(g->node(i))) continue;
    const std::string& fx = *FindProp(g->node(i).metadata_props(), kFxNodeKey);
    if (!clusters.count(fx)) order.push_back(fx);
    clusters[fx].push_back(i);
  }
  std::set<int> dropped;                           // positions whose node is removed
  std::map<int, std::vector<onnx::NodeProto>> at;  // position -> the nodes that replace it
  std::map<std::string, const onnx::TensorProto*> consts;  // the main graph's constants
  for (const auto& t : g->initializer()) consts[t.name()] = &t;
  for (const auto& n : g->node()) {
    const onnx::AttributeProto* v = n.op_type() == "Constant" ? FindAttr(n, "value") : nullptr;
    if (v && v->has_t() && n.output_size() == 1) consts[n.output(0)] = &v->t();
  }
  for (int i = 0; i < g->node_size(); ++i) {
    const onnx::NodeProto& n = g->node(i);
    if (EmbeddingBagCall(n)) continue;
    if (std::optional<Bag> bag = LegacyBag(n, consts)) {
      if (opset < 13) return Unimplemented("node '", n.name(), "' (Loop): torch's embedding_bag in a model of opset ",
                                           opset, " (dscompile imports it from opset 13)");
      SegmentReduce(n, *bag, opset, n.output(0), &at[i]);
      dropped.insert(i);
    } else if (LooksLikeBagLoop(n)) {
      return Unimplemented(
          "node '", n.name(), "' (Loop) has the shape of torch's per-bag embedding_bag loop (nn.EmbeddingBag, "
          "F.embedding_bag) but not one dscompile reads: the dynamo exporter's form needs its node metadata "
          "(pkg.torch.onnx.fx_node), absent here; export with torch.onnx.export(..., dynamo=True) or "
          "tools/export_for_training.py and keep that metadata");
    }
  }
  if (clusters.empty() && at.empty()) return Status::OK();
  if (!clusters.empty() && opset < 13)
    return Unimplemented("torch's embedding_bag in a model of opset ", opset, " (dscompile imports it from opset 13)");

  Names names;
  for (const auto& v : g->input()) names.values.insert(v.name());
  for (const auto& t : g->initializer()) {
    names.values.insert(t.name());
    names.initializers.push_back(t.name());
  }
  std::map<std::string, int> producer;  // value -> node position
  for (int i = 0; i < g->node_size(); ++i)
    for (const auto& o : g->node(i).output())
      if (!o.empty()) producer[o] = i;

  std::set<int> every;                             // the nodes of every cluster
  std::map<std::string, const onnx::NodeProto*> made;
  for (const auto& n : g->node())
    for (const auto& o : n.output()) made[o] = &n;
  for (const std::string& fx : order) {
    const std::set<int> cluster(clusters[fx].begin(), clusters[fx].end());
    every.insert(cluster.begin(), cluster.end());
    const onnx::NodeProto& first = g->node(*cluster.begin());

    // What the rest of the graph reads of the cluster.
    std::set<std::string> read_outside;
    for (int i = 0; i < g->node_size(); ++i)
      if (!cluster.count(i)) Reads(g->node(i), &read_outside);
    for (const auto& o : g->output()) read_outside.insert(o.name());
    // The bag values: the ConcatFromSequence of the rows, or its Cast(Like).
    std::optional<int> result;
    for (int i : cluster) {
      const onnx::NodeProto& n = g->node(i);
      if (n.output_size() != 1 || !read_outside.count(n.output(0))) continue;
      bool values = n.op_type() == "ConcatFromSequence";
      if ((n.op_type() == "Cast" || n.op_type() == "CastLike") && n.input_size() > 0) {
        auto p = producer.find(n.input(0));
        values = p != producer.end() && cluster.count(p->second) && g->node(p->second).op_type() == "ConcatFromSequence";
      }
      if (!values) continue;
      if (result)
        return Unimplemented("node '", n.name(), "' (", n.op_type(), "): torch's embedding_bag cluster of node '",
                             first.name(), "' has two results read by the graph");
      result = i;
    }
    if (!result)
      return Unimplemented("node '", first.name(), "' (", first.op_type(), "): torch's embedding_bag cluster ",
                           "has no ConcatFromSequence of its bags that the graph reads");

    // The embedding_bag nodes the result depends on (the exporter's optimizer may have merged some
    // into another call's equal nodes), for the arguments it renamed.
    std::vector<const onnx::NodeProto*> deps;
    std::set<std::string> seen;
    std::vector<std::string> todo;
    Reads(g->node(*result), &seen);
    todo.assign(seen.begin(), seen.end());
    while (!todo.empty()) {
      const std::string v = todo.back();
      todo.pop_back();
      auto p = made.find(v);
      if (p == made.end() || !EmbeddingBagCall(*p->second)) continue;
      if (std::find(deps.begin(), deps.end(), p->second) != deps.end()) continue;
      deps.push_back(p->second);
      std::set<std::string> reads;
      Reads(*p->second, &reads);
      for (const auto& r : reads)
        if (seen.insert(r).second) todo.push_back(r);
    }
    const Roles roles = RolesOf(deps, made);
    Names outside = names;  // the arguments come from outside the cluster (values it defines are its own)
    for (int i = 0; i < g->node_size(); ++i)
      if (!cluster.count(i))
        for (const auto& o : g->node(i).output()) outside.values.insert(o);
    const Resolver resolve = [&](size_t i, const std::string& text) -> std::optional<std::string> {
      if (std::optional<std::string> v = ValueOf(text, outside)) return v;
      switch (i) {
        case 0: return roles.weight;
        case 1: return roles.indices;
        case 2: return roles.offsets;
        case 6: return roles.per_sample_weights;
        default: return std::nullopt;
      }
    };
    Bag bag;
    RETURN_IF_ERROR(ReadBag(first, *EmbeddingBagCall(first), resolve, &bag));
    SegmentReduce(g->node(*result), bag, opset, g->node(*result).output(0), &at[*result]);
    dropped.insert(*result);
  }

  // The clusters' nodes, and nodes reading what they feed, once nothing reads them.
  std::set<std::string> fed;
  for (int i : every)
    for (const auto& o : g->node(i).output()) fed.insert(o);
  for (bool again = true; again;) {
    again = false;
    std::set<std::string> read;
    for (int i = 0; i < g->node_size(); ++i)
      if (!dropped.count(i)) Reads(g->node(i), &read);
    for (const auto& [i, nodes] : at)
      for (const auto& n : nodes) Reads(n, &read);
    for (const auto& o : g->output()) read.insert(o.name());
    for (int i = 0; i < g->node_size(); ++i) {
      if (dropped.count(i)) continue;
      const onnx::NodeProto& n = g->node(i);
      bool unread = true, feeds_on_cluster = every.count(i) > 0;
      for (const auto& o : n.output()) unread &= o.empty() || !read.count(o);
      for (const auto& in : n.input()) feeds_on_cluster |= fed.count(in) > 0;
      if (!unread || !feeds_on_cluster) continue;
      dropped.insert(i);
      for (const auto& o : n.output()) fed.insert(o);
      again = true;
    }
  }

  std::vector<onnx::NodeProto> nodes;
  for (int i = 0; i < g->node_size(); ++i) {
    if (auto it = at.find(i); it != at.end())
      for (auto& n : it->second) nodes.push_back(std::move(n));
    if (!dropped.count(i)) nodes.push_back(g->node(i));
  }
  g->clear_node();
  for (auto& n : nodes) *g->add_node() = std::move(n);
  return Status::OK();
}

}  // namespace dsc
