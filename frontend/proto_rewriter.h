// Builds the NodeProtos that replace one node imported as several (frontend/decompose_*.cc):
// fresh names under the original's, its metadata (torch's fx_node records) on every new node.
//
//   ProtoRewriter r(node, opset, &nodes);
//   std::string y = r.Add("Sqrt", {r.Add("Mul", {x, x})}, node.output(0));
#pragma once

#include <map>
#include <string>
#include <vector>

#include "onnx/onnx_pb.h"

namespace dsc {

class ProtoRewriter {
 public:
  ProtoRewriter(const onnx::NodeProto& orig, int64_t opset, std::vector<onnx::NodeProto>* out)
      : orig_(orig), opset_(opset), out_(out) {
    // Unnamed, by its first output that is not omitted (outputs are unique, omitted ones are "").
    std::string base = orig.name();
    for (int i = 0; base.empty() && i < orig.output_size(); ++i) base = orig.output(i);
    prefix_ = base + "/decomposed/";
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
  // A float32 scalar Constant.
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
  void SetFloat(const std::string& name, float v) {
    onnx::AttributeProto* a = last().add_attribute();
    a->set_name(name);
    a->set_type(onnx::AttributeProto::FLOAT);
    a->set_f(v);
  }
  void SetInts(const std::string& name, const std::vector<int64_t>& v) {
    onnx::AttributeProto* a = last().add_attribute();
    a->set_name(name);
    a->set_type(onnx::AttributeProto::INTS);
    for (int64_t x : v) a->add_ints(x);
  }

 private:
  onnx::TensorProto* TensorAttr(const std::string& name) {
    onnx::AttributeProto* a = last().add_attribute();
    a->set_name(name);
    a->set_type(onnx::AttributeProto::TENSOR);
    return a->mutable_t();
  }

  const onnx::NodeProto& orig_;
  int64_t opset_;
  std::vector<onnx::NodeProto>* out_;
  std::string prefix_;
  int count_ = 0;
  std::map<std::vector<int64_t>, std::string> ints_;
};

}  // namespace dsc
