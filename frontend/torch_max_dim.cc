// Rewriting torch.max/min(x, dim)'s ReduceMax/ReduceMin as a gather at ArgMax/ArgMin (see torch_max_dim.h).
#include "frontend/torch_max_dim.h"

#include <optional>
#include <string>
#include <vector>

#include "frontend/proto_rewriter.h"
#include "frontend/torch_node_metadata.h"

namespace dsc {
namespace {

// The dim of n's aten.max.dim / aten.min.dim call (args: self, dim[, keepdim]), if it is one.
std::optional<int64_t> MaxDimOf(const onnx::NodeProto& n) {
  const bool onnx_domain = n.domain().empty() || n.domain() == "ai.onnx";
  const bool is_max = n.op_type() == "ReduceMax";
  if (!onnx_domain || (!is_max && n.op_type() != "ReduceMin") || n.output_size() != 1) return std::nullopt;
  const std::string* fx = FindProp(n.metadata_props(), kFxNodeKey);
  if (!fx) return std::nullopt;
  const std::vector<std::string> args = FxCallArgs(*fx, is_max ? "aten.max.dim" : "aten.min.dim");
  return args.size() >= 2 ? FxIntLiteral(args[1]) : std::nullopt;
}

void GatherAtArg(const onnx::NodeProto& n, int64_t dim, int64_t opset, std::vector<onnx::NodeProto>* out) {
  ProtoRewriter r(n, opset, out, "at_arg");
  const onnx::AttributeProto* keep = FindAttr(n, "keepdims");
  const bool keepdims = !keep || keep->i() != 0;
  const std::string idx = r.Add(n.op_type() == "ReduceMax" ? "ArgMax" : "ArgMin", {n.input(0)});
  r.SetInt("axis", dim);
  r.SetInt("keepdims", 1);
  const std::string values = r.Add("GatherElements", {n.input(0), idx}, keepdims ? n.output(0) : "");
  r.SetInt("axis", dim);
  if (keepdims) return;
  if (opset >= 13) {
    r.Add("Squeeze", {values, r.Ints({dim})}, n.output(0));
  } else {
    r.Add("Squeeze", {values}, n.output(0));
    r.SetInts("axes", {dim});
  }
}

}  // namespace

Status MaxDimAsGatherAtArgMax(onnx::ModelProto* model) {
  const int64_t opset = OnnxOpset(*model);
  if (opset < 11) return Status::OK();  // GatherElements from opset 11
  onnx::GraphProto* g = model->mutable_graph();
  return RewriteNodes(g, [&](const onnx::NodeProto& n, std::vector<onnx::NodeProto>* nodes) {
    const std::optional<int64_t> dim = MaxDimOf(n);
    if (dim) GatherAtArg(n, *dim, opset, nodes);
    return StatusOr<bool>(dim.has_value());
  });
}

}  // namespace dsc
