// DFT as a product with a constant DFT matrix (see decompose_dft.h).
#include "frontend/decompose_dft.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <optional>
#include <vector>

#include "frontend/model_types.h"
#include "frontend/proto_rewriter.h"

namespace dsc {
namespace {

// FNet's sequence axis at 4k tokens complex: 8k x 8k entries (256 MB in float32).
constexpr int64_t kMaxMatrixElements = int64_t{1} << 26;

std::string Describe(const onnx::NodeProto& n) {
  if (n.name().empty()) return StrCat("node producing '", n.output_size() ? n.output(0) : "?", "' (", n.op_type(), ")");
  return StrCat("node '", n.name(), "' (", n.op_type(), ")");
}

std::string Input(const onnx::NodeProto& n, int i) { return i < n.input_size() ? n.input(i) : ""; }

// The values of a small int32/int64 tensor (int*_data or little-endian raw_data).
std::optional<std::vector<int64_t>> IntValues(const onnx::TensorProto& t) {
  int64_t numel = 1;
  for (int64_t d : t.dims()) numel *= d;
  if (numel > 64 || t.data_location() == onnx::TensorProto::EXTERNAL) return std::nullopt;
  const bool i64 = t.data_type() == onnx::TensorProto::INT64;
  if (!i64 && t.data_type() != onnx::TensorProto::INT32) return std::nullopt;
  std::vector<int64_t> v;
  if (t.raw_data().empty()) {
    if (i64) v.assign(t.int64_data().begin(), t.int64_data().end());
    else v.assign(t.int32_data().begin(), t.int32_data().end());
  } else if (t.raw_data().size() == static_cast<size_t>(numel) * (i64 ? 8 : 4)) {
    for (int64_t k = 0; k < numel; ++k) {  // little-endian host, as onnx_wire assumes
      if (i64) {
        int64_t x;
        std::memcpy(&x, t.raw_data().data() + 8 * k, 8);
        v.push_back(x);
      } else {
        int32_t x;
        std::memcpy(&x, t.raw_data().data() + 4 * k, 4);
        v.push_back(x);
      }
    }
  }
  if (static_cast<int64_t>(v.size()) != numel) return std::nullopt;
  return v;
}

// The integers a value holds when the graph states them: initializers and Constants, and dims of
// static shapes read through Shape (start, end), Gather, Squeeze/Unsqueeze/Reshape/Identity and
// integer Casts -- what the dynamo exporter writes for dft_length = x.size(d) when its optimizer
// does not fold it.
class ConstantInts {
 public:
  ConstantInts(const onnx::GraphProto& g, const ModelTypes& types) : types_(types) {
    for (const auto& n : g.node())
      for (const auto& o : n.output()) producer_[o] = &n;
  }
  // The scalar (one-element) value of `name`.
  std::optional<int64_t> operator()(const std::string& name) const {
    std::optional<std::vector<int64_t>> v = Ints(name, 0);
    if (!v || v->size() != 1) return std::nullopt;
    return (*v)[0];
  }

 private:
  std::optional<std::vector<int64_t>> Ints(const std::string& name, int depth) const {
    if (const onnx::TensorProto* t = types_.Constant(name)) return IntValues(*t);
    auto it = producer_.find(name);
    if (it == producer_.end() || depth > 16) return std::nullopt;
    const onnx::NodeProto& n = *it->second;
    if (!n.domain().empty() && n.domain() != "ai.onnx") return std::nullopt;
    const std::string& op = n.op_type();
    if (op == "Constant") {
      if (const onnx::AttributeProto* a = FindAttr(n, "value_int")) return std::vector<int64_t>{a->i()};
      if (const onnx::AttributeProto* a = FindAttr(n, "value_ints"))
        return std::vector<int64_t>(a->ints().begin(), a->ints().end());
      return std::nullopt;
    }
    if (op == "Shape") {
      const std::optional<int64_t> rank = types_.Rank(n.input(0));
      if (!rank) return std::nullopt;
      auto bound = [&](const char* attr, int64_t fallback) {
        const onnx::AttributeProto* a = FindAttr(n, attr);
        const int64_t v = a ? a->i() : fallback;
        return std::clamp<int64_t>(v < 0 ? v + *rank : v, 0, *rank);
      };
      std::vector<int64_t> dims;
      for (int64_t d = bound("start", 0); d < bound("end", *rank); ++d) {
        std::optional<int64_t> dim = types_.Dim(n.input(0), static_cast<int>(d));
        if (!dim) return std::nullopt;
        dims.push_back(*dim);
      }
      return dims;
    }
    if (op == "Gather") {
      const onnx::AttributeProto* axis = FindAttr(n, "axis");
      std::optional<std::vector<int64_t>> data = Ints(n.input(0), depth + 1), idx = Ints(Input(n, 1), depth + 1);
      if ((axis && axis->i() != 0) || !data || !idx) return std::nullopt;
      std::vector<int64_t> out;
      const int64_t size = static_cast<int64_t>(data->size());
      for (int64_t k : *idx) {
        if (k < -size || k >= size) return std::nullopt;
        out.push_back((*data)[static_cast<size_t>(k < 0 ? k + size : k)]);
      }
      return out;
    }
    if (op == "Cast") {
      const onnx::AttributeProto* to = FindAttr(n, "to");
      if (!to || (to->i() != onnx::TensorProto::INT64 && to->i() != onnx::TensorProto::INT32)) return std::nullopt;
      return Ints(n.input(0), depth + 1);
    }
    if (op == "Squeeze" || op == "Unsqueeze" || op == "Reshape" || op == "Identity") return Ints(n.input(0), depth + 1);
    return std::nullopt;
  }

  const ModelTypes& types_;
  std::map<std::string, const onnx::NodeProto*> producer_;
};

struct DftShape {
  int64_t rank, axis, n, c;  // X's rank, the signal axis (>= 0), its length, 1 or 2
  int64_t length;            // L
  bool inverse, onesided;
  int64_t k() const { return onesided && !inverse ? length / 2 + 1 : length; }
  int64_t c_out() const { return inverse && onesided ? 1 : 2; }
};

StatusOr<DftShape> ReadDft(const onnx::NodeProto& n, int64_t opset, const ModelTypes& types,
                           const ConstantInts& constant) {
  const std::string what = Describe(n);
  DftShape s{};
  for (const char* flag : {"inverse", "onesided"}) {
    const onnx::AttributeProto* a = FindAttr(n, flag);
    const int64_t v = a ? a->i() : 0;
    if (v != 0 && v != 1) return InvalidArgument(what, ": ", flag, " = ", v, " (ONNX allows 0 or 1)");
    (std::string(flag) == "inverse" ? s.inverse : s.onesided) = v == 1;
  }
  const std::string x = n.input(0);
  const std::optional<int64_t> rank = types.Rank(x);
  if (!rank) return InvalidArgument(what, ": the rank of its input '", x, "' is unknown after shape inference");
  s.rank = *rank;
  if (s.rank < 2)
    return InvalidArgument(what, ": input '", x, "' has rank ", s.rank, ", needs [signal dims..., 1 or 2]");
  int64_t axis = 1;
  if (opset >= 20) {
    axis = -2;
    if (const std::string a = Input(n, 2); !a.empty()) {
      std::optional<int64_t> v = constant(a);
      if (!v)
        return Unimplemented(what, ": axis '", a,
                             "' must be a constant integer scalar (or a static dim read through Shape)");
      axis = *v;
    }
  } else if (const onnx::AttributeProto* a = FindAttr(n, "axis")) {
    axis = a->i();
  }
  if (axis < -s.rank || axis > s.rank - 2 || axis == -1)
    return InvalidArgument(what, ": axis ", axis, " is outside [-", s.rank, ", -2] and [0, ", s.rank - 2,
                           "] (the last axis holds the real and imaginary parts)");
  s.axis = axis < 0 ? axis + s.rank : axis;
  std::optional<int64_t> n_dim = types.Dim(x, static_cast<int>(s.axis));
  std::optional<int64_t> c_dim = types.Dim(x, static_cast<int>(s.rank - 1));
  if (!n_dim || !c_dim)
    return InvalidArgument(what, ": dims ", s.axis, " (the signal) and ", s.rank - 1, " (real/complex) of input '", x,
                           "' must be static; bind symbolic dims with --dim");
  s.n = *n_dim;
  s.c = *c_dim;
  if (s.c != 1 && s.c != 2)
    return InvalidArgument(what, ": the last dim of input '", x, "' is ", s.c, "; ONNX needs 1 (real) or 2 (complex)");
  s.length = s.inverse && s.onesided ? 2 * (s.n - 1) : s.n;
  if (const std::string l = Input(n, 1); !l.empty()) {
    std::optional<int64_t> v = constant(l);
    if (!v)
      return Unimplemented(what, ": dft_length '", l,
                           "' must be a constant integer scalar (or a static dim read through Shape)");
    s.length = *v;
  }
  if (s.length < 1) return InvalidArgument(what, ": dft_length ", s.length, " must be at least 1");
  const double elements = static_cast<double>(s.n * s.c) * static_cast<double>(s.k() * s.c_out());
  if (elements > static_cast<double>(kMaxMatrixElements))
    return Unimplemented(what, ": dscompile computes a DFT as a product with its matrix, here ", s.n * s.c, " x ",
                         s.k() * s.c_out(), " elements, more than the 2^26 it builds (signal length ", s.n,
                         ", dft_length ", s.length, ")");
  return s;
}

// M, row-major (N c) x (K c'): row n c + p (p = 0 real, 1 imaginary part of x[n]), column k c' + q.
std::vector<float> DftMatrix(const DftShape& s) {
  const int64_t rows = s.n * s.c, k_out = s.k(), cols = k_out * s.c_out(), l = s.length;
  std::vector<float> m(static_cast<size_t>(rows * cols), 0.0f);
  auto at = [&](int64_t n, int64_t p, int64_t k, int64_t q) -> float& {
    return m[static_cast<size_t>((n * s.c + p) * cols + k * s.c_out() + q)];
  };
  const double two_pi = 2.0 * std::acos(-1.0);
  if (s.inverse && s.onesided) {
    // y[t] = (1/L) sum_k w_k (Re x[k] cos - Im x[k] sin)(2 pi k t / L), k < min(N, L/2 + 1);
    // w = 1 for DC and the even-L Nyquist bin (their imaginary parts drop out), else 2.
    for (int64_t k = 0; k < std::min(s.n, l / 2 + 1); ++k) {
      const bool single = k == 0 || (l % 2 == 0 && k == l / 2);
      const double w = (single ? 1.0 : 2.0) / static_cast<double>(l);
      for (int64_t t = 0; t < l; ++t) {
        const double theta = two_pi * static_cast<double>((k * t) % l) / static_cast<double>(l);
        at(k, 0, t, 0) = static_cast<float>(w * std::cos(theta));
        if (s.c == 2) at(k, 1, t, 0) = single ? 0.0f : static_cast<float>(-w * std::sin(theta));
      }
    }
    return m;
  }
  // y[k] = scale sum_n x[n] e^(sign 2 pi i k n / L), n < min(N, L).
  const double sign = s.inverse ? 1.0 : -1.0, scale = s.inverse ? 1.0 / static_cast<double>(l) : 1.0;
  for (int64_t n = 0; n < std::min(s.n, l); ++n)
    for (int64_t k = 0; k < k_out; ++k) {
      const double theta = two_pi * static_cast<double>((k * n) % l) / static_cast<double>(l);
      const double cs = scale * std::cos(theta), sn = scale * sign * std::sin(theta);
      at(n, 0, k, 0) = static_cast<float>(cs);   // Re y += Re x cos - sign Im x sin
      at(n, 0, k, 1) = static_cast<float>(sn);   // Im y += sign Re x sin + Im x cos
      if (s.c == 2) {
        at(n, 1, k, 0) = static_cast<float>(-sn);
        at(n, 1, k, 1) = static_cast<float>(cs);
      }
    }
  return m;
}

void Rewrite(const onnx::NodeProto& n, int64_t opset, const DftShape& s, int32_t elem_type,
             std::vector<onnx::NodeProto>* out) {
  ProtoRewriter r(n, opset, out);
  // The signal axis moves next to the real/imaginary axis; the other axes keep their order.
  std::vector<int64_t> perm, back(static_cast<size_t>(s.rank));
  for (int64_t i = 0; i < s.rank - 1; ++i)
    if (i != s.axis) perm.push_back(i);
  perm.push_back(s.axis);
  perm.push_back(s.rank - 1);
  for (int64_t i = 0; i < s.rank; ++i) back[static_cast<size_t>(perm[static_cast<size_t>(i)])] = i;
  const bool moved = s.axis != s.rank - 2;
  std::string x = n.input(0);
  if (moved) {
    x = r.Add("Transpose", {x});
    r.SetInts("perm", perm);
  }
  std::vector<int64_t> flat(static_cast<size_t>(s.rank - 2), 0);  // Reshape's 0 copies the leading dims
  flat.push_back(s.n * s.c);
  std::string m = r.Add("Constant", {});
  onnx::TensorProto* t = r.TensorAttr("value");
  t->set_data_type(onnx::TensorProto::FLOAT);
  t->add_dims(s.n * s.c);
  t->add_dims(s.k() * s.c_out());
  const std::vector<float> values = DftMatrix(s);
  t->set_raw_data(std::string(reinterpret_cast<const char*>(values.data()), values.size() * sizeof(float)));
  if (elem_type != onnx::TensorProto::FLOAT) m = r.Add("CastLike", {m, n.input(0)});
  const std::string y = r.Add("MatMul", {r.Add("Reshape", {x, r.Ints(flat)}), m});
  std::vector<int64_t> shaped(static_cast<size_t>(s.rank - 2), 0);
  shaped.push_back(s.k());
  shaped.push_back(s.c_out());
  if (!moved) {
    r.Add("Reshape", {y, r.Ints(shaped)}, n.output(0));
    return;
  }
  r.Add("Transpose", {r.Add("Reshape", {y, r.Ints(shaped)})}, n.output(0));
  r.SetInts("perm", back);
}

bool IsDft(const onnx::NodeProto& n) {
  return (n.domain().empty() || n.domain() == "ai.onnx") && n.op_type() == "DFT" && n.input_size() >= 1 &&
         n.output_size() == 1;
}

}  // namespace

Status DecomposeDft(onnx::ModelProto* model, const std::map<std::string, int64_t>& dims) {
  onnx::GraphProto* g = model->mutable_graph();
  bool any = false;
  for (const auto& n : g->node()) any |= IsDft(n);
  if (!any) return Status::OK();
  const int64_t opset = OnnxOpset(*model);
  const ModelTypes types(*model, dims);
  const ConstantInts constant(*g, types);
  return RewriteNodes(g, [&](const onnx::NodeProto& n, std::vector<onnx::NodeProto>* nodes) -> StatusOr<bool> {
    if (!IsDft(n)) return false;
    ASSIGN_OR_RETURN(DftShape s, ReadDft(n, opset, types, constant));
    const int32_t elem = types.ElemType(n.input(0));
    Rewrite(n, opset, s, elem == 0 ? static_cast<int32_t>(onnx::TensorProto::FLOAT) : elem, nodes);
    return true;
  });
}

}  // namespace dsc
