// What the dynamo exporter's per-node metadata ("pkg.torch.onnx.fx_node", the aten call each ONNX
// node came from) records that the ONNX ops cannot say: nn.Embedding's padding row and BatchNorm's
// training mode; read on the ModelProto before it becomes IR.
//
//   RETURN_IF_ERROR(RecordEmbeddingPadding(&model));
//   RETURN_IF_ERROR(RestoreBatchNormTraining(&model));
#pragma once

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "ir/status.h"
#include "ir/torch_parameters.h"
#include "onnx/onnx_pb.h"

namespace dsc {

// Keys of the dynamo exporter's metadata: the printed graph signature (graph metadata_props), an
// initializer's input kind and placeholder name (its value_info), and the values a tensor of
// onnxscript's optimizer was folded from (its value_info).
inline constexpr const char* kTorchSignatureKey = "pkg.torch.export.ExportedProgram.graph_signature";
inline constexpr const char* kTorchInputKindKey = "pkg.torch.export.graph_signature.InputSpec.kind";
inline constexpr const char* kTorchOriginalNameKey = "pkg.torch.onnx.original_node_name";
inline constexpr const char* kFoldedFromKey = "pkg.onnxscript.optimizer.folded_from";
// A node's aten call, as torch.export printed it.
inline constexpr const char* kFxNodeKey = "pkg.torch.onnx.fx_node";

// Calls f on every node of g and of its subgraphs (Loop bodies, If branches), depth first.
template <typename F>
void ForEachNode(const onnx::GraphProto& g, const F& f) {
  for (const auto& n : g.node()) {
    f(n);
    for (const auto& a : n.attribute()) {
      if (a.has_g()) ForEachNode(a.g(), f);
      for (const auto& sub : a.graphs()) ForEachNode(sub, f);
    }
  }
}

// The value of `key` in a metadata_props list, or null.
inline const std::string* FindProp(const google::protobuf::RepeatedPtrField<onnx::StringStringEntryProto>& props,
                                   const std::string& key) {
  for (const auto& p : props)
    if (p.key() == key) return &p.value();
  return nullptr;
}

// The call's arguments in a dynamo fx_node text "... call_function[target=torch.ops.T](args = (a, b,
// True, 0.1), kwargs = {})" when its target is T, else empty. Arguments are split at top-level commas
// (the ops read here take names and literals, no nested tuples).
std::vector<std::string> FxCallArgs(const std::string& fx, const std::string& target);

// The fx node's own name: "%linear : [num_users=1] = ..." -> "linear"; empty when the text has none.
std::string FxNodeName(const std::string& fx);

// The aten op an fx node name stands for: "exp_3" -> "exp", "layer_norm_1" -> "layer_norm".
std::string FxOpOfName(const std::string& fx_name);

// The "%name" operands of the call in an fx_node text, in order (nested lists included), without the '%'.
std::vector<std::string> FxCallOperands(const std::string& fx);

// One input of torch.export's printed graph signature: "p_fc_weight: PARAMETER target='fc.weight'".
struct SignatureInput {
  std::string kind;    // PARAMETER, BUFFER, CONSTANT_TENSOR
  std::string target;  // the module attribute, e.g. "fc.weight"
};
// Placeholder name -> its input, for the inputs with a target (user inputs have none).
std::map<std::string, SignatureInput> SignatureInputs(const std::string& signature);

// The names in a quoted Python list, "['pr.weight', 'val_6']" (an optimizer folded_from mark).
std::vector<std::string> QuotedNamesIn(const std::string& text);

// Appends `text` to the model's import warnings (kImportWarningsKey), which select-loss prints.
void AddImportWarning(onnx::ModelProto* model, const std::string& text);

// "-1" -> -1: an fx call's integer literal argument; nullopt for anything else.
std::optional<int64_t> FxIntLiteral(const std::string& s);

// A name as torch.export spells it in placeholders (p_/b_/c_<name>): every character other than a
// letter, digit or '_' (an initializer's dots) written '_'.
std::string FxUnderscored(std::string s);

// nn.Embedding's padding_idx (kEmbeddingPaddingKey): validates the export helper's entry (every name
// an initializer, every index a row of it) and adds, for each Gather(axis 0) whose dynamo metadata
// says aten.embedding.default(weight, indices, K) with K >= 0, its data input -> K.
Status RecordEmbeddingPadding(onnx::ModelProto* model);

// Training-mode BatchNorm from the dynamo exporter: onnxscript's torchlib writes every
// aten._native_batch_norm_legit_functional (and native_batch_norm) as BatchNormalization with
// training_mode=0, normalising with the running statistics even when the PyTorch module trains
// (it forces training=False). For each BatchNormalization (opset >= 14) whose dynamo metadata
// ("pkg.torch.onnx.fx_node") records the aten call with training=True, sets training_mode=1 and,
// when the node has only its Y output, adds the updated running mean and variance as outputs 1
// and 2 (the accumulate pass writes them back into the statistics' state). A node into which the
// exporter's optimizer folded such a BatchNorm (metadata "pkg.onnxscript.rewriter.rule_name"
// FuseBatchNormInto*) is an error: the batch statistics are gone from the file.
Status RestoreBatchNormTraining(onnx::ModelProto* model);

}  // namespace dsc
