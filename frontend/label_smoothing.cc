// Rewriting a SoftmaxCrossEntropyLoss into its label-smoothed form (see label_smoothing.h).
#include "frontend/label_smoothing.h"

#include <cstdlib>
#include <string>
#include <vector>

#include "frontend/proto_rewriter.h"
#include "frontend/torch_node_metadata.h"

namespace dsc {
namespace {

// `smoothing` of the node's aten.cross_entropy_loss call (args: input, target, weight, reduction,
// ignore_index, label_smoothing), 0 when the metadata records none.
Status SmoothingOf(const onnx::NodeProto& n, double* smoothing) {
  *smoothing = 0;
  const std::string* fx = FindProp(n.metadata_props(), "pkg.torch.onnx.fx_node");
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

  std::string logp = r.Add("LogSoftmax", {x});
  r.SetInt("axis", 1);
  if (!w.empty()) {
    // W as [C, 1, ..., 1] against X's rank (static in practice: the shape ops fold).
    const std::string rank = r.Add("Shape", {r.Add("Shape", {x})});
    const std::string ones = r.Add("ConstantOfShape", {r.Add("Sub", {rank, r.Ints({2})})});
    onnx::TensorProto* one = r.TensorAttr("value");
    one->set_data_type(onnx::TensorProto::INT64);
    one->add_dims(1);
    one->add_int64_data(1);
    const std::string wshape = r.Add("Concat", {r.Ints({-1}), ones});
    r.SetInt("axis", 0);
    logp = r.Add("Mul", {logp, r.Add("Reshape", {w, wshape})});
  }
  std::string s = r.Add("Neg", {r.Reduce("ReduceSum", logp, {1}, false)});
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
  const std::string classes = r.Add("CastLike", {r.Add("Gather", {r.Add("Shape", {x}), r.IntScalar(1)}), reduced});
  const std::string coef = r.Add("Div", {r.FloatLike(static_cast<float>(e), reduced), classes});
  const std::string kept = r.Add("Mul", {r.FloatLike(static_cast<float>(1.0 - e), nll), nll});
  r.Add("Add", {kept, r.Add("Mul", {coef, reduced})}, n.output(0));
}

}  // namespace

Status RestoreLabelSmoothing(onnx::ModelProto* model) {
  onnx::GraphProto* g = model->mutable_graph();
  const int64_t opset = OnnxOpset(*model);
  std::vector<onnx::NodeProto> nodes;
  bool any = false;
  for (const auto& n : g->node()) {
    double e = 0;
    const bool sce = (n.domain().empty() || n.domain() == "ai.onnx") && n.op_type() == "SoftmaxCrossEntropyLoss";
    if (sce) RETURN_IF_ERROR(SmoothingOf(n, &e));
    if (e == 0) {
      nodes.push_back(n);
      continue;
    }
    if (n.input_size() < 2 || n.output_size() < 1 || n.output_size() > 2)
      return InvalidArgument("node '", n.name(), "' (SoftmaxCrossEntropyLoss): malformed inputs/outputs");
    Smooth(n, e, opset, &nodes);
    any = true;
  }
  if (!any) return Status::OK();
  g->clear_node();
  for (auto& n : nodes) *g->add_node() = std::move(n);
  return Status::OK();
}

}  // namespace dsc
