// Sequence ops folded into tensor ops on the ModelProto (see fold_sequences.h for why here).
#include "frontend/fold_sequences.h"

#include <algorithm>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "ir/onnx_convert.h"
#include "ir/shape_inference.h"
#include "passes/const_eval.h"
#include "onnx/defs/schema.h"
#include "onnx/shape_inference/implementation.h"

namespace dsc {
namespace {

const std::set<std::string>& SequenceOps() {
  static const std::set<std::string> ops = {"SequenceConstruct", "SequenceEmpty",  "SequenceInsert",
                                            "SequenceErase",     "SequenceAt",     "SequenceLength",
                                            "SplitToSequence",   "ConcatFromSequence"};
  return ops;
}

std::string Describe(const onnx::NodeProto& n) { return StrCat("node '", n.name(), "' (", n.op_type(), ")"); }

int64_t IntAttr(const onnx::NodeProto& n, const std::string& name, int64_t dflt) {
  for (const auto& a : n.attribute())
    if (a.name() == name) return a.i();
  return dflt;
}

class SequenceFolder {
 public:
  SequenceFolder(onnx::ModelProto* model, const HeldInitializers* held)
      : model_(model), graph_(model->mutable_graph()), held_(held) {}

  Status Run() {
    bool any = false;
    for (const auto& n : graph_->node()) any |= IsSequenceOp(n);
    if (!any) return Status::OK();
    for (const auto& in : graph_->input())
      if (in.type().has_sequence_type())
        return Unimplemented("graph input '", in.name(), "' is a sequence; only sequences built inside the graph "
                             "with a static structure can be folded into tensors");
    for (const auto& t : graph_->initializer()) constants_[t.name()] = &t, used_names_.insert(t.name());
    for (const auto& in : graph_->input()) used_names_.insert(in.name());
    for (const auto& n : graph_->node()) {
      used_names_.insert(n.name());
      for (const auto& o : n.output()) used_names_.insert(o), producers_[o] = &n;
    }
    for (const auto& n : graph_->node()) {
      if (n.op_type() == "Constant" && n.output_size() == 1) constant_nodes_[n.output(0)] = &n;
      if (IsSequenceOp(n)) continue;
      for (const auto& a : n.attribute())
        if (a.has_g() || a.graphs_size() > 0) subgraph_nodes_.push_back(&n);
    }
    google::protobuf::RepeatedPtrField<onnx::NodeProto> out;
    for (const auto& n : graph_->node()) {
      if (!IsSequenceOp(n)) {
        for (const auto& in : n.input())
          if (lists_.count(in))
            return Unimplemented(Describe(n), " reads sequence '", in, "' produced by sequence ops; only sequence ops "
                                 "may read sequences for them to be folded into tensors");
        *out.Add() = n;
        continue;
      }
      Status s = Fold(n, &out);
      if (!s.ok()) return s.WithContext(Describe(n));
    }
    for (const auto& o : graph_->output())
      if (lists_.count(o.name()))
        return Unimplemented("graph output '", o.name(), "' is a sequence; only tensors can leave the graph");
    for (const onnx::NodeProto* n : subgraph_nodes_)
      for (const auto& [name, list] : lists_)
        if (MentionsName(*n, name))
          return Unimplemented(Describe(*n), "'s subgraph reads sequence '", name, "', which cannot be folded");
    *graph_->mutable_node() = std::move(out);
    // Drop the sequence-typed value infos: nothing of that name exists any more.
    google::protobuf::RepeatedPtrField<onnx::ValueInfoProto> infos;
    for (const auto& vi : graph_->value_info())
      if (!lists_.count(vi.name())) *infos.Add() = vi;
    *graph_->mutable_value_info() = std::move(infos);
    return Status::OK();
  }

 private:
  static bool IsSequenceOp(const onnx::NodeProto& n) {
    return (n.domain().empty() || n.domain() == "ai.onnx") && SequenceOps().count(n.op_type());
  }

  static bool MentionsName(const onnx::NodeProto& n, const std::string& name) {
    for (const auto& a : n.attribute()) {
      std::vector<const onnx::GraphProto*> gs;
      if (a.has_g()) gs.push_back(&a.g());
      for (const auto& g : a.graphs()) gs.push_back(&g);
      for (const onnx::GraphProto* g : gs)
        for (const auto& sn : g->node()) {
          for (const auto& in : sn.input())
            if (in == name) return true;
          if (MentionsName(sn, name)) return true;
        }
    }
    return false;
  }

  // The int64 data of a constant input (initializer or Constant node), or nullopt.
  std::optional<std::vector<int64_t>> ConstInts(const std::string& name) const {
    const onnx::TensorProto* t = nullptr;
    if (auto it = constants_.find(name); it != constants_.end()) t = it->second;
    if (auto it = constant_nodes_.find(name); !t && it != constant_nodes_.end()) {
      for (const auto& a : it->second->attribute()) {
        if (a.name() == "value") t = &a.t();
        if (a.name() == "value_int") return std::vector<int64_t>{a.i()};
        if (a.name() == "value_ints") return std::vector<int64_t>(a.ints().begin(), a.ints().end());
      }
    }
    if (!t) return EvaluateInts(name);
    if (held_)
      if (auto it = held_->find(name); it != held_->end()) return it->second.ToInt64Vector();
    StatusOr<Tensor> v = TensorFromOnnx(*t);
    if (!v.ok()) return std::nullopt;
    return v->ToInt64Vector();
  }

  // The value of `name` when it is computed from constants and static shapes only (torch.chunk's
  // sizes from Shape(x), say): its ancestors become a temporary IR graph, typed by shape inference
  // and evaluated node by node with the constant evaluator fold-constants uses. nullopt otherwise.
  std::optional<std::vector<int64_t>> EvaluateInts(const std::string& name) const {
    std::set<const onnx::NodeProto*> needed;
    std::vector<std::string> work{name};
    while (!work.empty()) {
      std::string v = work.back();
      work.pop_back();
      auto it = producers_.find(v);
      if (it == producers_.end() || !needed.insert(it->second).second) continue;
      const onnx::NodeProto& n = *it->second;
      if (IsSequenceOp(n)) return std::nullopt;
      for (const auto& a : n.attribute())
        if (a.has_g() || a.graphs_size() > 0) return std::nullopt;
      for (const auto& in : n.input())
        if (!in.empty()) work.push_back(in);
    }
    if (needed.empty()) return std::nullopt;
    onnx::ModelProto sub;
    sub.set_ir_version(model_->ir_version());
    *sub.mutable_opset_import() = model_->opset_import();
    onnx::GraphProto* sg = sub.mutable_graph();
    std::set<std::string> read;
    for (const auto& n : graph_->node())
      if (needed.count(&n)) {
        *sg->add_node() = n;
        for (const auto& in : n.input()) read.insert(in);
      }
    for (const auto& in : graph_->input())
      if (read.count(in.name())) *sg->add_input() = in;
    for (const auto& t : graph_->initializer())
      if (read.count(t.name())) *sg->add_initializer() = t;
    sg->add_output()->set_name(name);
    StatusOr<std::unique_ptr<Graph>> g = GraphFromOnnx(sub, held_);
    if (!g.ok() || !InferShapes(**g).ok()) return std::nullopt;
    std::map<const Value*, Tensor> known;
    // Shape(x) of an x with some symbolic dims: its static entries, for a Gather of only those
    // (the legacy exporter's torch.chunk sizes read dim 1 of a [batch, n] tensor this way).
    std::map<const Value*, std::vector<std::optional<int64_t>>> partial_shapes;
    auto value_of = [&](const Value* v) -> const Tensor* {
      if (v->is_initializer()) return &v->initializer();
      auto k = known.find(v);
      return k == known.end() ? nullptr : &k->second;
    };
    for (const auto& n : (*g)->nodes()) {
      std::vector<Tensor> outs;
      const Value* x = n->input(0);
      if ((n->op_type() == "Shape" || n->op_type() == "Size") && x && x->type.shape && IsStatic(*x->type.shape)) {
        std::vector<int64_t> dims;
        for (const Dim& d : *x->type.shape) dims.push_back(d.value);
        const int64_t rank = static_cast<int64_t>(dims.size());
        if (n->op_type() == "Size") {
          int64_t count = 1;
          for (int64_t d : dims) count *= d;
          outs.push_back(Tensor::FromVector<int64_t>(DType::kInt64, {}, {count}));
        } else {
          int64_t start = n->GetInt("start", 0), end = n->GetInt("end", rank);
          start = std::clamp<int64_t>(start < 0 ? start + rank : start, 0, rank);
          end = std::clamp<int64_t>(end < 0 ? end + rank : end, 0, rank);
          std::vector<int64_t> part(dims.begin() + start, dims.begin() + std::max(start, end));
          outs.push_back(Tensor::FromVector<int64_t>(DType::kInt64, {static_cast<int64_t>(part.size())}, part));
        }
      } else if (n->op_type() == "Shape" && x && x->type.shape && n->num_outputs() == 1) {
        const int64_t rank = static_cast<int64_t>(x->type.shape->size());
        int64_t start = n->GetInt("start", 0), end = n->GetInt("end", rank);
        start = std::clamp<int64_t>(start < 0 ? start + rank : start, 0, rank);
        end = std::clamp<int64_t>(end < 0 ? end + rank : end, 0, rank);
        std::vector<std::optional<int64_t>> dims;
        for (int64_t i = start; i < end; ++i) {
          const Dim& d = (*x->type.shape)[static_cast<size_t>(i)];
          dims.push_back(d.is_static() ? std::optional<int64_t>(d.value) : std::nullopt);
        }
        partial_shapes[n->output(0)] = std::move(dims);
        continue;
      } else if (n->op_type() == "Gather" && partial_shapes.count(x) && n->num_inputs() > 1 && n->input(1) &&
                 value_of(n->input(1))) {
        const std::vector<std::optional<int64_t>>& dims = partial_shapes.at(x);
        const Tensor& index = *value_of(n->input(1));
        std::vector<int64_t> picked;
        for (int64_t i : index.ToInt64Vector()) {
          const int64_t k = i < 0 ? i + static_cast<int64_t>(dims.size()) : i;
          if (k < 0 || k >= static_cast<int64_t>(dims.size()) || !dims[static_cast<size_t>(k)]) return std::nullopt;
          picked.push_back(*dims[static_cast<size_t>(k)]);
        }
        outs.push_back(Tensor::FromVector<int64_t>(DType::kInt64, index.dims(), picked));
      } else {
        // A node on data (what a Shape reads) stays unknown; only the result has to be known.
        if (!CanEvaluate(*n)) continue;
        std::vector<const Tensor*> ins;
        bool all_known = true;
        for (const Value* in : n->inputs()) {
          ins.push_back(in ? value_of(in) : nullptr);
          if (in && !ins.back()) all_known = false;
        }
        if (!all_known) continue;
        StatusOr<std::vector<Tensor>> r = EvaluateNode(*n, ins);
        if (!r.ok()) return std::nullopt;
        outs = std::move(*r);
      }
      for (size_t i = 0; i < outs.size() && i < n->num_outputs(); ++i) known[n->output(i)] = std::move(outs[i]);
    }
    const Value* out = (*g)->FindValue(name);
    const Tensor* t = out ? value_of(out) : nullptr;
    if (!t) return std::nullopt;
    evaluated_rank_[name] = t->dims().size();
    return t->ToInt64Vector();
  }

  // A position input: a constant scalar. `size` (list length) bounds it; insert allows == size.
  StatusOr<int64_t> Position(const onnx::NodeProto& n, int input, int64_t size, bool insert) const {
    if (n.input_size() <= input || n.input(input).empty()) return insert ? size : size - 1;
    std::optional<std::vector<int64_t>> v = ConstInts(n.input(input));
    if (!v || v->size() != 1)
      return Unimplemented("position '", n.input(input), "' is not a scalar computable from constants and static shapes: "
                           "the sequence's structure is not static, so it cannot be folded into tensors");
    int64_t p = (*v)[0];
    const int64_t hi = insert ? size : size - 1;
    if (p < -size || p > hi) return InvalidArgument("position ", p, " is out of range for a sequence of ", size);
    return p < 0 ? p + size : p;
  }

  StatusOr<const std::vector<std::string>*> ListOf(const std::string& name) const {
    auto it = lists_.find(name);
    if (it == lists_.end())
      return Unimplemented("sequence '", name, "' is not built by sequence ops in this graph; its structure is unknown");
    return &it->second;
  }

  std::string Fresh(const std::string& base) {
    std::string n;
    do n = StrCat(base, "__seq", counter_++);
    while (used_names_.count(n));
    used_names_.insert(n);
    return n;
  }

  std::string IntsInitializer(const std::vector<int64_t>& v, const std::string& base) {
    std::string name = Fresh(base);
    onnx::TensorProto* t = graph_->add_initializer();
    TensorToOnnx(Tensor::FromVector<int64_t>(DType::kInt64, {static_cast<int64_t>(v.size())}, v), name, t);
    return name;
  }

  onnx::NodeProto* Add(google::protobuf::RepeatedPtrField<onnx::NodeProto>* out, const onnx::NodeProto& from,
                       const std::string& op, std::vector<std::string> ins, std::vector<std::string> outs) {
    onnx::NodeProto* n = out->Add();
    n->set_op_type(op);
    n->set_name(Fresh(from.name().empty() ? from.op_type() : from.name()));
    for (auto& i : ins) n->add_input(i);
    for (auto& o : outs) n->add_output(o);
    return n;
  }

  static void SetIntAttr(onnx::NodeProto* n, const std::string& name, int64_t v) {
    onnx::AttributeProto* a = n->add_attribute();
    a->set_name(name);
    a->set_type(onnx::AttributeProto::INT);
    a->set_i(v);
  }

  // Static dim `axis` of tensor `name`, from ONNX shape inference of the model as it stands.
  StatusOr<int64_t> StaticDim(const std::string& name, int64_t axis) {
    if (!inferred_) {
      inferred_ = *model_;
      try {
        onnx::ShapeInferenceOptions options(/*check_type=*/false, /*error_mode=*/0, /*data_prop=*/true);
        onnx::shape_inference::InferShapes(*inferred_, onnx::OpSchemaRegistry::Instance(), options);
      } catch (const std::exception&) {
        // Whatever inference could not type stays unknown and is refused below.
      }
    }
    const onnx::GraphProto& g = inferred_->graph();
    const onnx::TypeProto* type = nullptr;
    for (const auto* list : {&g.input(), &g.value_info(), &g.output()})
      for (const auto& vi : *list)
        if (vi.name() == name) type = &vi.type();
    if (auto it = constants_.find(name); it != constants_.end()) {
      const auto& dims = it->second->dims();
      int64_t a = axis < 0 ? axis + dims.size() : axis;
      if (a >= 0 && a < dims.size()) return dims[static_cast<int>(a)];
    }
    if (type && type->has_tensor_type() && type->tensor_type().has_shape()) {
      const auto& shape = type->tensor_type().shape();
      int64_t a = axis < 0 ? axis + shape.dim_size() : axis;
      if (a >= 0 && a < shape.dim_size() && shape.dim(static_cast<int>(a)).has_dim_value())
        return shape.dim(static_cast<int>(a)).dim_value();
    }
    return Unimplemented("the length of '", name, "' along axis ", axis,
                         " is not static, so the number of pieces (the sequence's structure) is unknown");
  }

  Status Fold(const onnx::NodeProto& n, google::protobuf::RepeatedPtrField<onnx::NodeProto>* out) {
    const std::string& op = n.op_type();
    const std::string y = n.output(0);
    used_names_.insert(y);
    if (op == "SequenceEmpty") {
      lists_[y] = {};
    } else if (op == "SequenceConstruct") {
      lists_[y] = std::vector<std::string>(n.input().begin(), n.input().end());
    } else if (op == "SequenceInsert") {
      ASSIGN_OR_RETURN(const std::vector<std::string>* l, ListOf(n.input(0)));
      std::vector<std::string> list = *l;
      ASSIGN_OR_RETURN(int64_t p, Position(n, 2, static_cast<int64_t>(list.size()), /*insert=*/true));
      list.insert(list.begin() + p, n.input(1));
      lists_[y] = std::move(list);
    } else if (op == "SequenceErase") {
      ASSIGN_OR_RETURN(const std::vector<std::string>* l, ListOf(n.input(0)));
      std::vector<std::string> list = *l;
      if (list.empty()) return InvalidArgument("erasing from an empty sequence");
      ASSIGN_OR_RETURN(int64_t p, Position(n, 1, static_cast<int64_t>(list.size()), /*insert=*/false));
      list.erase(list.begin() + p);
      lists_[y] = std::move(list);
    } else if (op == "SequenceAt") {
      ASSIGN_OR_RETURN(const std::vector<std::string>* l, ListOf(n.input(0)));
      if (l->empty()) return InvalidArgument("reading from an empty sequence");
      if (n.input_size() < 2 || n.input(1).empty()) return InvalidArgument("SequenceAt needs a position");
      ASSIGN_OR_RETURN(int64_t p, Position(n, 1, static_cast<int64_t>(l->size()), /*insert=*/false));
      Add(out, n, "Identity", {(*l)[static_cast<size_t>(p)]}, {y});
    } else if (op == "SequenceLength") {
      ASSIGN_OR_RETURN(const std::vector<std::string>* l, ListOf(n.input(0)));
      onnx::NodeProto* c = Add(out, n, "Constant", {}, {y});
      onnx::AttributeProto* a = c->add_attribute();
      a->set_name("value");
      a->set_type(onnx::AttributeProto::TENSOR);
      TensorToOnnx(Tensor::FromVector<int64_t>(DType::kInt64, {}, {static_cast<int64_t>(l->size())}), "", a->mutable_t());
    } else if (op == "ConcatFromSequence") {
      ASSIGN_OR_RETURN(const std::vector<std::string>* l, ListOf(n.input(0)));
      if (l->empty()) return InvalidArgument("concatenating an empty sequence");
      const int64_t axis = IntAttr(n, "axis", 0);
      std::vector<std::string> parts = *l;
      if (IntAttr(n, "new_axis", 0) != 0) {  // stacking: each element gains the axis first
        const std::string axes = IntsInitializer({axis}, y + "_axes");
        for (std::string& p : parts) {
          std::string u = Fresh(p + "_unsqueezed");
          Add(out, n, "Unsqueeze", {p, axes}, {u});
          p = u;
        }
      }
      SetIntAttr(Add(out, n, "Concat", parts, {y}), "axis", axis);
    } else if (op == "SplitToSequence") {
      const int64_t axis = IntAttr(n, "axis", 0);
      std::vector<int64_t> sizes;
      bool squeeze = false;
      const bool has_split = n.input_size() > 1 && !n.input(1).empty();
      std::optional<std::vector<int64_t>> split;
      if (has_split) {
        split = ConstInts(n.input(1));
        if (!split)
          return Unimplemented("split '", n.input(1), "' is not computable from constants and static shapes: the number of "
                               "pieces is not static, so the sequence cannot be folded into tensors");
      }
      if (has_split && !split->empty() && !IsScalar(n.input(1))) {
        sizes = *split;  // one piece per listed size; keepdims does not apply
        if (std::any_of(sizes.begin(), sizes.end(), [](int64_t size) { return size < 0; })) {
          std::string listed;
          for (int64_t size : sizes) listed += StrCat(listed.empty() ? "" : ", ", size);
          return InvalidArgument(
              "split '", n.input(1), "' evaluates to sizes [", listed, "], and a size cannot be "
              "negative; the file computes them wrongly (torch's legacy exporter writes torch.chunk(x, n) so when x "
              "has fewer than n chunks, and ONNX Runtime refuses such a file too): export with "
              "tools/export_for_training.py or torch.onnx.export(..., dynamo=True)");
        }
      } else {
        ASSIGN_OR_RETURN(int64_t dim, StaticDim(n.input(0), axis));
        const int64_t chunk = has_split ? (*split)[0] : 1;
        if (chunk <= 0) return InvalidArgument("split size ", chunk, " must be positive");
        for (int64_t left = dim; left > 0; left -= chunk) sizes.push_back(std::min(chunk, left));
        squeeze = !has_split && IntAttr(n, "keepdims", 1) == 0;
      }
      if (sizes.empty()) return Unimplemented("splitting an empty axis gives an empty sequence of unknown use");
      std::vector<std::string> pieces;
      for (size_t i = 0; i < sizes.size(); ++i) pieces.push_back(Fresh(StrCat(y, "_", i)));
      SetIntAttr(Add(out, n, "Split", {n.input(0), IntsInitializer(sizes, y + "_split")}, pieces), "axis", axis);
      if (squeeze) {
        const std::string axes = IntsInitializer({axis}, y + "_axes");
        for (std::string& p : pieces) {
          std::string s = Fresh(p + "_squeezed");
          Add(out, n, "Squeeze", {p, axes}, {s});
          p = s;
        }
      }
      lists_[y] = std::move(pieces);
    }
    return Status::OK();
  }

  // Whether a constant is a 0-D tensor (a chunk size) rather than a 1-D list of sizes.
  bool IsScalar(const std::string& name) const {
    if (auto it = evaluated_rank_.find(name); it != evaluated_rank_.end()) return it->second == 0;
    if (auto it = constants_.find(name); it != constants_.end()) return it->second->dims_size() == 0;
    if (auto it = constant_nodes_.find(name); it != constant_nodes_.end())
      for (const auto& a : it->second->attribute()) {
        if (a.name() == "value") return a.t().dims_size() == 0;
        if (a.name() == "value_int") return true;
      }
    return false;
  }

  onnx::ModelProto* model_;
  onnx::GraphProto* graph_;
  std::optional<onnx::ModelProto> inferred_;
  const HeldInitializers* held_;
  std::map<std::string, const onnx::TensorProto*> constants_;
  std::map<std::string, const onnx::NodeProto*> constant_nodes_;
  std::map<std::string, const onnx::NodeProto*> producers_;
  mutable std::map<std::string, size_t> evaluated_rank_;  // rank of each value EvaluateInts computed  // value -> the node of the input graph making it
  std::vector<const onnx::NodeProto*> subgraph_nodes_;
  std::map<std::string, std::vector<std::string>> lists_;  // sequence value -> its elements
  std::set<std::string> used_names_;
  int64_t counter_ = 0;
};

}  // namespace

Status FoldSequenceOps(onnx::ModelProto* model, const HeldInitializers* held) {
  SequenceFolder folder(model, held);
  return folder.Run();
}

}  // namespace dsc
