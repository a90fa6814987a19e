// External-data loading with path containment.
#include "frontend/external_data.h"

#include <charconv>
#include <filesystem>
#include <fstream>
#include <limits>
#include <map>

#include "ir/tensor.h"

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
  // Only regular files: a directory reads as garbage and a FIFO blocks the import forever.
  const fs::file_status st = fs::status(file, ec);
  if (ec || !fs::exists(st)) return NotFound(what, ": cannot open external data file ", file.string());
  if (!fs::is_regular_file(st))
    return InvalidArgument(what, ": external data location '", loc->second, "' is not a regular file");
  const uintmax_t raw_size = fs::file_size(file, ec);
  if (ec || raw_size > static_cast<uintmax_t>(std::numeric_limits<int64_t>::max()))
    return DataLoss(what, ": cannot read the size of external data file ", file.string());
  const int64_t file_size = static_cast<int64_t>(raw_size);
  auto parse = [&](const char* key, int64_t* out) -> Status {
    auto it = kv.find(key);
    if (it == kv.end()) return Status::OK();
    const std::string& text = it->second;
    auto [end, err] = std::from_chars(text.data(), text.data() + text.size(), *out);
    if (err != std::errc() || end != text.data() + text.size() || *out < 0)
      return InvalidArgument(what, ": external data ", key, " '", text, "' is not a non-negative int64");
    return Status::OK();
  };
  int64_t offset = 0, length = -1;
  RETURN_IF_ERROR(parse("offset", &offset));
  RETURN_IF_ERROR(parse("length", &length));
  if (offset > file_size)
    return DataLoss(what, ": external data offset ", offset, " lies beyond the end of ", file.string(), " (", file_size,
                    " bytes)");
  if (length < 0) length = file_size - offset;
  if (length > file_size - offset)  // offset <= file_size, so the subtraction cannot overflow
    return DataLoss(what, ": external data range of ", length, " bytes at offset ", offset, " lies outside ",
                    file.string(), " (", file_size, " bytes)");
  // The tensor's size is known before reading: a range that cannot hold it is refused unread.
  if (StatusOr<DType> dtype = DTypeFromOnnx(t->data_type()); dtype.ok()) {
    StatusOr<int64_t> need = NumBytes({t->dims().begin(), t->dims().end()}, *dtype);
    if (!need.ok()) return need.status().WithContext(what);
    if (*need != length)
      return DataLoss(what, ": external data holds ", length, " bytes, its type and shape need ", *need);
  }
  std::ifstream in(file, std::ios::binary);
  if (!in) return NotFound(what, ": cannot open external data file ", file.string());
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
