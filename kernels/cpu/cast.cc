// Cast (and CastLike) between float32/float16/bfloat16/float64/int64/int32/bool, every direction
// (the conversions are ew::CastLoad/CastStore in kernels/common/elementwise_math.h).
#include <cstring>

#include "kernels/common/cast_node.h"
#include "kernels/common/elementwise_math.h"
#include "kernels/cpu/core_util.h"

namespace dsc::cpu {
namespace {

using ew::CastLoad;
using ew::CastStore;
using ew::DispatchCastType;

class CastKernel : public OpKernel, protected ew::CastNode {
 public:
  Status Init(const Node& node) { return CastNode::Init(node); }

  Status Compute(KernelContext& ctx) override {
    const TensorView& x = ctx.input(0);
    TensorView& y = ctx.output(0);
    if (from_ == to_) {
      if (x.ptr != y.ptr && x.nbytes() > 0) std::memcpy(y.ptr, x.ptr, x.nbytes());
      return Status::OK();
    }
    const int64_t n = x.numel();
    DispatchCastType(from_, [&](auto s) {
      DispatchCastType(to_, [&](auto d) {
        using S = decltype(s);
        using D = decltype(d);
        const S* in = x.data<S>();
        D* out = y.data<D>();
#pragma omp parallel for if (n >= kParallelMin) schedule(static)
        for (int64_t i = 0; i < n; ++i) out[i] = CastStore<D>(CastLoad(in[i]));
      });
    });
    return Status::OK();
  }
};

[[maybe_unused]] const bool kRegistered =
    RegisterForDTypes("Cast",
                      {DType::kFloat32, DType::kFloat16, DType::kBFloat16, DType::kFloat64, DType::kInt64,
                       DType::kInt32, DType::kBool},
                      MakeFactory<CastKernel>());
// CastLike takes its target dtype from input 1's type, which is also the output's; saturate and
// round_mode only concern float8 types, which Init refuses.
[[maybe_unused]] const bool kCastLikeRegistered =
    RegisterForDTypes("CastLike",
                      {DType::kFloat32, DType::kFloat16, DType::kBFloat16, DType::kFloat64, DType::kInt64,
                       DType::kInt32, DType::kBool},
                      MakeFactory<CastKernel>());

}  // namespace
}  // namespace dsc::cpu
