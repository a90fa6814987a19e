// The API per-op gradient builders are written against, and the registry mapping op types to them.
//
// A builder sees one forward node, the gradient flowing into each of its outputs (dY, nullptr
// where none flows) and which inputs need a gradient; it emits backward nodes through the helpers
// (every new value gets its static type here, because ONNX inference cannot type our domain) and
// hands each input's gradient back with SetGrad, shaped exactly like that input.
//
//   Status BuildExpGrad(GradBuilder& b) {        // Y = exp(X): dX = dY * Y
//     b.SetGrad(0, b.Mul(b.dY(0), b.Y(0)));
//     return Status::OK();
//   }
//   void RegisterElementwiseGradients(GradientRegistry& registry) {
//     REGISTER_GRADIENT_BUILDER("Exp", BuildExpGrad);
//   }
#pragma once

#include <map>
#include <string>
#include <vector>

#include "ir/graph.h"

namespace dsc::autodiff {

using Attrs = std::map<std::string, AttrValue>;

class GradBuilder {
 public:
  GradBuilder(Graph& g, const Node& fwd, std::vector<Value*> dys, std::vector<bool> needs_grad);

  const Node& node() const { return fwd_; }
  const Graph& graph() const { return g_; }
  Value* X(size_t i) const { return fwd_.input(i); }
  Value* Y(size_t i) const { return fwd_.output(i); }
  // Gradient of the loss w.r.t. output i; nullptr when no gradient flows into it.
  Value* dY(size_t i) const { return i < dys_.size() ? dys_[i] : nullptr; }
  bool NeedsGrad(size_t i) const { return i < needs_.size() && needs_[i]; }
  // Records dX for input i (ignored when the input needs none). Its type must equal X(i)'s.
  void SetGrad(size_t i, Value* g);
  const std::vector<Value*>& grads() const { return grads_; }

  // --- emitting: every helper returns typed values with fresh names derived from the forward node.
  Value* Emit(const std::string& op, const std::vector<Value*>& inputs, TensorType type, Attrs attrs = {});
  // An op of our domain (ir/dsc_ops.h).
  Value* EmitDsc(const std::string& op, const std::vector<Value*>& inputs, TensorType type, Attrs attrs = {});
  std::vector<Value*> EmitMulti(const std::string& op, const std::string& domain, const std::vector<Value*>& inputs,
                                const std::vector<TensorType>& types, Attrs attrs = {});

  // Elementwise with numpy broadcasting; the result takes a's dtype.
  Value* Add(Value* a, Value* b) { return Binary("Add", a, b); }
  Value* Sub(Value* a, Value* b) { return Binary("Sub", a, b); }
  Value* Mul(Value* a, Value* b) { return Binary("Mul", a, b); }
  Value* Div(Value* a, Value* b) { return Binary("Div", a, b); }
  Value* Binary(const std::string& op, Value* a, Value* b);
  Value* Unary(const std::string& op, Value* a) { return Emit(op, {a}, a->type); }
  Value* Neg(Value* a) { return Unary("Neg", a); }
  Value* MulScalar(Value* a, double s);  // a when s == 1
  Value* Cast(Value* a, DType to);
  Value* Reshape(Value* a, const std::vector<int64_t>& dims);  // a when already so shaped
  Value* Transpose(Value* a, const std::vector<int64_t>& perm);
  // The axes travel as an input: ReduceSum's only form from opset 13 on (the others' from 18).
  Value* ReduceSum(Value* a, const std::vector<int64_t>& axes, bool keepdims);
  // Parts of `a` along `axis`, shaped like `parts`; the sizes travel as an input, valid at every
  // opset from 13 on (opset 18's num_outputs cannot give parts of arbitrary sizes).
  std::vector<Value*> Split(Value* a, int64_t axis, const std::vector<TensorType>& parts);
  // Sums `g` over the axes `target` was broadcast along, then reshapes to `target` (un-broadcast).
  Value* ReduceSumTo(Value* g, const std::vector<int64_t>& target);
  Value* Expand(Value* a, const std::vector<int64_t>& dims);  // a when already so shaped
  Value* Zeros(const TensorType& type);
  Value* Where(Value* cond, Value* a, Value* b);

  // --- constants, as initializers.
  Value* Scalar(double v, DType dtype);
  Value* Ints(const std::vector<int64_t>& v);  // int64 1-D
  Value* Constant(Tensor t);

  // --- reading the forward node.
  // Static dims of a value (the pass guarantees static shapes on differentiable paths).
  static std::vector<int64_t> Dims(const Value* v);
  static int64_t Rank(const Value* v) { return static_cast<int64_t>(Dims(v).size()); }
  static TensorType TypeOf(DType dtype, const std::vector<int64_t>& dims);
  // The data of a constant (initializer) input, or an error naming the node.
  StatusOr<std::vector<int64_t>> ConstInts(size_t input) const;
  // An error naming the forward node.
  Status Unsupported(const std::string& what) const;

 private:
  std::string FreshName(const std::string& what);
  Graph& g_;
  const Node& fwd_;
  std::vector<Value*> dys_;
  std::vector<bool> needs_;
  std::vector<Value*> grads_;
};

using GradientBuilderFn = Status (*)(GradBuilder&);

// (domain, op type) -> builder; the standard domain is "" (or "ai.onnx"). Built once by Get(),
// immutable afterwards.
class GradientRegistry {
 public:
  static const GradientRegistry& Get();
  void Add(const std::string& op_type, GradientBuilderFn fn) { builders_[op_type] = fn; }
  void Add(const std::string& domain, const std::string& op_type, GradientBuilderFn fn) {
    builders_[Key(domain, op_type)] = fn;
  }
  GradientBuilderFn Find(const std::string& op_type) const;
  GradientBuilderFn Find(const std::string& domain, const std::string& op_type) const {
    return Find(Key(domain, op_type));
  }
  std::vector<std::string> OpTypes() const;

 private:
  static std::string Key(const std::string& domain, const std::string& op_type) {
    return domain.empty() || domain == "ai.onnx" ? op_type : domain + "." + op_type;
  }
  std::map<std::string, GradientBuilderFn> builders_;
};

// Inside a Register*Gradients(GradientRegistry& registry) function.
#define REGISTER_GRADIENT_BUILDER(op_type, fn) registry.Add(op_type, fn)

// One per gradients_*.cc; called by GradientRegistry::Get (explicit calls, so a static library
// never drops a file's registrations).
void RegisterElementwiseGradients(GradientRegistry& registry);
void RegisterMatMulGradients(GradientRegistry& registry);
void RegisterNnGradients(GradientRegistry& registry);
void RegisterShapeGradients(GradientRegistry& registry);
void RegisterReduceGradients(GradientRegistry& registry);
void RegisterLossGradients(GradientRegistry& registry);
void RegisterIndexingGradients(GradientRegistry& registry);
void RegisterTransformerGradients(GradientRegistry& registry);
void RegisterActivationGradients(GradientRegistry& registry);

// Whether a Dropout node drops anything (constant training_mode true, ratio != 0); the pass adds
// the mask output such a node needs for its gradient.
StatusOr<bool> DropoutIsTraining(const Node& n);

// Axis helpers shared by builders.
int64_t NormalizeAxis(int64_t axis, int64_t rank);
std::vector<int64_t> BroadcastDims(const std::vector<int64_t>& a, const std::vector<int64_t>& b);

}  // namespace dsc::autodiff
