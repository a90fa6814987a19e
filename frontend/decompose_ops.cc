// Imports InstanceNormalization, ReduceL2, ReduceL1, ReduceLogSumExp, PRelu, DepthToSpace, SpaceToDepth,
// Pad's indexed modes, Col2Im, the recurrent ops and DFT as supported ops (see decompose_ops.h).
#include "frontend/decompose_ops.h"

#include <algorithm>
#include <map>
#include <optional>
#include <vector>

#include "frontend/decompose_dft.h"
#include "frontend/decompose_pad.h"
#include "frontend/decompose_rnn.h"
#include "frontend/proto_rewriter.h"
#include "ir/onnx_convert.h"

namespace dsc {
namespace {

void InstanceNorm(const onnx::NodeProto& n, int64_t opset, std::vector<onnx::NodeProto>* out) {
  ProtoRewriter r(n, opset, out);
  const onnx::AttributeProto* eps = FindAttr(n, "epsilon");
  const std::string x3 = r.Add("Reshape", {n.input(0), r.Ints({0, 0, -1})});
  const std::string d = r.Add("Sub", {x3, r.Reduce("ReduceMean", x3, {2}, true)});
  const std::string var = r.Reduce("ReduceMean", r.Add("Mul", {d, d}), {2}, true);
  const std::string std_ = r.Add("Sqrt", {r.Add("Add", {var, r.FloatLike(eps ? eps->f() : 1e-5f, var)})});
  const std::string norm = r.Add("Div", {d, std_});
  const std::string column = r.Ints({-1, 1});
  const std::string scaled = r.Add("Mul", {norm, r.Add("Reshape", {n.input(1), column})});
  const std::string y3 = r.Add("Add", {scaled, r.Add("Reshape", {n.input(2), column})});
  r.Add("Reshape", {y3, r.Add("Shape", {n.input(0)})}, n.output(0));
}

// `op` (a Reduce*) of x over the axes of the reduction `n` being rewritten, in the form `op` takes
// at this opset (axes as an input: ReduceSum from 13, the others from 18; else the attribute),
// with n's noop_with_empty_axes and the given keepdims (n's own when `keepdims` < 0). (n's axes may
// be a computed input, so ProtoRewriter::Reduce, which takes constant axes, does not fit.)
std::string ReduceLike(ProtoRewriter& r, const onnx::NodeProto& n, const std::string& op, const std::string& x,
                       int64_t keepdims = -1, const std::string& output = "") {
  const int64_t opset = r.opset();
  const bool axes_input = opset >= (op == "ReduceSum" ? 13 : 18);
  const onnx::AttributeProto* attr_axes = opset < 18 ? FindAttr(n, "axes") : nullptr;
  std::vector<std::string> ins = {x};
  if (axes_input) {
    if (opset >= 18) {
      if (n.input_size() > 1 && !n.input(1).empty()) ins.push_back(n.input(1));
    } else if (attr_axes) {
      ins.push_back(r.Ints(std::vector<int64_t>(attr_axes->ints().begin(), attr_axes->ints().end())));
    }
  }
  const std::string y = r.Add(op, ins, output);
  if (!axes_input && attr_axes) *r.last().add_attribute() = *attr_axes;
  if (const onnx::AttributeProto* a = FindAttr(n, "noop_with_empty_axes")) *r.last().add_attribute() = *a;
  if (keepdims >= 0) {
    r.SetInt("keepdims", keepdims);
  } else if (const onnx::AttributeProto* a = FindAttr(n, "keepdims")) {
    *r.last().add_attribute() = *a;
  }
  return y;
}

void ReduceL2(const onnx::NodeProto& n, int64_t opset, std::vector<onnx::NodeProto>* out) {
  ProtoRewriter r(n, opset, out);
  r.Add("Sqrt", {ReduceLike(r, n, "ReduceSum", r.Add("Mul", {n.input(0), n.input(0)}))}, n.output(0));
}

void ReduceL1(const onnx::NodeProto& n, int64_t opset, std::vector<onnx::NodeProto>* out) {
  ProtoRewriter r(n, opset, out);
  ReduceLike(r, n, "ReduceSum", r.Add("Abs", {n.input(0)}), -1, n.output(0));
}

// torch.logsumexp's stable form: M = max over the axes with +-inf replaced by 0 (a group of -inf
// then gives -inf, not NaN), Y = log(sum(exp(X - M))) + M. The gradient through M cancels.
void ReduceLogSumExp(const onnx::NodeProto& n, int64_t opset, std::vector<onnx::NodeProto>* out) {
  ProtoRewriter r(n, opset, out);
  const std::string mx = ReduceLike(r, n, "ReduceMax", n.input(0), 1);
  const std::string m = r.Add("Where", {r.Add("IsInf", {mx}), r.FloatLike(0.0f, mx), mx});  // X's dtype
  const std::string sum = ReduceLike(r, n, "ReduceSum", r.Add("Exp", {r.Add("Sub", {n.input(0), m})}));
  // M in the output's shape: reducing its kept size-1 axes again drops them when keepdims = 0.
  const std::string m_out = ReduceLike(r, n, "ReduceMax", m);
  r.Add("Add", {r.Add("Log", {sum}), m_out}, n.output(0));
}

// PRelu(X, slope) = Where(X > 0, X, slope * X): exactly torch.prelu's values, and its gradients
// (dX = dY for X > 0, slope * dY otherwise, zero included; dSlope = X * dY where X <= 0, summed over
// the axes slope was broadcast along, as Mul's gradient does). ONNX's unidirectional broadcasting of
// slope to X is the multidirectional one of Mul whenever it is valid. `elem_type` is X's element
// type (for the zero X is compared with).
void PRelu(const onnx::NodeProto& n, int64_t opset, int32_t elem_type, std::vector<onnx::NodeProto>* out) {
  ProtoRewriter r(n, opset, out);
  const std::string positive = r.Add("Greater", {n.input(0), r.Zero(elem_type)});
  r.Add("Where", {positive, n.input(0), r.Add("Mul", {n.input(1), n.input(0)})}, n.output(0));
}

// Parts of Shape(X) as int64 1-D tensors: dims [from, to).
std::string ShapeDims(ProtoRewriter& r, const std::string& shape, int64_t from, int64_t to) {
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
  ProtoRewriter r(n, opset, out);
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

// Col2Im (torch's F.fold, aten.col2im: timm's VOLO outlook attention) is the transposed convolution
// it is the adjoint of. X's C*K rows (K = prod(block_shape)) are, channel-major, the K kernel offsets
// of each channel, so over X viewed as (N*C, K, L_1, ..., L_r) a ConvTranspose whose constant kernel
// W:(K, 1, block...) is one-hot (W[k, 0, offset k] = 1) puts every column's values at their offsets
// and sums the overlaps:
//   Y = Reshape(ConvTranspose<strides, dilations, pads, output_padding>(Reshape(X, [-1, K, L...]), W),
//               [N, -1, image...])
// with L_i = (image_i + pads_i + pads_{r+i} - dilations_i (block_i - 1) - 1) / strides_i + 1 blocks
// along dim i, and output_padding_i the rows of image_i the floor leaves after the last block (less
// than strides_i). The gradient is ConvTranspose's (Im2Col of dY), W being a constant. image_shape
// and block_shape must be constants (torch writes them so).
Status Col2Im(const onnx::NodeProto& n, int64_t opset, const std::map<std::string, const onnx::TensorProto*>& constants,
              const std::vector<int64_t>& x_dims, std::vector<onnx::NodeProto>* out) {
  const std::string what = StrCat("node '", n.name().empty() ? n.output(0) : n.name(), "' (Col2Im)");
  auto constant_ints = [&](int i, const char* name) -> StatusOr<std::vector<int64_t>> {
    auto it = constants.find(n.input(i));
    if (it == constants.end())
      return Unimplemented(what, ": ", name, " ('", n.input(i), "') must be a constant (an initializer or a Constant node)");
    StatusOr<Tensor> t = TensorFromOnnx(*it->second, StrCat(what, " ", name));
    if (!t.ok()) return t.status();
    if (t->rank() != 1 || (t->dtype() != DType::kInt64 && t->dtype() != DType::kInt32))
      return InvalidArgument(what, ": ", name, " must be a 1-D integer tensor");
    return t->ToInt64Vector();
  };
  ASSIGN_OR_RETURN(const std::vector<int64_t> image, constant_ints(1, "image_shape"));
  ASSIGN_OR_RETURN(const std::vector<int64_t> block, constant_ints(2, "block_shape"));
  const size_t r = image.size();
  if (r < 1 || r > 3 || block.size() != r)
    return Unimplemented(what, ": image_shape ", DimsToString(image), " and block_shape ", DimsToString(block),
                         " must have the same 1 to 3 spatial dims (those of 1-D, 2-D and 3-D ConvTranspose)");
  auto attr = [&](const char* name, int64_t fill, size_t count, int64_t lo) -> StatusOr<std::vector<int64_t>> {
    const onnx::AttributeProto* a = FindAttr(n, name);
    std::vector<int64_t> v = a ? std::vector<int64_t>(a->ints().begin(), a->ints().end()) : std::vector<int64_t>(count, fill);
    if (v.size() != count) return InvalidArgument(what, ": attribute '", name, "' ", DimsToString(v), " needs ", count, " values");
    for (int64_t x : v)
      if (x < lo || x > (int64_t{1} << 20)) return InvalidArgument(what, ": attribute '", name, "' ", DimsToString(v), " has ", x);
    return v;
  };
  ASSIGN_OR_RETURN(const std::vector<int64_t> strides, attr("strides", 1, r, 1));
  ASSIGN_OR_RETURN(const std::vector<int64_t> dilations, attr("dilations", 1, r, 1));
  ASSIGN_OR_RETURN(const std::vector<int64_t> pads, attr("pads", 0, 2 * r, 0));
  int64_t k = 1, l = 1;
  std::vector<int64_t> blocks(r), out_pad(r);
  for (size_t i = 0; i < r; ++i) {
    if (image[i] < 1 || block[i] < 1 || image[i] > (int64_t{1} << 20) || block[i] > (int64_t{1} << 20))
      return InvalidArgument(what, ": image_shape ", DimsToString(image), " and block_shape ", DimsToString(block), " must be positive");
    const int64_t span = image[i] + pads[i] + pads[r + i] - dilations[i] * (block[i] - 1) - 1;
    if (span < 0)
      return InvalidArgument(what, ": a block of ", block[i], " (dilation ", dilations[i], ") does not fit image dim ", i,
                             " of ", image[i], " with pads ", DimsToString(pads));
    blocks[i] = span / strides[i] + 1;
    out_pad[i] = span % strides[i];
    k *= block[i];
    l *= blocks[i];
  }
  if (x_dims.size() == 3 && ((x_dims[1] >= 0 && x_dims[1] % k != 0) || (x_dims[2] >= 0 && x_dims[2] != l)))
    return InvalidArgument(what, ": input ", DimsToString(x_dims), " needs (N, C * ", k, ", ", l, ") for block_shape ",
                           DimsToString(block), " over image_shape ", DimsToString(image));
  if (!x_dims.empty() && x_dims.size() != 3) return InvalidArgument(what, ": input has rank ", x_dims.size(), ", needs 3");
  ProtoRewriter r_(n, opset, out);
  std::vector<int64_t> grouped = {-1, k}, w_dims = {k, 1};
  grouped.insert(grouped.end(), blocks.begin(), blocks.end());
  w_dims.insert(w_dims.end(), block.begin(), block.end());
  const std::string w32 = r_.Add("Constant", {});
  onnx::TensorProto* w = r_.TensorAttr("value");
  w->set_data_type(onnx::TensorProto::FLOAT);
  for (int64_t d : w_dims) w->add_dims(d);
  for (int64_t i = 0; i < k * k; ++i) w->add_float_data(i % (k + 1) == 0 ? 1.0f : 0.0f);  // W[j, 0, offset j] = 1
  const std::string xg = r_.Add("Reshape", {n.input(0), r_.Ints(grouped)});
  const std::string y = r_.Add("ConvTranspose", {xg, r_.Add("CastLike", {w32, n.input(0)})});
  r_.SetInts("kernel_shape", block);
  r_.SetInts("strides", strides);
  r_.SetInts("dilations", dilations);
  r_.SetInts("pads", pads);
  if (std::any_of(out_pad.begin(), out_pad.end(), [](int64_t p) { return p != 0; })) r_.SetInts("output_padding", out_pad);
  const std::string batch = ShapeDims(r_, r_.Add("Shape", {n.input(0)}), 0, 1);
  std::vector<int64_t> rest = {-1};
  rest.insert(rest.end(), image.begin(), image.end());
  const std::string target = r_.Add("Concat", {batch, r_.Ints(rest)});
  r_.SetInt("axis", 0);
  r_.Add("Reshape", {y, target}, n.output(0));
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
  static const std::set<std::string> ops = [] {
    std::set<std::string> s = {"InstanceNormalization", "ReduceL2", "ReduceL1", "ReduceLogSumExp", "PRelu",
                               "DepthToSpace", "SpaceToDepth", "DFT", "Col2Im"};
    s.insert(RecurrentOps().begin(), RecurrentOps().end());
    return s;
  }();
  return ops;
}

Status DecomposeOps(onnx::ModelProto* model, const std::map<std::string, int64_t>& dims) {
  RETURN_IF_ERROR(DecomposeRecurrentOps(model, dims));
  RETURN_IF_ERROR(DecomposeDft(model, dims));
  const int64_t opset = OnnxOpset(*model);
  const std::map<std::string, Typed> typed = TypedNames(model->graph());
  auto elem_type = [&](const onnx::NodeProto& n) {
    for (int i = 0; i < 2; ++i)
      if (auto it = typed.find(n.input(i)); it != typed.end() && it->second.elem_type != onnx::TensorProto::UNDEFINED)
        return it->second.elem_type;
    return static_cast<int32_t>(onnx::TensorProto::FLOAT);
  };
  // ONNX inference types what the file leaves untyped; only an indexed Pad needs it.
  std::optional<ModelTypes> types;
  for (const auto& n : model->graph().node())
    if (IsIndexedPad(n)) {
      types.emplace(*model, dims);
      break;
    }
  std::map<std::string, const onnx::TensorProto*> constants;
  for (const auto& t : model->graph().initializer()) constants[t.name()] = &t;
  for (const auto& c : model->graph().node())
    if (c.op_type() == "Constant" && (c.domain().empty() || c.domain() == "ai.onnx") && c.output_size() == 1)
      if (const onnx::AttributeProto* v = FindAttr(c, "value"); v && v->has_t()) constants[c.output(0)] = &v->t();
  auto dims_of = [&](const std::string& name) {
    auto it = typed.find(name);
    return it == typed.end() ? std::vector<int64_t>{} : it->second.dims;
  };
  return RewriteNodes(model->mutable_graph(), [&](const onnx::NodeProto& n,
                                                  std::vector<onnx::NodeProto>* nodes) -> StatusOr<bool> {
    const bool onnx_domain = n.domain().empty() || n.domain() == "ai.onnx";
    if (onnx_domain && n.op_type() == "InstanceNormalization" && n.input_size() == 3 && n.output_size() == 1) {
      InstanceNorm(n, opset, nodes);
    } else if (onnx_domain && n.op_type() == "ReduceL2" && n.output_size() == 1) {
      ReduceL2(n, opset, nodes);
    } else if (onnx_domain && n.op_type() == "ReduceL1" && n.output_size() == 1) {
      ReduceL1(n, opset, nodes);
    } else if (onnx_domain && n.op_type() == "ReduceLogSumExp" && n.output_size() == 1) {
      ReduceLogSumExp(n, opset, nodes);
    } else if (onnx_domain && n.op_type() == "PRelu" && n.input_size() == 2 && n.output_size() == 1) {
      PRelu(n, opset, elem_type(n), nodes);
    } else if (onnx_domain && (n.op_type() == "DepthToSpace" || n.op_type() == "SpaceToDepth") &&
               n.input_size() == 1 && n.output_size() == 1) {
      RETURN_IF_ERROR(BlockShuffle(n, opset, dims_of(n.input(0)), nodes));
    } else if (IsIndexedPad(n)) {
      RETURN_IF_ERROR(DecomposeIndexedPad(n, opset, *types, nodes));
    } else if (onnx_domain && n.op_type() == "Col2Im" && n.input_size() == 3 && n.output_size() == 1) {
      RETURN_IF_ERROR(Col2Im(n, opset, constants, dims_of(n.input(0)), nodes));
    } else {
      return false;
    }
    return true;
  });
}

}  // namespace dsc
