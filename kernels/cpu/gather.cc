// Gather along any axis with int64 or int32 indices; negative indices count from the end.
#include <atomic>
#include <cstring>

#include "kernels/common/index_math.h"
#include "kernels/cpu/core_util.h"

namespace dsc::cpu {
namespace {

// X:(outer, N, inner), indices:(I...) -> Y:(outer, I..., inner): one memcpy of `inner` per index.
class GatherKernel : public OpKernel {
 public:
  Status Init(const Node& node) {
    describe_ = node.Describe();
    ASSIGN_OR_RETURN(auto x, StaticDims(node.input(0)));
    ASSIGN_OR_RETURN(auto idx, StaticDims(node.input(1)));
    ASSIGN_OR_RETURN(int64_t axis, NormalizeAxis(node.GetInt("axis", 0), static_cast<int64_t>(x.size())));
    index_type_ = node.input(1)->type.dtype;
    if (index_type_ != DType::kInt64 && index_type_ != DType::kInt32)
      return InvalidArgument("Gather indices must be int64 or int32, not ", DTypeName(index_type_));
    outer_ = Product(x, 0, static_cast<size_t>(axis));
    n_ = x[static_cast<size_t>(axis)];
    chunk_bytes_ = static_cast<size_t>(Product(x, static_cast<size_t>(axis) + 1)) * DTypeSize(node.input(0)->type.dtype);
    num_indices_ = Product(idx);
    return Status::OK();
  }

  Status Compute(KernelContext& ctx) override {
    const uint8_t* x = ctx.input(0).data<uint8_t>();
    const void* indices = ctx.input(1).ptr;
    uint8_t* y = ctx.output(0).data<uint8_t>();
    std::atomic<int64_t> bad{0};
    bool any_bad = false;
    const int64_t tasks = outer_ * num_indices_;
#pragma omp parallel for if (tasks * static_cast<int64_t>(chunk_bytes_) >= 4 * kParallelMin) schedule(static)
    for (int64_t t = 0; t < tasks; ++t) {
      const int64_t o = t / num_indices_, j = t % num_indices_;
      const int64_t v = index_type_ == DType::kInt64 ? static_cast<const int64_t*>(indices)[j]
                                                     : static_cast<const int32_t*>(indices)[j];
      int64_t i;
      if (!NormalizeIndex(v, n_, &i)) {
        bad.store(v);
#pragma omp atomic write
        any_bad = true;
        continue;
      }
      if (chunk_bytes_ > 0)
        std::memcpy(y + static_cast<size_t>(t) * chunk_bytes_,
                    x + static_cast<size_t>(o * n_ + i) * chunk_bytes_, chunk_bytes_);
    }
    if (any_bad) return OutOfRange(describe_, ": index ", bad.load(), " out of range for axis of size ", n_);
    return Status::OK();
  }

 private:
  std::string describe_;
  DType index_type_ = DType::kInt64;
  int64_t outer_ = 1, n_ = 0, num_indices_ = 0;
  size_t chunk_bytes_ = 0;
};

[[maybe_unused]] const bool kRegistered = RegisterForMovementDTypes("Gather", MakeFactory<GatherKernel>());

}  // namespace
}  // namespace dsc::cpu
