// Element types of IR tensors and their mapping to ONNX's TensorProto data types.
#pragma once

#include <cstdint>
#include <string>

#include "ir/status.h"

namespace dsc {

enum class DType : uint8_t {
  kUndefined = 0,
  kFloat32,
  kFloat16,
  kBFloat16,
  kFloat64,
  kInt64,
  kInt32,
  kInt16,
  kInt8,
  kUInt8,
  kBool,
};

// Bytes per element (bool is stored as one byte, as in ONNX raw_data).
size_t DTypeSize(DType t);
bool IsFloat(DType t);
// float16 or bfloat16: the mixed-precision half types.
inline bool IsHalf(DType t) { return t == DType::kFloat16 || t == DType::kBFloat16; }
bool IsInteger(DType t);
// The ONNX text-syntax name: float, float16, bfloat16, double, int64, ..., bool.
const char* DTypeName(DType t);
StatusOr<DType> DTypeFromName(const std::string& name);
// onnx::TensorProto_DataType values (kept as int so this header needs no protobuf).
int DTypeToOnnx(DType t);
StatusOr<DType> DTypeFromOnnx(int onnx_type);

// IEEE half and bfloat16 conversions (round to nearest even).
uint16_t FloatToHalf(float f);
float HalfToFloat(uint16_t h);
uint16_t FloatToBFloat16(float f);
float BFloat16ToFloat(uint16_t b);

}  // namespace dsc
