// SoftmaxCrossEntropyLoss rewritten into what PyTorch computes (see torch_cross_entropy.h).
#include "frontend/torch_cross_entropy.h"

#include <cstdlib>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "frontend/model_types.h"
#include "frontend/proto_rewriter.h"
#include "frontend/torch_node_metadata.h"

namespace dsc {
namespace {

// `smoothing` of the node's aten.cross_entropy_loss call (args: input, target, weight, reduction,
// ignore_index, label_smoothing), 0 when the metadata records none.
Status SmoothingOf(const onnx::NodeProto& n, double* smoothing) {
  *smoothing = 0;
  const std::string* fx = FindProp(n.metadata_props(), kFxNodeKey);
  if (!fx) return Status::OK();
  const std::vector<std::string> args = FxCallArgs(*fx, "aten.cross_entropy_loss.default");
  if (args.size() < 6) return Status::OK();
  const std::string& text = args[5];
  char* end = nullptr;
  const double e = std::strtod(text.c_str(), &end);
  if (text.empty() || end != text.c_str() + text.size() || !(e >= 0 && e <= 1))
    return InvalidArgument("node '", n.name(), "' (SoftmaxCrossEntropyLoss): its PyTorch call ",
                           "aten.cross_entropy_loss has label_smoothing '", text,
                           "', which is not a number in [0, 1]; the exporter dropped it from the ONNX node");
  *smoothing = e;
  return Status::OK();
}

std::string StringAttr(const onnx::NodeProto& n, const std::string& name, const std::string& dflt) {
  const onnx::AttributeProto* a = FindAttr(n, name);
  return a ? a->s() : dflt;
}

// LogSoftmax(X, 1), times W[c] along the class axis when W is given.
std::string WeightedLogSoftmax(ProtoRewriter& r, const std::string& x, const std::string& w) {
  std::string logp = r.Add("LogSoftmax", {x});
  r.SetInt("axis", 1);
  if (w.empty()) return logp;
  // W as [C, 1, ..., 1] against X's rank (static in practice: the shape ops fold).
  const std::string rank = r.Add("Shape", {r.Add("Shape", {x})});
  const std::string ones = r.Add("ConstantOfShape", {r.Add("Sub", {rank, r.Ints({2})})});
  onnx::TensorProto* one = r.TensorAttr("value");
  one->set_data_type(onnx::TensorProto::INT64);
  one->add_dims(1);
  one->add_int64_data(1);
  const std::string wshape = r.Add("Concat", {r.Ints({-1}), ones});
  r.SetInt("axis", 0);
  return r.Add("Mul", {logp, r.Add("Reshape", {w, wshape})});
}

// X's dim 1 (the class count) as a scalar of `like`'s type.
std::string Classes(ProtoRewriter& r, const std::string& x, const std::string& like) {
  return r.Add("CastLike", {r.Add("Gather", {r.Add("Shape", {x}), r.IntScalar(1)}), like});
}

// The type PyTorch promotes two float element types to: the wider, and float for float16 with
// bfloat16.
int32_t PromotedFloat(int32_t a, int32_t b) {
  if (a == b) return a;
  for (int32_t wide : {onnx::TensorProto::DOUBLE, onnx::TensorProto::FLOAT})
    if (a == wide || b == wide) return wide;
  return onnx::TensorProto::FLOAT;
}

// Probability targets: the whole loss from the log-probabilities (the node itself is not valid ONNX).
// Half logits with float targets (a half model's `one_hot(y).float()` soft labels) compute as
// PyTorch's log_softmax(x) * target does: the log-probabilities in X's type, the product and the
// loss in the promoted type.
void ProbabilityTargets(const onnx::NodeProto& n, double e, int64_t opset, int32_t x_type, int32_t p_type,
                        std::vector<onnx::NodeProto>* out) {
  ProtoRewriter r(n, opset, out, "probability_targets");
  const std::string& x = n.input(0);
  std::string p = n.input(1);
  const std::string w = n.input_size() > 2 ? n.input(2) : "";
  const std::string reduction = StringAttr(n, "reduction", "mean");
  if (e != 0) {
    const std::string uniform = r.Add("Div", {r.FloatLike(static_cast<float>(e), p), Classes(r, x, p)});
    p = r.Add("Add", {r.Add("Mul", {p, r.FloatLike(static_cast<float>(1.0 - e), p)}), uniform});
  }
  const std::string logp = WeightedLogSoftmax(r, x, w);
  if (n.output_size() > 1 && !n.output(1).empty()) r.Add("Identity", {logp}, n.output(1));
  const int32_t wide = PromotedFloat(x_type, p_type);
  auto widen = [&](const std::string& v, int32_t type) {
    if (type == wide) return v;
    std::string c = r.Add("Cast", {v});
    r.SetInt("to", wide);
    return c;
  };
  const std::string product = r.Add("Mul", {widen(logp, x_type), widen(p, p_type)});
  const std::string s = r.Add("Neg", {r.Reduce("ReduceSum", product, {1}, false)});
  if (reduction == "none") r.Add("Identity", {s}, n.output(0));
  else r.Add(reduction == "sum" ? "ReduceSum" : "ReduceMean", {s}, n.output(0));
  if (reduction != "none") r.SetInt("keepdims", 0);
}

void Smooth(const onnx::NodeProto& n, double e, int64_t opset, std::vector<onnx::NodeProto>* out) {
  ProtoRewriter r(n, opset, out, "label_smoothing");
  const std::string& x = n.input(0);
  const std::string& t = n.input(1);
  const std::string w = n.input_size() > 2 ? n.input(2) : "";
  const std::string reduction = StringAttr(n, "reduction", "mean");
  const onnx::AttributeProto* ignore = FindAttr(n, "ignore_index");

  // The loss without smoothing: the original node, writing to a fresh name.
  out->push_back(n);
  const std::string nll = n.output(0) + "/unsmoothed";
  out->back().set_output(0, nll);

  std::string s = r.Add("Neg", {r.Reduce("ReduceSum", WeightedLogSoftmax(r, x, w), {1}, false)});
  std::string keep;  // T != ignore_index
  if (ignore) {
    const std::string ignored = r.Add("Equal", {t, r.Add("CastLike", {r.IntScalar(ignore->i()), t})});
    s = r.Add("Where", {ignored, r.FloatLike(0.f, s), s});
    keep = r.Add("Not", {ignored});
  }
  std::string reduced = s;
  if (reduction == "sum") {
    reduced = r.Reduce("ReduceSum", s, {}, false);
  } else if (reduction == "mean" && w.empty() && !ignore) {
    reduced = r.Reduce("ReduceMean", s, {}, false);
  } else if (reduction == "mean") {
    // PyTorch divides by what nll_loss divides by: the weight of each kept target, or their count
    std::string den;
    if (!w.empty()) {
      const std::string tw = ignore ? r.Add("Where", {keep, t, r.Add("CastLike", {r.IntScalar(0), t})}) : t;
      den = r.Add("Gather", {w, tw});
      if (ignore) den = r.Add("Where", {keep, den, r.FloatLike(0.f, den)});
    } else {
      den = r.Add("CastLike", {keep, s});
    }
    reduced = r.Add("Div", {r.Reduce("ReduceSum", s, {}, false), r.Reduce("ReduceSum", den, {}, false)});
  }
  // e / C, with C = X's dim 1
  const std::string coef = r.Add("Div", {r.FloatLike(static_cast<float>(e), reduced), Classes(r, x, reduced)});
  const std::string kept = r.Add("Mul", {r.FloatLike(static_cast<float>(1.0 - e), nll), nll});
  r.Add("Add", {kept, r.Add("Mul", {coef, reduced})}, n.output(0));
}

bool IsSce(const onnx::NodeProto& n) {
  return (n.domain().empty() || n.domain() == "ai.onnx") && n.op_type() == "SoftmaxCrossEntropyLoss";
}

bool IsFloatType(int32_t t) {
  return t == onnx::TensorProto::FLOAT || t == onnx::TensorProto::FLOAT16 || t == onnx::TensorProto::BFLOAT16 ||
         t == onnx::TensorProto::DOUBLE;
}

}  // namespace

Status RestoreCrossEntropy(onnx::ModelProto* model) {
  onnx::GraphProto* g = model->mutable_graph();
  const int64_t opset = OnnxOpset(*model);
  // The labels' element type needs inference unless they are an integer graph input.
  std::map<std::string, int32_t> input_types;
  for (const auto& v : g->input()) input_types[v.name()] = v.type().tensor_type().elem_type();
  bool need_types = false;
  for (const auto& n : g->node()) {
    if (!IsSce(n) || n.input_size() < 2) continue;
    auto it = input_types.find(n.input(1));
    need_types |= it == input_types.end() || IsFloatType(it->second);
  }
  std::optional<ModelTypes> types;
  if (need_types) types.emplace(*model, std::map<std::string, int64_t>{});
  return RewriteNodes(g, [&](const onnx::NodeProto& n, std::vector<onnx::NodeProto>* nodes) -> StatusOr<bool> {
    double e = 0;
    if (IsSce(n)) RETURN_IF_ERROR(SmoothingOf(n, &e));
    const bool probabilities = IsSce(n) && n.input_size() >= 2 && types && IsFloatType(types->ElemType(n.input(1)));
    if (e == 0 && !probabilities) return false;
    if (n.input_size() < 2 || n.output_size() < 1 || n.output_size() > 2)
      return InvalidArgument("node '", n.name(), "' (SoftmaxCrossEntropyLoss): malformed inputs/outputs");
    if (probabilities) {
      const int32_t p_type = types->ElemType(n.input(1)), x_type = types->ElemType(n.input(0));
      ProbabilityTargets(n, e, opset, IsFloatType(x_type) ? x_type : p_type, p_type, nodes);
    }
    else Smooth(n, e, opset, nodes);
    return true;
  });
}

}  // namespace dsc
