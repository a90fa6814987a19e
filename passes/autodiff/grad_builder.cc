// GradBuilder helpers (typed emission, un-broadcasting, constants) and the builder registry.
#include "passes/autodiff/grad_builder.h"

#include <algorithm>

namespace dsc::autodiff {

GradBuilder::GradBuilder(Graph& g, const Node& fwd, std::vector<Value*> dys, std::vector<bool> needs_grad)
    : g_(g), fwd_(fwd), dys_(std::move(dys)), needs_(std::move(needs_grad)), grads_(fwd.num_inputs(), nullptr) {}

void GradBuilder::SetGrad(size_t i, Value* grad) {
  if (NeedsGrad(i)) grads_[i] = grad;
}

std::string GradBuilder::FreshName(const std::string& what) {
  // Named after the forward node's first output, so a dump shows which forward value a
  // backward value belongs to.
  return g_.UniqueName(StrCat(fwd_.output(0)->name(), "_bwd/", what));
}

std::vector<Value*> GradBuilder::EmitMulti(const std::string& op, const std::string& domain,
                                           const std::vector<Value*>& inputs, const std::vector<TensorType>& types,
                                           Attrs attrs) {
  std::vector<std::string> names;
  for (size_t i = 0; i < types.size(); ++i) names.push_back(FreshName(types.size() == 1 ? op : StrCat(op, "_", i)));
  if (!domain.empty() && !g_.opsets.count(domain)) g_.opsets[domain] = 1;
  Node* n = g_.AddNode(op, inputs, names, domain, fwd_.name().empty() ? "" : fwd_.name() + "_grad");
  for (auto& [k, v] : attrs) n->SetAttr(k, std::move(v));
  std::vector<Value*> outs;
  for (size_t i = 0; i < types.size(); ++i) {
    n->output(i)->type = types[i];
    outs.push_back(n->output(i));
  }
  return outs;
}

Value* GradBuilder::Emit(const std::string& op, const std::vector<Value*>& inputs, TensorType type, Attrs attrs) {
  return EmitMulti(op, "", inputs, {std::move(type)}, std::move(attrs))[0];
}

Value* GradBuilder::EmitDsc(const std::string& op, const std::vector<Value*>& inputs, TensorType type, Attrs attrs) {
  return EmitMulti(op, kDscDomain, inputs, {std::move(type)}, std::move(attrs))[0];
}

Value* GradBuilder::Binary(const std::string& op, Value* a, Value* b) {
  return Emit(op, {a, b}, TypeOf(a->type.dtype, BroadcastDims(Dims(a), Dims(b))));
}

Value* GradBuilder::MulScalar(Value* a, double s) {
  if (s == 1.0) return a;
  return Mul(a, Scalar(s, a->type.dtype));
}

Value* GradBuilder::Cast(Value* a, DType to) {
  if (a->type.dtype == to) return a;
  return Emit("Cast", {a}, TypeOf(to, Dims(a)), {{"to", int64_t{DTypeToOnnx(to)}}});
}

Value* GradBuilder::Reshape(Value* a, const std::vector<int64_t>& dims) {
  if (Dims(a) == dims) return a;
  return Emit("Reshape", {a, Ints(dims)}, TypeOf(a->type.dtype, dims));
}

Value* GradBuilder::Transpose(Value* a, const std::vector<int64_t>& perm) {
  std::vector<int64_t> in = Dims(a), out;
  for (int64_t p : perm) out.push_back(in[static_cast<size_t>(p)]);
  return Emit("Transpose", {a}, TypeOf(a->type.dtype, out), {{"perm", perm}});
}

Value* GradBuilder::ReduceSum(Value* a, const std::vector<int64_t>& axes, bool keepdims) {
  std::vector<int64_t> in = Dims(a), out;
  for (size_t i = 0; i < in.size(); ++i) {
    bool reduced = std::find(axes.begin(), axes.end(), static_cast<int64_t>(i)) != axes.end();
    if (!reduced) out.push_back(in[i]);
    else if (keepdims) out.push_back(1);
  }
  return Emit("ReduceSum", {a, Ints(axes)}, TypeOf(a->type.dtype, out), {{"keepdims", int64_t{keepdims ? 1 : 0}}});
}

std::vector<Value*> GradBuilder::Split(Value* a, int64_t axis, const std::vector<TensorType>& parts) {
  const size_t at = static_cast<size_t>(NormalizeAxis(axis, Rank(a)));
  std::vector<int64_t> sizes;
  for (const TensorType& t : parts) sizes.push_back(t.shape ? (*t.shape)[at].value : 0);
  return EmitMulti("Split", "", {a, Ints(sizes)}, parts, {{"axis", static_cast<int64_t>(at)}});
}

Value* GradBuilder::ReduceSumTo(Value* grad, const std::vector<int64_t>& target) {
  std::vector<int64_t> have = Dims(grad);
  if (have == target) return grad;
  // Right-align the target against the gradient: leading axes and size-1 target axes were broadcast.
  size_t lead = have.size() - std::min(have.size(), target.size());
  std::vector<int64_t> axes;
  for (size_t i = 0; i < have.size(); ++i) {
    bool broadcast = i < lead || (target[i - lead] == 1 && have[i] != 1);
    if (broadcast) axes.push_back(static_cast<int64_t>(i));
  }
  Value* summed = axes.empty() ? grad : ReduceSum(grad, axes, /*keepdims=*/true);
  return Reshape(summed, target);
}

Value* GradBuilder::Expand(Value* a, const std::vector<int64_t>& dims) {
  if (Dims(a) == dims) return a;
  return Emit("Expand", {a, Ints(dims)}, TypeOf(a->type.dtype, dims));
}

Value* GradBuilder::Zeros(const TensorType& type) {
  std::vector<int64_t> dims;
  for (const Dim& d : *type.shape) dims.push_back(d.value);
  return Expand(Scalar(0.0, type.dtype), dims);
}

Value* GradBuilder::Where(Value* cond, Value* a, Value* b) {
  return Emit("Where", {cond, a, b},
              TypeOf(a->type.dtype, BroadcastDims(Dims(cond), BroadcastDims(Dims(a), Dims(b)))));
}

Value* GradBuilder::Constant(Tensor t) { return g_.AddInitializer(FreshName("const"), std::move(t)); }

Value* GradBuilder::Scalar(double v, DType dtype) { return Constant(Tensor::Scalar(dtype, v)); }

Value* GradBuilder::Ints(const std::vector<int64_t>& v) {
  return Constant(Tensor::FromVector<int64_t>(DType::kInt64, {static_cast<int64_t>(v.size())}, v));
}

std::vector<int64_t> GradBuilder::Dims(const Value* v) {
  std::vector<int64_t> dims;
  if (v && v->type.shape)
    for (const Dim& d : *v->type.shape) dims.push_back(d.value);
  return dims;
}

TensorType GradBuilder::TypeOf(DType dtype, const std::vector<int64_t>& dims) {
  Shape s;
  for (int64_t d : dims) s.push_back(Dim::Static(d));
  return TensorType{dtype, s};
}

StatusOr<std::vector<int64_t>> GradBuilder::ConstInts(size_t input) const {
  const Value* v = fwd_.input(input);
  if (!v || !v->is_initializer())
    return Unimplemented(fwd_.Describe(), ": input ", input, v ? StrCat(" '", v->name(), "'") : std::string(),
                         " must be a constant for its gradient (run fold-constants first)");
  return v->initializer().ToInt64Vector();
}

Status GradBuilder::Unsupported(const std::string& what) const {
  return Unimplemented("no gradient for ", fwd_.Describe(), ": ", what);
}

int64_t NormalizeAxis(int64_t axis, int64_t rank) { return axis < 0 ? axis + rank : axis; }

std::vector<int64_t> BroadcastDims(const std::vector<int64_t>& a, const std::vector<int64_t>& b) {
  size_t r = std::max(a.size(), b.size());
  std::vector<int64_t> out(r, 1);
  for (size_t i = 0; i < r; ++i) {
    int64_t da = i + a.size() >= r ? a[i + a.size() - r] : 1;
    int64_t db = i + b.size() >= r ? b[i + b.size() - r] : 1;
    out[i] = da == 1 ? db : da;
  }
  return out;
}

const GradientRegistry& GradientRegistry::Get() {
  static const GradientRegistry registry = [] {
    GradientRegistry r;
    RegisterElementwiseGradients(r);
    RegisterMatMulGradients(r);
    RegisterNnGradients(r);
    RegisterShapeGradients(r);
    RegisterReduceGradients(r);
    RegisterLossGradients(r);
    RegisterIndexingGradients(r);
    RegisterTransformerGradients(r);
    RegisterActivationGradients(r);
    return r;
  }();
  return registry;
}

GradientBuilderFn GradientRegistry::Find(const std::string& op_type) const {
  auto it = builders_.find(op_type);
  return it == builders_.end() ? nullptr : it->second;
}

std::vector<std::string> GradientRegistry::OpTypes() const {
  std::vector<std::string> out;
  for (const auto& [op, fn] : builders_) out.push_back(op);
  return out;
}

}  // namespace dsc::autodiff
