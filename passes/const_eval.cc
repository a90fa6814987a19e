// Dispatch of the constant evaluator: one table from op type to the family function that computes it.
#include "passes/const_eval.h"

#include "ir/dsc_ops.h"
#include "passes/const_eval/internal.h"

namespace dsc {
namespace {

const const_eval::OpTable& Table() {
  static const const_eval::OpTable table = [] {
    const_eval::OpTable t;
    const_eval::RegisterElementwiseOps(t);
    const_eval::RegisterShapeOps(t);
    const_eval::RegisterIndexingOps(t);
    const_eval::RegisterCreationOps(t);
    const_eval::RegisterReduceOps(t);
    const_eval::RegisterScatterGatherOps(t);
    const_eval::RegisterEinsumOps(t);
    const_eval::RegisterCumSumOps(t);
    return t;
  }();
  return table;
}

// The op a node evaluates as: its own in the default domain; ai.dscompile.StopGradient is Identity
// (a constant has no gradient to stop); null for the other domains.
const std::string* EvaluatedAs(const Node& node) {
  static const std::string identity = "Identity";
  if (ops::IsStopGradient(node)) return &identity;
  return node.domain().empty() ? &node.op_type() : nullptr;
}

}  // namespace

bool CanEvaluate(const Node& node) {
  const std::string* op = EvaluatedAs(node);
  return op && Table().count(*op) > 0;
}

StatusOr<std::vector<Tensor>> EvaluateNode(const Node& node, const std::vector<const Tensor*>& inputs) {
  const std::string* op = EvaluatedAs(node);
  if (!op) return Unimplemented(node.Describe(), ": constant evaluation supports the default ONNX domain only");
  auto it = Table().find(*op);
  if (it == Table().end()) return Unimplemented(node.Describe(), ": no constant evaluator for ", node.op_type());
  for (size_t i = 0; i < inputs.size(); ++i)
    if (inputs[i] != nullptr && DTypeSize(inputs[i]->dtype()) == 0)
      return const_eval::Bad(node, "input ", i, " has an undefined element type");
  ASSIGN_OR_RETURN(std::vector<Tensor> outputs, it->second(node, inputs));
  // Every family returns the op's full output list; a node declaring a different count is malformed.
  if (outputs.size() != node.num_outputs())
    return const_eval::Bad(node, "has ", node.num_outputs(), " outputs, but ", node.op_type(), " produces ",
                           outputs.size());
  return outputs;
}

}  // namespace dsc
