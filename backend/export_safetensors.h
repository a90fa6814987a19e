// Trained weights out as one safetensors file that the `safetensors` package, PyTorch
// (safetensors.torch.load_file + load_state_dict) and Hugging Face load directly.
//
//   ASSIGN_OR_RETURN(auto weights, TrainedWeightsFromState(plan, full_state, dtypes));  // export_onnx.h
//   RETURN_IF_ERROR(ExportSafetensors(weights, "model.safetensors"));
//
// The tensors are stored under the names they have in `weights` (the ONNX initializer names, which
// are PyTorch's state_dict names for models exported from PyTorch), with their full shapes and
// dtypes. The header's __metadata__ holds "format": "pt" (Hugging Face refuses a file whose
// metadata lacks a known format), our block checksums ("dsc.crc32c.*", as every file
// SafetensorsWriter writes; other readers ignore them) and the caller's extra entries.
#pragma once

#include <map>
#include <string>

#include "ir/tensor.h"

namespace dsc {

// Writes `weights` to `out_path` atomically (temporary file, fsync, rename, fsync of the folder);
// nothing is left at `out_path` when anything fails. Tensors are laid out by decreasing element
// size, then by name, as the `safetensors` package does, so every tensor's data starts at a
// multiple of its element size (readers that map the file need that). `metadata` keys must not
// start with "dsc.crc32c." nor be "format".
Status ExportSafetensors(const std::map<std::string, Tensor>& weights, const std::string& out_path,
                         const std::map<std::string, std::string>& metadata = {});

}  // namespace dsc
