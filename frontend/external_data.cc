// External-data loading with path containment.
#include "frontend/external_data.h"

#include <filesystem>
#include <fstream>
#include <map>

namespace dsc {
namespace fs = std::filesystem;
namespace {

Status ResolveTensor(onnx::TensorProto* t, const fs::path& base) {
  const std::string what = StrCat("initializer '", t->name(), "'");
  std::map<std::string, std::string> kv;
  for (const auto& e : t->external_data()) kv[e.key()] = e.value();
  auto loc = kv.find("location");
  if (loc == kv.end() || loc->second.empty()) return InvalidArgument(what, ": external data without a location");
  fs::path rel(loc->second);
  if (rel.is_absolute()) return InvalidArgument(what, ": external data location '", loc->second, "' is absolute; it must be relative to the model's folder");
  std::error_code ec;
  fs::path root = fs::weakly_canonical(base, ec);
  fs::path file = fs::weakly_canonical(base / rel, ec);
  auto [r, f] = std::mismatch(root.begin(), root.end(), file.begin(), file.end());
  if (r != root.end() || file == root)
    return InvalidArgument(what, ": external data location '", loc->second, "' escapes the model's folder ", root.string());
  std::ifstream in(file, std::ios::binary);
  if (!in) return NotFound(what, ": cannot open external data file ", file.string());
  in.seekg(0, std::ios::end);
  const int64_t file_size = static_cast<int64_t>(in.tellg());
  int64_t offset = 0, length = -1;
  try {
    if (kv.count("offset")) offset = std::stoll(kv["offset"]);
    if (kv.count("length")) length = std::stoll(kv["length"]);
  } catch (const std::exception&) {
    return InvalidArgument(what, ": external data offset/length is not an integer");
  }
  if (length < 0) length = file_size - offset;
  if (offset < 0 || length < 0 || offset > file_size || length > file_size - offset)
    return DataLoss(what, ": external data range [", offset, ", ", offset + length, ") lies outside ", file.string(),
                    " (", file_size, " bytes)");
  std::string bytes(static_cast<size_t>(length), '\0');
  in.seekg(offset);
  in.read(bytes.data(), length);
  if (!in) return DataLoss(what, ": short read from ", file.string());
  t->clear_external_data();
  t->set_data_location(onnx::TensorProto_DataLocation_DEFAULT);
  t->set_raw_data(std::move(bytes));
  return Status::OK();
}

}  // namespace

Status LoadExternalData(onnx::ModelProto* model, const std::string& base_dir) {
  for (auto& t : *model->mutable_graph()->mutable_initializer()) {
    if (t.data_location() != onnx::TensorProto_DataLocation_EXTERNAL) continue;
    if (base_dir.empty()) return InvalidArgument("initializer '", t.name(), "' uses external data, but the model has no folder");
    RETURN_IF_ERROR(ResolveTensor(&t, base_dir));
  }
  return Status::OK();
}

}  // namespace dsc
