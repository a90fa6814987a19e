// Trilu<upper>(X, k) -> Y: X with the elements outside the band of its last two dims zeroed; kept are
// j - i >= k (upper = 1) or j - i <= k (upper = 0). Masks built at run time (HF's causal masks) and the
// Trilu gradient, which masks dY the same way.
#include <algorithm>
#include <cstring>

#include "kernels/common/trilu_math.h"
#include "kernels/cpu/core_util.h"

namespace dsc::cpu {
namespace {

class TriluKernel : public OpKernel {
 public:
  Status Init(const Node& node) {
    ASSIGN_OR_RETURN(std::vector<int64_t> dims, StaticDims(node.input(0)));
    if (dims.size() < 2) return InvalidArgument("Trilu input must have rank >= 2, has rank ", dims.size());
    rows_ = dims[dims.size() - 2];
    cols_ = dims.back();
    batch_ = Product(dims, 0, dims.size() - 2);
    upper_ = node.GetInt("upper", 1) != 0;
    elem_ = DTypeSize(node.input(0)->type.dtype);
    k_.Init(node, 1);
    if (k_.constant() && k_.constant_values().size() != 1)
      return InvalidArgument("Trilu k must hold one value, has ", k_.constant_values().size());
    return Status::OK();
  }

  Status Compute(KernelContext& ctx) override {
    int64_t k = 0;
    if (k_.present()) {
      const std::vector<int64_t>& v = k_.Get(ctx);
      if (v.size() != 1) return InvalidArgument("Trilu k must hold one value, has ", v.size());
      k = v[0];
    }
    const uint8_t* x = static_cast<const uint8_t*>(ctx.input(0).ptr);
    uint8_t* y = static_cast<uint8_t*>(ctx.output(0).ptr);
    const int64_t rows = rows_, cols = cols_;
    const size_t elem = elem_;
    const bool upper = upper_;
#pragma omp parallel for collapse(2) if (batch_ * rows * cols >= kParallelMin) schedule(static)
    for (int64_t b = 0; b < batch_; ++b)
      for (int64_t i = 0; i < rows; ++i) {
        int64_t lo, hi;  // row i keeps columns [lo, hi)
        TriluRowRange(upper, k, i, cols, &lo, &hi);
        const size_t row = static_cast<size_t>((b * rows + i) * cols) * elem;
        const size_t a = static_cast<size_t>(lo) * elem, e = static_cast<size_t>(hi) * elem;
        const size_t end = static_cast<size_t>(cols) * elem;
        std::memset(y + row, 0, a);
        if (e > a) std::memcpy(y + row + a, x + row + a, e - a);
        std::memset(y + row + std::max(a, e), 0, end - std::max(a, e));
      }
    return Status::OK();
  }

 private:
  int64_t rows_ = 0, cols_ = 0, batch_ = 0;
  bool upper_ = true;
  size_t elem_ = 0;
  IntsInput k_;
};

[[maybe_unused]] const bool kRegistered = RegisterForMovementDTypes("Trilu", MakeFactory<TriluKernel>());

}  // namespace
}  // namespace dsc::cpu
