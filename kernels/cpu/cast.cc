// Cast (and CastLike) between float32/float16/bfloat16/float64/int64/int32/bool, every direction
// (the conversions are ew::CastLoad/CastStore in kernels/common/elementwise_math.h).
#include <cstring>

#include "kernels/common/elementwise_math.h"
#include "kernels/cpu/core_util.h"

namespace dsc::cpu {
namespace {

using ew::Bool;
using ew::CastLoad;
using ew::CastStore;
using BFloat16 = ew::BF16;
using Half = ew::F16;

// Calls fn(T{}) with the storage type of `t`; false for a dtype Cast does not handle.
template <typename Fn>
bool DispatchCastType(DType t, Fn&& fn) {
  switch (t) {
    case DType::kFloat32: fn(float{}); return true;
    case DType::kFloat16: fn(Half{}); return true;
    case DType::kBFloat16: fn(BFloat16{}); return true;
    case DType::kFloat64: fn(double{}); return true;
    case DType::kInt64: fn(int64_t{}); return true;
    case DType::kInt32: fn(int32_t{}); return true;
    case DType::kBool: fn(Bool{}); return true;
    default: return false;
  }
}

class CastKernel : public OpKernel {
 public:
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

 private:
  DType from_ = DType::kUndefined, to_ = DType::kUndefined;
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
