// torch.squeeze and torch.cat where ONNX's Squeeze and Concat refuse their inputs, restored from the
// node metadata (see torch_shape_ops.h).
#include "frontend/torch_shape_ops.h"

#include <optional>
#include <vector>

#include "frontend/model_types.h"
#include "frontend/proto_rewriter.h"
#include "frontend/torch_node_metadata.h"
#include "onnx/defs/tensor_proto_util.h"

namespace dsc {
namespace {

// Whether n is a default-domain `op` whose fx node calls one of `targets` (e.g. "aten.cat.default").
bool IsTorchCall(const onnx::NodeProto& n, const std::string& op, const std::vector<std::string>& targets) {
  if (!(n.domain().empty() || n.domain() == "ai.onnx") || n.op_type() != op || n.output_size() != 1) return false;
  const std::string* fx = FindProp(n.metadata_props(), kFxNodeKey);
  if (!fx) return false;
  for (const std::string& t : targets)
    if (fx->find("[target=torch.ops." + t + "]") != std::string::npos) return true;
  return false;
}

bool IsTorchSqueeze(const onnx::NodeProto& n) {
  return IsTorchCall(n, "Squeeze", {"aten.squeeze.dim", "aten.squeeze.dims"}) && n.input_size() >= 2 && !n.input(1).empty();
}
bool IsTorchCat(const onnx::NodeProto& n) { return IsTorchCall(n, "Concat", {"aten.cat.default"}); }

// The Squeeze without the axes whose known size is not 1; false to keep n.
bool SqueezeAsTorch(const onnx::NodeProto& n, int64_t opset, const ModelTypes& types, std::vector<onnx::NodeProto>* out) {
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
  ProtoRewriter r(n, opset, out, "as_torch");
  if (kept.empty()) {
    r.Add("Identity", {n.input(0)}, n.output(0));
  } else {
    r.Add("Squeeze", {n.input(0), r.Ints(kept)}, n.output(0));
  }
  return true;
}

// The Concat without its empty 1-D inputs when another input is not 1-D; false to keep n.
bool CatAsTorch(const onnx::NodeProto& n, int64_t opset, const ModelTypes& types, std::vector<onnx::NodeProto>* out) {
  std::vector<std::string> kept;
  bool other_rank = false;
  for (const std::string& in : n.input()) {
    const std::optional<int64_t> rank = types.Rank(in);
    const bool empty_1d = rank == 1 && types.Dim(in, 0) == 0;
    if (!empty_1d) kept.push_back(in);
    other_rank |= rank && *rank != 1;
  }
  if (!other_rank || kept.size() == static_cast<size_t>(n.input_size()) || kept.empty()) return false;
  ProtoRewriter r(n, opset, out, "as_torch");
  if (kept.size() == 1) {
    r.Add("Identity", kept, n.output(0));
  } else {
    r.Add("Concat", kept, n.output(0));
    *r.last().mutable_attribute() = n.attribute();
  }
  return true;
}

}  // namespace

Status ShapeOpsAsTorchDoes(onnx::ModelProto* model, const std::map<std::string, int64_t>& dims) {
  const int64_t opset = OnnxOpset(*model);
  if (opset < 13) return Status::OK();  // Squeeze's axes became an input in opset 13
  bool any = false;
  for (const auto& n : model->graph().node()) any |= IsTorchSqueeze(n) || IsTorchCat(n);
  if (!any) return Status::OK();
  const ModelTypes types(*model, dims);
  return RewriteNodes(model->mutable_graph(), [&](const onnx::NodeProto& n,
                                                  std::vector<onnx::NodeProto>* nodes) -> StatusOr<bool> {
    if (IsTorchSqueeze(n)) return SqueezeAsTorch(n, opset, types, nodes);
    if (IsTorchCat(n)) return CatAsTorch(n, opset, types, nodes);
    return false;
  });
}

}  // namespace dsc
