// Gradient builders of the activations and pointwise ops of current exports: Gelu, Mish, HardSwish,
// HardSigmoid, Softplus, Elu, Celu, Selu, Softsign (our ...Grad ops), Cos, Sin, Atan, CastLike, CumSum, Trilu.
#include <string>
#include <vector>

#include "ir/dsc_ops.h"
#include "passes/autodiff/grad_builder.h"

namespace dsc::autodiff {
namespace {

using B = GradBuilder;

// dX = <op>Grad(dY, X) with the forward attributes spelled out (defaults resolved here, so the
// backward node does not depend on the kernel's defaults).
Status EmitActivationGrad(B& b, const char* grad_op, Attrs attrs = {}) {
  b.SetGrad(0, b.EmitDsc(grad_op, {b.dY(0), b.X(0)}, b.X(0)->type, std::move(attrs)));
  return Status::OK();
}

Status BuildGeluGrad(B& b) {
  const std::string approximate = b.node().GetString("approximate", "none");
  if (approximate != "none" && approximate != "tanh")
    return b.Unsupported(StrCat("approximate = \"", approximate, "\" (ONNX defines \"none\" and \"tanh\")"));
  return EmitActivationGrad(b, ops::kGeluGrad, {{"approximate", approximate}});
}
Status BuildMishGrad(B& b) { return EmitActivationGrad(b, ops::kMishGrad); }
Status BuildHardSwishGrad(B& b) { return EmitActivationGrad(b, ops::kHardSwishGrad); }
Status BuildSoftplusGrad(B& b) { return EmitActivationGrad(b, ops::kSoftplusGrad); }
Status BuildSoftsignGrad(B& b) { return EmitActivationGrad(b, ops::kSoftsignGrad); }
Status BuildHardSigmoidGrad(B& b) {
  return EmitActivationGrad(b, ops::kHardSigmoidGrad,
                            {{"alpha", b.node().GetFloat("alpha", 0.2f)}, {"beta", b.node().GetFloat("beta", 0.5f)}});
}
Status BuildEluGrad(B& b) { return EmitActivationGrad(b, ops::kEluGrad, {{"alpha", b.node().GetFloat("alpha", 1.0f)}}); }
Status BuildCeluGrad(B& b) { return EmitActivationGrad(b, ops::kCeluGrad, {{"alpha", b.node().GetFloat("alpha", 1.0f)}}); }
Status BuildSeluGrad(B& b) {
  return EmitActivationGrad(b, ops::kSeluGrad,
                            {{"alpha", b.node().GetFloat("alpha", 1.67326319217681884765625f)},
                             {"gamma", b.node().GetFloat("gamma", 1.05070102214813232421875f)}});
}

// d cos(x) = -sin(x); d sin(x) = cos(x).
Status BuildCosGrad(B& b) {
  b.SetGrad(0, b.Neg(b.Mul(b.dY(0), b.Unary("Sin", b.X(0)))));
  return Status::OK();
}
Status BuildSinGrad(B& b) {
  b.SetGrad(0, b.Mul(b.dY(0), b.Unary("Cos", b.X(0))));
  return Status::OK();
}

// d atan(x) = 1 / (1 + x^2), as torch's atan backward: dY / (X * X + 1).
Status BuildAtanGrad(B& b) {
  b.SetGrad(0, b.Div(b.dY(0), b.Add(b.Mul(b.X(0), b.X(0)), b.Scalar(1.0, b.X(0)->type.dtype))));
  return Status::OK();
}

// Like Cast: the gradient casts back to the input's dtype.
Status BuildCastLikeGrad(B& b) {
  b.SetGrad(0, b.Cast(b.dY(0), b.X(0)->type.dtype));
  return Status::OK();
}

// Y[i] sums X[j] over j <= i (j < i when exclusive; j >= i / j > i when reverse), so dX[j] sums dY[i]
// over the same pairs seen from j: the same CumSum with `reverse` flipped.
Status BuildCumSumGrad(B& b) {
  const int64_t reverse = b.node().GetInt("reverse", 0) != 0 ? 0 : 1;
  const int64_t exclusive = b.node().GetInt("exclusive", 0) != 0 ? 1 : 0;
  b.SetGrad(0, b.Emit("CumSum", {b.dY(0), b.X(1)}, b.X(0)->type, {{"exclusive", exclusive}, {"reverse", reverse}}));
  return Status::OK();
}

// Trilu keeps a band of elements and zeroes the rest: the gradient is dY masked with the same band.
Status BuildTriluGrad(B& b) {
  std::vector<Value*> inputs = {b.dY(0)};
  if (b.node().num_inputs() > 1 && b.X(1)) inputs.push_back(b.X(1));
  b.SetGrad(0, b.Emit("Trilu", inputs, b.X(0)->type, {{"upper", b.node().GetInt("upper", 1) != 0 ? int64_t{1} : int64_t{0}}}));
  return Status::OK();
}

}  // namespace

void RegisterActivationGradients(GradientRegistry& registry) {
  REGISTER_GRADIENT_BUILDER("Gelu", BuildGeluGrad);
  registry.Add(kDscDomain, ops::kGelu, BuildGeluGrad);  // the recognize pass's Gelu for older opsets
  REGISTER_GRADIENT_BUILDER("Mish", BuildMishGrad);
  REGISTER_GRADIENT_BUILDER("HardSwish", BuildHardSwishGrad);
  REGISTER_GRADIENT_BUILDER("HardSigmoid", BuildHardSigmoidGrad);
  REGISTER_GRADIENT_BUILDER("Softplus", BuildSoftplusGrad);
  REGISTER_GRADIENT_BUILDER("Elu", BuildEluGrad);
  REGISTER_GRADIENT_BUILDER("Celu", BuildCeluGrad);
  REGISTER_GRADIENT_BUILDER("Selu", BuildSeluGrad);
  REGISTER_GRADIENT_BUILDER("Softsign", BuildSoftsignGrad);
  REGISTER_GRADIENT_BUILDER("Cos", BuildCosGrad);
  REGISTER_GRADIENT_BUILDER("Sin", BuildSinGrad);
  REGISTER_GRADIENT_BUILDER("Atan", BuildAtanGrad);
  REGISTER_GRADIENT_BUILDER("CastLike", BuildCastLikeGrad);
  REGISTER_GRADIENT_BUILDER("CumSum", BuildCumSumGrad);
  REGISTER_GRADIENT_BUILDER("Trilu", BuildTriluGrad);
}

}  // namespace dsc::autodiff
