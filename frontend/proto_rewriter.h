// Builds the NodeProtos that replace one node at import (frontend/decompose_*.cc, and the metadata
// restorations such as label_smoothing.cc): fresh names under the original's, its metadata (torch's
// fx_node records) on every new node, constants and reductions in the model's opset form.
//
//   ProtoRewriter r(node, opset, &nodes);
//   std::string y = r.Add("Sqrt", {r.Add("Mul", {x, x})}, node.output(0));
#pragma once

#include <map>
#include <string>
#include <vector>

#include "ir/status.h"
#include "onnx/onnx_pb.h"

namespace dsc {

// The attribute `name` of `n`, or null.
inline const onnx::AttributeProto* FindAttr(const onnx::NodeProto& n, const std::string& name) {
  for (const auto& a : n.attribute())
    if (a.name() == name) return &a;
  return nullptr;
}

// The model's default-domain opset.
inline int64_t OnnxOpset(const onnx::ModelProto& model) {
  int64_t opset = 0;
  for (const auto& o : model.opset_import())
    if (o.domain().empty() || o.domain() == "ai.onnx") opset = o.version();
  return opset;
}

class ProtoRewriter {
 public:
  // New nodes are named "<original>/<what>/<op>_<k>".
  ProtoRewriter(const onnx::NodeProto& orig, int64_t opset, std::vector<onnx::NodeProto>* out,
                const std::string& what = "decomposed")
      : orig_(orig), opset_(opset), out_(out) {
    // Unnamed, by its first output that is not omitted (outputs are unique, omitted ones are "").
    std::string base = orig.name();
    for (int i = 0; base.empty() && i < orig.output_size(); ++i) base = orig.output(i);
    prefix_ = base + "/" + what + "/";
  }

  int64_t opset() const { return opset_; }

  // Adds node OP(inputs) with one output (named `output`, or a fresh name) and returns the output.
  std::string Add(const std::string& op, const std::vector<std::string>& inputs, const std::string& output = "") {
    return AddMulti(op, inputs, 1, output)[0];
  }
  // Adds node OP(inputs) with `count` fresh outputs (the first named `first` if given).
  std::vector<std::string> AddMulti(const std::string& op, const std::vector<std::string>& inputs, int count,
                                    const std::string& first = "") {
    onnx::NodeProto n;
    n.set_op_type(op);
    const std::string name = prefix_ + op + "_" + std::to_string(count_++);
    n.set_name(name);
    for (const auto& i : inputs) n.add_input(i);
    std::vector<std::string> outs;
    for (int k = 0; k < count; ++k) {
      outs.push_back(k == 0 && !first.empty() ? first : name + "_out" + (k ? std::to_string(k) : ""));
      n.add_output(outs.back());
    }
    *n.mutable_metadata_props() = orig_.metadata_props();
    out_->push_back(std::move(n));
    return outs;
  }
  onnx::NodeProto& last() { return out_->back(); }

  // A 1-D int64 Constant, made once per value (an unrolled RNN splits every step by the same sizes).
  std::string Ints(const std::vector<int64_t>& v) {
    if (auto it = ints_.find(v); it != ints_.end()) return it->second;
    std::string out = Add("Constant", {});
    ints_[v] = out;
    onnx::TensorProto* t = TensorAttr("value");
    t->set_data_type(onnx::TensorProto::INT64);
    t->add_dims(static_cast<int64_t>(v.size()));
    for (int64_t x : v) t->add_int64_data(x);
    return out;
  }
  // A scalar (0-d) int64 Constant.
  std::string IntScalar(int64_t v) {
    std::string out = Add("Constant", {});
    onnx::TensorProto* t = TensorAttr("value");
    t->set_data_type(onnx::TensorProto::INT64);
    t->add_int64_data(v);
    return out;
  }
  // A scalar zero of ONNX element type `elem_type` (all-zero bytes are zero in every numeric type).
  std::string Zero(int32_t elem_type) {
    std::string out = Add("Constant", {});
    onnx::TensorProto* t = TensorAttr("value");
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
  // A float32 scalar Constant.
  std::string Float(float f) {
    std::string out = Add("Constant", {});
    SetFloat("value_float", f);
    return out;
  }
  // A scalar Constant of `like`'s element type.
  std::string FloatLike(float f, const std::string& like) { return Add("CastLike", {Float(f), like}); }
  // ReduceOP(x) over `axes` (every axis when empty) in the opset's form: axes as an attribute before
  // opset 18 (13 for ReduceSum), as an input from then on.
  std::string Reduce(const std::string& op, const std::string& x, const std::vector<int64_t>& axes, bool keepdims) {
    const bool axes_input = opset_ >= 18 || (op == "ReduceSum" && opset_ >= 13);
    std::string out = Add(op, axes_input && !axes.empty() ? std::vector<std::string>{x, Ints(axes)}
                                                           : std::vector<std::string>{x});
    if (!axes_input && !axes.empty()) SetInts("axes", axes);
    SetInt("keepdims", keepdims ? 1 : 0);
    return out;
  }

  void SetInt(const std::string& name, int64_t v) {
    onnx::AttributeProto* a = last().add_attribute();
    a->set_name(name);
    a->set_type(onnx::AttributeProto::INT);
    a->set_i(v);
  }
  void SetFloat(const std::string& name, float v) {
    onnx::AttributeProto* a = last().add_attribute();
    a->set_name(name);
    a->set_type(onnx::AttributeProto::FLOAT);
    a->set_f(v);
  }
  void SetString(const std::string& name, const std::string& v) {
    onnx::AttributeProto* a = last().add_attribute();
    a->set_name(name);
    a->set_type(onnx::AttributeProto::STRING);
    a->set_s(v);
  }
  void SetInts(const std::string& name, const std::vector<int64_t>& v) {
    onnx::AttributeProto* a = last().add_attribute();
    a->set_name(name);
    a->set_type(onnx::AttributeProto::INTS);
    for (int64_t x : v) a->add_ints(x);
  }
  // A tensor attribute `name` on the last node, to fill in.
  onnx::TensorProto* TensorAttr(const std::string& name) {
    onnx::AttributeProto* a = last().add_attribute();
    a->set_name(name);
    a->set_type(onnx::AttributeProto::TENSOR);
    return a->mutable_t();
  }

 private:
  const onnx::NodeProto& orig_;
  int64_t opset_;
  std::vector<onnx::NodeProto>* out_;
  std::string prefix_;
  int count_ = 0;
  std::map<std::vector<int64_t>, std::string> ints_;
};

// Rebuilds the graph's node list in order: `rewrite(n, &nodes)` appends the nodes that replace n
// and returns true, or returns false (appending nothing) to keep n. The graph is untouched when no
// node is replaced or a rewrite fails.
template <typename Rewrite>
Status RewriteNodes(onnx::GraphProto* g, Rewrite rewrite) {
  std::vector<onnx::NodeProto> nodes;
  bool any = false;
  for (const auto& n : g->node()) {
    StatusOr<bool> replaced = rewrite(n, &nodes);
    if (!replaced.ok()) return replaced.status();
    if (!*replaced) nodes.push_back(n);
    any |= *replaced;
  }
  if (!any) return Status::OK();
  g->clear_node();
  for (auto& n : nodes) *g->add_node() = std::move(n);
  return Status::OK();
}

}  // namespace dsc
