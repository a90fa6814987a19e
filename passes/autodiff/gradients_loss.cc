// Gradient builders of the ONNX loss ops, lowered to their fused gradient ops of our domain.
#include "ir/dsc_ops.h"
#include "passes/autodiff/grad_builder.h"

namespace dsc::autodiff {
namespace {

using B = GradBuilder;

// (dLoss, scores, labels[, weights]) -> dScores, with reduction and ignore_index as the forward.
Status BuildLossGrad(B& b, const char* op) {
  if (!b.dY(0)) return Status::OK();
  const Node& n = b.node();
  Attrs attrs{{"reduction", n.GetString("reduction", "mean")}};
  if (n.HasAttr("ignore_index")) attrs["ignore_index"] = n.GetInt("ignore_index", 0);
  std::vector<Value*> in{b.dY(0), b.X(0), b.X(1)};
  if (b.X(2)) in.push_back(b.X(2));
  b.SetGrad(0, b.EmitDsc(op, in, b.X(0)->type, attrs));
  return Status::OK();
}

Status BuildSoftmaxCrossEntropyLossGrad(B& b) { return BuildLossGrad(b, ops::kSoftmaxCrossEntropyLossGrad); }
Status BuildNegativeLogLikelihoodLossGrad(B& b) { return BuildLossGrad(b, ops::kNegativeLogLikelihoodLossGrad); }

}  // namespace

void RegisterLossGradients(GradientRegistry& registry) {
  REGISTER_GRADIENT_BUILDER("SoftmaxCrossEntropyLoss", BuildSoftmaxCrossEntropyLossGrad);
  REGISTER_GRADIENT_BUILDER("NegativeLogLikelihoodLoss", BuildNegativeLogLikelihoodLossGrad);
}

}  // namespace dsc::autodiff
