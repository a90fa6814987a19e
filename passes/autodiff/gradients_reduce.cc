// Gradient builders of reductions: dY broadcast back over the reduced axes, to every element
// (ReduceSum, ReduceMean), the extreme ones (ReduceMax, ReduceMin) or scaled by the others (ReduceProd).
#include <algorithm>

#include "passes/autodiff/grad_builder.h"

namespace dsc::autodiff {
namespace {

using B = GradBuilder;

// What a Reduce* node reduces: the axes (input 1 from opset 18, ReduceSum's from 13; else the
// attribute), X's dims with those set to 1 (the keepdims shape) and how many values each output
// reduces. `noop`: empty axes with noop_with_empty_axes, Y = X.
struct Reduced {
  bool noop = false;
  std::vector<int64_t> axes, kept;
  int64_t count = 1;
};

StatusOr<Reduced> ReadReduced(B& b) {
  const Node& n = b.node();
  const std::vector<int64_t> xd = B::Dims(b.X(0));
  const int64_t rank = static_cast<int64_t>(xd.size());
  Reduced r;
  r.axes = n.GetInts("axes");
  if (b.X(1)) {
    ASSIGN_OR_RETURN(r.axes, b.ConstInts(1));
  }
  if (r.axes.empty()) {
    if (n.GetInt("noop_with_empty_axes", 0) != 0) {
      r.noop = true;
      return r;
    }
    for (int64_t i = 0; i < rank; ++i) r.axes.push_back(i);
  }
  r.kept = xd;
  for (int64_t& a : r.axes) {
    a = NormalizeAxis(a, rank);
    r.count *= xd[static_cast<size_t>(a)];
    r.kept[static_cast<size_t>(a)] = 1;
  }
  return r;
}

// ReduceSum and ReduceMean: dY broadcast back over the reduced axes (divided by the count for a mean).
Status BuildReduceGrad(B& b, bool mean) {
  ASSIGN_OR_RETURN(Reduced r, ReadReduced(b));
  if (r.noop) {
    b.SetGrad(0, b.dY(0));
    return Status::OK();
  }
  Value* g = b.Reshape(b.dY(0), r.kept);  // the keepdims=0 shape back to keepdims=1
  if (mean) g = b.MulScalar(g, 1.0 / static_cast<double>(r.count));
  b.SetGrad(0, b.Expand(g, B::Dims(b.X(0))));
  return Status::OK();
}

// ReduceMax/ReduceMin are torch.amax/amin: each element equal to the result gets an equal share
// of dY, as amax/amin's backward splits it among ties. (The exporter writes torch.max(x, dim).values
// as ReduceMax too; where its node metadata says so, the importer writes a GatherElements at ArgMax
// instead, whose gradient reaches the one index torch returns: frontend/torch_max_dim.h.)
//   mask = X == Y;  dX = mask * dY / ReduceSum(mask)
Status BuildReduceMaxMinGrad(B& b) {
  ASSIGN_OR_RETURN(Reduced r, ReadReduced(b));
  if (r.noop) {
    b.SetGrad(0, b.dY(0));
    return Status::OK();
  }
  const std::vector<int64_t> xd = B::Dims(b.X(0));
  const DType dt = b.X(0)->type.dtype;
  Value* eq = b.Emit("Equal", {b.X(0), b.Reshape(b.Y(0), r.kept)}, B::TypeOf(DType::kBool, xd));
  Value* mask = b.Cast(eq, dt);
  Value* count = b.ReduceSum(mask, r.axes, /*keepdims=*/true);
  b.SetGrad(0, b.Mul(mask, b.Div(b.Reshape(b.dY(0), r.kept), count)));
  return Status::OK();
}

// ReduceProd: dX_i = dY * (product of the other values), computed as torch.prod's backward does
// so that zeros are right: with no zero in the group it is prod / x_i; with exactly one, only
// the zero gets a gradient (the product of the others); with two or more, none.
//   zero = X == 0;  nz = ReduceSum(zero);  p = ReduceProd(Where(zero, 1, X))   (the non-zeros' product)
//   dX = dY * Where(zero, Where(nz == 1, p, 0), Where(nz == 0, p / X, 0))
Status BuildReduceProdGrad(B& b) {
  ASSIGN_OR_RETURN(Reduced r, ReadReduced(b));
  if (r.noop) {
    b.SetGrad(0, b.dY(0));
    return Status::OK();
  }
  const std::vector<int64_t> xd = B::Dims(b.X(0));
  const DType dt = b.X(0)->type.dtype;
  Value* zero_v = b.Scalar(0.0, dt);
  Value* zero = b.Emit("Equal", {b.X(0), zero_v}, B::TypeOf(DType::kBool, xd));
  Value* nz = b.ReduceSum(b.Cast(zero, dt), r.axes, /*keepdims=*/true);
  Value* nonzero_x = b.Where(zero, b.Scalar(1.0, dt), b.X(0));
  // The axes in the model's form: an input from opset 18, an attribute before.
  auto opset = b.graph().opsets.find("");
  Value* p = opset != b.graph().opsets.end() && opset->second < 18
                 ? b.Emit("ReduceProd", {nonzero_x}, B::TypeOf(dt, r.kept), {{"axes", r.axes}, {"keepdims", int64_t{1}}})
                 : b.Emit("ReduceProd", {nonzero_x, b.Ints(r.axes)}, B::TypeOf(dt, r.kept), {{"keepdims", int64_t{1}}});
  Value* one_zero = b.Emit("Equal", {nz, b.Scalar(1.0, dt)}, B::TypeOf(DType::kBool, r.kept));
  Value* no_zero = b.Emit("Equal", {nz, zero_v}, B::TypeOf(DType::kBool, r.kept));
  Value* at_zero = b.Where(one_zero, p, zero_v);
  Value* elsewhere = b.Where(no_zero, b.Div(p, nonzero_x), zero_v);
  Value* others = b.Where(zero, at_zero, elsewhere);
  b.SetGrad(0, b.Mul(others, b.Reshape(b.dY(0), r.kept)));
  return Status::OK();
}

Status BuildReduceSumGrad(B& b) { return BuildReduceGrad(b, false); }
Status BuildReduceMeanGrad(B& b) { return BuildReduceGrad(b, true); }

}  // namespace

void RegisterReduceGradients(GradientRegistry& registry) {
  REGISTER_GRADIENT_BUILDER("ReduceSum", BuildReduceSumGrad);
  REGISTER_GRADIENT_BUILDER("ReduceMean", BuildReduceMeanGrad);
  REGISTER_GRADIENT_BUILDER("ReduceMax", BuildReduceMaxMinGrad);
  REGISTER_GRADIENT_BUILDER("ReduceMin", BuildReduceMaxMinGrad);
  REGISTER_GRADIENT_BUILDER("ReduceProd", BuildReduceProdGrad);
}

}  // namespace dsc::autodiff
