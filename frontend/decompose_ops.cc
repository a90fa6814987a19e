// Imports InstanceNormalization, ReduceL2, ReduceL1 and ReduceLogSumExp as supported ops (see decompose_ops.h).
#include "frontend/decompose_ops.h"

#include <vector>

#include "frontend/decompose_rnn.h"
#include "frontend/proto_rewriter.h"

namespace dsc {
namespace {

void InstanceNorm(const onnx::NodeProto& n, int64_t opset, std::vector<onnx::NodeProto>* out) {
  ProtoRewriter r(n, opset, out);
  const onnx::AttributeProto* eps = FindAttr(n, "epsilon");
  const std::string x3 = r.Add("Reshape", {n.input(0), r.Ints({0, 0, -1})});
  const std::string d = r.Add("Sub", {x3, r.Reduce("ReduceMean", x3, {2}, true)});
  const std::string var = r.Reduce("ReduceMean", r.Add("Mul", {d, d}), {2}, true);
  const std::string std_ = r.Add("Sqrt", {r.Add("Add", {var, r.Float(eps ? eps->f() : 1e-5f)})});
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

}  // namespace

const std::set<std::string>& DecomposedOps() {
  static const std::set<std::string> ops = [] {
    std::set<std::string> s = {"InstanceNormalization", "ReduceL2", "ReduceL1", "ReduceLogSumExp"};
    s.insert(RecurrentOps().begin(), RecurrentOps().end());
    return s;
  }();
  return ops;
}

Status DecomposeOps(onnx::ModelProto* model, const std::map<std::string, int64_t>& dims) {
  RETURN_IF_ERROR(DecomposeRecurrentOps(model, dims));
  const int64_t opset = OnnxOpset(*model);
  return RewriteNodes(model->mutable_graph(), [&](const onnx::NodeProto& n, std::vector<onnx::NodeProto>* nodes) {
    const bool onnx_domain = n.domain().empty() || n.domain() == "ai.onnx";
    if (onnx_domain && n.op_type() == "InstanceNormalization" && n.input_size() == 3 && n.output_size() == 1) {
      InstanceNorm(n, opset, nodes);
    } else if (onnx_domain && n.op_type() == "ReduceL2" && n.output_size() == 1) {
      ReduceL2(n, opset, nodes);
    } else if (onnx_domain && n.op_type() == "ReduceL1" && n.output_size() == 1) {
      ReduceL1(n, opset, nodes);
    } else if (onnx_domain && n.op_type() == "ReduceLogSumExp" && n.output_size() == 1) {
      ReduceLogSumExp(n, opset, nodes);
    } else {
      return StatusOr<bool>(false);
    }
    return StatusOr<bool>(true);
  });
}

}  // namespace dsc
