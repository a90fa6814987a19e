// External data and cut-out raw_data as mapped files, with path containment.
#include "frontend/external_data.h"

#include <charconv>
#include <filesystem>
#include <fstream>
#include <limits>
#include <map>

#include "ir/mapped_file.h"
#include "ir/tensor.h"

namespace dsc {
namespace fs = std::filesystem;
namespace {

// Files mapped by this import, by absolute path: tensors of one file share one mapping.
using MappedFiles = std::map<std::string, std::shared_ptr<const MappedFile>>;

StatusOr<std::shared_ptr<const MappedFile>> MapOnce(const std::string& path, MappedFiles* files) {
  if (auto it = files->find(path); it != files->end()) return it->second;
  ASSIGN_OR_RETURN(std::shared_ptr<const MappedFile> f, MappedFile::Open(path));
  (*files)[path] = f;
  return f;
}

// The tensor over `length` bytes at `offset` of `file`, after checking they fit its type and shape.
StatusOr<Tensor> BorrowBytes(const onnx::TensorProto& t, const std::string& what, const std::shared_ptr<const MappedFile>& file,
                             int64_t offset, int64_t length, const char* field) {
  StatusOr<DType> dtype = DTypeFromOnnx(t.data_type());
  if (!dtype.ok()) return dtype.status().WithContext(what);
  std::vector<int64_t> dims(t.dims().begin(), t.dims().end());
  StatusOr<int64_t> need = NumBytes(dims, *dtype);
  if (!need.ok()) return need.status().WithContext(what);
  if (*need != length) return DataLoss(what, " ", field, " holds ", length, " bytes, its type and shape need ", *need);
  return Tensor::Borrowed(*dtype, std::move(dims), file, file->data() + offset, FileRegion{file->path(), offset});
}

// Marks `t` as data held outside the model for ONNX's checker, which skips locations that start
// with '#' (onnx.model_container's convention for data not in a file).
void MarkHeld(onnx::TensorProto* t) {
  t->clear_external_data();
  t->clear_raw_data();
  auto* e = t->add_external_data();
  e->set_key("location");
  e->set_value(kHeldLocation);
  t->set_data_location(onnx::TensorProto_DataLocation_EXTERNAL);
}

Status ResolveTensor(onnx::TensorProto* t, const fs::path& base, MappedFiles* files, HeldInitializers* held) {
  const std::string what = StrCat("initializer '", t->name(), "'");
  std::map<std::string, std::string> kv;
  for (const auto& e : t->external_data()) kv[e.key()] = e.value();
  auto loc = kv.find("location");
  if (loc == kv.end() || loc->second.empty()) return InvalidArgument(what, ": external data without a location");
  if (loc->second[0] == '#')
    return InvalidArgument(what, ": external data location '", loc->second, "' names data held in memory, not a file");
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
  ASSIGN_OR_RETURN(std::shared_ptr<const MappedFile> mapped, MapOnce(file.string(), files));
  if (mapped->size() != file_size)
    return DataLoss(what, ": external data file ", file.string(), " changed while it was read");
  ASSIGN_OR_RETURN(Tensor tensor, BorrowBytes(*t, what, mapped, offset, length, "external data"));
  (*held)[t->name()] = std::move(tensor);
  MarkHeld(t);
  return Status::OK();
}

}  // namespace

Status MapExternalData(onnx::ModelProto* model, const std::string& base_dir, HeldInitializers* held) {
  MappedFiles files;
  for (auto& t : *model->mutable_graph()->mutable_initializer()) {
    if (t.data_location() != onnx::TensorProto_DataLocation_EXTERNAL || held->count(t.name())) continue;
    if (base_dir.empty()) return InvalidArgument("initializer '", t.name(), "' uses external data, but the model has no folder");
    RETURN_IF_ERROR(ResolveTensor(&t, base_dir, &files, held));
  }
  return Status::OK();
}

Status HoldCutRawData(onnx::ModelProto* model, const std::vector<RawDataRange>& ranges,
                      const std::shared_ptr<const MappedFile>& file, HeldInitializers* held) {
  auto* inits = model->mutable_graph()->mutable_initializer();
  for (const RawDataRange& r : ranges) {
    if (r.initializer >= inits->size()) return Internal("cut raw_data of initializer #", r.initializer, " has no initializer");
    onnx::TensorProto* t = inits->Mutable(r.initializer);
    if (t->name().empty() || held->count(t->name())) continue;  // the converter names these errors
    const std::string what = StrCat("initializer '", t->name(), "'");
    if (t->data_location() == onnx::TensorProto_DataLocation_EXTERNAL)
      return InvalidArgument(what, " has both raw_data and external data");
    ASSIGN_OR_RETURN(Tensor tensor, BorrowBytes(*t, what, file, r.offset, r.length, "raw_data"));
    (*held)[t->name()] = std::move(tensor);
    MarkHeld(t);
  }
  return Status::OK();
}

Status InlineExternalData(onnx::ModelProto* model, const std::string& base_dir) {
  HeldInitializers held;
  RETURN_IF_ERROR(MapExternalData(model, base_dir, &held));
  InlineHeld(model, held);
  return Status::OK();
}

void InlineHeld(onnx::ModelProto* model, const HeldInitializers& held) {
  for (auto& t : *model->mutable_graph()->mutable_initializer()) {
    auto it = held.find(t.name());
    if (it == held.end()) continue;
    const Tensor& v = it->second;
    t.clear_external_data();
    t.set_data_location(onnx::TensorProto_DataLocation_DEFAULT);
    t.set_raw_data(std::string(reinterpret_cast<const char*>(v.raw()), v.nbytes()));
  }
}

StatusOr<Tensor> InitializerData(const onnx::TensorProto& t, const HeldInitializers& held) {
  if (auto it = held.find(t.name()); it != held.end()) return it->second;
  return TensorFromOnnx(t, StrCat("initializer '", t.name(), "'"));
}

void AddHeldInitializer(onnx::GraphProto* g, const std::string& name, Tensor data, HeldInitializers* held) {
  onnx::TensorProto* t = g->add_initializer();
  t->set_name(name);
  t->set_data_type(DTypeToOnnx(data.dtype()));
  for (int64_t d : data.dims()) t->add_dims(d);
  MarkHeld(t);
  (*held)[name] = std::move(data);
}

}  // namespace dsc
