// Operator support table.
#include "frontend/supported_ops.h"

#include "frontend/decompose_ops.h"

#include <algorithm>
#include <map>
#include <set>

#include "onnx/defs/schema.h"
#include "onnx/onnx_pb.h"

namespace dsc {
namespace {

// What PyTorch's exporter writes for MLPs, CNNs and GPT-style transformers, with training-mode
// semantics where the op has them (BatchNormalization, Dropout).
const std::set<std::string>& ComputeOps() {
  static const std::set<std::string> ops = {
      "Gemm", "MatMul", "Add", "Sub", "Mul", "Div", "Pow", "Sqrt", "Reciprocal", "Neg", "Exp", "Log", "Abs",
      "Erf", "Tanh", "Sigmoid", "Relu", "LeakyRelu", "Softmax", "LogSoftmax", "LayerNormalization",
      "BatchNormalization", "Conv", "MaxPool", "AveragePool", "GlobalAveragePool", "Flatten", "Reshape",
      "Transpose", "Squeeze", "Unsqueeze", "Concat", "Split", "Slice", "Gather", "Expand", "Where", "Cast",
      "Clip", "Max", "Min", "ReduceMean", "ReduceSum", "Identity", "Dropout", "SoftmaxCrossEntropyLoss",
      "NegativeLogLikelihoodLoss", "Pad", "Equal", "Less", "Greater", "Not", "And", "Or", "Constant",
      // Current exports and Hugging Face models: rotary tables, SDPA NaN masks, position ids, causal masks.
      "IsNaN", "IsInf", "Cos", "Sin", "Gelu", "CastLike", "CumSum", "Mish", "HardSwish", "HardSigmoid", "Softplus",
      "Elu", "Selu", "Softsign", "Trilu",
      // Opset 23 transformer ops.
      "RMSNormalization", "RotaryEmbedding", "Attention",
      // Indexing (torch.gather/scatter, advanced indexing, index_put) and torch.einsum.
      "GatherElements", "GatherND", "ScatterElements", "ScatterND", "Einsum",
      // DeBERTa: log-bucketed relative positions (no gradient flows through Sign), repeated
      // relative-position embeddings (Tile, trained through).
      "Sign", "Tile",
      // Stochastic depth (drop path): torch.rand / bernoulli_ draws, and the Floor that turns
      // keep_prob + u into a keep bit. Rounding ops compute when their input is data.
      "RandomUniformLike", "RandomNormalLike", "RandomUniform", "RandomNormal", "Bernoulli", "Floor", "Ceil",
      "Round",
      // Learned upsampling in decoders (UNet, GAN generators, VAEs, vocoders).
      "ConvTranspose",
      // Upsampling (F.interpolate: U-Nets, FPN and segmentation heads, BEiT's position bias).
      "Resize",
      // Selection: Mixture-of-Experts routers and torch.sort (TopK), CLIP's and sequence
      // classifiers' pooling positions (ArgMax), torch.amax/max(dim).values and adaptive max
      // pooling (ReduceMax/ReduceMin on data, with a gradient), torch.prod; all still folded on constants.
      "TopK", "ArgMax", "ArgMin", "ReduceMax", "ReduceMin", "ReduceProd",
      // nn.CELU; torch.atan2 (Atan, then Where arithmetic for the quadrant); integer Mod at run time
      // (token ids folded into a range, x % SEQ), floats and constants fold.
      "Celu", "Atan", "Mod",
      // nn.Hardshrink / Softshrink: where(|x| <= lambd, 0, x) on activations.
      "LessOrEqual", "GreaterOrEqual",
      // F.grid_sample (spatial transformer networks, deformable attention), 4-D.
      "GridSample"};
  return ops;
}

const std::set<std::string>& ShapeOps() {
  // NonZero: the legacy exporter's index lists (Longformer's sliding-window attention), which
  // NonZero(ConstantOfShape(shape)) computes from shapes alone.
  static const std::set<std::string> ops = {"Shape", "Size", "ConstantOfShape", "Range", "Xor", "NonZero"};
  return ops;
}

}  // namespace

int64_t MaxOpset() {
  return onnx::OpSchemaRegistry::DomainToVersionRange::Instance().Map().at(onnx::ONNX_DOMAIN).second;
}

int64_t MaxIrVersion() { return onnx::IR_VERSION; }

std::string ExportAdvice() {
  return StrCat("re-export with torch >= 2.9: torch.onnx.export(model, args, f, dynamo=True) at its default opset, "
                "or opset_version=18..", MaxOpset(),
                "; with the legacy exporter: torch.onnx.export(model, args, f, dynamo=False, opset_version=17 or 18)");
}

std::vector<std::pair<std::string, const char*>> SupportedOps() {
  std::vector<std::pair<std::string, const char*>> out;
  for (const std::string& op : ComputeOps()) out.emplace_back(op, "compute");
  for (const std::string& op : ShapeOps()) out.emplace_back(op, "folded");
  for (const std::string& op : DecomposedOps()) out.emplace_back(op, "decomposed");
  std::sort(out.begin(), out.end());
  return out;
}

bool IsShapeComputationOp(const std::string& op_type) { return ShapeOps().count(op_type) > 0; }

bool IsSupportedOp(const std::string& domain, const std::string& op_type) {
  if (domain == kDscDomain) return true;
  if (!domain.empty()) return false;
  return ComputeOps().count(op_type) > 0 || ShapeOps().count(op_type) > 0;
}

// Why an op that exporters write cannot be compiled, where there is one reason to give.
const char* UnsupportedReason(const std::string& op_type) {
  static const std::map<std::string, const char*> reasons = {
      {"Unique", "its output's shape depends on the data (torch.unique); plans have static shapes"},
      {"Compress", "its output's shape depends on the data (torch.masked_select); plans have static shapes"},
      {"NonMaxSuppression", "its output's shape depends on the data (torchvision.ops.nms); plans have static shapes"},
  };
  auto it = reasons.find(op_type);
  return it == reasons.end() ? nullptr : it->second;
}

Status CheckSupportedOps(const Graph& g) {
  std::string list;
  int count = 0;
  bool custom = false;
  for (const auto& n : g.nodes()) {
    if (IsSupportedOp(n->domain(), n->op_type())) continue;
    auto it = g.opsets.find(n->domain());
    int64_t opset = it == g.opsets.end() ? 0 : it->second;
    list += StrCat("\n  ", n->Describe(), ", opset ", opset);
    if (const char* why = n->domain().empty() ? UnsupportedReason(n->op_type()) : nullptr) list += StrCat(": ", why);
    custom |= !n->domain().empty();
    ++count;
  }
  if (count == 0) return Status::OK();
  return Unimplemented(count, count == 1 ? " node uses" : " nodes use", " unsupported operators:", list,
                       custom ? "\nOps of other domains (e.g. com.microsoft) come from a runtime's graph optimizer "
                                "(onnxruntime's transformers optimizer): compile the file torch.onnx.export wrote."
                              : "",
                       "\n`dscompile --list-ops` lists the supported operators; models exported by "
                       "torch.onnx.export(..., dynamo=True) or tools/export_for_training.py use them for GPT-2, Llama, "
                       "BERT, ViT and SDPA blocks.");
}

}  // namespace dsc
