// Per-op differentiable input/output slots.
#include "passes/differentiability.h"

#include <map>
#include <set>

#include "passes/autodiff/grad_builder.h"

namespace dsc {
namespace {

// Float-typed inputs that never receive a gradient, by op (indices of input slots).
const std::map<std::string, std::set<size_t>>& NonDifferentiableInputs() {
  static const std::map<std::string, std::set<size_t>> table = {
      {"Reshape", {1}}, {"Expand", {1}}, {"Slice", {1, 2, 3, 4}}, {"Gather", {1}}, {"Where", {0}},
      {"Tile", {1}}, {"Pad", {1, 2, 3}}, {"Squeeze", {1}}, {"Unsqueeze", {1}}, {"Split", {1}},
      {"Clip", {1, 2}}, {"Dropout", {1, 2}}, {"BatchNormalization", {3, 4}},
      {"SoftmaxCrossEntropyLoss", {1, 2}}, {"NegativeLogLikelihoodLoss", {1, 2}},
      {"ReduceSum", {1}}, {"ReduceMean", {1}}, {"Resize", {1, 2, 3}}, {"Range", {0, 1, 2}},
      {"ConstantOfShape", {0}}, {"Shape", {0}}, {"Size", {0}}, {"Trilu", {1}},
      // Steering inputs of ops autodiff may meet on a differentiable path (float-typed only
      // when an exporter chose to): indices, axes, counts.
      {"GatherElements", {1}}, {"GatherND", {1}}, {"ScatterElements", {1}}, {"ScatterND", {1}},
      {"CumSum", {1}}, {"TopK", {1}}, {"OneHot", {0, 1, 2}}, {"ReduceMax", {1}}, {"ReduceMin", {1}},
      {"ReduceProd", {1}}, {"ReduceL2", {1}}, {"ReduceLogSumExp", {1}}, {"ReduceSumSquare", {1}},
      {"Upsample", {1}}, {"EyeLike", {0}},
      {"CastLike", {1}},
      // Opset 23 transformer ops: positions and per-batch key counts (integers in practice).
      {"RotaryEmbedding", {3}}, {"Attention", {6}},
      // Random draws: a *Like op reads only its input's shape; torch.bernoulli has no gradient.
      {"RandomUniformLike", {0}}, {"RandomNormalLike", {0}}, {"Bernoulli", {0}}};
  return table;
}

// Outputs that are never differentiable regardless of type.
const std::map<std::string, std::set<size_t>>& NonDifferentiableOutputs() {
  static const std::map<std::string, std::set<size_t>> table = {
      {"BatchNormalization", {1, 2}}, {"Dropout", {1}}, {"SoftmaxCrossEntropyLoss", {1}},
      {"LayerNormalization", {1, 2}}, {"MaxPool", {1}}, {"TopK", {1}},
      // Piecewise-constant ops: zero gradient almost everywhere, so nothing flows back (as in torch).
      {"Floor", {0}}, {"Ceil", {0}}, {"Round", {0}}, {"Sign", {0}},
      {"RandomUniformLike", {0}}, {"RandomNormalLike", {0}}, {"RandomUniform", {0}}, {"RandomNormal", {0}},
      {"Bernoulli", {0}}};
  return table;
}

bool FloatValue(const Value* v) { return v && IsFloat(v->type.dtype); }

}  // namespace

bool IsDifferentiableInput(const Node& n, size_t i) {
  if (!FloatValue(n.input(i))) return false;
  // Our own ops are differentiable only where a gradient builder is registered for them (the
  // forward ops that stand for a standard op, ir/dsc_ops.h: Gelu); the others appear after autodiff,
  // but for StopGradient, PyTorch's detach(), which is there to stop the gradient.
  if (!n.domain().empty() && !autodiff::GradientRegistry::Get().Find(n.domain(), n.op_type())) return false;
  auto it = NonDifferentiableInputs().find(n.op_type());
  return it == NonDifferentiableInputs().end() || !it->second.count(i);
}

bool IsDifferentiableOutput(const Node& n, size_t i) {
  if (i >= n.num_outputs() || !FloatValue(n.output(i))) return false;
  auto it = NonDifferentiableOutputs().find(n.op_type());
  return it == NonDifferentiableOutputs().end() || !it->second.count(i);
}

}  // namespace dsc
