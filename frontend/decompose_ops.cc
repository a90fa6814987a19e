// Imports InstanceNormalization, ReduceL2, PRelu, DepthToSpace and SpaceToDepth as supported ops
// (see decompose_ops.h).
#include "frontend/decompose_ops.h"

#include <map>
#include <vector>


namespace dsc {
namespace {

class Rewriter {
 public:
  Rewriter(const onnx::NodeProto& orig, int64_t opset, std::vector<onnx::NodeProto>* out)
      : orig_(orig), opset_(opset), out_(out) {
    prefix_ = (orig.name().empty() ? orig.output(0) : orig.name()) + "/decomposed/";
  }

  // Adds node OP(inputs) with one output (named `output`, or a fresh name) and returns the output.
  std::string Add(const std::string& op, const std::vector<std::string>& inputs, const std::string& output = "") {
    onnx::NodeProto n;
    n.set_op_type(op);
    n.set_name(prefix_ + op + "_" + std::to_string(count_));
    for (const auto& i : inputs) n.add_input(i);
    const std::string out = output.empty() ? prefix_ + op + "_" + std::to_string(count_) + "_out" : output;
    n.add_output(out);
    *n.mutable_metadata_props() = orig_.metadata_props();
    ++count_;
    out_->push_back(std::move(n));
    return out;
  }
  onnx::NodeProto& last() { return out_->back(); }

  std::string Ints(const std::vector<int64_t>& v) {
    std::string out = Add("Constant", {});
    onnx::AttributeProto* a = last().add_attribute();
    a->set_name("value");
    a->set_type(onnx::AttributeProto::TENSOR);
    onnx::TensorProto* t = a->mutable_t();
    t->set_data_type(onnx::TensorProto::INT64);
    t->add_dims(static_cast<int64_t>(v.size()));
    for (int64_t x : v) t->add_int64_data(x);
    return out;
  }
  std::string Float(float f) {
    std::string out = Add("Constant", {});
    onnx::AttributeProto* a = last().add_attribute();
    a->set_name("value_float");
    a->set_type(onnx::AttributeProto::FLOAT);
    a->set_f(f);
    return out;
  }
  // A scalar zero of ONNX element type `elem_type` (all-zero bytes are zero in every numeric type).
  std::string Zero(int32_t elem_type) {
    std::string out = Add("Constant", {});
    onnx::AttributeProto* a = last().add_attribute();
    a->set_name("value");
    a->set_type(onnx::AttributeProto::TENSOR);
    onnx::TensorProto* t = a->mutable_t();
    t->set_data_type(elem_type);
    t->set_raw_data(std::string(ElementBytes(elem_type), '\0'));
    return out;
  }
  static size_t ElementBytes(int32_t elem_type) {
    switch (elem_type) {
      case onnx::TensorProto::DOUBLE: case onnx::TensorProto::INT64: return 8;
      case onnx::TensorProto::FLOAT16: case onnx::TensorProto::BFLOAT16: case onnx::TensorProto::INT16: return 2;
      case onnx::TensorProto::INT8: case onnx::TensorProto::UINT8: return 1;
      default: return 4;
    }
  }
  void SetInts(const std::string& name, const std::vector<int64_t>& v) {
    onnx::AttributeProto* a = last().add_attribute();
    a->set_name(name);
    a->set_type(onnx::AttributeProto::INTS);
    for (int64_t x : v) a->add_ints(x);
  }
  void SetInt(const std::string& name, int64_t v) {
    onnx::AttributeProto* a = last().add_attribute();
    a->set_name(name);
    a->set_type(onnx::AttributeProto::INT);
    a->set_i(v);
  }
  // ReduceMean(x) over axis 2, keepdims: axes as attribute before opset 18, as input from 18.
  std::string MeanOverAxis2(const std::string& x) {
    std::string out = opset_ >= 18 ? Add("ReduceMean", {x, Ints({2})}) : Add("ReduceMean", {x});
    if (opset_ < 18) {
      onnx::AttributeProto* a = last().add_attribute();
      a->set_name("axes");
      a->set_type(onnx::AttributeProto::INTS);
      a->add_ints(2);
    }
    SetInt("keepdims", 1);
    return out;
  }

 private:
  const onnx::NodeProto& orig_;
  int64_t opset_;
  std::vector<onnx::NodeProto>* out_;
  std::string prefix_;
  int count_ = 0;
};

const onnx::AttributeProto* FindAttr(const onnx::NodeProto& n, const std::string& name) {
  for (const auto& a : n.attribute())
    if (a.name() == name) return &a;
  return nullptr;
}

void InstanceNorm(const onnx::NodeProto& n, int64_t opset, std::vector<onnx::NodeProto>* out) {
  Rewriter r(n, opset, out);
  const onnx::AttributeProto* eps = FindAttr(n, "epsilon");
  const std::string x3 = r.Add("Reshape", {n.input(0), r.Ints({0, 0, -1})});
  const std::string d = r.Add("Sub", {x3, r.MeanOverAxis2(x3)});
  const std::string var = r.MeanOverAxis2(r.Add("Mul", {d, d}));
  const std::string std_ = r.Add("Sqrt", {r.Add("Add", {var, r.Float(eps ? eps->f() : 1e-5f)})});
  const std::string norm = r.Add("Div", {d, std_});
  const std::string column = r.Ints({-1, 1});
  const std::string scaled = r.Add("Mul", {norm, r.Add("Reshape", {n.input(1), column})});
  const std::string y3 = r.Add("Add", {scaled, r.Add("Reshape", {n.input(2), column})});
  r.Add("Reshape", {y3, r.Add("Shape", {n.input(0)})}, n.output(0));
}

void ReduceL2(const onnx::NodeProto& n, int64_t opset, std::vector<onnx::NodeProto>* out) {
  Rewriter r(n, opset, out);
  const std::string sq = r.Add("Mul", {n.input(0), n.input(0)});
  std::vector<std::string> ins = {sq};
  if (opset >= 18) {
    if (n.input_size() > 1 && !n.input(1).empty()) ins.push_back(n.input(1));
  } else if (const onnx::AttributeProto* axes = FindAttr(n, "axes")) {
    ins.push_back(r.Ints(std::vector<int64_t>(axes->ints().begin(), axes->ints().end())));
  }
  const std::string sum = r.Add("ReduceSum", ins);
  for (const char* attr : {"keepdims", "noop_with_empty_axes"})
    if (const onnx::AttributeProto* a = FindAttr(n, attr)) *r.last().add_attribute() = *a;
  r.Add("Sqrt", {sum}, n.output(0));
}

// PRelu(X, slope) = Where(X > 0, X, slope * X): exactly torch.prelu's values, and its gradients
// (dX = dY for X > 0, slope * dY otherwise, zero included; dSlope = X * dY where X <= 0, summed over
// the axes slope was broadcast along, as Mul's gradient does). ONNX's unidirectional broadcasting of
// slope to X is the multidirectional one of Mul whenever it is valid. `elem_type` is X's element
// type (for the zero X is compared with).
void PRelu(const onnx::NodeProto& n, int64_t opset, int32_t elem_type, std::vector<onnx::NodeProto>* out) {
  Rewriter r(n, opset, out);
  const std::string positive = r.Add("Greater", {n.input(0), r.Zero(elem_type)});
  r.Add("Where", {positive, n.input(0), r.Add("Mul", {n.input(1), n.input(0)})}, n.output(0));
}

// Parts of Shape(X) as int64 1-D tensors: dims [from, to).
std::string ShapeDims(Rewriter& r, const std::string& shape, int64_t from, int64_t to) {
  std::vector<int64_t> idx;
  for (int64_t i = from; i < to; ++i) idx.push_back(i);
  std::string g = r.Add("Gather", {shape, r.Ints(idx)});
  r.SetInt("axis", 0);
  return g;
}

// DepthToSpace / SpaceToDepth on X (N, C, H, W) as ONNX defines them: Reshape to 6-D, Transpose,
// Reshape back:
//   DepthToSpace DCR: (N, b, b, C/b^2, H, W) -> perm (0, 3, 4, 1, 5, 2) -> (N, C/b^2, H b, W b)
//   DepthToSpace CRD: (N, C/b^2, b, b, H, W) -> perm (0, 1, 4, 2, 5, 3) -> (N, C/b^2, H b, W b)
//   SpaceToDepth:     (N, C, H/b, b, W/b, b) -> perm (0, 3, 5, 1, 2, 4) -> (N, C b^2, H/b, W/b)
// `dims` is X's shape as the file types it (-1 for a symbolic dim; empty when untyped). With C, H and
// W known the targets are constants whose 0 copies N, so a dynamic batch stays dynamic, and a C, H or
// W that blocksize does not divide is refused here; otherwise they are computed from Shape(X) (folded
// once shapes are static).
Status BlockShuffle(const onnx::NodeProto& n, int64_t opset, const std::vector<int64_t>& dims,
                    std::vector<onnx::NodeProto>* out) {
  const std::string what = StrCat("node '", n.name().empty() ? n.output(0) : n.name(), "' (", n.op_type(), ")");
  const onnx::AttributeProto* bs = FindAttr(n, "blocksize");
  if (!bs || bs->type() != onnx::AttributeProto::INT) return InvalidArgument(what, ": needs an int attribute 'blocksize'");
  const int64_t b = bs->i();
  if (b < 1 || b > (int64_t{1} << 20)) return InvalidArgument(what, ": blocksize ", b, " must be in [1, 2^20]");
  const bool to_space = n.op_type() == "DepthToSpace";
  const onnx::AttributeProto* mode_attr = FindAttr(n, "mode");
  const std::string mode = mode_attr ? mode_attr->s() : "DCR";
  if (to_space && mode != "DCR" && mode != "CRD")
    return InvalidArgument(what, ": mode \"", mode, "\" (ONNX defines \"DCR\" and \"CRD\")");
  if (!dims.empty() && dims.size() != 4) return InvalidArgument(what, ": input has rank ", dims.size(), ", needs 4 (N, C, H, W)");
  const bool known = dims.size() == 4 && dims[1] >= 0 && dims[2] >= 0 && dims[3] >= 0;
  if (known) {
    const int64_t c = dims[1], h = dims[2], w = dims[3];
    if (to_space && c % (b * b) != 0)
      return InvalidArgument(what, ": ", c, " channels are not a multiple of blocksize^2 = ", b * b);
    if (!to_space && (h % b != 0 || w % b != 0))
      return InvalidArgument(what, ": height ", h, " and width ", w, " must be multiples of blocksize ", b);
  }
  const std::vector<int64_t> perm = !to_space ? std::vector<int64_t>{0, 3, 5, 1, 2, 4}
                                    : mode == "DCR" ? std::vector<int64_t>{0, 3, 4, 1, 5, 2}
                                                    : std::vector<int64_t>{0, 1, 4, 2, 5, 3};
  Rewriter r(n, opset, out);
  std::string six, four;
  if (known) {
    const int64_t c = dims[1], h = dims[2], w = dims[3];
    if (to_space) {
      six = r.Ints(mode == "DCR" ? std::vector<int64_t>{0, b, b, c / (b * b), h, w}
                                 : std::vector<int64_t>{0, c / (b * b), b, b, h, w});
      four = r.Ints({0, c / (b * b), h * b, w * b});
    } else {
      six = r.Ints({0, c, h / b, b, w / b, b});
      four = r.Ints({0, c * b * b, h / b, w / b});
    }
  } else {
    const std::string shape = r.Add("Shape", {n.input(0)});
    const std::string batch = ShapeDims(r, shape, 0, 1);
    if (to_space) {
      const std::string hw = ShapeDims(r, shape, 2, 4);
      six = r.Add("Concat", {batch, r.Ints(mode == "DCR" ? std::vector<int64_t>{b, b, -1} : std::vector<int64_t>{-1, b, b}), hw});
      r.SetInt("axis", 0);
      four = r.Add("Concat", {batch, r.Ints({-1}), r.Add("Mul", {hw, r.Ints({b})})});
      r.SetInt("axis", 0);
    } else {
      const std::string w_over_b = r.Add("Div", {ShapeDims(r, shape, 3, 4), r.Ints({b})});
      six = r.Add("Concat", {ShapeDims(r, shape, 0, 2), r.Ints({-1, b}), w_over_b, r.Ints({b})});
      r.SetInt("axis", 0);
      four = r.Add("Concat", {batch, r.Ints({-1}), r.Add("Div", {ShapeDims(r, shape, 2, 4), r.Ints({b})})});
      r.SetInt("axis", 0);
    }
  }
  const std::string t = r.Add("Transpose", {r.Add("Reshape", {n.input(0), six})});
  r.SetInts("perm", perm);
  r.Add("Reshape", {t, four}, n.output(0));
  return Status::OK();
}

// What the file says of each typed name (graph inputs, value_info, outputs, initializers): ONNX
// element type and dims (-1 for a symbolic or missing dim; no dims when the shape is absent).
struct Typed {
  int32_t elem_type = onnx::TensorProto::UNDEFINED;
  std::vector<int64_t> dims;
};
std::map<std::string, Typed> TypedNames(const onnx::GraphProto& g) {
  std::map<std::string, Typed> t;
  for (const auto* list : {&g.input(), &g.value_info(), &g.output()})
    for (const auto& v : *list) {
      if (!v.type().has_tensor_type()) continue;
      Typed& e = t[v.name()];
      e.elem_type = v.type().tensor_type().elem_type();
      if (v.type().tensor_type().has_shape())
        for (const auto& d : v.type().tensor_type().shape().dim()) e.dims.push_back(d.has_dim_value() ? d.dim_value() : -1);
    }
  for (const auto& i : g.initializer()) t[i.name()] = Typed{i.data_type(), {i.dims().begin(), i.dims().end()}};
  return t;
}

}  // namespace

const std::set<std::string>& DecomposedOps() {
  static const std::set<std::string> ops = {"InstanceNormalization", "ReduceL2", "PRelu", "DepthToSpace",
                                            "SpaceToDepth"};
  return ops;
}

Status DecomposeOps(onnx::ModelProto* model) {
  int64_t opset = 0;
  for (const auto& o : model->opset_import())
    if (o.domain().empty() || o.domain() == "ai.onnx") opset = o.version();
  onnx::GraphProto* g = model->mutable_graph();
  bool any = false;
  for (const auto& n : g->node()) any |= (n.domain().empty() || n.domain() == "ai.onnx") && DecomposedOps().count(n.op_type());
  if (!any) return Status::OK();
  std::vector<onnx::NodeProto> nodes;
  const std::map<std::string, Typed> typed = TypedNames(*g);
  auto elem_type = [&](const onnx::NodeProto& n) {
    for (int i = 0; i < 2; ++i)
      if (auto it = typed.find(n.input(i)); it != typed.end() && it->second.elem_type != onnx::TensorProto::UNDEFINED)
        return it->second.elem_type;
    return static_cast<int32_t>(onnx::TensorProto::FLOAT);
  };
  auto dims = [&](const std::string& name) {
    auto it = typed.find(name);
    return it == typed.end() ? std::vector<int64_t>{} : it->second.dims;
  };
  for (const auto& n : g->node()) {
    const bool onnx_domain = n.domain().empty() || n.domain() == "ai.onnx";
    if (onnx_domain && n.op_type() == "InstanceNormalization" && n.input_size() == 3 && n.output_size() == 1) {
      InstanceNorm(n, opset, &nodes);
    } else if (onnx_domain && n.op_type() == "ReduceL2" && n.output_size() == 1) {
      ReduceL2(n, opset, &nodes);
    } else if (onnx_domain && n.op_type() == "PRelu" && n.input_size() == 2 && n.output_size() == 1) {
      PRelu(n, opset, elem_type(n), &nodes);
    } else if (onnx_domain && (n.op_type() == "DepthToSpace" || n.op_type() == "SpaceToDepth") &&
               n.input_size() == 1 && n.output_size() == 1) {
      RETURN_IF_ERROR(BlockShuffle(n, opset, dims(n.input(0)), &nodes));
    } else {
      nodes.push_back(n);
    }
  }
  g->clear_node();
  for (auto& n : nodes) *g->add_node() = std::move(n);
  return Status::OK();
}

}  // namespace dsc
