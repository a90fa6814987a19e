// Builds the ONNX nodes that replace one node at import (decompositions, metadata restorations):
// fresh names under the original's, its metadata on every new node, constants in the opset's form.
//
//   ProtoRewriter r(node, opset, &nodes);
//   r.Add("Sqrt", {r.Add("Mul", {x, x})}, node.output(0));
#pragma once

#include <string>
#include <vector>

#include "onnx/onnx_pb.h"

namespace dsc {

// The attribute `name` of `n`, or null.
inline const onnx::AttributeProto* FindAttr(const onnx::NodeProto& n, const std::string& name) {
  for (const auto& a : n.attribute())
    if (a.name() == name) return &a;
  return nullptr;
}

class ProtoRewriter {
 public:
  ProtoRewriter(const onnx::NodeProto& orig, int64_t opset, std::vector<onnx::NodeProto>* out, const char* what = "decomposed")
      : orig_(orig), opset_(opset), out_(out) {
    prefix_ = (orig.name().empty() ? orig.output(0) : orig.name()) + "/" + what + "/";
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
  int64_t opset() const { return opset_; }

  std::string Ints(const std::vector<int64_t>& v) {
    std::string out = Add("Constant", {});
    onnx::TensorProto* t = TensorAttr("value");
    t->set_data_type(onnx::TensorProto::INT64);
    t->add_dims(static_cast<int64_t>(v.size()));
    for (int64_t x : v) t->add_int64_data(x);
    return out;
  }
  // A scalar (0-d) int64 constant.
  std::string IntScalar(int64_t v) {
    std::string out = Add("Constant", {});
    onnx::TensorProto* t = TensorAttr("value");
    t->set_data_type(onnx::TensorProto::INT64);
    t->add_int64_data(v);
    return out;
  }
  // A scalar float32 constant.
  std::string Float(float f) {
    std::string out = Add("Constant", {});
    onnx::AttributeProto* a = last().add_attribute();
    a->set_name("value_float");
    a->set_type(onnx::AttributeProto::FLOAT);
    a->set_f(f);
    return out;
  }
  // A scalar float constant of `like`'s element type.
  std::string FloatLike(float f, const std::string& like) { return Add("CastLike", {Float(f), like}); }
  void SetInt(const std::string& name, int64_t v) {
    onnx::AttributeProto* a = last().add_attribute();
    a->set_name(name);
    a->set_type(onnx::AttributeProto::INT);
    a->set_i(v);
  }
  // A tensor attribute `name` on the last node.
  onnx::TensorProto* TensorAttr(const std::string& name) {
    onnx::AttributeProto* a = last().add_attribute();
    a->set_name(name);
    a->set_type(onnx::AttributeProto::TENSOR);
    return a->mutable_t();
  }
  // ReduceOP(x) over `axes` (all axes when empty), in the opset's form: axes as attribute before
  // opset 18 (13 for ReduceSum), as input from then on.
  std::string Reduce(const std::string& op, const std::string& x, const std::vector<int64_t>& axes, bool keepdims) {
    const bool axes_input = opset_ >= 18 || (op == "ReduceSum" && opset_ >= 13);
    std::vector<std::string> ins = {x};
    if (axes_input && !axes.empty()) ins.push_back(Ints(axes));
    std::string out = Add(op, ins);
    if (!axes_input && !axes.empty()) {
      onnx::AttributeProto* a = last().add_attribute();
      a->set_name("axes");
      a->set_type(onnx::AttributeProto::INTS);
      for (int64_t x : axes) a->add_ints(x);
    }
    SetInt("keepdims", keepdims ? 1 : 0);
    return out;
  }

 private:
  const onnx::NodeProto& orig_;
  int64_t opset_;
  std::vector<onnx::NodeProto>* out_;
  std::string prefix_;
  int count_ = 0;
};

// The model's default-domain opset.
inline int64_t OnnxOpset(const onnx::ModelProto& model) {
  int64_t opset = 0;
  for (const auto& o : model.opset_import())
    if (o.domain().empty() || o.domain() == "ai.onnx") opset = o.version();
  return opset;
}

}  // namespace dsc
