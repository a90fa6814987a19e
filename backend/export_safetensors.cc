// Trained weights as safetensors: order the tensors for alignment, hand them to SafetensorsWriter.
#include "backend/export_safetensors.h"

#include <algorithm>
#include <vector>

#include "runtime/safetensors.h"

namespace dsc {

Status ExportSafetensors(const std::map<std::string, Tensor>& weights, const std::string& out_path,
                         const std::map<std::string, std::string>& metadata) {
  std::vector<const std::pair<const std::string, Tensor>*> order;
  order.reserve(weights.size());
  for (const auto& w : weights) order.push_back(&w);
  // The data section starts 8-aligned (the header is padded); largest elements first keeps each
  // tensor's start a multiple of its element size.
  std::stable_sort(order.begin(), order.end(), [](const auto* a, const auto* b) {
    return DTypeSize(a->second.dtype()) > DTypeSize(b->second.dtype());
  });
  SafetensorsWriter writer;
  for (const auto* w : order) {
    Status added = writer.Add(w->first, w->second.dtype(), w->second.dims(), w->second.raw());
    if (!added.ok()) return added.WithContext(StrCat("cannot write ", out_path));
  }
  for (const auto& [key, value] : metadata) {
    if (key == "format" || key.rfind("dsc.crc32c.", 0) == 0)
      return InvalidArgument("cannot write ", out_path, ": metadata key '", key, "' is reserved");
    writer.SetMetadata(key, value);
  }
  writer.SetMetadata("format", "pt");
  return writer.Write(out_path);
}

}  // namespace dsc
