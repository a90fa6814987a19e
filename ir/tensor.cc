// Tensor storage and element conversions.
#include "ir/tensor.h"

#include <cmath>
#include <limits>

namespace dsc {

// Float-to-integer conversion without undefined behaviour: NaN becomes 0, out-of-range values saturate.
static int64_t SaturatingToInt64(double v) {
  if (std::isnan(v)) return 0;
  if (v >= 9.2233720368547758e18) return std::numeric_limits<int64_t>::max();
  if (v <= -9.2233720368547758e18) return std::numeric_limits<int64_t>::min();
  return static_cast<int64_t>(v);
}

std::string ShapeToString(const Shape& s) {
  std::string out = "[";
  for (size_t i = 0; i < s.size(); ++i) {
    if (i) out += ",";
    if (s[i].is_static()) out += std::to_string(s[i].value);
    else if (!s[i].symbol.empty()) out += s[i].symbol;
    else out += "?";
  }
  return out + "]";
}

std::string DimsToString(const std::vector<int64_t>& dims) {
  std::string out = "[";
  for (size_t i = 0; i < dims.size(); ++i) {
    if (i) out += ',';
    out += std::to_string(dims[i]);
  }
  return out + "]";
}

std::vector<int64_t> DimValues(const Shape& s) {
  std::vector<int64_t> dims;
  for (const Dim& d : s) dims.push_back(d.value);
  return dims;
}

bool IsStatic(const Shape& s) {
  for (const Dim& d : s)
    if (!d.is_static()) return false;
  return true;
}

StatusOr<int64_t> NumElements(const std::vector<int64_t>& dims) {
  int64_t n = 1;
  for (int64_t d : dims) {
    if (d < 0) return InvalidArgument("negative dimension ", d);
    if (d != 0 && n > std::numeric_limits<int64_t>::max() / d)
      return OutOfRange("element count overflows int64");
    n *= d;
  }
  return n;
}

StatusOr<int64_t> NumBytes(const std::vector<int64_t>& dims, DType dtype) {
  ASSIGN_OR_RETURN(int64_t n, NumElements(dims));
  int64_t bytes = 0;
  if (!CheckedMul(n, static_cast<int64_t>(DTypeSize(dtype)), &bytes))
    return OutOfRange(n, " elements of ", DTypeName(dtype), " overflow int64 bytes");
  return bytes;
}

Tensor::Tensor(DType dtype, std::vector<int64_t> dims) : dtype_(dtype), dims_(std::move(dims)) {
  numel_ = 1;
  for (int64_t d : dims_) numel_ *= d;
  nbytes_ = static_cast<size_t>(numel_) * DTypeSize(dtype_);
  auto buf = std::make_shared<std::vector<uint8_t>>(nbytes_, 0);
  data_ = buf->data();
  owner_ = std::move(buf);
}

Tensor Tensor::Borrowed(DType dtype, std::vector<int64_t> dims, std::shared_ptr<const void> owner,
                        const uint8_t* data, std::optional<FileRegion> source) {
  Tensor t;
  t.dtype_ = dtype;
  t.dims_ = std::move(dims);
  t.numel_ = 1;
  for (int64_t d : t.dims_) t.numel_ *= d;
  t.nbytes_ = static_cast<size_t>(t.numel_) * DTypeSize(dtype);
  t.owner_ = std::move(owner);
  t.data_ = const_cast<uint8_t*>(data);  // never written: raw() copies first
  t.borrowed_ = true;
  if (source) t.source_ = std::make_shared<const FileRegion>(std::move(*source));
  return t;
}

const uint8_t* Tensor::AlignedRaw(size_t alignment) const {
  if (reinterpret_cast<uintptr_t>(data_) % alignment == 0) return data_;
  if (!aligned_copy_) aligned_copy_ = std::make_shared<const std::vector<uint8_t>>(data_, data_ + nbytes_);
  return aligned_copy_->data();
}

uint8_t* Tensor::raw() {
  if (borrowed_) {  // (only borrowed tensors have a source)
    auto buf = std::make_shared<std::vector<uint8_t>>(data_, data_ + nbytes_);
    data_ = buf->data();
    owner_ = std::move(buf);
    borrowed_ = false;
    source_.reset();
    aligned_copy_.reset();
  }
  return data_;
}

double Tensor::GetAsDouble(int64_t i) const {
  const uint8_t* p = raw() + static_cast<size_t>(i) * DTypeSize(dtype_);
  switch (dtype_) {
    case DType::kFloat32: { float v; std::memcpy(&v, p, 4); return v; }
    case DType::kFloat64: { double v; std::memcpy(&v, p, 8); return v; }
    case DType::kFloat16: { uint16_t v; std::memcpy(&v, p, 2); return HalfToFloat(v); }
    case DType::kBFloat16: { uint16_t v; std::memcpy(&v, p, 2); return BFloat16ToFloat(v); }
    case DType::kInt64: { int64_t v; std::memcpy(&v, p, 8); return static_cast<double>(v); }
    case DType::kInt32: { int32_t v; std::memcpy(&v, p, 4); return v; }
    case DType::kInt16: { int16_t v; std::memcpy(&v, p, 2); return v; }
    case DType::kInt8: return static_cast<int8_t>(*p);
    case DType::kUInt8: return *p;
    case DType::kBool: return *p ? 1.0 : 0.0;
    case DType::kUndefined: break;
  }
  return 0;
}

int64_t Tensor::GetAsInt(int64_t i) const {
  if (dtype_ == DType::kInt64) {
    int64_t v;
    std::memcpy(&v, raw() + static_cast<size_t>(i) * 8, 8);
    return v;  // exact beyond 2^53, unlike the double path
  }
  return SaturatingToInt64(GetAsDouble(i));
}

void Tensor::SetFromDouble(int64_t i, double v) {
  if (IsInteger(dtype_) && dtype_ != DType::kInt64) v = static_cast<double>(SaturatingToInt64(v));
  uint8_t* p = raw() + static_cast<size_t>(i) * DTypeSize(dtype_);
  switch (dtype_) {
    case DType::kFloat32: { float f = static_cast<float>(v); std::memcpy(p, &f, 4); break; }
    case DType::kFloat64: std::memcpy(p, &v, 8); break;
    case DType::kFloat16: { uint16_t h = FloatToHalf(static_cast<float>(v)); std::memcpy(p, &h, 2); break; }
    case DType::kBFloat16: { uint16_t h = FloatToBFloat16(static_cast<float>(v)); std::memcpy(p, &h, 2); break; }
    case DType::kInt64: { int64_t x = SaturatingToInt64(v); std::memcpy(p, &x, 8); break; }
    case DType::kInt32: { int32_t x = static_cast<int32_t>(static_cast<int64_t>(v)); std::memcpy(p, &x, 4); break; }
    case DType::kInt16: { int16_t x = static_cast<int16_t>(static_cast<int64_t>(v)); std::memcpy(p, &x, 2); break; }
    case DType::kInt8: *p = static_cast<uint8_t>(static_cast<int64_t>(v)); break;
    case DType::kUInt8: *p = static_cast<uint8_t>(static_cast<int64_t>(v)); break;
    case DType::kBool: *p = v != 0 ? 1 : 0; break;
    case DType::kUndefined: break;
  }
}

void Tensor::SetFromInt(int64_t i, int64_t v) {
  if (dtype_ == DType::kInt64) {
    std::memcpy(raw() + static_cast<size_t>(i) * 8, &v, 8);
    return;
  }
  SetFromDouble(i, static_cast<double>(v));
}

std::vector<int64_t> Tensor::ToInt64Vector() const {
  std::vector<int64_t> out(static_cast<size_t>(numel_));
  for (int64_t i = 0; i < numel_; ++i) out[static_cast<size_t>(i)] = GetAsInt(i);
  return out;
}

Tensor Tensor::Reshaped(std::vector<int64_t> dims) const {
  Tensor t = *this;
  t.dims_ = std::move(dims);
  return t;
}

bool Tensor::SameContents(const Tensor& o) const {
  if (dtype_ != o.dtype_ || dims_ != o.dims_) return false;
  if (nbytes() != o.nbytes()) return false;
  return nbytes() == 0 || std::memcmp(raw(), o.raw(), nbytes()) == 0;
}

}  // namespace dsc
