// DType tables and half/bfloat16 conversions.
#include "ir/dtype.h"

#include <cstring>

#include "onnx/onnx_pb.h"

namespace dsc {
namespace {

struct DTypeInfo {
  DType type;
  const char* name;
  size_t size;
  int onnx;
};

constexpr DTypeInfo kInfos[] = {
    {DType::kFloat32, "float", 4, onnx::TensorProto_DataType_FLOAT},
    {DType::kFloat16, "float16", 2, onnx::TensorProto_DataType_FLOAT16},
    {DType::kBFloat16, "bfloat16", 2, onnx::TensorProto_DataType_BFLOAT16},
    {DType::kFloat64, "double", 8, onnx::TensorProto_DataType_DOUBLE},
    {DType::kInt64, "int64", 8, onnx::TensorProto_DataType_INT64},
    {DType::kInt32, "int32", 4, onnx::TensorProto_DataType_INT32},
    {DType::kInt16, "int16", 2, onnx::TensorProto_DataType_INT16},
    {DType::kInt8, "int8", 1, onnx::TensorProto_DataType_INT8},
    {DType::kUInt8, "uint8", 1, onnx::TensorProto_DataType_UINT8},
    {DType::kBool, "bool", 1, onnx::TensorProto_DataType_BOOL},
};

const DTypeInfo* Find(DType t) {
  for (const auto& i : kInfos)
    if (i.type == t) return &i;
  return nullptr;
}

}  // namespace

size_t DTypeSize(DType t) {
  const DTypeInfo* i = Find(t);
  return i ? i->size : 0;
}

bool IsFloat(DType t) {
  return t == DType::kFloat32 || t == DType::kFloat16 || t == DType::kBFloat16 || t == DType::kFloat64;
}

bool IsInteger(DType t) {
  return t == DType::kInt64 || t == DType::kInt32 || t == DType::kInt16 || t == DType::kInt8 || t == DType::kUInt8;
}

const char* DTypeName(DType t) {
  const DTypeInfo* i = Find(t);
  return i ? i->name : "undefined";
}

StatusOr<DType> DTypeFromName(const std::string& name) {
  for (const auto& i : kInfos)
    if (name == i.name) return i.type;
  return InvalidArgument("unknown element type '", name, "'");
}

int DTypeToOnnx(DType t) {
  const DTypeInfo* i = Find(t);
  return i ? i->onnx : onnx::TensorProto_DataType_UNDEFINED;
}

StatusOr<DType> DTypeFromOnnx(int onnx_type) {
  for (const auto& i : kInfos)
    if (onnx_type == i.onnx) return i.type;
  const std::string name = onnx::TensorProto_DataType_IsValid(onnx_type)
                               ? onnx::TensorProto_DataType_Name(static_cast<onnx::TensorProto_DataType>(onnx_type))
                               : std::string("invalid");
  return Unimplemented("ONNX element type ", name, " (", onnx_type, ") is not supported");
}

uint16_t FloatToHalf(float f) {
  uint32_t x;
  std::memcpy(&x, &f, 4);
  uint32_t sign = (x >> 16) & 0x8000u;
  uint32_t exp = (x >> 23) & 0xffu;
  uint32_t mant = x & 0x7fffffu;
  if (exp == 0xff) return static_cast<uint16_t>(sign | 0x7c00u | (mant ? 0x200u : 0));
  int e = static_cast<int>(exp) - 127 + 15;
  if (e >= 31) return static_cast<uint16_t>(sign | 0x7c00u);
  if (e <= 0) {
    if (e < -10) return static_cast<uint16_t>(sign);
    mant |= 0x800000u;
    uint32_t shift = static_cast<uint32_t>(14 - e);
    uint32_t half = mant >> shift;
    uint32_t rem = mant & ((1u << shift) - 1);
    uint32_t mid = 1u << (shift - 1);
    if (rem > mid || (rem == mid && (half & 1))) ++half;
    return static_cast<uint16_t>(sign | half);
  }
  uint32_t half = sign | (static_cast<uint32_t>(e) << 10) | (mant >> 13);
  uint32_t rem = mant & 0x1fffu;
  if (rem > 0x1000u || (rem == 0x1000u && (half & 1))) ++half;  // may carry into the exponent: correct
  return static_cast<uint16_t>(half);
}

float HalfToFloat(uint16_t h) {
  uint32_t sign = (h & 0x8000u) << 16;
  uint32_t exp = (h >> 10) & 0x1fu;
  uint32_t mant = h & 0x3ffu;
  uint32_t x;
  if (exp == 0) {
    if (mant == 0) {
      x = sign;
    } else {
      int e = -1;
      do { mant <<= 1; ++e; } while (!(mant & 0x400u));
      x = sign | (static_cast<uint32_t>(127 - 15 - e) << 23) | ((mant & 0x3ffu) << 13);
    }
  } else if (exp == 31) {
    x = sign | 0x7f800000u | (mant << 13);
  } else {
    x = sign | ((exp + 127 - 15) << 23) | (mant << 13);
  }
  float f;
  std::memcpy(&f, &x, 4);
  return f;
}

uint16_t FloatToBFloat16(float f) {
  uint32_t x;
  std::memcpy(&x, &f, 4);
  if ((x & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((x >> 16) | 0x40u);  // quiet NaN
  uint32_t rounding = 0x7fffu + ((x >> 16) & 1u);
  return static_cast<uint16_t>((x + rounding) >> 16);
}

float BFloat16ToFloat(uint16_t b) {
  uint32_t x = static_cast<uint32_t>(b) << 16;
  float f;
  std::memcpy(&f, &x, 4);
  return f;
}

}  // namespace dsc
