// Helpers shared by the core CPU kernels: static shapes, axes, int-list inputs, threading threshold.
#pragma once

#include <cstdint>
#include <cstring>
#include <initializer_list>
#include <string>
#include <vector>

#include "kernels/kernel.h"

namespace dsc::cpu {

// The optional skip input of the optimizer updates (ir/dsc_ops.h): a bool scalar in host memory;
// true = change nothing this step.
inline bool Skipped(const KernelContext& ctx, size_t index) {
  return ctx.has_input(index) && ctx.input(index).numel() > 0 && ctx.input(index).data<uint8_t>()[0] != 0;
}

// Below this many elements a loop stays on one thread: OpenMP start-up costs more than it saves.
inline constexpr int64_t kParallelMin = 1 << 15;

// The static dims of a node input/output (shapes are specialized before kernels are created).
inline StatusOr<std::vector<int64_t>> StaticDims(const Value* v) {
  if (!v) return InvalidArgument("missing value");
  if (!v->type.shape || !IsStatic(*v->type.shape))
    return InvalidArgument("value '", v->name(), "' has no static shape");
  std::vector<int64_t> dims;
  for (const Dim& d : *v->type.shape) dims.push_back(d.value);
  return dims;
}

inline int64_t Product(const std::vector<int64_t>& dims, size_t begin = 0, size_t end = SIZE_MAX) {
  int64_t n = 1;
  for (size_t i = begin; i < dims.size() && i < end; ++i) n *= dims[i];
  return n;
}

// Row-major strides in elements.
inline std::vector<int64_t> ContiguousStrides(const std::vector<int64_t>& dims) {
  std::vector<int64_t> s(dims.size(), 1);
  for (size_t i = dims.size(); i-- > 1;) s[i - 1] = s[i] * dims[i];
  return s;
}

// ONNX axes may count from the back: -1 is the last axis.
inline StatusOr<int64_t> NormalizeAxis(int64_t axis, int64_t rank) {
  if (axis < -rank || axis >= rank) return InvalidArgument("axis ", axis, " out of range for rank ", rank);
  return axis < 0 ? axis + rank : axis;
}

// An int64 list given as a node input (Slice starts, Pad pads, ReduceSum axes, ...). Read once in
// Init when the input is an initializer; otherwise read from the host tensor at Compute time.
class IntsInput {
 public:
  void Init(const Node& node, size_t index) {
    index_ = index;
    const Value* v = node.input(index);
    present_ = v != nullptr;
    constant_ = present_ && v->is_initializer();
    if (constant_) values_ = v->initializer().ToInt64Vector();
  }
  bool present() const { return present_; }
  bool constant() const { return constant_; }
  const std::vector<int64_t>& constant_values() const { return values_; }

  const std::vector<int64_t>& Get(const KernelContext& ctx) {
    if (constant_ || !present_ || !ctx.has_input(index_)) return values_;
    const TensorView& t = ctx.input(index_);
    values_.resize(static_cast<size_t>(t.numel()));
    for (size_t i = 0; i < values_.size(); ++i)
      values_[i] = t.dtype == DType::kInt32 ? t.data<int32_t>()[i] : t.data<int64_t>()[i];
    return values_;
  }

 private:
  size_t index_ = 0;
  bool present_ = false, constant_ = false;
  std::vector<int64_t> values_;
};

// Calls fn(W{}) with an unsigned word type of the element size, so movement kernels copy any dtype.
template <typename Fn>
void DispatchByElementSize(size_t size, Fn&& fn) {
  switch (size) {
    case 1: fn(uint8_t{}); break;
    case 2: fn(uint16_t{}); break;
    case 4: fn(uint32_t{}); break;
    default: fn(uint64_t{}); break;
  }
}

// Dtypes that data-movement kernels (which only copy bytes) are registered for.
inline constexpr DType kMovementDTypes[] = {DType::kFloat32, DType::kFloat16, DType::kBFloat16, DType::kFloat64,
                                            DType::kInt64,   DType::kInt32,   DType::kInt8,     DType::kUInt8,
                                            DType::kBool};

// One registration per dtype, for kernels whose code is the same for all of them.
inline bool RegisterForDTypes(const char* op, std::initializer_list<DType> dtypes, const KernelFactory& f) {
  for (DType t : dtypes) KernelRegistry::Global().Register(KernelKey{"", op, DeviceKind::kCpu, t}, f);
  return true;
}
inline bool RegisterForMovementDTypes(const char* op, const KernelFactory& f, const char* domain = "") {
  for (DType t : kMovementDTypes) KernelRegistry::Global().Register(KernelKey{domain, op, DeviceKind::kCpu, t}, f);
  return true;
}

}  // namespace dsc::cpu
