// Tensor: a typed, shaped host buffer (initializers, constants, folded values) and static shapes.
#pragma once

#include <cstdint>
#include <cstring>
#include <memory>
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

class Tensor {
 public:
  Tensor() = default;
  // Zero-filled tensor.
  Tensor(DType dtype, std::vector<int64_t> dims);

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
  size_t nbytes() const { return data_ ? data_->size() : 0; }

  uint8_t* raw() { return data_->data(); }
  const uint8_t* raw() const { return data_ ? data_->data() : nullptr; }
  template <typename T> T* data() { return reinterpret_cast<T*>(raw()); }
  template <typename T> const T* data() const { return reinterpret_cast<const T*>(raw()); }

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
  std::shared_ptr<std::vector<uint8_t>> data_;  // shared: copies of a graph share weights
};

}  // namespace dsc
