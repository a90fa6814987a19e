// PyTorch's parameter list as the model's metadata carries it: the key, its JSON form and its parser.
//
//   ASSIGN_OR_RETURN(TorchParameters p, ParseTorchParameters(g.metadata.at(kTorchParametersKey)));
#pragma once

#include <string>
#include <vector>

#include "ir/status.h"

namespace dsc {

// metadata_props key written by tools/export_for_training.py, and by the frontend when it derives
// the same list from torch.export's metadata (frontend/torch_parameters.h). JSON:
//   {"version": 1, "source" or "exporter": "...",
//    "trainable": [{"initializer": NAME, "torch_name": NAME}, ...],
//    "frozen":    [...same, parameters with requires_grad=False...],
//    "missing":   [PyTorch parameter names an exporter merged or folded away]   (optional)
//    "tied":      [PyTorch parameter names sharing another's tensor, so its initializer]   (optional)
//    "unread":    [PyTorch parameter names no node reads after an exporter's optimizer: tied, or
//                  merged away with the computations that read them]}   (optional)
inline constexpr const char* kTorchParametersKey = "dscompile.parameters";

// metadata_props key for nn.Embedding's padding_idx, which ONNX's Gather cannot express: JSON
// {"VALUE": K, ...}, the data input of Gather(axis=0) nodes -> the row PyTorch gives no gradient.
// Written by tools/export_for_training.py (per parameter initializer), or by the frontend from the
// dynamo exporter's per-node "pkg.torch.onnx.fx_node" text (aten.embedding.default(w, idx, K));
// autodiff gives those Gathers' GatherGrad the attribute padding_idx = K.
inline constexpr const char* kEmbeddingPaddingKey = "dscompile.embedding_padding";

// Warnings the import leaves for the compile to print (a JSON list of strings): what it could not
// restore from the exporter's metadata (frontend/torch_detach.h).
inline constexpr const char* kImportWarningsKey = "dscompile.import_warnings";

// The parsed entry; `present` is false when the model carries none.
struct TorchParameters {
  bool present = false;
  std::string source;
  std::vector<std::string> trainable;  // initializer names
  std::vector<std::string> frozen;     // initializer names
  std::vector<std::string> missing;    // PyTorch parameter names an exporter merged or folded away
  std::vector<std::string> tied;       // PyTorch parameter names sharing another's tensor
  std::vector<std::string> unread;     // read by no node after an optimizer: tied, or merged away
};

// Parses the entry's JSON text; errors name the key.
StatusOr<TorchParameters> ParseTorchParameters(const std::string& json_text);

}  // namespace dsc
