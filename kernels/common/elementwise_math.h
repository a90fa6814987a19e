// The per-element math of the elementwise kernels (unary, binary, trig, float class, cast), shared
// by kernels/cpu/{unary,binary,trig,float_class,cast}.cc and their kernels/cuda twins. Float ops
// take and return float: half values are widened before and rounded once after, by the caller.
//
//   y[i] = ew::SigmoidOp{}(x[i]);                    // float
//   out[i] = ew::CastStore<ew::F16>(ew::CastLoad(in[i]));
#pragma once

#include <math.h>

#include <cstdint>
#include <limits>
#include <type_traits>

#include "ir/graph.h"
#include "kernels/common/half_math.h"
#include "kernels/common/hd.h"

namespace dsc::ew {

// std::max / std::min exactly (the first argument wins ties and NaN comparisons), on both sides.
template <typename T> DSC_HD T StdMax(T a, T b) { return (a < b) ? b : a; }
template <typename T> DSC_HD T StdMin(T a, T b) { return (b < a) ? b : a; }

template <typename T> DSC_HD bool IsNan(T v) {
  if constexpr (std::is_floating_point_v<T>) return v != v;
  else return false;
}

// ---- unary ----
struct NegOp { template <typename T> DSC_HD T operator()(T x) const { return -x; } };
struct AbsOp { template <typename T> DSC_HD T operator()(T x) const { return x < 0 ? -x : x; } };
struct SqrtOp { DSC_HD float operator()(float x) const { return ::sqrtf(x); } };
struct ReciprocalOp { DSC_HD float operator()(float x) const { return 1.0f / x; } };
struct ExpOp { DSC_HD float operator()(float x) const { return ::expf(x); } };
struct LogOp { DSC_HD float operator()(float x) const { return ::logf(x); } };
struct ErfOp { DSC_HD float operator()(float x) const { return ::erff(x); } };
struct TanhOp { DSC_HD float operator()(float x) const { return ::tanhf(x); } };
// Written so that exp never overflows: for x < 0, e^x / (1 + e^x).
DSC_HD float StableSigmoid(float x) {
  if (x >= 0) return 1.0f / (1.0f + ::expf(-x));
  const float e = ::expf(x);
  return e / (1.0f + e);
}
struct SigmoidOp { DSC_HD float operator()(float x) const { return StableSigmoid(x); } };
// Rounding (drop path's floor(keep_prob + u)); Round takes halves to even, as ONNX and torch.round.
struct FloorOp { DSC_HD float operator()(float x) const { return ::floorf(x); } };
struct CeilOp { DSC_HD float operator()(float x) const { return ::ceilf(x); } };
struct RoundOp { DSC_HD float operator()(float x) const { return ::rintf(x); } };
// NaN stays NaN, as torch.sign (autodiff's Abs gradient uses it). int64 too: DeBERTa's
// log-bucketed relative positions.
struct SignOp {
  template <typename T> DSC_HD T operator()(T x) const { return x > 0 ? T(1) : x < 0 ? T(-1) : x; }
};
// NaN stays NaN (x > 0 is false, x * 0 is NaN), as in PyTorch.
struct ReluOp { template <typename T> DSC_HD T operator()(T x) const { return x > 0 ? x : x * T(0); } };
struct LeakyReluOp {
  float alpha = 0.01f;
  DSC_HD float operator()(float v) const { return v >= 0 ? v : alpha * v; }
};
// Bools are stored as one byte 0/1.
struct NotOp { DSC_HD uint8_t operator()(uint8_t x) const { return x ? 0 : 1; } };
// min(max(x, lo), hi): when lo > hi every element becomes hi, as in numpy.clip; NaN stays NaN.
template <typename T> DSC_HD T Clip(T v, T lo, T hi) { return StdMin(StdMax(v, lo), hi); }

// Clip's bounds (opset 13): optional scalar inputs 1 (min) and 2 (max), read here when they are
// constants; opset < 11 had float attributes. Host only.
template <typename T>
struct ClipBounds {
  T lo{}, hi{};
  bool runtime[3] = {false, false, false};  // input i is a bound known only at run time
  Status Init(const Node& node) {
    if constexpr (std::is_floating_point_v<T>) {
      lo = node.GetFloat("min", -std::numeric_limits<T>::infinity());
      hi = node.GetFloat("max", std::numeric_limits<T>::infinity());
    } else {
      lo = std::numeric_limits<T>::lowest();
      hi = std::numeric_limits<T>::max();
    }
    for (size_t i = 1; i <= 2; ++i) {
      const Value* v = node.input(i);
      if (!v) continue;
      if (v->is_initializer()) {
        if (v->initializer().numel() != 1) return InvalidArgument("Clip bound must be a scalar");
        const T b = static_cast<T>(v->initializer().GetAsDouble(0));
        (i == 1 ? lo : hi) = b;
      } else {
        runtime[i] = true;
      }
    }
    return Status::OK();
  }
};

// ---- trig ----
struct CosOp { DSC_HD float operator()(float x) const { return ::cosf(x); } };
struct SinOp { DSC_HD float operator()(float x) const { return ::sinf(x); } };
// Atan: what torch.atan2 exports as (Atan of y/x, then Where arithmetic for the quadrant).
struct AtanOp { DSC_HD float operator()(float x) const { return ::atanf(x); } };

// ---- float class (IsNaN, IsInf<detect_positive, detect_negative>); F is float or double ----
template <typename F> DSC_HD uint8_t IsNaNValue(F v) { return v != v; }
template <typename F> DSC_HD uint8_t IsInfValue(F v, bool positive, bool negative) {
  const F inf = static_cast<F>(INFINITY);
  return (v == inf && positive) || (v == -inf && negative);
}

// ---- binary ----
struct AddOp { template <typename T> DSC_HD T operator()(T a, T b) const { return a + b; } };
struct SubOp { template <typename T> DSC_HD T operator()(T a, T b) const { return a - b; } };
struct MulOp { template <typename T> DSC_HD T operator()(T a, T b) const { return a * b; } };
struct DivOp { DSC_HD float operator()(float a, float b) const { return a / b; } };
// Integer Div truncates toward zero (C++ and onnxruntime); x / 0 gives 0 instead of a trap.
struct IntDivOp { template <typename T> DSC_HD T operator()(T a, T b) const { return b == 0 ? T(0) : a / b; } };
// Integer Mod<fmod = 0>: the remainder takes the divisor's sign (Python's %, torch.remainder);
// Mod<fmod = 1>: the dividend's (C's %, torch.fmod). x % 0 gives 0 instead of a trap, as IntDivOp;
// x % -1 is 0 (INT_MIN % -1 would trap).
struct IntModOp {
  bool fmod = false;
  template <typename T> DSC_HD T operator()(T a, T b) const {
    if (b == 0 || b == T(-1)) return T(0);
    const T r = a % b;
    return !fmod && r != 0 && ((r < 0) != (b < 0)) ? r + b : r;
  }
};
// Max/Min propagate NaN like numpy.maximum / torch.maximum.
struct MaxOp { template <typename T> DSC_HD T operator()(T a, T b) const { return (IsNan(a) || a > b) ? a : b; } };
struct MinOp { template <typename T> DSC_HD T operator()(T a, T b) const { return (IsNan(a) || a < b) ? a : b; } };
struct EqualOp { template <typename T> DSC_HD uint8_t operator()(T a, T b) const { return a == b; } };
struct LessOp { template <typename T> DSC_HD uint8_t operator()(T a, T b) const { return a < b; } };
struct GreaterOp { template <typename T> DSC_HD uint8_t operator()(T a, T b) const { return a > b; } };
// False when either side is NaN, as numpy and torch (so not the negation of Greater / Less).
struct LessOrEqualOp { template <typename T> DSC_HD uint8_t operator()(T a, T b) const { return a <= b; } };
struct GreaterOrEqualOp { template <typename T> DSC_HD uint8_t operator()(T a, T b) const { return a >= b; } };
struct AndOp { DSC_HD uint8_t operator()(uint8_t a, uint8_t b) const { return a && b; } };
struct OrOp { DSC_HD uint8_t operator()(uint8_t a, uint8_t b) const { return a || b; } };
struct XorOp { DSC_HD uint8_t operator()(uint8_t a, uint8_t b) const { return (a != 0) != (b != 0); } };
// Pow: a float base; the exponent of any numeric type, taken as float.
struct PowOp {
  template <typename E> DSC_HD float operator()(float x, E e) const { return ::powf(x, static_cast<float>(e)); }
};

// ---- cast (float32/float16/bfloat16/float64/int64/int32/bool, every direction) ----
// Storage types for the dtypes C++ has no arithmetic type for; the same on both sides, so the
// conversions are bit-identical (half_math.h).
struct F16 { uint16_t bits; };
struct BF16 { uint16_t bits; };
struct Bool { uint8_t byte; };

// CastLoad gives an arithmetic value; CastStore<D> makes a D from one.
template <typename T> DSC_HD T CastLoad(T v) { return v; }
DSC_HD float CastLoad(F16 v) { return half::HalfBitsToFloat(v.bits); }
DSC_HD float CastLoad(BF16 v) { return half::BFloat16BitsToFloat(v.bits); }
DSC_HD bool CastLoad(Bool v) { return v.byte != 0; }

// Anything -> bool is (x != 0), so NaN -> true, as in numpy. Float -> int truncates toward zero
// (out of range is undefined in C++; x86 gives the minimum, CUDA saturates).
template <typename D, typename V> DSC_HD D CastStore(V v) {
  if constexpr (std::is_same_v<D, F16>) return F16{half::FloatToHalfBits(static_cast<float>(v))};
  else if constexpr (std::is_same_v<D, BF16>) return BF16{half::FloatToBFloat16Bits(static_cast<float>(v))};
  else if constexpr (std::is_same_v<D, Bool>) return Bool{static_cast<uint8_t>(v != V(0))};
  else return static_cast<D>(v);
}

}  // namespace dsc::ew
