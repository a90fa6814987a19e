// Imports InstanceNormalization and ReduceL2 as supported ops (see decompose_ops.h).
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

void ReduceL2(const onnx::NodeProto& n, int64_t opset, std::vector<onnx::NodeProto>* out) {
  ProtoRewriter r(n, opset, out);
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

}  // namespace

const std::set<std::string>& DecomposedOps() {
  static const std::set<std::string> ops = [] {
    std::set<std::string> s = {"InstanceNormalization", "ReduceL2"};
    s.insert(RecurrentOps().begin(), RecurrentOps().end());
    return s;
  }();
  return ops;
}

Status DecomposeOps(onnx::ModelProto* model, const std::map<std::string, int64_t>& dims) {
  RETURN_IF_ERROR(DecomposeRecurrentOps(model, dims));
  const int64_t opset = OnnxOpset(*model);
  onnx::GraphProto* g = model->mutable_graph();
  bool any = false;
  for (const auto& n : g->node()) any |= (n.domain().empty() || n.domain() == "ai.onnx") && DecomposedOps().count(n.op_type());
  if (!any) return Status::OK();
  std::vector<onnx::NodeProto> nodes;
  for (const auto& n : g->node()) {
    const bool onnx_domain = n.domain().empty() || n.domain() == "ai.onnx";
    if (onnx_domain && n.op_type() == "InstanceNormalization" && n.input_size() == 3 && n.output_size() == 1) {
      InstanceNorm(n, opset, &nodes);
    } else if (onnx_domain && n.op_type() == "ReduceL2" && n.output_size() == 1) {
      ReduceL2(n, opset, &nodes);
    } else {
      nodes.push_back(n);
    }
  }
  g->clear_node();
  for (auto& n : nodes) *g->add_node() = std::move(n);
  return Status::OK();
}

}  // namespace dsc
