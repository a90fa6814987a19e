// torch.squeeze(x, dim) on an axis that is not 1, restored from the node metadata (see torch_squeeze.h).
#include "frontend/torch_squeeze.h"

#include <optional>
#include <vector>

#include "frontend/model_types.h"
#include "frontend/proto_rewriter.h"
#include "frontend/torch_node_metadata.h"
#include "onnx/defs/tensor_proto_util.h"

namespace dsc {
namespace {

bool IsTorchSqueeze(const onnx::NodeProto& n) {
  if (!(n.domain().empty() || n.domain() == "ai.onnx") || n.op_type() != "Squeeze" || n.input_size() < 2 ||
      n.input(1).empty() || n.output_size() != 1)
    return false;
  const std::string* fx = FindProp(n.metadata_props(), "pkg.torch.onnx.fx_node");
  return fx && (!FxCallArgs(*fx, "aten.squeeze.dim").empty() || fx->find("target=torch.ops.aten.squeeze.dims]") != std::string::npos);
}

}  // namespace

Status SqueezeAsTorchDoes(onnx::ModelProto* model, const std::map<std::string, int64_t>& dims) {
  const int64_t opset = OnnxOpset(*model);
  if (opset < 13) return Status::OK();  // axes became an input in opset 13
  bool any = false;
  for (const auto& n : model->graph().node()) any |= IsTorchSqueeze(n);
  if (!any) return Status::OK();
  const ModelTypes types(*model, dims);
  return RewriteNodes(model->mutable_graph(), [&](const onnx::NodeProto& n,
                                                  std::vector<onnx::NodeProto>* nodes) -> StatusOr<bool> {
    if (!IsTorchSqueeze(n)) return false;
    const onnx::TensorProto* axes_t = types.Constant(n.input(1));
    const std::optional<int64_t> rank = types.Rank(n.input(0));
    if (!axes_t || axes_t->data_type() != onnx::TensorProto::INT64 || axes_t->has_data_location() || !rank) return false;
    const std::vector<int64_t> axes = onnx::ParseData<int64_t>(axes_t);
    std::vector<int64_t> kept;
    for (int64_t a : axes) {
      const int64_t axis = a < 0 ? a + *rank : a;
      if (axis < 0 || axis >= *rank) return false;  // ONNX's checks name it
      const std::optional<int64_t> size = types.Dim(n.input(0), static_cast<int>(axis));
      if (!size || *size == 1) kept.push_back(axis);
    }
    if (kept.size() == axes.size()) return false;
    ProtoRewriter r(n, opset, nodes, "as_torch");
    if (kept.empty()) {
      r.Add("Identity", {n.input(0)}, n.output(0));
    } else {
      r.Add("Squeeze", {n.input(0), r.Ints(kept)}, n.output(0));
    }
    return true;
  });
}

}  // namespace dsc
