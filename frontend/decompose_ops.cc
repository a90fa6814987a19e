// Imports InstanceNormalization and ReduceL2 as supported ops (see decompose_ops.h).
#include "frontend/decompose_ops.h"

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

}  // namespace

const std::set<std::string>& DecomposedOps() {
  static const std::set<std::string> ops = {"InstanceNormalization", "ReduceL2"};
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
