// Gradient builders of neural-network ops: softmaxes, normalizations, convolution, pooling, resizing, grid sampling, dropout.
#include "ir/dsc_ops.h"
#include "passes/autodiff/grad_builder.h"

namespace dsc::autodiff {
namespace {

using B = GradBuilder;

// Forward attributes the gradient op of our domain takes over unchanged.
Attrs CopyAttrs(const Node& n, const std::vector<std::string>& names) {
  Attrs out;
  for (const std::string& k : names)
    if (n.HasAttr(k)) out[k] = n.attrs().at(k);
  return out;
}

Status BuildSoftmaxGrad(B& b) {
  Attrs attrs{{"axis", b.node().GetInt("axis", -1)}};
  b.SetGrad(0, b.EmitDsc(ops::kSoftmaxGrad, {b.dY(0), b.Y(0)}, b.X(0)->type, attrs));
  return Status::OK();
}

Status BuildLogSoftmaxGrad(B& b) {
  Attrs attrs{{"axis", b.node().GetInt("axis", -1)}};
  b.SetGrad(0, b.EmitDsc(ops::kLogSoftmaxGrad, {b.dY(0), b.Y(0)}, b.X(0)->type, attrs));
  return Status::OK();
}

// The fused gradient ops return (dX, dScale, dBias); trailing ones nobody needs are left off
// (our IR has no unnamed outputs), leading ones are computed even when unused.
std::vector<Value*> EmitNormGrad(B& b, const char* op, Attrs attrs) {
  size_t outs = b.NeedsGrad(2) ? 3 : b.NeedsGrad(1) ? 2 : 1;
  std::vector<TensorType> types{b.X(0)->type, b.X(1)->type, b.X(2) ? b.X(2)->type : b.X(1)->type};
  types.resize(outs);
  std::vector<Value*> g = b.EmitMulti(op, kDscDomain, {b.dY(0), b.X(0), b.X(1)}, types, std::move(attrs));
  for (size_t i = 0; i < g.size(); ++i) b.SetGrad(i, g[i]);
  return g;
}

Status BuildLayerNormalizationGrad(B& b) {
  if (!b.dY(0)) return Status::OK();
  EmitNormGrad(b, ops::kLayerNormalizationGrad,
               {{"axis", b.node().GetInt("axis", -1)}, {"epsilon", b.node().GetFloat("epsilon", 1e-5f)}});
  return Status::OK();
}

// Inference mode normalises with the running statistics (constants here):
//   dX = dY * scale * inv, dScale = sum(dY * (X - mean) * inv), dBias = sum(dY), inv = 1/sqrt(var + eps)
Status BuildBatchNormInferenceGrad(B& b) {
  float eps = b.node().GetFloat("epsilon", 1e-5f);
  std::vector<int64_t> xd = B::Dims(b.X(0));
  int64_t c = xd.size() > 1 ? xd[1] : 1;
  std::vector<int64_t> bshape(xd.size(), 1), axes;
  if (xd.size() > 1) bshape[1] = c;
  for (size_t i = 0; i < xd.size(); ++i)
    if (i != 1) axes.push_back(static_cast<int64_t>(i));
  Value* dy = b.dY(0);
  Value* inv = b.Unary("Reciprocal", b.Unary("Sqrt", b.Add(b.X(4), b.Scalar(eps, b.X(4)->type.dtype))));
  if (b.NeedsGrad(0)) b.SetGrad(0, b.Mul(dy, b.Reshape(b.Mul(b.X(1), inv), bshape)));
  if (b.NeedsGrad(1)) {
    Value* xhat = b.Mul(b.Sub(b.X(0), b.Reshape(b.X(3), bshape)), b.Reshape(inv, bshape));
    b.SetGrad(1, b.ReduceSum(b.Mul(dy, xhat), axes, false));
  }
  if (b.NeedsGrad(2)) b.SetGrad(2, b.ReduceSum(dy, axes, false));
  return Status::OK();
}

// Training mode: the gradient flows through the batch statistics (BatchNormalizationGrad);
// outputs 1 and 2 (running statistics) carry none.
Status BuildBatchNormalizationGrad(B& b) {
  if (!b.dY(0)) return Status::OK();
  if (b.node().GetInt("training_mode", 0) == 0) return BuildBatchNormInferenceGrad(b);
  EmitNormGrad(b, ops::kBatchNormalizationGrad, {{"epsilon", b.node().GetFloat("epsilon", 1e-5f)}});
  return Status::OK();
}

Status BuildConvGrad(B& b) {
  size_t outs = b.NeedsGrad(2) ? 3 : b.NeedsGrad(1) ? 2 : 1;
  std::vector<TensorType> types{b.X(0)->type, b.X(1)->type, b.X(2) ? b.X(2)->type : b.X(1)->type};
  types.resize(outs);
  Attrs attrs = CopyAttrs(b.node(), {"auto_pad", "dilations", "group", "kernel_shape", "pads", "strides"});
  if (!attrs.count("kernel_shape")) {  // ONNX infers it from W; the gradient op gets it spelled out
    std::vector<int64_t> w = B::Dims(b.X(1));
    attrs["kernel_shape"] = std::vector<int64_t>(w.begin() + 2, w.end());
  }
  std::vector<Value*> g = b.EmitMulti(ops::kConvGrad, kDscDomain, {b.dY(0), b.X(0), b.X(1)}, types, attrs);
  for (size_t i = 0; i < g.size(); ++i) b.SetGrad(i, g[i]);
  return Status::OK();
}

// ConvTranspose's gradient is the adjoint conv's (see ir/dsc_ops.h); the op of our domain takes the
// forward's attributes and works out the same padding from them.
Status BuildConvTransposeGrad(B& b) {
  size_t outs = b.NeedsGrad(2) ? 3 : b.NeedsGrad(1) ? 2 : 1;
  std::vector<TensorType> types{b.X(0)->type, b.X(1)->type, b.X(2) ? b.X(2)->type : b.X(1)->type};
  types.resize(outs);
  Attrs attrs = CopyAttrs(b.node(), {"auto_pad", "dilations", "group", "kernel_shape", "output_padding",
                                     "output_shape", "pads", "strides"});
  std::vector<Value*> g =
      b.EmitMulti(ops::kConvTransposeGrad, kDscDomain, {b.dY(0), b.X(0), b.X(1)}, types, attrs);
  for (size_t i = 0; i < g.size(); ++i) b.SetGrad(i, g[i]);
  return Status::OK();
}

// (dY, X, Grid) -> dX[, dGrid]: one GridSampleGrad with the forward's attributes.
Status BuildGridSampleGrad(B& b) {
  if (!b.dY(0)) return Status::OK();
  std::vector<TensorType> types{b.X(0)->type, b.X(1)->type};
  types.resize(b.NeedsGrad(1) ? 2 : 1);
  std::vector<Value*> g = b.EmitMulti(ops::kGridSampleGrad, kDscDomain, {b.dY(0), b.X(0), b.X(1)}, types,
                                      CopyAttrs(b.node(), {"align_corners", "mode", "padding_mode"}));
  for (size_t i = 0; i < g.size(); ++i) b.SetGrad(i, g[i]);
  return Status::OK();
}

const std::vector<std::string> kPoolAttrs = {"auto_pad", "ceil_mode", "count_include_pad", "dilations",
                                             "kernel_shape", "pads", "storage_order", "strides"};

Status BuildMaxPoolGrad(B& b) {
  if (!b.dY(0)) return Status::OK();
  b.SetGrad(0, b.EmitDsc(ops::kMaxPoolGrad, {b.dY(0), b.X(0)}, b.X(0)->type, CopyAttrs(b.node(), kPoolAttrs)));
  return Status::OK();
}

Status BuildAveragePoolGrad(B& b) {
  b.SetGrad(0, b.EmitDsc(ops::kAveragePoolGrad, {b.dY(0)}, b.X(0)->type, CopyAttrs(b.node(), kPoolAttrs)));
  return Status::OK();
}

// Resize is linear in X: its adjoint ResizeGrad reads the forward's attributes and its constant roi,
// scales and sizes (a computed scale would make the weights unknown at compile time).
Status BuildResizeGrad(B& b) {
  if (!b.dY(0)) return Status::OK();
  const Node& n = b.node();
  std::vector<Value*> inputs{b.dY(0)};
  for (size_t i = 1; i < n.num_inputs() && i < 4; ++i) {
    Value* v = b.X(i);
    if (v && !v->is_initializer())
      return Unimplemented(n.Describe(), ": input ", i, " '", v->name(),
                           "' (roi, scales or sizes) must be a constant for its gradient (run fold-constants first)");
    inputs.push_back(v);
  }
  while (inputs.size() < 3) inputs.push_back(nullptr);
  Attrs attrs;
  for (const auto& [k, v] : n.attrs()) attrs[k] = v;
  b.SetGrad(0, b.EmitDsc(ops::kResizeGrad, inputs, b.X(0)->type, std::move(attrs)));
  return Status::OK();
}

// Y[n,c,1,1] = mean over spatial dims: dX = expand(dY) / (H*W*...).
Status BuildGlobalAveragePoolGrad(B& b) {
  std::vector<int64_t> xd = B::Dims(b.X(0));
  int64_t count = 1;
  for (size_t i = 2; i < xd.size(); ++i) count *= xd[i];
  b.SetGrad(0, b.Expand(b.MulScalar(b.dY(0), 1.0 / static_cast<double>(count)), xd));
  return Status::OK();
}

}  // namespace

// Whether a Dropout node drops anything: training_mode (input 2) is a constant true and the ratio
// (input 1, default 0.5) is non-zero. Shared with the pass, which adds the mask output it needs.
StatusOr<bool> DropoutIsTraining(const Node& n) {
  const Value* mode = n.input(2);
  if (!mode) return false;
  if (!mode->is_initializer())
    return Unimplemented(n.Describe(), ": training_mode must be a constant to differentiate Dropout");
  if (mode->initializer().GetAsInt(0) == 0) return false;
  const Value* ratio = n.input(1);
  if (!ratio) return true;
  if (!ratio->is_initializer()) return Unimplemented(n.Describe(), ": ratio must be a constant to differentiate Dropout");
  return ratio->initializer().GetAsDouble(0) != 0.0;
}

namespace {

Status BuildDropoutGrad(B& b) {
  if (!b.dY(0)) return Status::OK();
  ASSIGN_OR_RETURN(bool training, DropoutIsTraining(b.node()));
  if (!training) {
    b.SetGrad(0, b.dY(0));
    return Status::OK();
  }
  if (b.node().num_outputs() < 2) return Internal(b.node().Describe(), ": the mask output was not added before autodiff");
  Value* ratio = b.X(1) ? b.X(1) : b.Scalar(0.5, DType::kFloat32);
  b.SetGrad(0, b.EmitDsc(ops::kDropoutGrad, {b.dY(0), b.Y(1), ratio}, b.X(0)->type));
  return Status::OK();
}

}  // namespace

void RegisterNnGradients(GradientRegistry& registry) {
  REGISTER_GRADIENT_BUILDER("Softmax", BuildSoftmaxGrad);
  REGISTER_GRADIENT_BUILDER("LogSoftmax", BuildLogSoftmaxGrad);
  REGISTER_GRADIENT_BUILDER("LayerNormalization", BuildLayerNormalizationGrad);
  REGISTER_GRADIENT_BUILDER("BatchNormalization", BuildBatchNormalizationGrad);
  REGISTER_GRADIENT_BUILDER("Conv", BuildConvGrad);
  REGISTER_GRADIENT_BUILDER("ConvTranspose", BuildConvTransposeGrad);
  REGISTER_GRADIENT_BUILDER("MaxPool", BuildMaxPoolGrad);
  REGISTER_GRADIENT_BUILDER("AveragePool", BuildAveragePoolGrad);
  REGISTER_GRADIENT_BUILDER("GlobalAveragePool", BuildGlobalAveragePoolGrad);
  REGISTER_GRADIENT_BUILDER("Resize", BuildResizeGrad);
  REGISTER_GRADIENT_BUILDER("GridSample", BuildGridSampleGrad);
  REGISTER_GRADIENT_BUILDER("Dropout", BuildDropoutGrad);
}

}  // namespace dsc::autodiff
