// What a Cast/CastLike kernel reads at Init and the storage types it dispatches on, shared by the
// CPU kernel (kernels/cpu/cast.cc) and its CUDA twin (kernels/cuda/cast.cu), which hold CastNode as
// a base; the conversions themselves are ew::CastLoad/CastStore (kernels/common/elementwise_math.h).
//   DispatchCastType(from_, [&](auto s) { using S = decltype(s); ... });
#pragma once

#include <cstdint>

#include "kernels/common/elementwise_math.h"
#include "kernels/kernel.h"

namespace dsc::ew {

// Calls fn(T{}) with the storage type of `t`; false for a dtype Cast does not handle.
template <typename Fn>
bool DispatchCastType(DType t, Fn&& fn) {
  switch (t) {
    case DType::kFloat32: fn(float{}); return true;
    case DType::kFloat16: fn(F16{}); return true;
    case DType::kBFloat16: fn(BF16{}); return true;
    case DType::kFloat64: fn(double{}); return true;
    case DType::kInt64: fn(int64_t{}); return true;
    case DType::kInt32: fn(int32_t{}); return true;
    case DType::kBool: fn(Bool{}); return true;
    default: return false;
  }
}

// X's dtype and Y's; `to`, when given, must name Y's.
struct CastNode {
  Status Init(const Node& node) {
    from_ = node.input(0)->type.dtype;
    to_ = node.output(0)->type.dtype;
    if (node.HasAttr("to")) {
      StatusOr<DType> to = DTypeFromOnnx(static_cast<int>(node.GetInt("to", 0)));
      if (to.ok() && *to != to_)
        return InvalidArgument("attribute to=", DTypeName(*to), " but the output is ", DTypeName(to_));
    }
    if (!DispatchCastType(to_, [](auto) {}) || !DispatchCastType(from_, [](auto) {}))
      return Unimplemented("Cast from ", DTypeName(from_), " to ", DTypeName(to_));
    return Status::OK();
  }
  DType from_ = DType::kUndefined, to_ = DType::kUndefined;
};

}  // namespace dsc::ew
