// Elementwise ops with numpy broadcasting: unary math, arithmetic, variadic Min/Max/Sum/Mean, comparisons,
// logic, Where, Cos/Sin and IsNaN/IsInf. Integer and bool inputs compute through int64 (wrapping like numpy),
// floats through double.
#include <cmath>
#include <limits>
#include <optional>

#include "passes/const_eval/internal.h"

namespace dsc::const_eval {
namespace {

// Two's-complement wrapping arithmetic without signed-overflow UB.
int64_t WrapAdd(int64_t a, int64_t b) { return static_cast<int64_t>(static_cast<uint64_t>(a) + static_cast<uint64_t>(b)); }
int64_t WrapSub(int64_t a, int64_t b) { return static_cast<int64_t>(static_cast<uint64_t>(a) - static_cast<uint64_t>(b)); }
int64_t WrapMul(int64_t a, int64_t b) { return static_cast<int64_t>(static_cast<uint64_t>(a) * static_cast<uint64_t>(b)); }
int64_t WrapNeg(int64_t a) { return static_cast<int64_t>(uint64_t{0} - static_cast<uint64_t>(a)); }

// Which element types an op accepts, and whether it yields bool.
enum TypeSet : unsigned { kFloats = 1, kInts = 2, kBools = 4 };

bool Accepts(unsigned set, DType t) {
  if (IsFloat(t)) return set & kFloats;
  if (IsInteger(t)) return set & kInts;
  if (t == DType::kBool) return set & kBools;
  return false;
}

Status CheckType(const Node& node, unsigned set, DType t) {
  if (Accepts(set, t)) return Status::OK();
  return Bad(node, "does not accept element type ", DTypeName(t));
}

// ---------------------------------------------------------------- unary

struct Neg {
  static constexpr unsigned kTypes = kFloats | kInts;
  static int64_t Int(int64_t a) { return WrapNeg(a); }
  static double Float(double a) { return -a; }
};
struct Abs {
  static constexpr unsigned kTypes = kFloats | kInts;
  static int64_t Int(int64_t a) { return a < 0 ? WrapNeg(a) : a; }
  static double Float(double a) { return std::fabs(a); }
};
struct Sign {
  static constexpr unsigned kTypes = kFloats | kInts;
  static int64_t Int(int64_t a) { return (a > 0) - (a < 0); }
  static double Float(double a) { return std::isnan(a) ? a : (a > 0) - (a < 0); }
};
struct Relu {
  static constexpr unsigned kTypes = kFloats | kInts;
  static int64_t Int(int64_t a) { return a < 0 ? 0 : a; }
  static double Float(double a) { return a < 0 ? 0.0 : a; }  // NaN stays NaN
};
struct Sqrt { static constexpr unsigned kTypes = kFloats; static double Float(double a) { return std::sqrt(a); } };
struct Exp { static constexpr unsigned kTypes = kFloats; static double Float(double a) { return std::exp(a); } };
struct Log { static constexpr unsigned kTypes = kFloats; static double Float(double a) { return std::log(a); } };
struct Floor { static constexpr unsigned kTypes = kFloats; static double Float(double a) { return std::floor(a); } };
struct Ceil { static constexpr unsigned kTypes = kFloats; static double Float(double a) { return std::ceil(a); } };
struct Reciprocal { static constexpr unsigned kTypes = kFloats; static double Float(double a) { return 1.0 / a; } };
// ONNX Round rounds halves to even, which nearbyint does in the default rounding mode.
struct Round { static constexpr unsigned kTypes = kFloats; static double Float(double a) { return std::nearbyint(a); } };
struct Sigmoid { static constexpr unsigned kTypes = kFloats; static double Float(double a) { return 1.0 / (1.0 + std::exp(-a)); } };
struct Tanh { static constexpr unsigned kTypes = kFloats; static double Float(double a) { return std::tanh(a); } };
struct Erf { static constexpr unsigned kTypes = kFloats; static double Float(double a) { return std::erf(a); } };
struct Not { static constexpr unsigned kTypes = kBools; static int64_t Int(int64_t a) { return a == 0; } };
struct Cos { static constexpr unsigned kTypes = kFloats; static double Float(double a) { return std::cos(a); } };
struct Sin { static constexpr unsigned kTypes = kFloats; static double Float(double a) { return std::sin(a); } };

// IsNaN, IsInf<detect_positive, detect_negative>: float in, bool of the same shape out.
StatusOr<Outputs> EvalFloatClass(const Node& node, const Inputs& in) {
  RETURN_IF_ERROR(CheckArity(node, in, 1, 1));
  const Tensor& x = *in[0];
  RETURN_IF_ERROR(CheckType(node, kFloats, x.dtype()));
  const bool is_nan = node.op_type() == "IsNaN";
  const bool pos = node.GetInt("detect_positive", 1) != 0, neg = node.GetInt("detect_negative", 1) != 0;
  ASSIGN_OR_RETURN(Tensor out, NewTensor(node, DType::kBool, x.dims()));
  for (int64_t i = 0; i < x.numel(); ++i) {
    const double v = LoadDouble(x, i);
    StoreInt(out, i, is_nan ? std::isnan(v) : std::isinf(v) && (v > 0 ? pos : neg));
  }
  return Outputs{std::move(out)};
}

template <class Op>
StatusOr<Outputs> EvalUnary(const Node& node, const Inputs& in) {
  RETURN_IF_ERROR(CheckArity(node, in, 1, 1));
  const Tensor& x = *in[0];
  RETURN_IF_ERROR(CheckType(node, Op::kTypes, x.dtype()));
  ASSIGN_OR_RETURN(Tensor out, NewTensor(node, x.dtype(), x.dims()));
  for (int64_t i = 0; i < x.numel(); ++i) {
    if constexpr (Op::kTypes & (kInts | kBools)) {
      if (IsIntLike(x.dtype())) {
        StoreInt(out, i, Op::Int(LoadInt(x, i)));
        continue;
      }
    }
    if constexpr (Op::kTypes & kFloats) StoreDouble(out, i, Op::Float(LoadDouble(x, i)));
  }
  return Outputs{std::move(out)};
}

// ---------------------------------------------------------------- binary (same element type, broadcast)

// Int returns nullopt for an integer division by zero, which C++ leaves undefined and we refuse to fold.
struct Add {
  static constexpr unsigned kTypes = kFloats | kInts;
  static std::optional<int64_t> Int(int64_t a, int64_t b) { return WrapAdd(a, b); }
  static double Float(double a, double b) { return a + b; }
};
struct Sub {
  static constexpr unsigned kTypes = kFloats | kInts;
  static std::optional<int64_t> Int(int64_t a, int64_t b) { return WrapSub(a, b); }
  static double Float(double a, double b) { return a - b; }
};
struct Mul {
  static constexpr unsigned kTypes = kFloats | kInts;
  static std::optional<int64_t> Int(int64_t a, int64_t b) { return WrapMul(a, b); }
  static double Float(double a, double b) { return a * b; }
};
// Integer Div truncates toward zero (as ONNX's reference and onnxruntime do), unlike numpy's floor_divide.
struct Div {
  static constexpr unsigned kTypes = kFloats | kInts;
  static std::optional<int64_t> Int(int64_t a, int64_t b) {
    if (b == 0) return std::nullopt;
    if (b == -1) return WrapNeg(a);
    return a / b;
  }
  static double Float(double a, double b) { return a / b; }
};
// Mod with fmod=0: the result takes the divisor's sign (Python's %, numpy.mod). Floats only from
// opset 28 on (the importer refuses them before): a zero result takes the divisor's sign, and an
// infinite divisor gives back a finite dividend of its own sign, itself otherwise (the spec's list).
struct PyMod {
  static constexpr unsigned kTypes = kFloats | kInts;
  static std::optional<int64_t> Int(int64_t a, int64_t b) {
    if (b == 0) return std::nullopt;
    if (b == -1) return 0;
    int64_t r = a % b;
    if (r != 0 && ((r < 0) != (b < 0))) r += b;
    return r;
  }
  static double Float(double a, double b) {
    double r = std::fmod(a, b);
    if (r != 0 && ((r < 0) != (b < 0))) r += b;
    return r == 0 ? std::copysign(0.0, b) : r;
  }
};
// Mod with fmod=1: the result takes the dividend's sign (C's fmod and %).
struct FMod {
  static constexpr unsigned kTypes = kFloats | kInts;
  static std::optional<int64_t> Int(int64_t a, int64_t b) {
    if (b == 0) return std::nullopt;
    if (b == -1) return 0;
    return a % b;
  }
  static double Float(double a, double b) { return std::fmod(a, b); }
};
// NaN propagates through Min and Max, as with numpy.minimum/maximum and onnxruntime.
struct Min {
  static constexpr unsigned kTypes = kFloats | kInts;
  static std::optional<int64_t> Int(int64_t a, int64_t b) { return a < b ? a : b; }
  static double Float(double a, double b) { return std::isnan(a) || std::isnan(b) ? NAN : (a < b ? a : b); }
};
struct Max {
  static constexpr unsigned kTypes = kFloats | kInts;
  static std::optional<int64_t> Int(int64_t a, int64_t b) { return a > b ? a : b; }
  static double Float(double a, double b) { return std::isnan(a) || std::isnan(b) ? NAN : (a > b ? a : b); }
};
// ONNX Sum and Mean take floating types only.
struct Sum {
  static constexpr unsigned kTypes = kFloats;
  static std::optional<int64_t> Int(int64_t a, int64_t b) { return WrapAdd(a, b); }
  static double Float(double a, double b) { return a + b; }
};
struct Equal {
  static constexpr unsigned kTypes = kFloats | kInts | kBools;
  static std::optional<int64_t> Int(int64_t a, int64_t b) { return a == b; }
  static double Float(double a, double b) { return a == b; }
};
struct Less {
  static constexpr unsigned kTypes = kFloats | kInts;
  static std::optional<int64_t> Int(int64_t a, int64_t b) { return a < b; }
  static double Float(double a, double b) { return a < b; }
};
struct Greater {
  static constexpr unsigned kTypes = kFloats | kInts;
  static std::optional<int64_t> Int(int64_t a, int64_t b) { return a > b; }
  static double Float(double a, double b) { return a > b; }
};
struct LessOrEqual {
  static constexpr unsigned kTypes = kFloats | kInts;
  static std::optional<int64_t> Int(int64_t a, int64_t b) { return a <= b; }
  static double Float(double a, double b) { return a <= b; }
};
struct GreaterOrEqual {
  static constexpr unsigned kTypes = kFloats | kInts;
  static std::optional<int64_t> Int(int64_t a, int64_t b) { return a >= b; }
  static double Float(double a, double b) { return a >= b; }
};
struct And {
  static constexpr unsigned kTypes = kBools;
  static std::optional<int64_t> Int(int64_t a, int64_t b) { return a && b; }
  static double Float(double, double) { return 0; }
};
struct Or {
  static constexpr unsigned kTypes = kBools;
  static std::optional<int64_t> Int(int64_t a, int64_t b) { return a || b; }
  static double Float(double, double) { return 0; }
};
struct Xor {
  static constexpr unsigned kTypes = kBools;
  static std::optional<int64_t> Int(int64_t a, int64_t b) { return (a != 0) != (b != 0); }
  static double Float(double, double) { return 0; }
};

// Folds all inputs elementwise with Op (left to right) over their broadcast shape. Comparisons yield bool.
template <class Op, bool kBoolOut = false>
StatusOr<Tensor> FoldBroadcast(const Node& node, const Inputs& in) {
  std::vector<std::vector<int64_t>> shapes;
  for (size_t k = 0; k < in.size(); ++k) {
    if (in[k] == nullptr) return Bad(node, "input ", k, " is required but missing");
    if (in[k]->dtype() != in[0]->dtype())
      return Bad(node, "input ", k, " has element type ", DTypeName(in[k]->dtype()), " but input 0 has ",
                 DTypeName(in[0]->dtype()));
    shapes.push_back(in[k]->dims());
  }
  DType dtype = in[0]->dtype();
  RETURN_IF_ERROR(CheckType(node, Op::kTypes, dtype));
  ASSIGN_OR_RETURN(std::vector<int64_t> dims, BroadcastShapes(node, shapes));
  ASSIGN_OR_RETURN(Tensor out, NewTensor(node, kBoolOut ? DType::kBool : dtype, dims));
  std::vector<std::vector<int64_t>> strides;
  for (const Tensor* t : in) strides.push_back(BroadcastStrides(t->dims(), dims));
  IndexWalker walk(dims, strides);
  bool ints = IsIntLike(dtype);
  for (int64_t i = 0; i < out.numel(); ++i, walk.Next()) {
    if (ints) {
      int64_t acc = LoadInt(*in[0], walk.offset(0));
      for (size_t k = 1; k < in.size(); ++k) {
        std::optional<int64_t> r = Op::Int(acc, LoadInt(*in[k], walk.offset(k)));
        if (!r) return Bad(node, "integer division by zero");
        acc = *r;
      }
      StoreInt(out, i, acc);
    } else {
      double acc = LoadDouble(*in[0], walk.offset(0));
      for (size_t k = 1; k < in.size(); ++k) acc = Op::Float(acc, LoadDouble(*in[k], walk.offset(k)));
      if (kBoolOut) StoreInt(out, i, acc != 0);
      else StoreDouble(out, i, acc);
    }
  }
  return out;
}

template <class Op, bool kBoolOut = false>
StatusOr<Outputs> EvalBinary(const Node& node, const Inputs& in) {
  RETURN_IF_ERROR(CheckArity(node, in, 2, 2));
  ASSIGN_OR_RETURN(Tensor out, (FoldBroadcast<Op, kBoolOut>(node, in)));
  return Outputs{std::move(out)};
}

template <class Op>
StatusOr<Outputs> EvalVariadic(const Node& node, const Inputs& in) {
  if (in.empty()) return Bad(node, "needs at least one input");
  ASSIGN_OR_RETURN(Tensor out, FoldBroadcast<Op>(node, in));
  return Outputs{std::move(out)};
}

StatusOr<Outputs> EvalMean(const Node& node, const Inputs& in) {
  if (in.empty()) return Bad(node, "needs at least one input");
  ASSIGN_OR_RETURN(Tensor sum, FoldBroadcast<Sum>(node, in));
  for (int64_t i = 0; i < sum.numel(); ++i)
    StoreDouble(sum, i, LoadDouble(sum, i) / static_cast<double>(in.size()));
  return Outputs{std::move(sum)};
}

StatusOr<Outputs> EvalMod(const Node& node, const Inputs& in) {
  RETURN_IF_ERROR(CheckArity(node, in, 2, 2));
  int64_t fmod = node.GetInt("fmod", 0);
  if (fmod != 0 && fmod != 1) return Bad(node, "fmod must be 0 or 1, got ", fmod);
  ASSIGN_OR_RETURN(Tensor out, fmod ? FoldBroadcast<FMod>(node, in) : FoldBroadcast<PyMod>(node, in));
  return Outputs{std::move(out)};
}

// Exact integer power by squaring (wrapping); negative exponents truncate 1/a^-b toward zero.
std::optional<int64_t> IntPow(int64_t base, int64_t exp) {
  if (exp < 0) {
    if (base == 0) return std::nullopt;
    if (base == 1) return 1;
    if (base == -1) return (exp % 2 == 0) ? 1 : -1;
    return 0;
  }
  int64_t result = 1;
  while (exp > 0) {
    if (exp & 1) result = WrapMul(result, base);
    base = WrapMul(base, base);
    exp >>= 1;
  }
  return result;
}

// Pow (opset 15): the exponent may have another numeric type than the base; the output has the base's type.
StatusOr<Outputs> EvalPow(const Node& node, const Inputs& in) {
  RETURN_IF_ERROR(CheckArity(node, in, 2, 2));
  const Tensor& a = *in[0];
  const Tensor& b = *in[1];
  RETURN_IF_ERROR(CheckType(node, kFloats | kInts, a.dtype()));
  RETURN_IF_ERROR(CheckType(node, kFloats | kInts, b.dtype()));
  ASSIGN_OR_RETURN(std::vector<int64_t> dims, BroadcastShapes(node, {a.dims(), b.dims()}));
  ASSIGN_OR_RETURN(Tensor out, NewTensor(node, a.dtype(), dims));
  IndexWalker walk(dims, {BroadcastStrides(a.dims(), dims), BroadcastStrides(b.dims(), dims)});
  for (int64_t i = 0; i < out.numel(); ++i, walk.Next()) {
    if (IsFloat(a.dtype())) {
      StoreDouble(out, i, std::pow(LoadDouble(a, walk.offset(0)), LoadDouble(b, walk.offset(1))));
    } else if (IsInteger(b.dtype())) {
      std::optional<int64_t> r = IntPow(LoadInt(a, walk.offset(0)), LoadInt(b, walk.offset(1)));
      if (!r) return Bad(node, "zero raised to a negative integer power");
      StoreInt(out, i, *r);
    } else {
      int64_t r;
      double v = std::pow(static_cast<double>(LoadInt(a, walk.offset(0))), LoadDouble(b, walk.offset(1)));
      if (!DoubleToInt64(v, &r)) return OutOfRange(node.Describe(), ": integer Pow result ", v, " is not representable");
      StoreInt(out, i, r);
    }
  }
  return Outputs{std::move(out)};
}

StatusOr<Outputs> EvalWhere(const Node& node, const Inputs& in) {
  RETURN_IF_ERROR(CheckArity(node, in, 3, 3));
  const Tensor& c = *in[0];
  const Tensor& x = *in[1];
  const Tensor& y = *in[2];
  if (c.dtype() != DType::kBool) return Bad(node, "condition must be bool, got ", DTypeName(c.dtype()));
  if (x.dtype() != y.dtype())
    return Bad(node, "X and Y element types differ: ", DTypeName(x.dtype()), " vs ", DTypeName(y.dtype()));
  ASSIGN_OR_RETURN(std::vector<int64_t> dims, BroadcastShapes(node, {c.dims(), x.dims(), y.dims()}));
  ASSIGN_OR_RETURN(Tensor out, NewTensor(node, x.dtype(), dims));
  IndexWalker walk(dims, {BroadcastStrides(c.dims(), dims), BroadcastStrides(x.dims(), dims),
                          BroadcastStrides(y.dims(), dims)});
  for (int64_t i = 0; i < out.numel(); ++i, walk.Next()) {
    if (LoadInt(c, walk.offset(0))) CopyElement(out, i, x, walk.offset(1));
    else CopyElement(out, i, y, walk.offset(2));
  }
  return Outputs{std::move(out)};
}

}  // namespace

void RegisterElementwiseOps(OpTable& t) {
  t["Neg"] = EvalUnary<Neg>;
  t["Abs"] = EvalUnary<Abs>;
  t["Sign"] = EvalUnary<Sign>;
  t["Relu"] = EvalUnary<Relu>;
  t["Sqrt"] = EvalUnary<Sqrt>;
  t["Exp"] = EvalUnary<Exp>;
  t["Log"] = EvalUnary<Log>;
  t["Floor"] = EvalUnary<Floor>;
  t["Ceil"] = EvalUnary<Ceil>;
  t["Reciprocal"] = EvalUnary<Reciprocal>;
  t["Round"] = EvalUnary<Round>;
  t["Sigmoid"] = EvalUnary<Sigmoid>;
  t["Tanh"] = EvalUnary<Tanh>;
  t["Erf"] = EvalUnary<Erf>;
  t["Not"] = EvalUnary<Not>;
  t["Cos"] = EvalUnary<Cos>;
  t["Sin"] = EvalUnary<Sin>;
  t["IsNaN"] = EvalFloatClass;
  t["IsInf"] = EvalFloatClass;
  t["Add"] = EvalBinary<Add>;
  t["Sub"] = EvalBinary<Sub>;
  t["Mul"] = EvalBinary<Mul>;
  t["Div"] = EvalBinary<Div>;
  t["Mod"] = EvalMod;
  t["Pow"] = EvalPow;
  t["Equal"] = EvalBinary<Equal, true>;
  t["Less"] = EvalBinary<Less, true>;
  t["Greater"] = EvalBinary<Greater, true>;
  t["LessOrEqual"] = EvalBinary<LessOrEqual, true>;
  t["GreaterOrEqual"] = EvalBinary<GreaterOrEqual, true>;
  t["And"] = EvalBinary<And, true>;
  t["Or"] = EvalBinary<Or, true>;
  t["Xor"] = EvalBinary<Xor, true>;
  t["Where"] = EvalWhere;
  t["Min"] = EvalVariadic<Min>;
  t["Max"] = EvalVariadic<Max>;
  t["Sum"] = EvalVariadic<Sum>;
  t["Mean"] = EvalMean;
}

}  // namespace dsc::const_eval
