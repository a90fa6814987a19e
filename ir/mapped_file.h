// Read-only memory mappings of whole files, shared by the tensors that borrow their bytes.
//
//   ASSIGN_OR_RETURN(std::shared_ptr<const MappedFile> f, MappedFile::Open("model.onnx"));
//   Tensor w = Tensor::Borrowed(DType::kFloat32, {4, 4}, f, f->data() + off, FileRegion{f->path(), off});
//
// The file must not change while mapped (a truncated file faults on access); the step-0
// checkpoint that refers to it checks its bytes when they are read (checkpoint_format.h).
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "ir/status.h"

namespace dsc {

class MappedFile {
 public:
  // Maps the whole regular file at `path`; errors name it and the errno's text.
  static StatusOr<std::shared_ptr<const MappedFile>> Open(const std::string& path);
  ~MappedFile();
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;

  const std::string& path() const { return path_; }  // absolute
  const uint8_t* data() const { return data_; }
  int64_t size() const { return size_; }

 private:
  MappedFile() = default;
  std::string path_;
  const uint8_t* data_ = nullptr;
  int64_t size_ = 0;
};

}  // namespace dsc
