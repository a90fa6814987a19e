// Gradient builders of the transformer ops of opset 23: RMSNormalization, RotaryEmbedding, Attention.
#include "ir/dsc_ops.h"
#include "passes/autodiff/grad_builder.h"

namespace dsc::autodiff {
namespace {

using B = GradBuilder;

// (dY, X, Scale) -> dX[, dScale]: dScale only when Scale trains (our IR has no unnamed outputs).
Status BuildRMSNormalizationGrad(B& b) {
  if (!b.dY(0)) return Status::OK();
  Attrs attrs{{"axis", b.node().GetInt("axis", -1)}, {"epsilon", b.node().GetFloat("epsilon", 1e-5f)}};
  std::vector<TensorType> types{b.X(0)->type};
  if (b.NeedsGrad(1)) types.push_back(b.X(1)->type);
  std::vector<Value*> g = b.EmitMulti(ops::kRMSNormalizationGrad, kDscDomain, {b.dY(0), b.X(0), b.X(1)}, types, attrs);
  for (size_t i = 0; i < g.size(); ++i) b.SetGrad(i, g[i]);
  return Status::OK();
}

// A rotation's transpose rotates by the opposite angle: dX = RotaryEmbedding(dY, cos, -sin, pos).
Status BuildRotaryEmbeddingGrad(B& b) {
  if (b.NeedsGrad(1) || b.NeedsGrad(2))
    return b.Unsupported(
        "a gradient would flow into cos_cache/sin_cache; rotary caches are constants in training (freeze what "
        "they are computed from, e.g. with --freeze)");
  if (!b.dY(0) || !b.NeedsGrad(0)) return Status::OK();
  Attrs attrs;
  for (const char* k : {"interleaved", "rotary_embedding_dim", "num_heads"})
    if (b.node().HasAttr(k)) attrs[k] = b.node().attrs().at(k);
  std::vector<Value*> in{b.dY(0), b.X(1), b.Neg(b.X(2))};
  if (b.X(3)) in.push_back(b.X(3));
  b.SetGrad(0, b.Emit("RotaryEmbedding", in, b.X(0)->type, attrs));
  return Status::OK();
}

// AttentionGrad recomputes the probabilities from the forward's inputs; past_key/past_value and
// the extra outputs (present_key, present_value, qk_matmul_output) are inference features.
Status BuildAttentionGrad(B& b) {
  const Node& n = b.node();
  for (size_t o = 1; o < n.num_outputs(); ++o)
    if (n.output(o) && (!n.output(o)->uses().empty() || n.output(o)->is_graph_output()))
      return b.Unsupported(StrCat("output ", o, " '", n.output(o)->name(),
                                  "' (present_key/present_value/qk_matmul_output) is read; training supports "
                                  "Attention's output Y only"));
  if (b.NeedsGrad(4) || b.NeedsGrad(5))
    return b.Unsupported("a gradient would flow into past_key/past_value, which training does not support");
  if (!b.dY(0)) return Status::OK();
  const bool mask_grad = b.NeedsGrad(3);
  if (mask_grad && b.X(3)->type.dtype != DType::kFloat32)
    return b.Unsupported("a gradient into a non-float32 attn_mask is not supported");
  Attrs attrs;
  for (const char* k : {"is_causal", "kv_num_heads", "q_num_heads", "scale", "softcap", "softmax_precision"})
    if (n.HasAttr(k)) attrs[k] = n.attrs().at(k);
  std::vector<Value*> in{b.dY(0)};
  for (size_t i = 0; i < 7; ++i) in.push_back(b.X(i));
  while (!in.back()) in.pop_back();
  std::vector<TensorType> types{b.X(0)->type, b.X(1)->type, b.X(2)->type};
  if (mask_grad) types.push_back(b.X(3)->type);
  std::vector<Value*> g = b.EmitMulti(ops::kAttentionGrad, kDscDomain, in, types, attrs);
  for (size_t i = 0; i < g.size(); ++i) b.SetGrad(i, g[i]);
  return Status::OK();
}

}  // namespace

void RegisterTransformerGradients(GradientRegistry& registry) {
  REGISTER_GRADIENT_BUILDER("RMSNormalization", BuildRMSNormalizationGrad);
  REGISTER_GRADIENT_BUILDER("RotaryEmbedding", BuildRotaryEmbeddingGrad);
  REGISTER_GRADIENT_BUILDER("Attention", BuildAttentionGrad);
  registry.Add(kDscDomain, ops::kAttention, BuildAttentionGrad);  // the recognize pass's Attention for older opsets
}

}  // namespace dsc::autodiff
