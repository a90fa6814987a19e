// Elementwise binary and variadic CUDA kernels with numpy broadcasting, twins of
// kernels/cpu/binary.cc: arithmetic, integer Mod, Pow, Sum/Max/Min, comparisons (-> bool), And/Or/Xor, Where.
// Same-shape operands take the vectorized map; broadcasting ones a BroadcastIndex made in Init
// from the CPU's collapsed plan.
#include "kernels/common/elementwise_math.h"
#include "kernels/cuda/broadcast.cuh"
#include "kernels/cuda/elementwise.cuh"

namespace dsc::cuda {
namespace {

// y[i] = f(a[off[0]], b[off[1]]).
template <typename A, typename B, typename R, typename F>
struct BinaryAt {
  const A* a;
  const B* b;
  R* y;
  F f;
  template <typename I>
  __device__ __forceinline__ void operator()(int64_t i, const I* off) const {
    y[i] = f(a[off[0]], b[off[1]]);
  }
};

// A two-input broadcast: the plan, and the index when the shapes differ.
struct TwoInputs {
  bool same_shape = true;
  int64_t numel = 0;
  BroadcastIndex<2> index;

  Status Init(const Node& node) {
    ASSIGN_OR_RETURN(auto a, cpu::StaticDims(node.input(0)));
    ASSIGN_OR_RETURN(auto b, cpu::StaticDims(node.input(1)));
    ASSIGN_OR_RETURN(auto y, cpu::StaticDims(node.output(0)));
    ASSIGN_OR_RETURN(cpu::BroadcastPlan plan, cpu::MakeBroadcastPlan(y, {a, b}));
    same_shape = plan.same_shape;
    numel = plan.numel;
    if (!same_shape) {
      ASSIGN_OR_RETURN(index, MakeBroadcastIndex<2>(plan));
    }
    return Status::OK();
  }
  template <typename A, typename B, typename R, typename F>
  Status Launch(const KernelContext& ctx, const A* a, const B* b, R* y, F f) const {
    if (same_shape) return LaunchVecMap(ctx, numel, f, y, a, b);
    return LaunchBroadcast(ctx, index, BinaryAt<A, B, R, F>{a, b, y, f});
  }
};

// Y = Op(A, B): A and B of T; Y of T, or bool (R = uint8_t) for comparisons.
template <typename T, typename R, typename Op>
class BinaryCuda : public OpKernel {
 public:
  Status Init(const Node& node) {
    const DType t = node.input(0)->type.dtype;
    RETURN_IF_ERROR(ExpectDType(node, node.input(1), t, "B"));
    RETURN_IF_ERROR(ExpectDType(node, node.output(0), std::is_same_v<R, T> ? t : DType::kBool, "output"));
    return in_.Init(node);
  }
  Status Compute(KernelContext& ctx) override {
    return in_.Launch(ctx, ctx.input(0).data<T>(), ctx.input(1).data<T>(), ctx.output(0).data<R>(),
                      Map2<T, T, R, Op>{});
  }

 private:
  TwoInputs in_;
};

// Integer Mod<fmod> (ew::IntModOp).
template <typename T>
class IntModCuda : public OpKernel {
 public:
  Status Init(const Node& node) {
    RETURN_IF_ERROR(ExpectDType(node, node.input(1), node.input(0)->type.dtype, "B"));
    RETURN_IF_ERROR(ExpectDType(node, node.output(0), node.input(0)->type.dtype, "output"));
    mod_.fmod = node.GetInt("fmod", 0) != 0;
    return in_.Init(node);
  }
  Status Compute(KernelContext& ctx) override {
    return in_.Launch(ctx, ctx.input(0).data<T>(), ctx.input(1).data<T>(), ctx.output(0).data<T>(),
                      Map2<T, T, T, ew::IntModOp>{mod_});
  }

 private:
  TwoInputs in_;
  ew::IntModOp mod_;
};

template <typename Op> struct Arith { template <typename T> using K = BinaryCuda<T, T, Op>; };
template <typename Op> struct Compare { template <typename T> using K = BinaryCuda<T, uint8_t, Op>; };
template <typename Op> using Logical = BinaryCuda<uint8_t, uint8_t, Op>;

// Pow: a float base (T); the exponent float32, float16, bfloat16, int64 or int32 (ONNX allows mixed types).
template <typename T>
class PowCuda : public OpKernel {
 public:
  Status Init(const Node& node) {
    exponent_ = node.input(1)->type.dtype;
    if (exponent_ != DType::kFloat32 && exponent_ != DType::kFloat16 && exponent_ != DType::kBFloat16 &&
        exponent_ != DType::kInt64 && exponent_ != DType::kInt32)
      return Unimplemented("Pow exponent of type ", DTypeName(exponent_));
    RETURN_IF_ERROR(ExpectDType(node, node.output(0), node.input(0)->type.dtype, "output"));
    return in_.Init(node);
  }
  Status Compute(KernelContext& ctx) override {
    const T* a = ctx.input(0).data<T>();
    T* y = ctx.output(0).data<T>();
    const void* b = ctx.input(1).ptr;
    switch (exponent_) {
      case DType::kInt64: return Run(ctx, a, static_cast<const int64_t*>(b), y);
      case DType::kInt32: return Run(ctx, a, static_cast<const int32_t*>(b), y);
      case DType::kFloat16: return Run(ctx, a, static_cast<const half*>(b), y);
      case DType::kBFloat16: return Run(ctx, a, static_cast<const bf16*>(b), y);
      default: return Run(ctx, a, static_cast<const float*>(b), y);
    }
  }

 private:
  template <typename E>
  Status Run(const KernelContext& ctx, const T* a, const E* b, T* y) const {
    return in_.Launch(ctx, a, b, y, Map2<T, E, T, ew::PowOp>{});
  }
  DType exponent_ = DType::kFloat32;
  TwoInputs in_;
};

// Sum/Max/Min of 1..N inputs: Y = op(...op(op(X0, X1), X2)..., Xk), accumulated in the compute type
// (float for half tensors, rounded once) for up to kPerPass inputs; more inputs take further passes
// that start from Y (so half results round once per pass).
constexpr int kPerPass = static_cast<int>(cpu::kMaxBroadcastInputs);

template <typename T, typename Op>
struct VariadicFn {
  const T* x[kPerPass];
  int n;
  T* y;
  Op op;
  template <typename I>
  __device__ __forceinline__ void operator()(int64_t i, const I* off) const {
    Num<T> acc = LoadNum(x[0][off[0]]);
    for (int k = 1; k < n; ++k) acc = op(acc, LoadNum(x[k][off[k]]));
    y[i] = StoreNum<T>(acc);
  }
  __device__ __forceinline__ void operator()(int64_t i) const {
    Num<T> acc = LoadNum(x[0][i]);
    for (int k = 1; k < n; ++k) acc = op(acc, LoadNum(x[k][i]));
    y[i] = StoreNum<T>(acc);
  }
};

template <typename Op>
struct Variadic {
  template <typename T>
  class K : public OpKernel {
   public:
    Status Init(const Node& node) {
      if (node.num_inputs() == 0) return InvalidArgument("needs at least one input");
      const DType t = node.input(0)->type.dtype;
      RETURN_IF_ERROR(ExpectDType(node, node.output(0), t, "output"));
      ASSIGN_OR_RETURN(auto y, cpu::StaticDims(node.output(0)));
      numel_ = cpu::Product(y);
      // Pass 0 reads inputs [0, kPerPass); each later pass reads Y and the next kPerPass - 1.
      size_t next = 0;
      while (next < node.num_inputs()) {
        Pass p;
        std::vector<std::vector<int64_t>> shapes;
        if (next > 0) shapes.push_back(y);
        p.first_input = next;
        while (next < node.num_inputs() && shapes.size() < static_cast<size_t>(kPerPass)) {
          RETURN_IF_ERROR(ExpectDType(node, node.input(next), t, "input"));
          ASSIGN_OR_RETURN(auto x, cpu::StaticDims(node.input(next)));
          shapes.push_back(std::move(x));
          ++next;
        }
        p.reads_y = p.first_input > 0;
        p.count = static_cast<int>(shapes.size());
        // Unused slots: rank-0 scalars, which broadcast to any output (a scalar Sum included).
        while (shapes.size() < static_cast<size_t>(kPerPass)) shapes.push_back(std::vector<int64_t>{});
        ASSIGN_OR_RETURN(cpu::BroadcastPlan plan, cpu::MakeBroadcastPlan(y, shapes));
        // The plan's same_shape counts the unused slots too; only the used ones matter.
        p.same_shape = true;
        for (int k = 0; k < p.count; ++k) p.same_shape = p.same_shape && cpu::Product(shapes[k]) == numel_;
        if (!p.same_shape) {
          ASSIGN_OR_RETURN(p.index, MakeBroadcastIndex<kPerPass>(plan));
        }
        passes_.push_back(p);
      }
      return Status::OK();
    }
    Status Compute(KernelContext& ctx) override {
      T* y = ctx.output(0).data<T>();
      for (const Pass& p : passes_) {
        VariadicFn<T, Op> f{};
        f.n = p.count;
        f.y = y;
        int k = 0;
        if (p.reads_y) f.x[k++] = y;
        for (size_t i = p.first_input; k < p.count; ++i) f.x[k++] = ctx.input(i).data<T>();
        for (; k < kPerPass; ++k) f.x[k] = f.x[0];
        if (p.same_shape) RETURN_IF_ERROR(LaunchMap(ctx, numel_, f));
        else RETURN_IF_ERROR(LaunchBroadcast(ctx, p.index, f));
      }
      return Status::OK();
    }

   private:
    struct Pass {
      size_t first_input = 0;
      bool reads_y = false;
      int count = 0;
      bool same_shape = true;
      BroadcastIndex<kPerPass> index;
    };
    int64_t numel_ = 0;
    std::vector<Pass> passes_;
  };
};

// Where(cond, X, Y): three-way broadcasting; X and Y of any one dtype, copied as words W.
template <typename W>
struct WhereFn {
  __device__ __forceinline__ W operator()(uint8_t c, W x, W y) const { return c ? x : y; }
};
template <typename W>
struct WhereAt {
  const uint8_t* c;
  const W* x;
  const W* y;
  W* out;
  template <typename I>
  __device__ __forceinline__ void operator()(int64_t i, const I* off) const {
    out[i] = c[off[0]] ? x[off[1]] : y[off[2]];
  }
};

class WhereCuda : public OpKernel {
 public:
  Status Init(const Node& node) {
    ASSIGN_OR_RETURN(auto c, cpu::StaticDims(node.input(0)));
    ASSIGN_OR_RETURN(auto x, cpu::StaticDims(node.input(1)));
    ASSIGN_OR_RETURN(auto y, cpu::StaticDims(node.input(2)));
    ASSIGN_OR_RETURN(auto out, cpu::StaticDims(node.output(0)));
    const DType t = node.input(1)->type.dtype;
    if (node.input(2)->type.dtype != t) return InvalidArgument("X and Y types differ");
    RETURN_IF_ERROR(ExpectDType(node, node.output(0), t, "output"));
    element_size_ = DTypeSize(t);
    ASSIGN_OR_RETURN(cpu::BroadcastPlan plan, cpu::MakeBroadcastPlan(out, {c, x, y}));
    same_shape_ = plan.same_shape;
    numel_ = plan.numel;
    if (!same_shape_) {
      ASSIGN_OR_RETURN(index_, MakeBroadcastIndex<3>(plan));
    }
    return Status::OK();
  }
  Status Compute(KernelContext& ctx) override {
    Status status;
    cpu::DispatchByElementSize(element_size_, [&](auto word) {
      using W = decltype(word);
      const uint8_t* c = ctx.input(0).data<uint8_t>();
      const W* x = ctx.input(1).data<W>();
      const W* y = ctx.input(2).data<W>();
      W* out = ctx.output(0).data<W>();
      status = same_shape_ ? LaunchVecMap(ctx, numel_, WhereFn<W>{}, out, c, x, y)
                           : LaunchBroadcast(ctx, index_, WhereAt<W>{c, x, y, out});
    });
    return status;
  }

 private:
  size_t element_size_ = 4;
  bool same_shape_ = true;
  int64_t numel_ = 0;
  BroadcastIndex<3> index_;
};

#define DSC_REGISTER_CUDA_INTS(op, K)                                                \
  DSC_REGISTER_KERNEL("", op, kCuda, kInt64, MakeFactory<K<int64_t>>());           \
  DSC_REGISTER_KERNEL("", op, kCuda, kInt32, MakeFactory<K<int32_t>>())
#define DSC_REGISTER_CUDA_NUMBERS(op, K) \
  DSC_REGISTER_CUDA_FLOATS("", op, K);   \
  DSC_REGISTER_CUDA_INTS(op, K)

DSC_REGISTER_CUDA_NUMBERS("Add", Arith<ew::AddOp>::K);
DSC_REGISTER_CUDA_NUMBERS("Sub", Arith<ew::SubOp>::K);
DSC_REGISTER_CUDA_NUMBERS("Mul", Arith<ew::MulOp>::K);
DSC_REGISTER_CUDA_FLOATS("", "Div", Arith<ew::DivOp>::K);
DSC_REGISTER_CUDA_INTS("Div", Arith<ew::IntDivOp>::K);
DSC_REGISTER_CUDA_INTS("Mod", IntModCuda);
DSC_REGISTER_CUDA_FLOATS("", "Pow", PowCuda);
// Sum of 1..N inputs: autodiff adds up three or more gradient contributions with it.
DSC_REGISTER_CUDA_FLOATS("", "Sum", Variadic<ew::AddOp>::K);
DSC_REGISTER_CUDA_NUMBERS("Max", Variadic<ew::MaxOp>::K);
DSC_REGISTER_CUDA_NUMBERS("Min", Variadic<ew::MinOp>::K);
DSC_REGISTER_CUDA_NUMBERS("Equal", Compare<ew::EqualOp>::K);
DSC_REGISTER_CUDA_NUMBERS("Less", Compare<ew::LessOp>::K);
DSC_REGISTER_CUDA_NUMBERS("Greater", Compare<ew::GreaterOp>::K);
DSC_REGISTER_CUDA_NUMBERS("LessOrEqual", Compare<ew::LessOrEqualOp>::K);
DSC_REGISTER_CUDA_NUMBERS("GreaterOrEqual", Compare<ew::GreaterOrEqualOp>::K);
DSC_REGISTER_KERNEL("", "Equal", kCuda, kBool, MakeFactory<Compare<ew::EqualOp>::K<uint8_t>>());
DSC_REGISTER_KERNEL("", "And", kCuda, kBool, MakeFactory<Logical<ew::AndOp>>());
DSC_REGISTER_KERNEL("", "Or", kCuda, kBool, MakeFactory<Logical<ew::OrOp>>());
DSC_REGISTER_KERNEL("", "Xor", kCuda, kBool, MakeFactory<Logical<ew::XorOp>>());
DSC_REGISTER_KERNEL("", "Where", kCuda, kBool, MakeFactory<WhereCuda>());

}  // namespace
}  // namespace dsc::cuda
