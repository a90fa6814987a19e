// Gradient builders of reductions: the gradient is dY broadcast back over the reduced axes.
#include <algorithm>

#include "passes/autodiff/grad_builder.h"

namespace dsc::autodiff {
namespace {

using B = GradBuilder;

// ReduceSum (axes as input 1, opset 13) and ReduceMean (axes attribute before opset 18, input after).
Status BuildReduceGrad(B& b, bool mean) {
  const Node& n = b.node();
  std::vector<int64_t> xd = B::Dims(b.X(0));
  int64_t rank = static_cast<int64_t>(xd.size());
  std::vector<int64_t> axes = n.GetInts("axes");
  if (b.X(1)) {
    ASSIGN_OR_RETURN(axes, b.ConstInts(1));
  }
  if (axes.empty()) {
    if (n.GetInt("noop_with_empty_axes", 0) != 0) {
      b.SetGrad(0, b.dY(0));
      return Status::OK();
    }
    for (int64_t i = 0; i < rank; ++i) axes.push_back(i);
  }
  std::vector<int64_t> kept = xd;
  int64_t count = 1;
  for (int64_t a : axes) {
    size_t i = static_cast<size_t>(NormalizeAxis(a, rank));
    count *= xd[i];
    kept[i] = 1;
  }
  Value* g = b.Reshape(b.dY(0), kept);  // the keepdims=0 shape back to keepdims=1
  if (mean) g = b.MulScalar(g, 1.0 / static_cast<double>(count));
  b.SetGrad(0, b.Expand(g, xd));
  return Status::OK();
}

Status BuildReduceSumGrad(B& b) { return BuildReduceGrad(b, false); }
Status BuildReduceMeanGrad(B& b) { return BuildReduceGrad(b, true); }

}  // namespace

void RegisterReduceGradients(GradientRegistry& registry) {
  REGISTER_GRADIENT_BUILDER("ReduceSum", BuildReduceSumGrad);
  REGISTER_GRADIENT_BUILDER("ReduceMean", BuildReduceMeanGrad);
}

}  // namespace dsc::autodiff
