// Reductions ReduceSum/Mean/Prod/Max/Min over a set of axes (input 1 or the `axes` attribute).
//
// Init collapses X into groups of neighbouring kept/reduced dims. With one reduced group X is
// (outer, R, inner) and each output element reduces R values a stride `inner` apart; any other
// pattern (axes {0,2} of a 3-D tensor, ...) takes a generic path that walks the reduced dims.
#include <algorithm>
#include <cstring>

#include "kernels/common/reduce_math.h"
#include "kernels/common/reduce_plan.h"
#include "kernels/cpu/core_util.h"

namespace dsc::cpu {
namespace {

using reduce::MaxReduce;
using reduce::MeanReduce;
using reduce::MinReduce;
using reduce::ProdReduce;
using reduce::SumReduce;
using reduce::MakeReducePlan;
using reduce::ReducePlan;

template <typename T, template <typename> class R>
class ReduceKernel : public OpKernel {
  using Red = R<T>;
  using Acc = typename Red::Acc;

 public:
  Status Init(const Node& node) {
    ASSIGN_OR_RETURN(x_dims_, StaticDims(node.input(0)));
    noop_empty_ = node.GetInt("noop_with_empty_axes", 0) != 0;
    if (node.input(1)) {  // ReduceSum (opset 13) and every reduce at opset 18
      axes_.Init(node, 1);
      if (!axes_.constant()) return Status::OK();  // planned at Compute
      ASSIGN_OR_RETURN(plan_, MakeReducePlan(x_dims_, axes_.constant_values(), noop_empty_));
    } else {
      ASSIGN_OR_RETURN(plan_, MakeReducePlan(x_dims_, node.GetInts("axes"), noop_empty_));
    }
    ASSIGN_OR_RETURN(auto y_dims, StaticDims(node.output(0)));
    const int64_t y_numel = Product(y_dims), x_numel = Product(x_dims_);
    if (!plan_.copy && plan_.count != 0 && y_numel * plan_.count != x_numel)
      return InvalidArgument("output has ", y_numel, " elements; reducing leaves ", x_numel / plan_.count);
    return Status::OK();
  }

  Status Compute(KernelContext& ctx) override {
    if (axes_.present() && !axes_.constant()) {
      ASSIGN_OR_RETURN(plan_, MakeReducePlan(x_dims_, axes_.Get(ctx), noop_empty_));
    }
    const TensorView& x = ctx.input(0);
    TensorView& y = ctx.output(0);
    if (plan_.copy) {
      if (x.ptr != y.ptr) std::memcpy(y.ptr, x.ptr, x.nbytes());
    } else if (plan_.simple) {
      ReduceSimple(x.data<T>(), y.data<T>());
    } else {
      ReduceGeneric(x.data<T>(), y.data<T>(), y.numel());
    }
    return Status::OK();
  }

 private:
  // X:(outer, R, inner) -> Y:(outer, inner). Work is split into (outer, block of inner) tasks
  // so reducing the leading axis of a wide tensor still reads rows contiguously.
  void ReduceSimple(const T* x, T* y) const {
    constexpr int64_t kBlock = 64;
    const int64_t outer = plan_.outer, inner = plan_.inner, r_len = plan_.count;
    const int64_t blocks = (inner + kBlock - 1) / kBlock, tasks = outer * blocks;
#pragma omp parallel for if (outer * inner * r_len >= kParallelMin) schedule(static)
    for (int64_t t = 0; t < tasks; ++t) {
      const int64_t o = t / blocks, i0 = (t % blocks) * kBlock, len = std::min(kBlock, inner - i0);
      Acc acc[kBlock];
      std::fill(acc, acc + len, Red::Start());
      const T* base = x + o * r_len * inner + i0;
      for (int64_t r = 0; r < r_len; ++r) {
        const T* row = base + r * inner;
        for (int64_t i = 0; i < len; ++i) acc[i] = Red::Step(acc[i], row[i]);
      }
      for (int64_t i = 0; i < len; ++i) y[o * inner + i0 + i] = Red::Finish(acc[i], r_len);
    }
  }

  // Any set of axes: each output element unravels its kept index, then walks the reduced dims.
  void ReduceGeneric(const T* x, T* y, int64_t y_numel) const {
    const auto& p = plan_;
#pragma omp parallel for if (y_numel * p.count >= kParallelMin) schedule(static)
    for (int64_t o = 0; o < y_numel; ++o) {
      int64_t base = 0, rest = o;
      for (size_t d = p.kept_dims.size(); d-- > 0;) {
        base += (rest % p.kept_dims[d]) * p.kept_strides[d];
        rest /= p.kept_dims[d];
      }
      Acc acc = Red::Start();
      for (int64_t r = 0; r < p.count; ++r) {
        int64_t off = base, rr = r;
        for (size_t d = p.red_dims.size(); d-- > 0;) {
          off += (rr % p.red_dims[d]) * p.red_strides[d];
          rr /= p.red_dims[d];
        }
        acc = Red::Step(acc, x[off]);
      }
      y[o] = Red::Finish(acc, p.count);
    }
  }

  std::vector<int64_t> x_dims_;
  bool noop_empty_ = false;
  IntsInput axes_;
  ReducePlan plan_;
};

DSC_REGISTER_KERNEL("", "ReduceSum", kCpu, kFloat32, MakeFactory<ReduceKernel<float, SumReduce>>());
DSC_REGISTER_KERNEL("", "ReduceMean", kCpu, kFloat32, MakeFactory<ReduceKernel<float, MeanReduce>>());
DSC_REGISTER_KERNEL("", "ReduceProd", kCpu, kFloat32, MakeFactory<ReduceKernel<float, ProdReduce>>());
DSC_REGISTER_KERNEL("", "ReduceMax", kCpu, kFloat32, MakeFactory<ReduceKernel<float, MaxReduce>>());
DSC_REGISTER_KERNEL("", "ReduceMin", kCpu, kFloat32, MakeFactory<ReduceKernel<float, MinReduce>>());
DSC_REGISTER_KERNEL("", "ReduceSum", kCpu, kInt64, MakeFactory<ReduceKernel<int64_t, SumReduce>>());
DSC_REGISTER_KERNEL("", "ReduceProd", kCpu, kInt64, MakeFactory<ReduceKernel<int64_t, ProdReduce>>());
DSC_REGISTER_KERNEL("", "ReduceMax", kCpu, kInt64, MakeFactory<ReduceKernel<int64_t, MaxReduce>>());
DSC_REGISTER_KERNEL("", "ReduceMin", kCpu, kInt64, MakeFactory<ReduceKernel<int64_t, MinReduce>>());

}  // namespace
}  // namespace dsc::cpu
