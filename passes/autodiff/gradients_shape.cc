// Gradient builders of data-movement ops: reshapes, transposes, concat/split, slice, gather, pad.
#include <algorithm>

#include <nlohmann/json.hpp>

#include "ir/dsc_ops.h"
#include "ir/torch_parameters.h"
#include "passes/autodiff/grad_builder.h"

namespace dsc::autodiff {
namespace {

using B = GradBuilder;

// Reshape, Flatten, Squeeze, Unsqueeze: same elements, the input's shape.
Status BuildReshapeLikeGrad(B& b) {
  b.SetGrad(0, b.Reshape(b.dY(0), B::Dims(b.X(0))));
  return Status::OK();
}

Status BuildTransposeGrad(B& b) {
  int64_t rank = B::Rank(b.X(0));
  std::vector<int64_t> perm = b.node().GetInts("perm");
  if (perm.empty())
    for (int64_t i = rank - 1; i >= 0; --i) perm.push_back(i);
  std::vector<int64_t> inverse(perm.size());
  for (size_t i = 0; i < perm.size(); ++i) inverse[static_cast<size_t>(perm[i])] = static_cast<int64_t>(i);
  b.SetGrad(0, b.Transpose(b.dY(0), inverse));
  return Status::OK();
}

Status BuildExpandGrad(B& b) {
  b.SetGrad(0, b.ReduceSumTo(b.dY(0), B::Dims(b.X(0))));
  return Status::OK();
}

// Concat: split dY back into the pieces.
Status BuildConcatGrad(B& b) {
  const Node& n = b.node();
  int64_t axis = NormalizeAxis(n.GetInt("axis", 0), B::Rank(b.Y(0)));
  std::vector<TensorType> types;
  for (size_t i = 0; i < n.num_inputs(); ++i) types.push_back(b.X(i)->type);
  if (n.num_inputs() == 1) {
    b.SetGrad(0, b.dY(0));
    return Status::OK();
  }
  std::vector<Value*> parts = b.Split(b.dY(0), axis, types);
  for (size_t i = 0; i < parts.size(); ++i) b.SetGrad(i, parts[i]);
  return Status::OK();
}

// Split: concatenate the pieces' gradients, zeros for pieces no gradient flows into.
Status BuildSplitGrad(B& b) {
  const Node& n = b.node();
  int64_t axis = NormalizeAxis(n.GetInt("axis", 0), B::Rank(b.X(0)));
  std::vector<Value*> parts;
  for (size_t i = 0; i < n.num_outputs(); ++i) parts.push_back(b.dY(i) ? b.dY(i) : b.Zeros(b.Y(i)->type));
  b.SetGrad(0, parts.size() == 1 ? parts[0] : b.Emit("Concat", parts, b.X(0)->type, {{"axis", axis}}));
  return Status::OK();
}

// Slice: SliceGrad scatters dY into zeros; axes and steps are always given explicitly.
Status BuildSliceGrad(B& b) {
  ASSIGN_OR_RETURN(std::vector<int64_t> starts, b.ConstInts(1));
  std::vector<Value*> in{b.dY(0), b.X(1), b.X(2)};
  if (b.X(3)) {
    in.push_back(b.X(3));
  } else {
    std::vector<int64_t> axes;
    for (size_t i = 0; i < starts.size(); ++i) axes.push_back(static_cast<int64_t>(i));
    in.push_back(b.Ints(axes));
  }
  in.push_back(b.X(4) ? b.X(4) : b.Ints(std::vector<int64_t>(starts.size(), 1)));
  b.SetGrad(0, b.EmitDsc(ops::kSliceGrad, in, b.X(0)->type));
  return Status::OK();
}

// Gather: scatter-add dY into zeros shaped like the data (only the data input is differentiable).
// An embedding lookup whose PyTorch module has a padding_idx (metadata kEmbeddingPaddingKey) gives
// that row no gradient, as torch.nn.Embedding does.
Status BuildGatherGrad(B& b) {
  int64_t axis = NormalizeAxis(b.node().GetInt("axis", 0), B::Rank(b.X(0)));
  Attrs attrs{{"axis", axis}};
  const auto& meta = b.graph().metadata;
  if (auto it = meta.find(kEmbeddingPaddingKey); it != meta.end() && axis == 0) {
    nlohmann::json pad = nlohmann::json::parse(it->second, nullptr, /*allow_exceptions=*/false);
    if (pad.is_object() && pad.contains(b.X(0)->name()) && pad[b.X(0)->name()].is_number_integer())
      attrs["padding_idx"] = pad[b.X(0)->name()].get<int64_t>();
  }
  b.SetGrad(0, b.EmitDsc(ops::kGatherGrad, {b.dY(0), b.X(1)}, b.X(0)->type, std::move(attrs)));
  return Status::OK();
}

// Tile: every tile of dY adds into dX: dY viewed as (r0, d0, r1, d1, ...) summed over the r axes.
Status BuildTileGrad(B& b) {
  ASSIGN_OR_RETURN(std::vector<int64_t> repeats, b.ConstInts(1));
  const std::vector<int64_t> dims = B::Dims(b.X(0));
  if (repeats.size() != dims.size()) return b.Unsupported("repeats of another length than the input's rank");
  std::vector<int64_t> split, axes;
  for (size_t i = 0; i < dims.size(); ++i) {
    split.push_back(repeats[i]);
    split.push_back(dims[i]);
    axes.push_back(static_cast<int64_t>(2 * i));
  }
  b.SetGrad(0, b.Reshape(b.ReduceSum(b.Reshape(b.dY(0), split), axes, /*keepdims=*/false), dims));
  return Status::OK();
}

// Pad (constant mode): the gradient is the un-padded window of dY (with cropping: Pad(dY, -pads)).
Status BuildPadGrad(B& b) {
  std::string mode = b.node().GetString("mode", "constant");
  if (mode != "constant") return b.Unsupported("Pad mode '" + mode + "' (only 'constant' is differentiable here)");
  ASSIGN_OR_RETURN(std::vector<int64_t> pads, b.ConstInts(1));
  std::vector<int64_t> xd = B::Dims(b.X(0));
  int64_t rank = static_cast<int64_t>(xd.size());
  std::vector<int64_t> axes;
  if (b.X(3)) {
    ASSIGN_OR_RETURN(axes, b.ConstInts(3));
    for (int64_t& a : axes) a = NormalizeAxis(a, rank);
  } else {
    for (int64_t i = 0; i < rank; ++i) axes.push_back(i);
  }
  if (pads.size() != 2 * axes.size()) return b.Unsupported("pads do not match the padded axes");
  if (std::any_of(pads.begin(), pads.end(), [](int64_t p) { return p < 0; })) {
    // Cropping (nn.ZeroPad2d with a negative side, RWKV's time shift): Pad with the pads negated
    // crops dY where X was padded and puts zeros where X was cropped away.
    std::vector<int64_t> negated;
    for (int64_t p : pads) negated.push_back(-p);
    std::vector<Value*> ins = {b.dY(0), b.Ints(negated)};
    if (b.X(3)) ins.insert(ins.end(), {nullptr, b.Ints(axes)});
    b.SetGrad(0, b.Emit("Pad", ins, b.X(0)->type));
    return Status::OK();
  }
  std::vector<int64_t> starts, ends;
  for (size_t i = 0; i < axes.size(); ++i) {
    const int64_t begin = pads[i];
    starts.push_back(begin);
    ends.push_back(begin + xd[static_cast<size_t>(axes[i])]);
  }
  b.SetGrad(0, b.Emit("Slice", {b.dY(0), b.Ints(starts), b.Ints(ends), b.Ints(axes)}, b.X(0)->type));
  return Status::OK();
}

}  // namespace

void RegisterShapeGradients(GradientRegistry& registry) {
  REGISTER_GRADIENT_BUILDER("Reshape", BuildReshapeLikeGrad);
  REGISTER_GRADIENT_BUILDER("Flatten", BuildReshapeLikeGrad);
  REGISTER_GRADIENT_BUILDER("Squeeze", BuildReshapeLikeGrad);
  REGISTER_GRADIENT_BUILDER("Unsqueeze", BuildReshapeLikeGrad);
  REGISTER_GRADIENT_BUILDER("Transpose", BuildTransposeGrad);
  REGISTER_GRADIENT_BUILDER("Expand", BuildExpandGrad);
  REGISTER_GRADIENT_BUILDER("Concat", BuildConcatGrad);
  REGISTER_GRADIENT_BUILDER("Split", BuildSplitGrad);
  REGISTER_GRADIENT_BUILDER("Slice", BuildSliceGrad);
  REGISTER_GRADIENT_BUILDER("Gather", BuildGatherGrad);
  REGISTER_GRADIENT_BUILDER("Tile", BuildTileGrad);
  REGISTER_GRADIENT_BUILDER("Pad", BuildPadGrad);
}

}  // namespace dsc::autodiff
