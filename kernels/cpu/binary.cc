// Elementwise binary and variadic kernels with numpy broadcasting: arithmetic, integer Mod, Pow, Max/Min,
// comparisons (-> bool), And/Or/Xor, and Where(cond, X, Y).
#include <algorithm>
#include <cstdint>

#include "kernels/common/elementwise_math.h"
#include "kernels/cpu/broadcast.h"
#include "kernels/cpu/simd.h"

namespace dsc::cpu {
namespace {

// y = op(a, b) over a two-input plan. The innermost row is specialised on which side walks so
// the common cases ([B,T,C] + [C], x * scalar) vectorise, for isa.
template <typename TA, typename TB, typename R, typename Op>
void BinaryLoop(Isa isa, const BroadcastPlan& p, const TA* a, const TB* b, R* y, Op op) {
  if (p.same_shape) {
#pragma omp parallel for if (p.numel >= kParallelMin) schedule(static)
    for (int64_t c = 0; c < p.numel; c += kSimdChunk) {
      const int64_t end = std::min(p.numel, c + kSimdChunk);
      RunOnIsa(isa, [&] {
        for (int64_t i = c; i < end; ++i) y[i] = op(a[i], b[i]);
      });
    }
    return;
  }
  const bool a_walks = p.inner_stride(0) != 0, b_walks = p.inner_stride(1) != 0;
  // One row of n elements starting at output offset o, inputs at off.
  auto row = [&](int64_t o, const int64_t* off, int64_t n) {
    const TA* pa = a + off[0];
    const TB* pb = b + off[1];
    R* py = y + o;
    RunOnIsa(isa, [&] {
      if (a_walks && b_walks) {
        for (int64_t i = 0; i < n; ++i) py[i] = op(pa[i], pb[i]);
      } else if (a_walks) {
        const TB vb = *pb;
        for (int64_t i = 0; i < n; ++i) py[i] = op(pa[i], vb);
      } else if (b_walks) {
        const TA va = *pa;
        for (int64_t i = 0; i < n; ++i) py[i] = op(va, pb[i]);
      } else {
        std::fill(py, py + n, static_cast<R>(op(*pa, *pb)));
      }
    });
  };
  const int64_t n = p.inner();
  if (n == p.numel) {
    // A single row (x * scalar): ForEachRow would give it to one thread, so split it in chunks.
    constexpr int64_t kChunk = 1 << 14;
#pragma omp parallel for if (n >= kParallelMin) schedule(static)
    for (int64_t c = 0; c < n; c += kChunk) {
      const int64_t off[2] = {a_walks ? c : 0, b_walks ? c : 0};
      row(c, off, std::min(kChunk, n - c));
    }
    return;
  }
  ForEachRow(p, [&](int64_t o, const int64_t* off) { row(o, off, n); });
}

using ew::AddOp;
using ew::AndOp;
using ew::DivOp;
using ew::EqualOp;
using ew::GreaterOp;
using ew::GreaterOrEqualOp;
using ew::IntDivOp;
using ew::LessOp;
using ew::LessOrEqualOp;
using ew::MaxOp;
using ew::MinOp;
using ew::MulOp;
using ew::OrOp;
using ew::SubOp;
using ew::XorOp;

// Two inputs A, B broadcast to Y; R is Y's element type (uint8_t for bool results).
template <typename T, typename R, typename Op>
class BinaryKernel : public OpKernel {
 public:
  Status Init(const Node& node) {
    ASSIGN_OR_RETURN(auto a, StaticDims(node.input(0)));
    ASSIGN_OR_RETURN(auto b, StaticDims(node.input(1)));
    ASSIGN_OR_RETURN(auto y, StaticDims(node.output(0)));
    ASSIGN_OR_RETURN(plan_, MakeBroadcastPlan(y, {a, b}));
    ASSIGN_OR_RETURN(isa_, SelectedIsa());
    return Status::OK();
  }
  Status Compute(KernelContext& ctx) override {
    BinaryLoop(isa_, plan_, ctx.input(0).data<T>(), ctx.input(1).data<T>(), ctx.output(0).data<R>(), Op{});
    return Status::OK();
  }

 protected:
  BroadcastPlan plan_;
  Isa isa_ = Isa::kBaseline;
};

template <typename T, typename Op> using Arith = BinaryKernel<T, T, Op>;

// Integer Mod<fmod>: token ids folded into a range at run time (x % SEQ); constant Mods fold.
template <typename T>
class IntModKernel : public BinaryKernel<T, T, ew::IntModOp> {
 public:
  Status Init(const Node& node) {
    mod_.fmod = node.GetInt("fmod", 0) != 0;
    return BinaryKernel<T, T, ew::IntModOp>::Init(node);
  }
  Status Compute(KernelContext& ctx) override {
    BinaryLoop(this->isa_, this->plan_, ctx.input(0).data<T>(), ctx.input(1).data<T>(), ctx.output(0).data<T>(), mod_);
    return Status::OK();
  }

 private:
  ew::IntModOp mod_;
};
template <typename T, typename Op> using Compare = BinaryKernel<T, uint8_t, Op>;
template <typename Op> using Logical = BinaryKernel<uint8_t, uint8_t, Op>;

// Max/Min of 1..N inputs: Y = op(X0, X1), then Y = op(Y, Xk) in place for each further input.
template <typename T, typename Op>
class VariadicKernel : public OpKernel {
 public:
  Status Init(const Node& node) {
    if (node.num_inputs() == 0) return InvalidArgument("needs at least one input");
    ASSIGN_OR_RETURN(isa_, SelectedIsa());
    ASSIGN_OR_RETURN(auto y, StaticDims(node.output(0)));
    ASSIGN_OR_RETURN(auto x0, StaticDims(node.input(0)));
    if (node.num_inputs() == 1) {
      ASSIGN_OR_RETURN(first_, MakeBroadcastPlan(y, {x0}));
      return Status::OK();
    }
    ASSIGN_OR_RETURN(auto x1, StaticDims(node.input(1)));
    ASSIGN_OR_RETURN(first_, MakeBroadcastPlan(y, {x0, x1}));
    for (size_t k = 2; k < node.num_inputs(); ++k) {
      ASSIGN_OR_RETURN(auto xk, StaticDims(node.input(k)));
      ASSIGN_OR_RETURN(BroadcastPlan p, MakeBroadcastPlan(y, {y, xk}));
      rest_.push_back(std::move(p));
    }
    return Status::OK();
  }
  Status Compute(KernelContext& ctx) override {
    T* y = ctx.output(0).data<T>();
    if (ctx.inputs.size() == 1) {
      BroadcastCopy(first_, ctx.input(0).data<T>(), y);
      return Status::OK();
    }
    BinaryLoop(isa_, first_, ctx.input(0).data<T>(), ctx.input(1).data<T>(), y, Op{});
    for (size_t k = 0; k < rest_.size(); ++k) BinaryLoop(isa_, rest_[k], y, ctx.input(k + 2).data<T>(), y, Op{});
    return Status::OK();
  }

 private:
  BroadcastPlan first_;
  std::vector<BroadcastPlan> rest_;
  Isa isa_ = Isa::kBaseline;
};

// Pow: float base; the exponent may be float32, int64 or int32 (ONNX allows mixed types).
class PowKernel : public OpKernel {
 public:
  Status Init(const Node& node) {
    ASSIGN_OR_RETURN(auto a, StaticDims(node.input(0)));
    ASSIGN_OR_RETURN(auto b, StaticDims(node.input(1)));
    ASSIGN_OR_RETURN(auto y, StaticDims(node.output(0)));
    exponent_ = node.input(1)->type.dtype;
    if (exponent_ != DType::kFloat32 && exponent_ != DType::kInt64 && exponent_ != DType::kInt32)
      return Unimplemented("Pow exponent of type ", DTypeName(exponent_));
    ASSIGN_OR_RETURN(plan_, MakeBroadcastPlan(y, {a, b}));
    ASSIGN_OR_RETURN(isa_, SelectedIsa());
    return Status::OK();
  }
  Status Compute(KernelContext& ctx) override {
    const float* a = ctx.input(0).data<float>();
    float* y = ctx.output(0).data<float>();
    const ew::PowOp pow;
    switch (exponent_) {
      case DType::kInt64: BinaryLoop(isa_, plan_, a, ctx.input(1).data<int64_t>(), y, pow); break;
      case DType::kInt32: BinaryLoop(isa_, plan_, a, ctx.input(1).data<int32_t>(), y, pow); break;
      default: BinaryLoop(isa_, plan_, a, ctx.input(1).data<float>(), y, pow); break;
    }
    return Status::OK();
  }

 private:
  DType exponent_ = DType::kFloat32;
  BroadcastPlan plan_;
  Isa isa_ = Isa::kBaseline;
};

// Where(cond, X, Y): three-way broadcasting; X and Y of any one dtype (copied as words).
class WhereKernel : public OpKernel {
 public:
  Status Init(const Node& node) {
    ASSIGN_OR_RETURN(auto c, StaticDims(node.input(0)));
    ASSIGN_OR_RETURN(auto x, StaticDims(node.input(1)));
    ASSIGN_OR_RETURN(auto y, StaticDims(node.input(2)));
    ASSIGN_OR_RETURN(auto out, StaticDims(node.output(0)));
    if (node.input(1)->type.dtype != node.input(2)->type.dtype) return InvalidArgument("X and Y types differ");
    element_size_ = DTypeSize(node.input(1)->type.dtype);
    ASSIGN_OR_RETURN(plan_, MakeBroadcastPlan(out, {c, x, y}));
    ASSIGN_OR_RETURN(isa_, SelectedIsa());
    return Status::OK();
  }
  Status Compute(KernelContext& ctx) override {
    DispatchByElementSize(element_size_, [&](auto word) {
      using W = decltype(word);
      const uint8_t* cond = ctx.input(0).data<uint8_t>();
      const W* x = ctx.input(1).data<W>();
      const W* y = ctx.input(2).data<W>();
      W* out = ctx.output(0).data<W>();
      const int64_t n = plan_.inner(), sc = plan_.inner_stride(0), sx = plan_.inner_stride(1),
                    sy = plan_.inner_stride(2);
      ForEachRow(plan_, [&](int64_t o, const int64_t* off) {
        RunOnIsa(isa_, [&] {
          for (int64_t i = 0; i < n; ++i)
            out[o + i] = cond[off[0] + i * sc] ? x[off[1] + i * sx] : y[off[2] + i * sy];
        });
      });
    });
    return Status::OK();
  }

 private:
  size_t element_size_ = 4;
  BroadcastPlan plan_;
  Isa isa_ = Isa::kBaseline;
};

DSC_REGISTER_KERNEL("", "Add", kCpu, kFloat32, MakeFactory<Arith<float, AddOp>>());
DSC_REGISTER_KERNEL("", "Sub", kCpu, kFloat32, MakeFactory<Arith<float, SubOp>>());
DSC_REGISTER_KERNEL("", "Mul", kCpu, kFloat32, MakeFactory<Arith<float, MulOp>>());
DSC_REGISTER_KERNEL("", "Div", kCpu, kFloat32, MakeFactory<Arith<float, DivOp>>());
DSC_REGISTER_KERNEL("", "Pow", kCpu, kFloat32, MakeFactory<PowKernel>());
// Sum of 1..N inputs: autodiff adds up three or more gradient contributions with it.
DSC_REGISTER_KERNEL("", "Sum", kCpu, kFloat32, MakeFactory<VariadicKernel<float, AddOp>>());
DSC_REGISTER_KERNEL("", "Max", kCpu, kFloat32, MakeFactory<VariadicKernel<float, MaxOp>>());
DSC_REGISTER_KERNEL("", "Min", kCpu, kFloat32, MakeFactory<VariadicKernel<float, MinOp>>());
DSC_REGISTER_KERNEL("", "Equal", kCpu, kFloat32, MakeFactory<Compare<float, EqualOp>>());
DSC_REGISTER_KERNEL("", "Less", kCpu, kFloat32, MakeFactory<Compare<float, LessOp>>());
DSC_REGISTER_KERNEL("", "Greater", kCpu, kFloat32, MakeFactory<Compare<float, GreaterOp>>());
DSC_REGISTER_KERNEL("", "LessOrEqual", kCpu, kFloat32, MakeFactory<Compare<float, LessOrEqualOp>>());
DSC_REGISTER_KERNEL("", "GreaterOrEqual", kCpu, kFloat32, MakeFactory<Compare<float, GreaterOrEqualOp>>());

DSC_REGISTER_KERNEL("", "Add", kCpu, kInt64, MakeFactory<Arith<int64_t, AddOp>>());
DSC_REGISTER_KERNEL("", "Sub", kCpu, kInt64, MakeFactory<Arith<int64_t, SubOp>>());
DSC_REGISTER_KERNEL("", "Mul", kCpu, kInt64, MakeFactory<Arith<int64_t, MulOp>>());
DSC_REGISTER_KERNEL("", "Div", kCpu, kInt64, MakeFactory<Arith<int64_t, IntDivOp>>());
DSC_REGISTER_KERNEL("", "Mod", kCpu, kInt64, MakeFactory<IntModKernel<int64_t>>());
DSC_REGISTER_KERNEL("", "Max", kCpu, kInt64, MakeFactory<VariadicKernel<int64_t, MaxOp>>());
DSC_REGISTER_KERNEL("", "Min", kCpu, kInt64, MakeFactory<VariadicKernel<int64_t, MinOp>>());
DSC_REGISTER_KERNEL("", "Equal", kCpu, kInt64, MakeFactory<Compare<int64_t, EqualOp>>());
DSC_REGISTER_KERNEL("", "Less", kCpu, kInt64, MakeFactory<Compare<int64_t, LessOp>>());
DSC_REGISTER_KERNEL("", "Greater", kCpu, kInt64, MakeFactory<Compare<int64_t, GreaterOp>>());
DSC_REGISTER_KERNEL("", "LessOrEqual", kCpu, kInt64, MakeFactory<Compare<int64_t, LessOrEqualOp>>());
DSC_REGISTER_KERNEL("", "GreaterOrEqual", kCpu, kInt64, MakeFactory<Compare<int64_t, GreaterOrEqualOp>>());

// int32: what torch's `.int()` leaves in exported graphs (RoBERTa's position ids from the padding mask).
DSC_REGISTER_KERNEL("", "Add", kCpu, kInt32, MakeFactory<Arith<int32_t, AddOp>>());
DSC_REGISTER_KERNEL("", "Sub", kCpu, kInt32, MakeFactory<Arith<int32_t, SubOp>>());
DSC_REGISTER_KERNEL("", "Mul", kCpu, kInt32, MakeFactory<Arith<int32_t, MulOp>>());
DSC_REGISTER_KERNEL("", "Div", kCpu, kInt32, MakeFactory<Arith<int32_t, IntDivOp>>());
DSC_REGISTER_KERNEL("", "Mod", kCpu, kInt32, MakeFactory<IntModKernel<int32_t>>());
DSC_REGISTER_KERNEL("", "Max", kCpu, kInt32, MakeFactory<VariadicKernel<int32_t, MaxOp>>());
DSC_REGISTER_KERNEL("", "Min", kCpu, kInt32, MakeFactory<VariadicKernel<int32_t, MinOp>>());
DSC_REGISTER_KERNEL("", "Equal", kCpu, kInt32, MakeFactory<Compare<int32_t, EqualOp>>());
DSC_REGISTER_KERNEL("", "Less", kCpu, kInt32, MakeFactory<Compare<int32_t, LessOp>>());
DSC_REGISTER_KERNEL("", "Greater", kCpu, kInt32, MakeFactory<Compare<int32_t, GreaterOp>>());
DSC_REGISTER_KERNEL("", "LessOrEqual", kCpu, kInt32, MakeFactory<Compare<int32_t, LessOrEqualOp>>());
DSC_REGISTER_KERNEL("", "GreaterOrEqual", kCpu, kInt32, MakeFactory<Compare<int32_t, GreaterOrEqualOp>>());

DSC_REGISTER_KERNEL("", "Equal", kCpu, kBool, MakeFactory<Compare<uint8_t, EqualOp>>());
DSC_REGISTER_KERNEL("", "And", kCpu, kBool, MakeFactory<Logical<AndOp>>());
DSC_REGISTER_KERNEL("", "Or", kCpu, kBool, MakeFactory<Logical<OrOp>>());
DSC_REGISTER_KERNEL("", "Xor", kCpu, kBool, MakeFactory<Logical<XorOp>>());
DSC_REGISTER_KERNEL("", "Where", kCpu, kBool, MakeFactory<WhereKernel>());

}  // namespace
}  // namespace dsc::cpu
