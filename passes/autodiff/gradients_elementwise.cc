// Gradient builders of elementwise ops (broadcasting binaries un-broadcast with ReduceSumTo).
#include <cmath>

#include "ir/dsc_ops.h"
#include "passes/autodiff/grad_builder.h"

namespace dsc::autodiff {
namespace {

using B = GradBuilder;

// Sets dX_i = ReduceSumTo(g, X_i) when input i needs a gradient.
void SetUnbroadcast(B& b, size_t i, Value* g) {
  if (b.NeedsGrad(i)) b.SetGrad(i, b.ReduceSumTo(g, B::Dims(b.X(i))));
}

Status BuildAddGrad(B& b) {
  SetUnbroadcast(b, 0, b.dY(0));
  SetUnbroadcast(b, 1, b.dY(0));
  return Status::OK();
}

Status BuildSubGrad(B& b) {
  SetUnbroadcast(b, 0, b.dY(0));
  if (b.NeedsGrad(1)) b.SetGrad(1, b.Neg(b.ReduceSumTo(b.dY(0), B::Dims(b.X(1)))));  // reduce first: fewer negations
  return Status::OK();
}

Status BuildMulGrad(B& b) {
  if (b.NeedsGrad(0)) SetUnbroadcast(b, 0, b.Mul(b.dY(0), b.X(1)));
  if (b.NeedsGrad(1)) SetUnbroadcast(b, 1, b.Mul(b.dY(0), b.X(0)));
  return Status::OK();
}

// Y = A / B: dA = dY / B, dB = -dY * Y / B.
Status BuildDivGrad(B& b) {
  if (b.NeedsGrad(0)) SetUnbroadcast(b, 0, b.Div(b.dY(0), b.X(1)));
  if (b.NeedsGrad(1)) SetUnbroadcast(b, 1, b.Neg(b.Div(b.Mul(b.dY(0), b.Y(0)), b.X(1))));
  return Status::OK();
}

// Y = A ^ E: dA = dY * E * A^(E-1), dE = dY * Y * ln(A) (NaN for A <= 0, as in torch).
Status BuildPowGrad(B& b) {
  Value* a = b.X(0);
  Value* e = b.Cast(b.X(1), a->type.dtype);
  if (b.NeedsGrad(0)) {
    Value* em1 = b.Sub(e, b.Scalar(1.0, e->type.dtype));
    Value* pow = b.Emit("Pow", {a, em1}, b.Y(0)->type);
    SetUnbroadcast(b, 0, b.Mul(b.Mul(b.dY(0), e), pow));
  }
  if (b.NeedsGrad(1)) SetUnbroadcast(b, 1, b.Mul(b.Mul(b.dY(0), b.Y(0)), b.Unary("Log", a)));
  return Status::OK();
}

// Y = sqrt(X): dX = dY * 0.5 / Y.
Status BuildSqrtGrad(B& b) {
  b.SetGrad(0, b.Div(b.MulScalar(b.dY(0), 0.5), b.Y(0)));
  return Status::OK();
}

// Y = 1/X: dX = -dY * Y^2.
Status BuildReciprocalGrad(B& b) {
  b.SetGrad(0, b.Neg(b.Mul(b.dY(0), b.Mul(b.Y(0), b.Y(0)))));
  return Status::OK();
}

Status BuildNegGrad(B& b) {
  b.SetGrad(0, b.Neg(b.dY(0)));
  return Status::OK();
}

Status BuildExpGrad(B& b) {
  b.SetGrad(0, b.Mul(b.dY(0), b.Y(0)));
  return Status::OK();
}

Status BuildLogGrad(B& b) {
  b.SetGrad(0, b.Div(b.dY(0), b.X(0)));
  return Status::OK();
}

// d|x| = sign(x): 0 at 0, as in torch.
Status BuildAbsGrad(B& b) {
  b.SetGrad(0, b.Mul(b.dY(0), b.Unary("Sign", b.X(0))));
  return Status::OK();
}

// d erf(x) = 2/sqrt(pi) * exp(-x^2).
Status BuildErfGrad(B& b) {
  Value* x = b.X(0);
  Value* e = b.Unary("Exp", b.Neg(b.Mul(x, x)));
  b.SetGrad(0, b.Mul(b.dY(0), b.MulScalar(e, 2.0 / std::sqrt(M_PI))));
  return Status::OK();
}

Status BuildTanhGrad(B& b) {
  b.SetGrad(0, b.EmitDsc(ops::kTanhGrad, {b.dY(0), b.Y(0)}, b.X(0)->type));
  return Status::OK();
}

Status BuildSigmoidGrad(B& b) {
  b.SetGrad(0, b.EmitDsc(ops::kSigmoidGrad, {b.dY(0), b.Y(0)}, b.X(0)->type));
  return Status::OK();
}

Status BuildReluGrad(B& b) {
  b.SetGrad(0, b.EmitDsc(ops::kReluGrad, {b.dY(0), b.X(0)}, b.X(0)->type));
  return Status::OK();
}

Status BuildLeakyReluGrad(B& b) {
  float alpha = b.node().GetFloat("alpha", 0.01f);
  b.SetGrad(0, b.EmitDsc(ops::kLeakyReluGrad, {b.dY(0), b.X(0)}, b.X(0)->type, {{"alpha", alpha}}));
  return Status::OK();
}

Status BuildIdentityGrad(B& b) {
  b.SetGrad(0, b.dY(0));
  return Status::OK();
}

// Cast between float types: the gradient casts back.
Status BuildCastGrad(B& b) {
  b.SetGrad(0, b.Cast(b.dY(0), b.X(0)->type.dtype));
  return Status::OK();
}

// Where(C, X, Y): the gradient goes to the branch each element was taken from.
Status BuildWhereGrad(B& b) {
  Value* zero = b.Scalar(0.0, b.dY(0)->type.dtype);
  if (b.NeedsGrad(1)) SetUnbroadcast(b, 1, b.Where(b.X(0), b.dY(0), zero));
  if (b.NeedsGrad(2)) SetUnbroadcast(b, 2, b.Where(b.X(0), zero, b.dY(0)));
  return Status::OK();
}

// torch.clamp: the gradient passes where min <= x <= max (inclusive), i.e. where Y == X.
Status BuildClipGrad(B& b) {
  Value* kept = b.Emit("Equal", {b.Y(0), b.X(0)}, B::TypeOf(DType::kBool, B::Dims(b.X(0))));
  b.SetGrad(0, b.Where(kept, b.dY(0), b.Scalar(0.0, b.dY(0)->type.dtype)));
  return Status::OK();
}

// Max/Min (variadic): each input equal to Y gets dY / (number of inputs equal to Y). For two
// inputs this is torch.maximum/minimum's rule (a tie splits the gradient in halves).
Status BuildMaxMinGrad(B& b) {
  size_t n = b.node().num_inputs();
  if (n == 1) {
    b.SetGrad(0, b.dY(0));
    return Status::OK();
  }
  DType dt = b.Y(0)->type.dtype;
  std::vector<Value*> masks;
  for (size_t i = 0; i < n; ++i) {
    Value* eq = b.Emit("Equal", {b.X(i), b.Y(0)}, B::TypeOf(DType::kBool, B::Dims(b.Y(0))));
    masks.push_back(b.Cast(eq, dt));
  }
  Value* count = masks[0];
  for (size_t i = 1; i < n; ++i) count = b.Add(count, masks[i]);
  Value* share = b.Div(b.dY(0), count);
  for (size_t i = 0; i < n; ++i)
    if (b.NeedsGrad(i)) SetUnbroadcast(b, i, b.Mul(share, masks[i]));
  return Status::OK();
}

}  // namespace

void RegisterElementwiseGradients(GradientRegistry& registry) {
  REGISTER_GRADIENT_BUILDER("Add", BuildAddGrad);
  REGISTER_GRADIENT_BUILDER("Sub", BuildSubGrad);
  REGISTER_GRADIENT_BUILDER("Mul", BuildMulGrad);
  REGISTER_GRADIENT_BUILDER("Div", BuildDivGrad);
  REGISTER_GRADIENT_BUILDER("Pow", BuildPowGrad);
  REGISTER_GRADIENT_BUILDER("Sqrt", BuildSqrtGrad);
  REGISTER_GRADIENT_BUILDER("Reciprocal", BuildReciprocalGrad);
  REGISTER_GRADIENT_BUILDER("Neg", BuildNegGrad);
  REGISTER_GRADIENT_BUILDER("Exp", BuildExpGrad);
  REGISTER_GRADIENT_BUILDER("Log", BuildLogGrad);
  REGISTER_GRADIENT_BUILDER("Abs", BuildAbsGrad);
  REGISTER_GRADIENT_BUILDER("Erf", BuildErfGrad);
  REGISTER_GRADIENT_BUILDER("Tanh", BuildTanhGrad);
  REGISTER_GRADIENT_BUILDER("Sigmoid", BuildSigmoidGrad);
  REGISTER_GRADIENT_BUILDER("Relu", BuildReluGrad);
  REGISTER_GRADIENT_BUILDER("LeakyRelu", BuildLeakyReluGrad);
  REGISTER_GRADIENT_BUILDER("Identity", BuildIdentityGrad);
  REGISTER_GRADIENT_BUILDER("Cast", BuildCastGrad);
  REGISTER_GRADIENT_BUILDER("Where", BuildWhereGrad);
  REGISTER_GRADIENT_BUILDER("Clip", BuildClipGrad);
  REGISTER_GRADIENT_BUILDER("Max", BuildMaxMinGrad);
  REGISTER_GRADIENT_BUILDER("Min", BuildMaxMinGrad);
}

}  // namespace dsc::autodiff
