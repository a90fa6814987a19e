// IR <-> ONNX ModelProto conversion.
#include "ir/onnx_convert.h"

#include <cstring>
#include <limits>
#include <sstream>

#include "ir/node_checks.h"
#include "ir/training_meta.h"

namespace dsc {
namespace {

template <typename Field>
void CopyTyped(const Field& f, Tensor* t) {
  for (int i = 0; i < f.size(); ++i) t->SetFromDouble(i, static_cast<double>(f.Get(i)));
}

}  // namespace

StatusOr<Tensor> TensorFromOnnx(const onnx::TensorProto& t, const std::string& what_arg) {
  const std::string what = what_arg.empty() ? StrCat("tensor '", t.name(), "'") : what_arg;
  if (t.data_location() == onnx::TensorProto_DataLocation_EXTERNAL)
    return Internal(what, " still has external data (the frontend resolves it first)");
  StatusOr<DType> dt = DTypeFromOnnx(t.data_type());
  if (!dt.ok()) return dt.status().WithContext(what);
  const DType dtype = *dt;
  std::vector<int64_t> dims(t.dims().begin(), t.dims().end());
  for (int64_t d : dims)
    if (d < 0) return InvalidArgument(what, " has negative dimension ", d);
  StatusOr<int64_t> n = NumElements(dims);
  if (!n.ok()) return n.status().WithContext(what);
  if (*n > kMaxElements) return OutOfRange(what, " has ", *n, " elements; too large");
  // The data must match the shape before anything is allocated: a file may declare a huge shape
  // over a few bytes of data.
  const int64_t expected = *n * static_cast<int64_t>(DTypeSize(dtype));
  if (t.has_raw_data()) {
    if (static_cast<int64_t>(t.raw_data().size()) != expected)
      return DataLoss(what, " raw_data holds ", t.raw_data().size(), " bytes, its type and shape need ", expected);
    Tensor out(dtype, dims);
    if (expected) std::memcpy(out.raw(), t.raw_data().data(), static_cast<size_t>(expected));
    return out;
  }
  int64_t count = 0;
  switch (dtype) {
    case DType::kFloat32: count = t.float_data_size(); break;
    case DType::kFloat64: count = t.double_data_size(); break;
    case DType::kInt64: count = t.int64_data_size(); break;
    default: count = t.int32_data_size(); break;  // also the raw 16-bit patterns of float16/bfloat16
  }
  if (count != *n) return DataLoss(what, " holds ", count, " values, its shape needs ", *n);
  Tensor out(dtype, dims);
  switch (dtype) {
    case DType::kFloat32: CopyTyped(t.float_data(), &out); break;
    case DType::kFloat64: CopyTyped(t.double_data(), &out); break;
    case DType::kInt64:
      for (int i = 0; i < t.int64_data_size(); ++i) out.SetFromInt(i, t.int64_data(i));
      break;
    case DType::kFloat16:
    case DType::kBFloat16:
      for (int i = 0; i < count; ++i) {
        uint16_t bits = static_cast<uint16_t>(t.int32_data(i));
        std::memcpy(out.raw() + 2 * i, &bits, 2);
      }
      break;
    default: CopyTyped(t.int32_data(), &out); break;
  }
  return out;
}

void TensorToOnnx(const Tensor& t, const std::string& name, onnx::TensorProto* out) {
  out->set_name(name);
  out->set_data_type(DTypeToOnnx(t.dtype()));
  for (int64_t d : t.dims()) out->add_dims(d);
  out->set_raw_data(std::string(reinterpret_cast<const char*>(t.raw()), t.nbytes()));
}

StatusOr<TensorType> TypeFromOnnx(const onnx::TypeProto& t, const std::string& what) {
  if (!t.has_tensor_type()) return Unimplemented(what, " is not a tensor (sequences, maps and optionals are not supported)");
  TensorType out;
  StatusOr<DType> dt = DTypeFromOnnx(t.tensor_type().elem_type());
  if (!dt.ok()) return dt.status().WithContext(what);
  out.dtype = *dt;
  if (t.tensor_type().has_shape()) {
    Shape s;
    for (const auto& d : t.tensor_type().shape().dim()) {
      if (d.has_dim_value()) {
        if (d.dim_value() < 0) return InvalidArgument(what, " has negative dimension ", d.dim_value());
        s.push_back(Dim::Static(d.dim_value()));
      } else if (d.has_dim_param() && !d.dim_param().empty()) {
        s.push_back(Dim::Symbol(d.dim_param()));
      } else {
        s.push_back(Dim{});
      }
    }
    out.shape = s;
  }
  return out;
}

void TypeToOnnx(const TensorType& t, onnx::TypeProto* out) {
  auto* tt = out->mutable_tensor_type();
  tt->set_elem_type(DTypeToOnnx(t.dtype));
  if (!t.shape) return;
  auto* shape = tt->mutable_shape();
  for (const Dim& d : *t.shape) {
    auto* od = shape->add_dim();
    if (d.is_static()) od->set_dim_value(d.value);
    else if (!d.symbol.empty()) od->set_dim_param(d.symbol);
  }
}

static StatusOr<AttrValue> AttrFromOnnx(const onnx::AttributeProto& a, const std::string& node) {
  const std::string what = StrCat("attribute '", a.name(), "' of ", node);
  switch (a.type()) {
    case onnx::AttributeProto::INT: return AttrValue(a.i());
    case onnx::AttributeProto::FLOAT: return AttrValue(a.f());
    case onnx::AttributeProto::STRING: return AttrValue(a.s());
    case onnx::AttributeProto::TENSOR: {
      StatusOr<Tensor> t = TensorFromOnnx(a.t(), what);
      if (!t.ok()) return t.status();
      return AttrValue(*t);
    }
    case onnx::AttributeProto::INTS: return AttrValue(std::vector<int64_t>(a.ints().begin(), a.ints().end()));
    case onnx::AttributeProto::FLOATS: return AttrValue(std::vector<float>(a.floats().begin(), a.floats().end()));
    case onnx::AttributeProto::STRINGS: return AttrValue(std::vector<std::string>(a.strings().begin(), a.strings().end()));
    case onnx::AttributeProto::GRAPH:
    case onnx::AttributeProto::GRAPHS:
      return Unimplemented(what, " is a subgraph: control flow (If/Loop/Scan) is not supported");
    default:
      if (!a.ref_attr_name().empty()) return Unimplemented(what, " refers to a function attribute");
      return Unimplemented(what, " has unsupported type ", onnx::AttributeProto_AttributeType_Name(a.type()));
  }
}

static void AttrToOnnx(const std::string& name, const AttrValue& v, onnx::AttributeProto* a) {
  a->set_name(name);
  switch (KindOf(v)) {
    case AttrKind::kInt: a->set_type(onnx::AttributeProto::INT); a->set_i(std::get<int64_t>(v)); break;
    case AttrKind::kFloat: a->set_type(onnx::AttributeProto::FLOAT); a->set_f(std::get<float>(v)); break;
    case AttrKind::kString: a->set_type(onnx::AttributeProto::STRING); a->set_s(std::get<std::string>(v)); break;
    case AttrKind::kTensor: a->set_type(onnx::AttributeProto::TENSOR); TensorToOnnx(std::get<Tensor>(v), "", a->mutable_t()); break;
    case AttrKind::kInts:
      a->set_type(onnx::AttributeProto::INTS);
      for (int64_t x : std::get<std::vector<int64_t>>(v)) a->add_ints(x);
      break;
    case AttrKind::kFloats:
      a->set_type(onnx::AttributeProto::FLOATS);
      for (float x : std::get<std::vector<float>>(v)) a->add_floats(x);
      break;
    case AttrKind::kStrings:
      a->set_type(onnx::AttributeProto::STRINGS);
      for (const auto& x : std::get<std::vector<std::string>>(v)) a->add_strings(x);
      break;
  }
}

namespace {

// `release`, when given, is `model` itself: each initializer's bytes are dropped from it once the
// graph holds them.
StatusOr<std::unique_ptr<Graph>> ConvertGraph(const onnx::ModelProto& model, onnx::ModelProto* release,
                                              const HeldInitializers* held) {
  auto g = std::make_unique<Graph>();
  const onnx::GraphProto& gp = model.graph();
  g->name = gp.name().empty() ? "main" : gp.name();
  g->ir_version = model.ir_version();
  g->opsets.clear();
  for (const auto& op : model.opset_import()) g->opsets[op.domain() == "ai.onnx" ? "" : op.domain()] = op.version();
  for (const auto& p : model.metadata_props()) g->metadata[p.key()] = p.value();

  std::unordered_map<std::string, const onnx::TensorProto*> inits;
  for (const auto& t : gp.initializer()) {
    if (t.name().empty()) return InvalidArgument("an initializer has no name");
    if (!inits.emplace(t.name(), &t).second) return InvalidArgument("initializer '", t.name(), "' is defined twice");
  }
  if (gp.sparse_initializer_size() > 0) return Unimplemented("sparse initializers are not supported");

  for (const auto& in : gp.input()) {
    if (inits.count(in.name())) continue;  // an initializer listed as input (keep_initializers_as_inputs)
    if (g->FindValue(in.name())) return InvalidArgument("graph input '", in.name(), "' is declared twice");
    ASSIGN_OR_RETURN(TensorType t, TypeFromOnnx(in.type(), StrCat("graph input '", in.name(), "'")));
    g->AddInput(in.name(), t);
  }
  for (int i = 0; i < gp.initializer_size(); ++i) {
    const onnx::TensorProto& t = gp.initializer(i);
    if (held) {
      if (auto it = held->find(t.name()); it != held->end()) {
        g->AddInitializer(t.name(), it->second);
        continue;
      }
    }
    StatusOr<Tensor> tensor = TensorFromOnnx(t, StrCat("initializer '", t.name(), "'"));
    if (!tensor.ok()) return tensor.status();
    g->AddInitializer(t.name(), std::move(*tensor));
    if (release) {
      // Swapped with empty containers: clear() would keep the capacity, and so the memory.
      onnx::TensorProto* r = release->mutable_graph()->mutable_initializer(i);
      std::string().swap(*r->mutable_raw_data());
      google::protobuf::RepeatedField<float>().Swap(r->mutable_float_data());
      google::protobuf::RepeatedField<double>().Swap(r->mutable_double_data());
      google::protobuf::RepeatedField<int32_t>().Swap(r->mutable_int32_data());
      google::protobuf::RepeatedField<int64_t>().Swap(r->mutable_int64_data());
      google::protobuf::RepeatedField<uint64_t>().Swap(r->mutable_uint64_data());
    }
  }

  std::unordered_map<std::string, const onnx::ValueInfoProto*> infos;
  for (const auto& vi : gp.value_info()) infos[vi.name()] = &vi;
  for (const auto& vi : gp.output()) infos[vi.name()] = &vi;

  // Nodes may come in any order in a (malformed) file: create outputs first, then wire inputs.
  std::vector<Node*> created;
  for (const auto& np : gp.node()) {
    std::vector<std::string> outs;
    for (const auto& o : np.output()) {
      if (o.empty()) {
        outs.push_back(g->UniqueName(StrCat(np.name().empty() ? np.op_type() : np.name(), "_unused")));
        continue;
      }
      if (g->FindValue(o)) return InvalidArgument("value '", o, "' is produced twice (second time by node '", np.name(), "' ", np.op_type(), ")");
      outs.push_back(o);
    }
    std::string domain = np.domain() == "ai.onnx" ? "" : np.domain();
    Node* n = g->AddNode(np.op_type(), {}, outs, domain, np.name());
    for (const auto& a : np.attribute()) {
      ASSIGN_OR_RETURN(AttrValue v, AttrFromOnnx(a, n->Describe()));
      n->SetAttr(a.name(), std::move(v));
    }
    for (Value* o : n->outputs()) {
      auto it = infos.find(o->name());
      if (it != infos.end() && it->second->has_type()) {
        StatusOr<TensorType> t = TypeFromOnnx(it->second->type(), StrCat("value '", o->name(), "'"));
        if (t.ok()) o->type = *t;
      }
    }
    created.push_back(n);
  }
  for (int i = 0; i < gp.node_size(); ++i) {
    for (const auto& in : gp.node(i).input()) {
      if (in.empty()) {
        created[i]->AddInput(nullptr);
        continue;
      }
      Value* v = g->FindValue(in);
      if (!v) return InvalidArgument(created[i]->Describe(), " uses '", in, "', which is neither a graph input, an initializer nor produced by any node");
      created[i]->AddInput(v);
    }
  }
  std::vector<Value*> outs;
  for (const auto& o : gp.output()) {
    Value* v = g->FindValue(o.name());
    if (!v) return InvalidArgument("graph output '", o.name(), "' is never produced");
    if (!v->type.shape.has_value() || v->type.dtype == DType::kUndefined) {
      StatusOr<TensorType> t = TypeFromOnnx(o.type(), StrCat("graph output '", o.name(), "'"));
      if (t.ok()) v->type = *t;
    }
    outs.push_back(v);
  }
  g->SetOutputs(outs);
  g->training = TrainingFromMetadata(&g->metadata);
  RETURN_IF_ERROR(g->TopoSort());
  return g;
}

}  // namespace

StatusOr<std::unique_ptr<Graph>> GraphFromOnnx(const onnx::ModelProto& model, const HeldInitializers* held) {
  return ConvertGraph(model, nullptr, held);
}

StatusOr<std::unique_ptr<Graph>> GraphFromOnnxReleasingWeights(onnx::ModelProto* model, const HeldInitializers* held) {
  return ConvertGraph(*model, model, held);
}

onnx::ModelProto GraphToOnnx(const Graph& g, const GraphToOnnxOptions& options) {
  onnx::ModelProto m;
  m.set_ir_version(g.ir_version);
  m.set_producer_name("dscompile");
  for (const auto& [domain, version] : g.opsets) {
    auto* op = m.add_opset_import();
    op->set_domain(domain);
    op->set_version(version);
  }
  auto add_meta = [&](const std::string& k, const std::string& v) {
    auto* p = m.add_metadata_props();
    p->set_key(k);
    p->set_value(v);
  };
  for (const auto& [k, v] : g.metadata) add_meta(k, v);
  for (const auto& [k, v] : TrainingToMetadata(g.training)) add_meta(k, v);

  onnx::GraphProto* gp = m.mutable_graph();
  gp->set_name(g.name);
  for (Value* v : g.inputs()) {
    auto* vi = gp->add_input();
    vi->set_name(v->name());
    TypeToOnnx(v->type, vi->mutable_type());
  }
  for (Value* v : g.initializers()) {
    const Tensor& t = v->initializer();
    if (options.weights_as_inputs_above >= 0 && IsFloat(t.dtype()) && t.numel() > options.weights_as_inputs_above) {
      auto* vi = gp->add_input();
      vi->set_name(v->name());
      TypeToOnnx(v->type, vi->mutable_type());
      continue;
    }
    TensorToOnnx(t, v->name(), gp->add_initializer());
  }
  for (const auto& n : g.nodes()) {
    auto* np = gp->add_node();
    np->set_op_type(n->op_type());
    if (!n->domain().empty()) np->set_domain(n->domain());
    if (!n->name().empty()) np->set_name(n->name());
    for (Value* v : n->inputs()) np->add_input(v ? v->name() : "");
    for (Value* v : n->outputs()) {
      np->add_output(v->name());
      if (!v->is_graph_output() && v->type.dtype != DType::kUndefined) {
        auto* vi = gp->add_value_info();
        vi->set_name(v->name());
        TypeToOnnx(v->type, vi->mutable_type());
      }
    }
    for (const auto& [name, a] : n->attrs()) AttrToOnnx(name, a, np->add_attribute());
  }
  for (Value* v : g.outputs()) {
    auto* vi = gp->add_output();
    vi->set_name(v->name());
    TypeToOnnx(v->type, vi->mutable_type());
  }
  return m;
}

}  // namespace dsc
