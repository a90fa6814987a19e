// What the elementwise CUDA kernels share: element loads and stores in the compute type (float for
// float32/float16/bfloat16, the type itself for integers and bool), the per-element functors that
// wrap the shared math of kernels/common/*_math.h, a vectorized launcher for same-shape maps (the
// common case in training, bound by memory bandwidth: 16-byte loads and stores when every pointer
// is aligned), and dtype checks for Init.
//
//   RETURN_IF_ERROR(LaunchVecMap(ctx, n, Map1<T, T, ew::ExpOp>{}, y, x));          // y = exp(x)
//   RETURN_IF_ERROR(LaunchVecMap(ctx, n, Map2<T, T, uint8_t, ew::LessOp>{}, y, a, b));
#pragma once

#include <cstdint>
#include <type_traits>

#include "kernels/cuda/cuda_util.cuh"

namespace dsc::cuda {

// float32/float16/bfloat16 compute in float; everything else as itself.
template <typename T>
inline constexpr bool kComputesInFloat =
    std::is_same_v<T, float> || std::is_same_v<T, half> || std::is_same_v<T, bf16>;

// The compute type of an element type (explicit: `auto` device functions read as void on the host).
template <typename T> using Num = std::conditional_t<kComputesInFloat<T>, float, T>;

template <typename T> __device__ __forceinline__ Num<T> LoadNum(T x) {
  if constexpr (kComputesInFloat<T>) return ToFloat(x);
  else return x;
}
// Rounds once, to nearest even, into a half type.
template <typename T, typename V> __device__ __forceinline__ T StoreNum(V v) {
  if constexpr (kComputesInFloat<T>) return FromFloat<T>(static_cast<float>(v));
  else return static_cast<T>(v);
}

// r = op(a) and r = op(a, b) on stored elements.
template <typename A, typename R, typename Op>
struct Map1 {
  Op op;
  __device__ __forceinline__ R operator()(A a) const { return StoreNum<R>(op(LoadNum(a))); }
};
template <typename A, typename B, typename R, typename Op>
struct Map2 {
  Op op;
  __device__ __forceinline__ R operator()(A a, B b) const { return StoreNum<R>(op(LoadNum(a), LoadNum(b))); }
};

template <typename T, int V>
struct alignas(sizeof(T) * V) Pack {
  T v[V];
};

template <int V, typename Out, typename F, typename... P>
__device__ __forceinline__ void ApplyPacks(Pack<Out, V>& o, const F& f, const P&... p) {
#pragma unroll
  for (int j = 0; j < V; ++j) o.v[j] = f(p.v[j]...);
}

// y[i] = f(x0[i], x1[i], ...) for i < n, V elements per load; the last n % V elements one by one.
template <int V, typename Out, typename F, typename... In>
__global__ void VecMapKernel(int64_t n, F f, Out* y, const In*... x) {
  const int64_t first = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  const int64_t stride = static_cast<int64_t>(blockDim.x) * gridDim.x;
  const int64_t packs = n / V;
  for (int64_t k = first; k < packs; k += stride) {
    Pack<Out, V> o;
    ApplyPacks<V>(o, f, reinterpret_cast<const Pack<In, V>*>(x)[k]...);
    reinterpret_cast<Pack<Out, V>*>(y)[k] = o;
  }
  if constexpr (V > 1) {
    for (int64_t i = packs * V + first; i < n; i += stride) y[i] = f(x[i]...);
  }
}

template <typename T> constexpr size_t MaxSizeOf() { return sizeof(T); }
template <typename T, typename U, typename... Rest> constexpr size_t MaxSizeOf() {
  return sizeof(T) > MaxSizeOf<U, Rest...>() ? sizeof(T) : MaxSizeOf<U, Rest...>();
}

inline bool AlignedTo(const void* p, size_t bytes) { return reinterpret_cast<uintptr_t>(p) % bytes == 0; }

// y[i] = f(x0[i], ...) over n elements of same-shape contiguous tensors, on the compute stream.
// In place (y == some x) is fine: every element is read before it is written, by the same thread.
template <typename Out, typename F, typename... In>
Status LaunchVecMap(const KernelContext& ctx, int64_t n, F f, Out* y, const In*... x) {
  if (n <= 0) return Status::OK();
  ASSIGN_OR_RETURN(Resources * r, Res(ctx));
  constexpr int V = 16 / MaxSizeOf<Out, In...>() > 1 ? static_cast<int>(16 / MaxSizeOf<Out, In...>()) : 1;
  bool aligned = AlignedTo(y, sizeof(Out) * V);
  ((aligned = aligned && AlignedTo(x, sizeof(In) * V)), ...);
  if (V > 1 && aligned && n >= V) {
    VecMapKernel<V><<<GridFor(*r, (n + V - 1) / V), kThreads, 0, r->compute>>>(n, f, y, x...);
  } else {
    VecMapKernel<1><<<GridFor(*r, n), kThreads, 0, r->compute>>>(n, f, y, x...);
  }
  DSC_CUDA_CHECK_LAUNCH();
  return Status::OK();
}

// Init checks: a value (when present) has the dtype the kernel was built for.
inline Status ExpectDType(const Node& node, const Value* v, DType want, const char* what) {
  if (v && v->type.dtype != want)
    return Unimplemented("the CUDA kernel of ", node.op_type(), " for ", DTypeName(want), " got ", what, " '",
                         v->name(), "' of type ", DTypeName(v->type.dtype));
  return Status::OK();
}

}  // namespace dsc::cuda
