// Tensor: a typed, shaped host buffer (initializers, constants, folded values) and static shapes.
#pragma once

#include <cstdint>
#include <cstring>
#include <memory>
#include <optional>
#include <string>
#include <type_traits>
#include <vector>

#include "ir/dtype.h"
#include "ir/status.h"

namespace dsc {

// One dimension: a static size, or a symbol (e.g. "batch") until specialization binds it.
struct Dim {
  int64_t value = -1;  // >= 0 when static
  std::string symbol;  // non-empty for a named symbolic dim; both unset means unknown
  static Dim Static(int64_t v) { return Dim{v, ""}; }
  static Dim Symbol(std::string s) { return Dim{-1, std::move(s)}; }
  bool is_static() const { return value >= 0; }
  bool operator==(const Dim& o) const { return value == o.value && symbol == o.symbol; }
};
using Shape = std::vector<Dim>;

std::string ShapeToString(const Shape& s);  // "[batch,128]"
std::string DimsToString(const std::vector<int64_t>& dims);  // "[2,128]"
bool IsStatic(const Shape& s);
// The dims' values (-1 for a symbolic dim): the static shape of a value known to be static.
std::vector<int64_t> DimValues(const Shape& s);
// Product of static dims; error on a symbolic dim or on int64 overflow.
StatusOr<int64_t> NumElements(const std::vector<int64_t>& dims);
// NumElements times the element size: the bytes a tensor of `dims` needs.
StatusOr<int64_t> NumBytes(const std::vector<int64_t>& dims, DType dtype);

// Checked int64 arithmetic for sizes and offsets derived from file contents: false on overflow
// (then *out is unspecified).
inline bool CheckedMul(int64_t a, int64_t b, int64_t* out) { return !__builtin_mul_overflow(a, b, out); }
inline bool CheckedAdd(int64_t a, int64_t b, int64_t* out) { return !__builtin_add_overflow(a, b, out); }
inline bool CheckedSub(int64_t a, int64_t b, int64_t* out) { return !__builtin_sub_overflow(a, b, out); }

// Where a tensor's bytes lie in a file when they are that file's bytes, unchanged: an initializer
// of a memory-mapped ONNX model or of its external data. The step-0 checkpoint refers to such
// bytes instead of copying them (runtime/checkpoint_format.h, "sources").
struct FileRegion {
  std::string path;    // absolute
  int64_t offset = 0;  // of the tensor's first byte
};

class Tensor {
 public:
  Tensor() = default;
  // Zero-filled tensor.
  Tensor(DType dtype, std::vector<int64_t> dims);
  // A tensor over bytes it does not own (numel(dims) * DTypeSize(dtype) of them at `data`), kept
  // alive by `owner` (e.g. a file mapping): no copy. `source` says which file bytes they are.
  // Writing through raw() first copies them (the tensor then owns its bytes and has no source).
  static Tensor Borrowed(DType dtype, std::vector<int64_t> dims, std::shared_ptr<const void> owner,
                         const uint8_t* data, std::optional<FileRegion> source = std::nullopt);

  template <typename T>
  static Tensor FromVector(DType dtype, std::vector<int64_t> dims, const std::vector<T>& values) {
    Tensor t(dtype, std::move(dims));
    for (size_t i = 0; i < values.size() && i < static_cast<size_t>(t.numel()); ++i) {
      if constexpr (std::is_integral_v<T>) t.SetFromInt(static_cast<int64_t>(i), static_cast<int64_t>(values[i]));
      else t.SetFromDouble(static_cast<int64_t>(i), static_cast<double>(values[i]));
    }
    return t;
  }
  static Tensor Scalar(DType dtype, double v) { return FromVector<double>(dtype, {}, {v}); }

  DType dtype() const { return dtype_; }
  const std::vector<int64_t>& dims() const { return dims_; }
  int64_t rank() const { return static_cast<int64_t>(dims_.size()); }
  int64_t numel() const { return numel_; }
  size_t nbytes() const { return nbytes_; }
  // The file bytes this tensor is, when it is one unchanged (see FileRegion); else null.
  const FileRegion* source() const { return source_.get(); }

  uint8_t* raw();  // for writing: borrowed bytes are copied first
  const uint8_t* raw() const { return data_; }
  template <typename T> T* data() { return reinterpret_cast<T*>(raw()); }
  // Typed access needs natural alignment, which borrowed bytes may lack (protobuf's raw_data lies
  // anywhere in a file): such a tensor makes an aligned copy once, on the first typed read.
  template <typename T> const T* data() const { return reinterpret_cast<const T*>(AlignedRaw(alignof(T))); }

  // Element access through double, converting from/to the stored type (for folding and tests).
  double GetAsDouble(int64_t i) const;
  int64_t GetAsInt(int64_t i) const;
  void SetFromDouble(int64_t i, double v);
  void SetFromInt(int64_t i, int64_t v);  // exact for int64
  std::vector<int64_t> ToInt64Vector() const;

  Tensor Reshaped(std::vector<int64_t> dims) const;  // same data, new dims (numel must match)
  bool SameContents(const Tensor& o) const;

 private:
  DType dtype_ = DType::kUndefined;
  std::vector<int64_t> dims_;
  int64_t numel_ = 0;
  // Shared: copies of a tensor (and of a graph) share its bytes. owner_ keeps data_ alive: an
  // owned buffer, or a mapping when borrowed_.
  std::shared_ptr<const void> owner_;
  uint8_t* data_ = nullptr;
  size_t nbytes_ = 0;
  bool borrowed_ = false;
  std::shared_ptr<const FileRegion> source_;
  mutable std::shared_ptr<const std::vector<uint8_t>> aligned_copy_;  // see data<T>() const

  const uint8_t* AlignedRaw(size_t alignment) const;
};

}  // namespace dsc
