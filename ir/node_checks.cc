// Per-op validation of attributes, constant index inputs and shapes (see node_checks.h).
//
// Checks are a table keyed by op type; ops of our own domain whose attributes copy a forward op's
// (ConvGrad, MaxPoolGrad, SoftmaxGrad, ...) share the forward op's entry. Every check reads what
// it needs through NodeView, which knows which shapes may be trusted at the current stage.
#include "ir/node_checks.h"

#include <algorithm>
#include <cmath>
#include <functional>
#include <optional>
#include <unordered_map>

#include "ir/dsc_ops.h"
#include "ir/optim_algorithms.h"
#include "ir/einsum_equation.h"
#include "onnx/defs/schema.h"

namespace dsc {
namespace {

// One dim as far as known: -1 when symbolic or unknown.
using Dims = std::vector<int64_t>;

std::string DimsText(const Dims& d) {
  std::string s = "[";
  for (size_t i = 0; i < d.size(); ++i) s += StrCat(i ? "," : "", d[i] < 0 ? std::string("?") : std::to_string(d[i]));
  return s + "]";
}

std::string IntsText(const std::vector<int64_t>& v) {
  std::string s = "[";
  for (size_t i = 0; i < v.size(); ++i) s += StrCat(i ? "," : "", v[i]);
  return s + "]";
}

class NodeView {
 public:
  NodeView(const Node& n, NodeCheckStage stage) : n_(n), stage_(stage) {}
  const Node& node() const { return n_; }

  // The value at input i when present.
  const Value* in(size_t i) const { return n_.input(i); }

  // Shape of a value when it may be trusted at this stage.
  std::optional<Dims> ShapeOf(const Value* v) const {
    if (!v || !v->type.shape) return std::nullopt;
    if (stage_ == NodeCheckStage::kAttributes && !v->is_graph_input() && !v->is_initializer() &&
        !(v->producer() && v->producer()->op_type() == "Constant"))
      return std::nullopt;
    Dims d;
    for (const Dim& x : *v->type.shape) d.push_back(x.is_static() ? x.value : -1);
    return d;
  }
  std::optional<Dims> InShape(size_t i) const { return ShapeOf(in(i)); }
  std::optional<Dims> OutShape(size_t i) const { return i < n_.num_outputs() ? ShapeOf(n_.output(i)) : std::nullopt; }
  std::optional<int64_t> InRank(size_t i) const {
    auto s = InShape(i);
    return s ? std::optional<int64_t>(static_cast<int64_t>(s->size())) : std::nullopt;
  }

  // Integer contents of a constant input (initializer or Constant node), if it is one.
  std::optional<std::vector<int64_t>> ConstInts(size_t i) const {
    const Value* v = in(i);
    if (!v) return std::nullopt;
    const Tensor* t = nullptr;
    if (v->is_initializer()) {
      t = &v->initializer();
    } else if (const Node* p = v->producer(); p && p->op_type() == "Constant" && p->domain().empty()) {
      if (p->HasAttr("value_ints")) return p->GetInts("value_ints");
      if (p->HasAttr("value_int")) return std::vector<int64_t>{p->GetInt("value_int", 0)};
      t = p->GetTensor("value");
    }
    if (!t || !IsInteger(t->dtype())) return std::nullopt;
    return t->ToInt64Vector();
  }

  // Contents of a constant floating-point input, if it is one.
  std::optional<std::vector<double>> ConstFloats(size_t i) const {
    const Value* v = in(i);
    if (!v) return std::nullopt;
    const Tensor* t = nullptr;
    if (v->is_initializer()) t = &v->initializer();
    else if (const Node* p = v->producer(); p && p->op_type() == "Constant" && p->domain().empty()) t = p->GetTensor("value");
    if (!t || !IsFloat(t->dtype())) return std::nullopt;
    std::vector<double> out;
    for (int64_t k = 0; k < t->numel(); ++k) out.push_back(t->GetAsDouble(k));
    return out;
  }

  // The attribute's ints, else the constant input's: ops moved several attributes to inputs
  // (Slice, Squeeze, Reduce*, Split) across opsets.
  std::optional<std::vector<int64_t>> IntsAttrOrInput(const std::string& attr, size_t input) const {
    if (n_.HasAttr(attr)) return n_.GetInts(attr);
    return ConstInts(input);
  }

 private:
  const Node& n_;
  NodeCheckStage stage_;
};

Status Bad(const NodeView& v, const std::string& msg) { return InvalidArgument(v.node().Describe(), ": ", msg); }

Status IntIn(const NodeView& v, const std::string& attr, int64_t lo, int64_t hi) {
  if (!v.node().HasAttr(attr)) return Status::OK();
  const int64_t x = v.node().GetInt(attr, lo);
  if (x < lo || x > hi) return Bad(v, StrCat("attribute '", attr, "' is ", x, ", must lie in [", lo, ", ", hi, "]"));
  return Status::OK();
}

Status Flag(const NodeView& v, const std::string& attr) { return IntIn(v, attr, 0, 1); }

Status OneOf(const NodeView& v, const std::string& attr, std::initializer_list<const char*> allowed) {
  if (!v.node().HasAttr(attr)) return Status::OK();
  const std::string s = v.node().GetString(attr, "");
  std::string list;
  for (const char* a : allowed) {
    if (s == a) return Status::OK();
    list += StrCat(list.empty() ? "" : ", ", "'", a, "'");
  }
  return Bad(v, StrCat("attribute '", attr, "' is '", s, "', must be one of ", list));
}

Status FloatIn(const NodeView& v, const std::string& attr, double lo, double hi, bool hi_open = false) {
  if (!v.node().HasAttr(attr)) return Status::OK();
  const double x = v.node().GetFloat(attr, 0);
  if (!std::isfinite(x) || x < lo || x > hi || (hi_open && x == hi))
    return Bad(v, StrCat("attribute '", attr, "' is ", x, ", must lie in [", lo, ", ", hi, hi_open ? ")" : "]"));
  return Status::OK();
}

// An axis in [-rank, rank - 1] (or [-rank, rank] with `inclusive_end`, Flatten's rule).
Status AxisIn(const NodeView& v, const std::string& what, int64_t axis, std::optional<int64_t> rank,
              bool inclusive_end = false) {
  if (!rank) return Status::OK();
  const int64_t hi = inclusive_end ? *rank : *rank - 1;
  if (axis < -*rank || axis > hi)
    return Bad(v, StrCat(what, " ", axis, " is out of range for rank ", *rank, " (allowed ", -*rank, "..", hi, ")"));
  return Status::OK();
}

Status AxisAttr(const NodeView& v, const std::string& attr, std::optional<int64_t> rank, bool inclusive_end = false) {
  if (!v.node().HasAttr(attr)) return Status::OK();
  return AxisIn(v, StrCat("attribute '", attr, "'"), v.node().GetInt(attr, 0), rank, inclusive_end);
}

// A list of distinct axes, each in range for `rank`.
Status AxesIn(const NodeView& v, const std::string& what, const std::vector<int64_t>& axes,
              std::optional<int64_t> rank) {
  if (!rank) return Status::OK();
  std::vector<bool> seen(static_cast<size_t>(std::max<int64_t>(*rank, 0)), false);
  for (int64_t a : axes) {
    RETURN_IF_ERROR(AxisIn(v, StrCat(what, " entry"), a, rank));
    const int64_t k = a < 0 ? a + *rank : a;
    if (seen[static_cast<size_t>(k)]) return Bad(v, StrCat(what, " ", IntsText(axes), " names axis ", k, " twice"));
    seen[static_cast<size_t>(k)] = true;
  }
  return Status::OK();
}

// Multidirectional (numpy) broadcasting of known dims.
Status Broadcastable(const NodeView& v, const std::vector<size_t>& inputs) {
  std::vector<Dims> shapes;
  for (size_t i : inputs)
    if (auto s = v.InShape(i)) shapes.push_back(*s);
  size_t rank = 0;
  for (const Dims& s : shapes) rank = std::max(rank, s.size());
  for (size_t k = 0; k < rank; ++k) {
    int64_t size = 1;
    for (const Dims& s : shapes) {
      if (k >= s.size()) continue;
      const int64_t d = s[s.size() - 1 - k];
      if (d < 0 || d == 1) continue;
      if (size != 1 && size != d) {
        std::string all;
        for (const Dims& t : shapes) all += StrCat(all.empty() ? "" : " and ", DimsText(t));
        return Bad(v, StrCat("input shapes ", all, " do not broadcast"));
      }
      size = d;
    }
  }
  return Status::OK();
}

// ---------------------------------------------------------------- sliding windows

// Conv, MaxPool, AveragePool and their gradients: X is input `x`, W (Conv) input `w` or none.
Status CheckWindow(const NodeView& v, std::optional<size_t> x, std::optional<size_t> w, bool pool) {
  const Node& n = v.node();
  RETURN_IF_ERROR(OneOf(v, "auto_pad", {"NOTSET", "SAME_UPPER", "SAME_LOWER", "VALID"}));
  RETURN_IF_ERROR(Flag(v, "ceil_mode"));
  RETURN_IF_ERROR(Flag(v, "count_include_pad"));
  RETURN_IF_ERROR(Flag(v, "storage_order"));
  if (!pool) RETURN_IF_ERROR(IntIn(v, "group", 1, kMaxWindowAttr));
  const std::optional<Dims> xs = x ? v.InShape(*x) : std::nullopt;
  const std::optional<Dims> ws = w ? v.InShape(*w) : std::nullopt;
  // Spatial rank: from kernel_shape, else from X or W.
  std::optional<int64_t> r;
  if (n.HasAttr("kernel_shape")) r = static_cast<int64_t>(n.GetInts("kernel_shape").size());
  else if (ws) r = static_cast<int64_t>(ws->size()) - 2;
  else if (xs) r = static_cast<int64_t>(xs->size()) - 2;
  if (pool && !n.HasAttr("kernel_shape")) return Bad(v, "attribute 'kernel_shape' is required");
  if (r && *r < 1) return Bad(v, StrCat("needs at least one spatial dim, has ", *r));
  struct Attr {
    const char* name;
    int64_t lo;
    int64_t count_per_dim;
  };
  for (const Attr& a : {Attr{"kernel_shape", 1, 1}, Attr{"strides", 1, 1}, Attr{"dilations", 1, 1}, Attr{"pads", 0, 2}}) {
    if (!n.HasAttr(a.name)) continue;
    const std::vector<int64_t> vals = n.GetInts(a.name);
    if (r && static_cast<int64_t>(vals.size()) != a.count_per_dim * *r)
      return Bad(v, StrCat("attribute '", a.name, "' has ", vals.size(), " values ", IntsText(vals), ", needs ",
                           a.count_per_dim * *r, " for ", *r, " spatial dims"));
    for (int64_t x : vals)
      if (x < a.lo || x > kMaxWindowAttr)
        return Bad(v, StrCat("attribute '", a.name, "' ", IntsText(vals), " has ", x, ", must lie in [", a.lo, ", ",
                             kMaxWindowAttr, "]"));
  }
  if (!r) return Status::OK();
  if (xs && static_cast<int64_t>(xs->size()) != *r + 2)
    return Bad(v, StrCat("input X ", DimsText(*xs), " must have rank ", *r + 2, " (N, C and ", *r, " spatial dims)"));
  if (ws) {
    if (static_cast<int64_t>(ws->size()) != *r + 2)
      return Bad(v, StrCat("weight W ", DimsText(*ws), " must have rank ", *r + 2));
    const int64_t group = n.GetInt("group", 1);
    if ((*ws)[0] >= 0 && (*ws)[0] % group != 0)
      return Bad(v, StrCat("weight W ", DimsText(*ws), ": ", (*ws)[0], " output channels do not split into ", group, " groups"));
    if (xs && (*xs)[1] >= 0 && (*ws)[1] >= 0 && (*xs)[1] != (*ws)[1] * group)
      return Bad(v, StrCat("input X ", DimsText(*xs), " has ", (*xs)[1], " channels, weight W ", DimsText(*ws),
                           " with group ", group, " needs ", (*ws)[1] * group));
    if (n.HasAttr("kernel_shape")) {
      const std::vector<int64_t> k = n.GetInts("kernel_shape");
      for (int64_t i = 0; i < *r; ++i)
        if ((*ws)[i + 2] >= 0 && (*ws)[i + 2] != k[i])
          return Bad(v, StrCat("attribute 'kernel_shape' ", IntsText(k), " does not match weight W ", DimsText(*ws)));
    }
  }
  // With explicit pads the window must fit the padded input at least once: otherwise the output is
  // empty (and huge pads made it so silently before). A pool with ceil_mode has one window when the
  // window is longer than the padded input by less than a stride (PyTorch and ONNX agree): it covers
  // the input, as HF EfficientNet's AvgPool2d(hidden_dim, ceil_mode=True) does over a 1x1 map.
  const bool ceil_mode = pool && n.GetInt("ceil_mode", 0) != 0;
  if (xs && n.GetString("auto_pad", "NOTSET") == "NOTSET") {
    std::vector<int64_t> k = n.GetInts("kernel_shape");
    if (k.empty() && ws) k.assign(ws->begin() + 2, ws->end());
    const std::vector<int64_t> s = n.GetInts("strides", std::vector<int64_t>(*r, 1));
    const std::vector<int64_t> d = n.GetInts("dilations", std::vector<int64_t>(*r, 1));
    const std::vector<int64_t> p = n.GetInts("pads", std::vector<int64_t>(2 * *r, 0));
    if (static_cast<int64_t>(k.size()) != *r) return Status::OK();
    for (int64_t i = 0; i < *r; ++i) {
      const int64_t in = (*xs)[i + 2];
      if (in < 0 || k[i] < 0) continue;
      // All terms are at most 2^31, so this arithmetic cannot overflow.
      const int64_t extent = (k[i] - 1) * d[i] + 1, padded = in + p[i] + p[i + *r];
      const int64_t reach = padded - extent + (ceil_mode ? s[i] - 1 : 0);
      if (reach < 0)
        return Bad(v, StrCat("the window (kernel ", k[i], ", dilation ", d[i], ") does not fit spatial dim ", i, " of X ",
                             DimsText(*xs), " padded by ", p[i], "+", p[i + *r],
                             ceil_mode ? StrCat(" within a stride (", s[i], ") of ceil_mode") : std::string()));
      const int64_t out = reach / s[i] + 1;
      if (out > kMaxElements) return Bad(v, StrCat("spatial dim ", i, " of the output would be ", out));
    }
  }
  return Status::OK();
}

// ---------------------------------------------------------------- per-op checks

using Check = std::function<Status(const NodeView&)>;

Status CheckTranspose(const NodeView& v) {
  const Node& n = v.node();
  const std::optional<int64_t> rank = v.InRank(0);
  if (!n.HasAttr("perm")) return Status::OK();
  const std::vector<int64_t> perm = n.GetInts("perm");
  if (rank && static_cast<int64_t>(perm.size()) != *rank)
    return Bad(v, StrCat("attribute 'perm' ", IntsText(perm), " has ", perm.size(), " entries, the input has rank ", *rank));
  std::vector<bool> seen(perm.size(), false);
  for (int64_t p : perm) {
    if (p < 0 || p >= static_cast<int64_t>(perm.size()) || seen[static_cast<size_t>(p)])
      return Bad(v, StrCat("attribute 'perm' ", IntsText(perm), " is not a permutation of 0..", perm.size() - 1));
    seen[static_cast<size_t>(p)] = true;
  }
  return Status::OK();
}

// Slice: starts/ends/axes/steps as inputs (opset 10+, and SliceGrad at `first` = 1) or attributes.
Status CheckSliceLike(const NodeView& v, size_t first, std::optional<int64_t> rank) {
  auto starts = v.IntsAttrOrInput("starts", first);
  auto ends = v.IntsAttrOrInput("ends", first + 1);
  auto axes = v.IntsAttrOrInput("axes", first + 2);
  auto steps = v.ConstInts(first + 3);
  if (starts && ends && starts->size() != ends->size())
    return Bad(v, StrCat("starts ", IntsText(*starts), " and ends ", IntsText(*ends), " differ in length"));
  const std::optional<std::vector<int64_t>>& len_ref = starts ? starts : ends;
  if (len_ref && axes && axes->size() != len_ref->size())
    return Bad(v, StrCat("axes ", IntsText(*axes), " and starts/ends differ in length"));
  if (len_ref && steps && steps->size() != len_ref->size())
    return Bad(v, StrCat("steps ", IntsText(*steps), " and starts/ends differ in length"));
  if (steps)
    for (int64_t s : *steps)
      if (s == 0 || s == std::numeric_limits<int64_t>::min())
        return Bad(v, StrCat("steps ", IntsText(*steps), " holds ", s, "; a step must be non-zero and its negation "
                             "must fit int64"));
  if (axes) RETURN_IF_ERROR(AxesIn(v, "axes", *axes, rank));
  if (!axes && len_ref && rank && static_cast<int64_t>(len_ref->size()) > *rank)
    return Bad(v, StrCat("starts/ends have ", len_ref->size(), " entries for an input of rank ", *rank));
  return Status::OK();
}

Status CheckMatMul(const NodeView& v) {
  auto a = v.InShape(0), b = v.InShape(1);
  if (a && a->empty()) return Bad(v, "input A is a scalar; MatMul needs rank >= 1");
  if (b && b->empty()) return Bad(v, "input B is a scalar; MatMul needs rank >= 1");
  if (!a || !b) return Status::OK();
  const int64_t k_a = a->back(), k_b = b->size() == 1 ? (*b)[0] : (*b)[b->size() - 2];
  if (k_a >= 0 && k_b >= 0 && k_a != k_b)
    return Bad(v, StrCat("inner dimensions differ: A ", DimsText(*a), " has ", k_a, " columns, B ", DimsText(*b), " has ",
                         k_b, " rows"));
  // Batch dims broadcast like elementwise ops.
  if (a->size() > 2 && b->size() > 2) {
    for (size_t k = 2; k < std::min(a->size(), b->size()); ++k) {
      const int64_t x = (*a)[a->size() - 1 - k], y = (*b)[b->size() - 1 - k];
      if (x > 1 && y > 1 && x != y)
        return Bad(v, StrCat("batch dimensions of A ", DimsText(*a), " and B ", DimsText(*b), " do not broadcast"));
    }
  }
  return Status::OK();
}

Status CheckGemm(const NodeView& v) {
  RETURN_IF_ERROR(Flag(v, "transA"));
  RETURN_IF_ERROR(Flag(v, "transB"));
  auto a = v.InShape(0), b = v.InShape(1);
  if (a && a->size() != 2) return Bad(v, StrCat("input A ", DimsText(*a), " must be a matrix"));
  if (b && b->size() != 2) return Bad(v, StrCat("input B ", DimsText(*b), " must be a matrix"));
  if (!a || !b) return Status::OK();
  const bool ta = v.node().GetInt("transA", 0), tb = v.node().GetInt("transB", 0);
  const int64_t m = (*a)[ta ? 1 : 0], ka = (*a)[ta ? 0 : 1], kb = (*b)[tb ? 1 : 0], nn = (*b)[tb ? 0 : 1];
  if (ka >= 0 && kb >= 0 && ka != kb)
    return Bad(v, StrCat("inner dimensions differ: A ", DimsText(*a), (ta ? " (transposed)" : ""), " has ", ka,
                         " columns, B ", DimsText(*b), (tb ? " (transposed)" : ""), " has ", kb, " rows"));
  if (auto c = v.InShape(2)) {
    if (c->size() > 2) return Bad(v, StrCat("input C ", DimsText(*c), " does not broadcast to (M, N)"));
    const Dims mn = {m, nn};
    for (size_t k = 0; k < c->size(); ++k) {
      const int64_t d = (*c)[c->size() - 1 - k], want = mn[1 - k];
      if (d >= 0 && want >= 0 && d != 1 && d != want)
        return Bad(v, StrCat("input C ", DimsText(*c), " does not broadcast to ", DimsText(mn)));
    }
  }
  return Status::OK();
}

Status CheckConcat(const NodeView& v) {
  if (!v.node().HasAttr("axis")) return Bad(v, "attribute 'axis' is required");
  std::optional<Dims> first;
  for (size_t i = 0; i < v.node().num_inputs(); ++i) {
    auto s = v.InShape(i);
    if (!s) continue;
    RETURN_IF_ERROR(AxisAttr(v, "axis", static_cast<int64_t>(s->size())));
    if (!first) {
      first = s;
      continue;
    }
    if (s->size() != first->size())
      return Bad(v, StrCat("inputs ", DimsText(*first), " and ", DimsText(*s), " differ in rank"));
    int64_t axis = v.node().GetInt("axis", 0);
    if (axis < 0) axis += static_cast<int64_t>(s->size());
    for (size_t k = 0; k < s->size(); ++k)
      if (static_cast<int64_t>(k) != axis && (*s)[k] >= 0 && (*first)[k] >= 0 && (*s)[k] != (*first)[k])
        return Bad(v, StrCat("inputs ", DimsText(*first), " and ", DimsText(*s), " differ off the concatenation axis"));
  }
  return Status::OK();
}

Status CheckSplit(const NodeView& v) {
  const auto rank = v.InRank(0);
  RETURN_IF_ERROR(AxisAttr(v, "axis", rank));
  if (v.node().HasAttr("num_outputs") && v.node().GetInt("num_outputs", 1) != static_cast<int64_t>(v.node().num_outputs()))
    return Bad(v, StrCat("attribute 'num_outputs' is ", v.node().GetInt("num_outputs", 1), " but the node has ",
                         v.node().num_outputs(), " outputs"));
  auto split = v.IntsAttrOrInput("split", 1);
  if (!split) return Status::OK();
  if (split->size() != v.node().num_outputs())
    return Bad(v, StrCat("split ", IntsText(*split), " has ", split->size(), " sizes for ", v.node().num_outputs(), " outputs"));
  int64_t total = 0;
  for (int64_t s : *split)
    if (s < 0 || !CheckedAdd(total, s, &total)) return Bad(v, StrCat("split ", IntsText(*split), " holds a negative or overflowing size"));
  auto x = v.InShape(0);
  if (x && rank) {
    int64_t axis = v.node().GetInt("axis", 0);
    if (axis < 0) axis += *rank;
    const int64_t d = (*x)[static_cast<size_t>(axis)];
    if (d >= 0 && d != total)
      return Bad(v, StrCat("split ", IntsText(*split), " sums to ", total, " but axis ", axis, " of ", DimsText(*x), " has ", d));
  }
  return Status::OK();
}

Status CheckReshape(const NodeView& v) {
  RETURN_IF_ERROR(Flag(v, "allowzero"));
  auto shape = v.ConstInts(1);
  if (!shape) return Status::OK();
  int minus_one = 0;
  for (int64_t d : *shape) {
    if (d < -1) return Bad(v, StrCat("shape ", IntsText(*shape), " holds ", d));
    minus_one += d == -1;
  }
  if (minus_one > 1) return Bad(v, StrCat("shape ", IntsText(*shape), " holds -1 more than once"));
  auto x = v.InShape(0);
  if (x && v.node().GetInt("allowzero", 0) == 0)
    for (size_t k = 0; k < shape->size(); ++k)
      if ((*shape)[k] == 0 && k >= x->size())
        return Bad(v, StrCat("shape ", IntsText(*shape), " copies dim ", k, " (0) from an input of rank ", x->size()));
  return Status::OK();
}

Status CheckTile(const NodeView& v) {
  auto repeats = v.ConstInts(1);
  if (!repeats) return Status::OK();
  for (int64_t r : *repeats)
    if (r < 0) return Bad(v, StrCat("repeats ", IntsText(*repeats), " holds a negative count"));
  if (auto rank = v.InRank(0); rank && static_cast<int64_t>(repeats->size()) != *rank)
    return Bad(v, StrCat("repeats ", IntsText(*repeats), " has ", repeats->size(), " entries for an input of rank ", *rank));
  return Status::OK();
}

Status CheckPad(const NodeView& v) {
  RETURN_IF_ERROR(OneOf(v, "mode", {"constant", "reflect", "edge", "wrap"}));
  auto pads = v.IntsAttrOrInput("pads", 1);
  auto x = v.InShape(0);
  if (!pads || !x) return Status::OK();
  std::vector<int64_t> axes;
  if (auto a = v.ConstInts(3)) {
    RETURN_IF_ERROR(AxesIn(v, "axes", *a, static_cast<int64_t>(x->size())));
    for (int64_t k : *a) axes.push_back(k < 0 ? k + static_cast<int64_t>(x->size()) : k);
  } else {
    for (size_t k = 0; k < x->size(); ++k) axes.push_back(static_cast<int64_t>(k));
  }
  if (pads->size() != 2 * axes.size())
    return Bad(v, StrCat("pads ", IntsText(*pads), " has ", pads->size(), " entries, needs ", 2 * axes.size()));
  for (size_t k = 0; k < axes.size(); ++k) {
    const int64_t d = (*x)[static_cast<size_t>(axes[k])], b = (*pads)[k], e = (*pads)[k + axes.size()];
    if (std::abs(b) > kMaxWindowAttr || std::abs(e) > kMaxWindowAttr)
      return Bad(v, StrCat("pads ", IntsText(*pads), " holds a pad beyond ", kMaxWindowAttr));
    if (d >= 0 && d + b + e < 0)
      return Bad(v, StrCat("pads ", IntsText(*pads), " crop more than axis ", axes[k], " of ", DimsText(*x), " holds"));
  }
  return Status::OK();
}

Status CheckSqueezeLike(const NodeView& v, bool unsqueeze) {
  auto axes = v.IntsAttrOrInput("axes", 1);
  auto x = v.InShape(0);
  if (!axes || !x) return Status::OK();
  const int64_t rank = static_cast<int64_t>(x->size()) + (unsqueeze ? static_cast<int64_t>(axes->size()) : 0);
  RETURN_IF_ERROR(AxesIn(v, "axes", *axes, rank));
  if (!unsqueeze)
    for (int64_t a : *axes) {
      const int64_t d = (*x)[static_cast<size_t>(a < 0 ? a + rank : a)];
      if (d >= 0 && d != 1) return Bad(v, StrCat("cannot squeeze axis ", a, " of ", DimsText(*x), ": its size is ", d));
    }
  return Status::OK();
}

Status CheckReduce(const NodeView& v) {
  RETURN_IF_ERROR(Flag(v, "keepdims"));
  RETURN_IF_ERROR(Flag(v, "noop_with_empty_axes"));
  if (auto axes = v.IntsAttrOrInput("axes", 1)) RETURN_IF_ERROR(AxesIn(v, "axes", *axes, v.InRank(0)));
  return Status::OK();
}

// TopK (opset 10+): K one non-negative value no larger than the axis extent, where known.
Status CheckTopK(const NodeView& v) {
  RETURN_IF_ERROR(Flag(v, "largest"));
  RETURN_IF_ERROR(Flag(v, "sorted"));
  RETURN_IF_ERROR(AxisAttr(v, "axis", v.InRank(0)));
  if (!v.in(1)) return Bad(v, "needs its K input (TopK-1's attribute form is not taken; export at opset 10 or later)");
  auto k = v.ConstInts(1);
  if (!k) return Status::OK();
  if (k->size() != 1) return Bad(v, StrCat("K holds ", k->size(), " values, needs one"));
  if ((*k)[0] < 0) return Bad(v, StrCat("K is ", (*k)[0], ", must be >= 0"));
  if (auto x = v.InShape(0); x && !x->empty()) {
    const int64_t rank = static_cast<int64_t>(x->size()), a = v.node().GetInt("axis", -1);
    const int64_t extent = (*x)[static_cast<size_t>(a < 0 ? a + rank : a)];
    if (extent >= 0 && (*k)[0] > extent)
      return Bad(v, StrCat("K ", (*k)[0], " exceeds the extent ", extent, " of axis ", a, " of ", DimsText(*x)));
  }
  return Status::OK();
}

Status CheckGatherND(const NodeView& v) {
  const int64_t b = v.node().GetInt("batch_dims", 0);
  auto data = v.InShape(0), idx = v.InShape(1);
  if (b < 0) return Bad(v, StrCat("attribute 'batch_dims' is ", b));
  if (data && idx) {
    if (b >= static_cast<int64_t>(std::min(data->size(), idx->size())))
      return Bad(v, StrCat("attribute 'batch_dims' ", b, " leaves no dims of data ", DimsText(*data), " or indices ", DimsText(*idx)));
    const int64_t last = idx->back();
    if (last > static_cast<int64_t>(data->size()) - b)
      return Bad(v, StrCat("indices ", DimsText(*idx), " index ", last, " dims of data ", DimsText(*data), " past batch_dims ", b));
  }
  return Status::OK();
}

// Attention's Q, K at inputs `first`, `first` + 1 (AttentionGrad's follow dY).
Status CheckAttention(const NodeView& v, size_t first) {
  RETURN_IF_ERROR(Flag(v, "is_causal"));
  RETURN_IF_ERROR(IntIn(v, "q_num_heads", 0, kMaxWindowAttr));
  RETURN_IF_ERROR(IntIn(v, "kv_num_heads", 0, kMaxWindowAttr));
  RETURN_IF_ERROR(IntIn(v, "qk_matmul_output_mode", 0, 3));
  RETURN_IF_ERROR(FloatIn(v, "softcap", 0, INFINITY));
  const int64_t qh = v.node().GetInt("q_num_heads", 0), kvh = v.node().GetInt("kv_num_heads", 0);
  if (qh > 0 && kvh > 0 && qh % kvh != 0)
    return Bad(v, StrCat("q_num_heads ", qh, " is not a multiple of kv_num_heads ", kvh));
  auto q = v.InShape(first), k = v.InShape(first + 1);
  if (q && q->size() == 3 && (qh == 0 || kvh == 0))
    return Bad(v, "3-D inputs need attributes 'q_num_heads' and 'kv_num_heads'");
  if (q && q->size() == 3 && q->back() >= 0 && q->back() % qh != 0)
    return Bad(v, StrCat("query ", DimsText(*q), " does not split into ", qh, " heads"));
  if (k && k->size() == 3 && kvh > 0 && k->back() >= 0 && k->back() % kvh != 0)
    return Bad(v, StrCat("key ", DimsText(*k), " does not split into ", kvh, " heads"));
  if (q && q->size() != 3 && q->size() != 4) return Bad(v, StrCat("query ", DimsText(*q), " must have rank 3 or 4"));
  return Status::OK();
}

Status CheckRotary(const NodeView& v) {
  RETURN_IF_ERROR(Flag(v, "interleaved"));
  RETURN_IF_ERROR(IntIn(v, "num_heads", 0, kMaxWindowAttr));
  RETURN_IF_ERROR(IntIn(v, "rotary_embedding_dim", 0, kMaxWindowAttr));
  const int64_t d = v.node().GetInt("rotary_embedding_dim", 0);
  if (d % 2) return Bad(v, StrCat("attribute 'rotary_embedding_dim' ", d, " must be even"));
  auto x = v.InShape(0);
  if (x && x->size() == 3 && v.node().GetInt("num_heads", 0) == 0)
    return Bad(v, "a 3-D input needs attribute 'num_heads'");
  if (x && x->size() != 3 && x->size() != 4) return Bad(v, StrCat("input ", DimsText(*x), " must have rank 3 or 4"));
  return Status::OK();
}

Status CheckEinsum(const NodeView& v) {
  std::vector<std::vector<int64_t>> shapes;
  for (size_t i = 0; i < v.node().num_inputs(); ++i) {
    auto s = v.InShape(i);
    if (!s || std::any_of(s->begin(), s->end(), [](int64_t d) { return d < 0; })) return Status::OK();
    shapes.push_back(*s);
  }
  Status s = ParseEinsum(v.node().GetString("equation", ""), shapes).status();
  return s.ok() ? s : Bad(v, s.message());
}

Status CheckCast(const NodeView& v) {
  if (!v.node().HasAttr("to")) return Status::OK();
  const int64_t to = v.node().GetInt("to", 0);
  if (to < 0 || to > std::numeric_limits<int>::max())
    return Bad(v, StrCat("attribute 'to' is ", to, ", not an element type"));
  Status s = DTypeFromOnnx(static_cast<int>(to)).status();
  return s.ok() ? s : Bad(v, StrCat("attribute 'to': ", s.message()));
}

// Ops whose attribute `axis` indexes input `input`'s dims (or with `output`, the first output's).
Check AxisOf(size_t input, bool inclusive_end = false, bool of_output = false) {
  return [=](const NodeView& v) {
    return AxisAttr(v, "axis", of_output ? (v.OutShape(0) ? std::optional<int64_t>(v.OutShape(0)->size()) : std::nullopt)
                                         : v.InRank(input),
                    inclusive_end);
  };
}

Check All(std::vector<Check> checks) {
  return [checks = std::move(checks)](const NodeView& v) {
    for (const Check& c : checks) RETURN_IF_ERROR(c(v));
    return Status::OK();
  };
}

Check Flags(std::vector<std::string> attrs) {
  return [attrs = std::move(attrs)](const NodeView& v) {
    for (const std::string& a : attrs) RETURN_IF_ERROR(Flag(v, a));
    return Status::OK();
  };
}

Check Enum(std::string attr, std::initializer_list<const char*> allowed) {
  std::vector<const char*> list(allowed);
  return [attr, list](const NodeView& v) {
    if (!v.node().HasAttr(attr)) return Status::OK();
    const std::string s = v.node().GetString(attr, "");
    for (const char* a : list)
      if (s == a) return Status::OK();
    std::string names;
    for (const char* a : list) names += StrCat(names.empty() ? "" : ", ", "'", a, "'");
    return Bad(v, StrCat("attribute '", attr, "' is '", s, "', must be one of ", names));
  };
}

Check BroadcastAll() {
  return [](const NodeView& v) {
    std::vector<size_t> all;
    for (size_t i = 0; i < v.node().num_inputs(); ++i) all.push_back(i);
    return Broadcastable(v, all);
  };
}

Check Window(std::optional<size_t> x, std::optional<size_t> w, bool pool) {
  return [=](const NodeView& v) { return CheckWindow(v, x, w, pool); };
}

// ConvTranspose and its gradient: X is input `x`, W:(C, M/group, k...) input `x + 1`. The output
// size (pads, output_padding, output_shape) is checked against Y by the kernels'
// conv::ReadConvTranspose, which knows the spec's padding rules.
Status CheckConvTranspose(const NodeView& v, size_t x) {
  const Node& n = v.node();
  RETURN_IF_ERROR(OneOf(v, "auto_pad", {"NOTSET", "SAME_UPPER", "SAME_LOWER", "VALID"}));
  RETURN_IF_ERROR(IntIn(v, "group", 1, kMaxWindowAttr));
  const std::optional<Dims> xs = v.InShape(x), ws = v.InShape(x + 1);
  std::optional<int64_t> r;
  if (n.HasAttr("kernel_shape")) r = static_cast<int64_t>(n.GetInts("kernel_shape").size());
  else if (ws) r = static_cast<int64_t>(ws->size()) - 2;
  else if (xs) r = static_cast<int64_t>(xs->size()) - 2;
  if (r && *r < 1) return Bad(v, StrCat("needs at least one spatial dim, has ", *r));
  struct Attr {
    const char* name;
    int64_t lo;
    int64_t count_per_dim;
  };
  for (const Attr& a : {Attr{"kernel_shape", 1, 1}, Attr{"strides", 1, 1}, Attr{"dilations", 1, 1}, Attr{"pads", 0, 2},
                        Attr{"output_padding", 0, 1}, Attr{"output_shape", 0, 1}}) {
    if (!n.HasAttr(a.name)) continue;
    const std::vector<int64_t> vals = n.GetInts(a.name);
    if (r && static_cast<int64_t>(vals.size()) != a.count_per_dim * *r)
      return Bad(v, StrCat("attribute '", a.name, "' has ", vals.size(), " values ", IntsText(vals), ", needs ",
                           a.count_per_dim * *r, " for ", *r, " spatial dims"));
    for (int64_t val : vals)
      if (val < a.lo || val > kMaxWindowAttr)
        return Bad(v, StrCat("attribute '", a.name, "' ", IntsText(vals), " has ", val, ", must lie in [", a.lo, ", ",
                             kMaxWindowAttr, "]"));
  }
  if (!r) return Status::OK();
  if (xs && static_cast<int64_t>(xs->size()) != *r + 2)
    return Bad(v, StrCat("input X ", DimsText(*xs), " must have rank ", *r + 2, " (N, C and ", *r, " spatial dims)"));
  if (!ws) return Status::OK();
  if (static_cast<int64_t>(ws->size()) != *r + 2)
    return Bad(v, StrCat("weight W ", DimsText(*ws), " must have rank ", *r + 2));
  const int64_t group = n.GetInt("group", 1);
  if ((*ws)[0] >= 0 && (*ws)[0] % group != 0)
    return Bad(v, StrCat("weight W ", DimsText(*ws), ": ", (*ws)[0], " input channels do not split into ", group,
                         " groups"));
  if (xs && (*xs)[1] >= 0 && (*ws)[0] >= 0 && (*xs)[1] != (*ws)[0])
    return Bad(v, StrCat("input X ", DimsText(*xs), " has ", (*xs)[1], " channels, weight W ", DimsText(*ws),
                         " (C, M/group, k...) needs ", (*ws)[0]));
  if (n.HasAttr("kernel_shape")) {
    const std::vector<int64_t> k = n.GetInts("kernel_shape");
    for (int64_t i = 0; i < *r; ++i)
      if ((*ws)[i + 2] >= 0 && (*ws)[i + 2] != k[i])
        return Bad(v, StrCat("attribute 'kernel_shape' ", IntsText(k), " does not match weight W ", DimsText(*ws)));
  }
  return Status::OK();
}

// A Range of constants: delta not 0, and at most kMaxConstantRange elements. ONNX's shape
// inference materialises a constant Range's values for data propagation (a fuzzed
// Range(0, 2.5e14, 1) took gigabytes); ranges in training graphs are positions and sequence
// indices, far shorter.
constexpr double kMaxConstantRange = double{1 << 22};
Status CheckRange(const NodeView& v) {
  std::optional<double> bounds[3];
  for (size_t i = 0; i < 3; ++i) {
    if (auto ints = v.ConstInts(i); ints && ints->size() == 1) bounds[i] = static_cast<double>((*ints)[0]);
    else if (auto fl = v.ConstFloats(i); fl && fl->size() == 1) bounds[i] = (*fl)[0];
  }
  if (bounds[2] && *bounds[2] == 0) return Bad(v, "delta is 0");
  if (!bounds[0] || !bounds[1] || !bounds[2]) return Status::OK();
  const double count = std::ceil((*bounds[1] - *bounds[0]) / *bounds[2]);
  if (!(count <= kMaxConstantRange))  // NaN included
    return Bad(v, StrCat("Range(", *bounds[0], ", ", *bounds[1], ", ", *bounds[2], ") has ", count,
                         " elements; dscompile takes constant ranges of at most ", static_cast<int64_t>(kMaxConstantRange)));
  return Status::OK();
}

Check FloatRange(std::string attr, double lo, double hi, bool hi_open = false) {
  return [=](const NodeView& v) { return FloatIn(v, attr, lo, hi, hi_open); };
}

// Scale, B, mean and var hold one value per channel of X:(N, C, ...).
Status CheckBatchNormParams(const NodeView& v) {
  auto x = v.InShape(0);
  if (x && x->size() < 2) return Bad(v, StrCat("input X ", DimsText(*x), " needs rank >= 2 (N, C, ...)"));
  const int64_t c = x ? (*x)[1] : -1;
  for (size_t i = 1; i < 5; ++i) {
    auto p = v.InShape(i);
    if (!p) continue;
    if (p->size() != 1 || (c >= 0 && (*p)[0] >= 0 && (*p)[0] != c))
      return Bad(v, StrCat("input ", i, " ", DimsText(*p), " must hold one value per channel (C = ", c < 0 ? "?" : std::to_string(c), ")"));
  }
  return Status::OK();
}

// Dropout's ratio input (opset 12+), and DropoutGrad's: the gradient divides by 1 - ratio.
Check RatioInput(size_t input) {
  return [input](const NodeView& v) {
    auto r = v.ConstFloats(input);
    if (!r) return Status::OK();
    for (double x : *r)
      if (!(x >= 0 && x < 1)) return Bad(v, StrCat("ratio ", x, " must lie in [0, 1)"));
    return Status::OK();
  };
}

// Resize (and ResizeGrad, whose X is its output): the modes dscompile implements, axes, and the
// scales/sizes counts when they are constants already. Whether they are constants at all is known
// only after fold-constants: the kernels refuse a computed one (kernels/common/resize_node.h).
Status CheckResize(const NodeView& v, bool grad) {
  const Node& n = v.node();
  RETURN_IF_ERROR(OneOf(v, "mode", {"nearest", "linear", "cubic"}));
  if (n.GetString("coordinate_transformation_mode", "") == "tf_crop_and_resize")
    return Bad(v, "coordinate_transformation_mode 'tf_crop_and_resize' (crops to roi) is not supported");
  RETURN_IF_ERROR(OneOf(v, "coordinate_transformation_mode",
                        {"half_pixel", "pytorch_half_pixel", "align_corners", "asymmetric", "half_pixel_symmetric"}));
  RETURN_IF_ERROR(OneOf(v, "nearest_mode", {"round_prefer_floor", "round_prefer_ceil", "floor", "ceil"}));
  RETURN_IF_ERROR(OneOf(v, "keep_aspect_ratio_policy", {"stretch", "not_larger", "not_smaller"}));
  RETURN_IF_ERROR(Flag(v, "exclude_outside"));
  RETURN_IF_ERROR(Flag(v, "antialias"));
  if (n.GetInt("antialias", 0) != 0) return Bad(v, "antialias = 1 is not supported");
  auto x = grad ? v.OutShape(0) : v.InShape(0);
  const std::optional<int64_t> rank = x ? std::optional<int64_t>(static_cast<int64_t>(x->size())) : std::nullopt;
  if (n.HasAttr("axes")) RETURN_IF_ERROR(AxesIn(v, "attribute 'axes'", n.GetInts("axes"), rank));
  const std::optional<int64_t> count =
      n.HasAttr("axes") ? std::optional<int64_t>(static_cast<int64_t>(n.GetInts("axes").size())) : rank;
  auto scales = v.ConstFloats(2);
  auto sizes = v.ConstInts(3);
  const bool has_scales = scales && !scales->empty(), has_sizes = sizes && !sizes->empty();
  if (has_scales && has_sizes) return Bad(v, "both scales and sizes are given; Resize takes exactly one");
  if (has_scales && count && static_cast<int64_t>(scales->size()) != *count)
    return Bad(v, StrCat("scales has ", scales->size(), " values, needs ", *count, " (one per resized axis)"));
  if (has_sizes && count && static_cast<int64_t>(sizes->size()) != *count)
    return Bad(v, StrCat("sizes has ", sizes->size(), " values, needs ", *count, " (one per resized axis)"));
  if (has_scales)
    for (double s : *scales)
      if (!(s > 0) || !std::isfinite(s)) return Bad(v, StrCat("scale ", s, " must be positive and finite"));
  if (has_sizes)
    for (int64_t s : *sizes)
      if (s < 0 || s > kMaxElements) return Bad(v, StrCat("size ", s, " is out of range"));
  return Status::OK();
}

const std::unordered_map<std::string, Check>& OnnxChecks() {
  static const auto* table = new std::unordered_map<std::string, Check>{
      {"Conv", Window(0, 1, false)},
      {"ConvTranspose", [](const NodeView& v) { return CheckConvTranspose(v, 0); }},
      {"MaxPool", Window(0, std::nullopt, true)},
      {"AveragePool", Window(0, std::nullopt, true)},
      {"Transpose", CheckTranspose},
      {"Slice", [](const NodeView& v) { return CheckSliceLike(v, 1, v.InRank(0)); }},
      {"MatMul", CheckMatMul},
      {"Gemm", CheckGemm},
      {"Concat", CheckConcat},
      {"Split", CheckSplit},
      {"Reshape", CheckReshape},
      {"Tile", CheckTile},
      {"Pad", CheckPad},
      {"Squeeze", [](const NodeView& v) { return CheckSqueezeLike(v, false); }},
      {"Unsqueeze", [](const NodeView& v) { return CheckSqueezeLike(v, true); }},
      {"ReduceMean", CheckReduce}, {"ReduceSum", CheckReduce}, {"ReduceMax", CheckReduce},
      {"ReduceMin", CheckReduce}, {"ReduceProd", CheckReduce},
      {"TopK", CheckTopK},
      {"ArgMax", All({AxisOf(0), Flags({"keepdims", "select_last_index"})})},
      {"ArgMin", All({AxisOf(0), Flags({"keepdims", "select_last_index"})})},
      {"Softmax", AxisOf(0)}, {"LogSoftmax", AxisOf(0)}, {"Flatten", AxisOf(0, /*inclusive_end=*/true)},
      {"Gather", AxisOf(0)},
      {"GatherElements", All({AxisOf(0), [](const NodeView& v) {
         auto d = v.InRank(0), i = v.InRank(1);
         if (d && i && *d != *i) return Bad(v, StrCat("data and indices differ in rank (", *d, " and ", *i, ")"));
         return Status::OK();
       }})},
      {"ScatterElements", All({AxisOf(0), Enum("reduction", {"none", "add", "mul", "max", "min"})})},
      {"ScatterND", Enum("reduction", {"none", "add", "mul", "max", "min"})},
      {"GatherND", CheckGatherND},
      {"LayerNormalization", All({AxisOf(0), FloatRange("epsilon", 0, INFINITY)})},
      {"RMSNormalization", All({AxisOf(0), FloatRange("epsilon", 0, INFINITY)})},
      {"BatchNormalization", All({Flags({"training_mode"}), FloatRange("epsilon", 0, INFINITY),
                                  FloatRange("momentum", 0, 1), CheckBatchNormParams})},
      {"CumSum", All({Flags({"exclusive", "reverse"}), [](const NodeView& v) {
         auto a = v.ConstInts(1);
         if (a && a->size() != 1) return Bad(v, StrCat("axis input holds ", a->size(), " values, needs one"));
         return a ? AxisIn(v, "axis", (*a)[0], v.InRank(0)) : Status::OK();
       }})},
      {"Trilu", Flags({"upper"})},
      {"Resize", [](const NodeView& v) { return CheckResize(v, false); }},
      {"Dropout", All({FloatRange("ratio", 0, 1, /*hi_open=*/true), RatioInput(1)})},
      {"Gelu", Enum("approximate", {"none", "tanh"})},
      // Opset 16's mode names and opset 20's; X of rank 4 only (opset 20 allows N-D).
      {"GridSample", All({Enum("mode", {"bilinear", "nearest", "bicubic", "linear", "cubic"}),
                          Enum("padding_mode", {"zeros", "border", "reflection"}), Flags({"align_corners"}),
                          [](const NodeView& v) {
                            auto r = v.InRank(0);
                            if (r && *r != 4)
                              return Bad(v, StrCat("X has rank ", *r, "; dscompile's GridSample takes 4-D X (N, C, H, W) only"));
                            return Status::OK();
                          }})},
      {"Celu", [](const NodeView& v) {
         const float alpha = v.node().GetFloat("alpha", 1.0f);
         if (alpha == 0.0f || !std::isfinite(alpha))
           return Bad(v, StrCat("alpha = ", alpha, " must be non-zero and finite (Celu divides by it)"));
         return Status::OK();
       }},
      {"SoftmaxCrossEntropyLoss", Enum("reduction", {"none", "mean", "sum"})},
      {"NegativeLogLikelihoodLoss", Enum("reduction", {"none", "mean", "sum"})},
      {"Attention", [](const NodeView& v) { return CheckAttention(v, 0); }},
      {"RotaryEmbedding", CheckRotary},
      {"Einsum", CheckEinsum},
      {"Cast", CheckCast},
      {"Mod", Flags({"fmod"})},
      {"Add", BroadcastAll()}, {"Sub", BroadcastAll()}, {"Mul", BroadcastAll()}, {"Div", BroadcastAll()},
      {"Pow", BroadcastAll()}, {"Equal", BroadcastAll()}, {"Less", BroadcastAll()}, {"Greater", BroadcastAll()},
      {"LessOrEqual", BroadcastAll()}, {"GreaterOrEqual", BroadcastAll()}, {"And", BroadcastAll()},
      {"Or", BroadcastAll()}, {"Xor", BroadcastAll()}, {"Where", BroadcastAll()}, {"Max", BroadcastAll()},
      {"Min", BroadcastAll()},
      {"ConstantOfShape", [](const NodeView& v) {
         auto shape = v.ConstInts(0);
         if (!shape) return Status::OK();
         Status s = NumElements(*shape).status();
         if (s.ok() && *NumElements(*shape) > kMaxElements) s = OutOfRange("more than ", kMaxElements, " elements");
         return s.ok() ? s : Bad(v, StrCat("shape ", IntsText(*shape), ": ", s.message()));
       }},
      {"Range", CheckRange},
  };
  return *table;
}

// 0/1 Adam's ops (ir/dsc_ops.h): the schedule's attributes are all given (a default would be a
// different schedule), last_var_step >= 2 and the counts >= 1.
Status CheckZoadamSchedule(const NodeView& v) {
  constexpr int64_t kMax = std::numeric_limits<int64_t>::max();
  for (const char* attr : {"last_var_step", "var_update_scaler", "local_step_scaler", "local_step_clipper"}) {
    if (!v.node().HasAttr(attr)) return Bad(v, StrCat("needs attribute '", attr, "'"));
    RETURN_IF_ERROR(IntIn(v, attr, std::string(attr) == "last_var_step" ? 2 : 1, kMax));
  }
  return IntIn(v, "world", 1, std::numeric_limits<int32_t>::max());
}

// OptimStep: a known algorithm (ir/optim_algorithms.h), its flags 0/1, and exactly its k states
// between grad and lr: (param, grad, state_1..state_k, lr, step, grad_scale[, skip][, beta1_override]
// [, param_copy][, mu_product]); beta1_override only for an algorithm whose beta1 may change
// between steps, mu_product (a float scalar) exactly when NAdam has beta1_override.
Status CheckOptimStep(const NodeView& v) {
  const Node& n = v.node();
  const std::string name = n.GetString("algorithm", "");
  const OptimAlgorithmInfo* a = FindOptimAlgorithm(name);
  if (!a) {
    std::string names;
    for (const OptimAlgorithmInfo& x : OptimAlgorithms()) names += StrCat(names.empty() ? "" : ", ", "'", x.name, "'");
    return Bad(v, StrCat("attribute 'algorithm' is '", name, "', must be one of ", names));
  }
  RETURN_IF_ERROR(Flag(v, "shard"));
  RETURN_IF_ERROR(Flag(v, "copy_shard"));
  for (const char* f : a->flags) RETURN_IF_ERROR(Flag(v, f));
  RETURN_IF_ERROR(IntIn(v, "world", 1, std::numeric_limits<int32_t>::max()));
  const size_t k = OptimStateSuffixesOf(n).size();
  if (n.num_inputs() < k + 5 || n.num_inputs() > k + 9)
    return Bad(v, StrCat("has ", n.num_inputs(), " inputs; algorithm '", name, "' with these attributes takes ", k + 5,
                         " (param, grad, ", k, " states, lr, step, grad_scale), ", k + 6, " with skip, ", k + 7,
                         " with beta1_override, ", k + 8, " with param_copy or ", k + 9, " with mu_product"));
  for (size_t i = 0; i < k + 5; ++i)
    if (!n.input(i)) return Bad(v, StrCat("required input ", i, " is missing"));
  const bool beta1 = n.num_inputs() >= k + 7 && n.input(k + 6);
  if (beta1 && !OptimTakesBeta1Override(a->id))
    return Bad(v, StrCat("input ", k + 6, " (beta1_override) is not taken by algorithm '", name, "'"));
  const Value* mu_product = n.num_inputs() >= k + 9 ? n.input(k + 8) : nullptr;
  if (OptimTakesMuProduct(a->id, beta1) != (mu_product != nullptr))
    return Bad(v, StrCat("input ", k + 8, " (mu_product) is ",
                         mu_product ? StrCat("given, but algorithm '", name, "' takes it only with beta1_override")
                                    : "required by 'nadam' with beta1_override (the product of every step's beta1)"));
  if (mu_product && (mu_product->type.dtype != DType::kFloat32 || !mu_product->type.shape || !mu_product->type.shape->empty()))
    return Bad(v, StrCat("input ", k + 8, " (mu_product) must be a float scalar"));
  return Status::OK();
}

const std::unordered_map<std::string, Check>& DscChecks() {
  static const auto* table = new std::unordered_map<std::string, Check>{
      {ops::kConvGrad, Window(1, 2, false)},
      {ops::kConvTransposeGrad, [](const NodeView& v) { return CheckConvTranspose(v, 1); }},
      {ops::kMaxPoolGrad, Window(1, std::nullopt, true)},
      // AveragePoolGrad has no X input: its attributes are checked, its shapes by its output's type.
      {ops::kAveragePoolGrad, Window(std::nullopt, std::nullopt, true)},
      {ops::kResizeGrad, [](const NodeView& v) { return CheckResize(v, true); }},
      {ops::kSoftmaxGrad, AxisOf(1)},
      {ops::kLogSoftmaxGrad, AxisOf(1)},
      {ops::kLayerNormalizationGrad, AxisOf(1)},
      {ops::kRMSNormalizationGrad, AxisOf(1)},
      {ops::kGatherGrad, AxisOf(0, false, /*of_output=*/true)},
      {ops::kGatherElementsGrad, AxisOf(0, false, /*of_output=*/true)},
      {ops::kSliceGrad, [](const NodeView& v) {
         auto out = v.OutShape(0);
         return CheckSliceLike(v, 1, out ? std::optional<int64_t>(out->size()) : std::nullopt);
       }},
      {ops::kGeluGrad, Enum("approximate", {"none", "tanh"})},
      {ops::kGelu, Enum("approximate", {"none", "tanh"})},
      {ops::kDropoutGrad, RatioInput(2)},
      {ops::kSoftmaxCrossEntropyLossGrad, Enum("reduction", {"none", "mean", "sum"})},
      {ops::kNegativeLogLikelihoodLossGrad, Enum("reduction", {"none", "mean", "sum"})},
      {ops::kAttentionGrad, [](const NodeView& v) { return CheckAttention(v, 1); }},
      {ops::kAttention, [](const NodeView& v) { return CheckAttention(v, 0); }},
      {ops::kFusedMatMul, Flags({"transA", "transB"})},
      {ops::kAllReduce, All({Enum("op", {"avg", "sum"}), [](const NodeView& v) {
         RETURN_IF_ERROR(IntIn(v, "var_update_scaler", 0, std::numeric_limits<int64_t>::max()));
         RETURN_IF_ERROR(IntIn(v, "step_offset", 0, 1));
         RETURN_IF_ERROR(IntIn(v, "when_retired", 0, 1));
         return IntIn(v, "until_step", 0, std::numeric_limits<int64_t>::max());
       }})},
      {ops::kReduceScatter, Enum("op", {"avg", "sum"})},
      {ops::kAllReduceStart, All({Enum("op", {"avg", "sum"}), [](const NodeView& v) {
         RETURN_IF_ERROR(IntIn(v, "var_update_scaler", 0, std::numeric_limits<int64_t>::max()));
         RETURN_IF_ERROR(IntIn(v, "step_offset", 0, 1));
         return IntIn(v, "until_step", 0, std::numeric_limits<int64_t>::max());
       }})},
      {ops::kReduceScatterStart, Enum("op", {"avg", "sum"})},
      {ops::kCollectiveWait, Enum("kind", {"AllReduce", "ReduceScatter", "AllGather", "AllGatherInPlace"})},
      {ops::kAdamStep, All({Flags({"shard", "adam_w_mode", "bias_correction", "copy_shard"}), [](const NodeView& v) {
         return IntIn(v, "world", 1, std::numeric_limits<int32_t>::max());
       }})},
      {ops::kSGDStep, All({Flags({"shard", "nesterov", "copy_shard"}), [](const NodeView& v) {
         return IntIn(v, "world", 1, std::numeric_limits<int32_t>::max());
       }})},
      {ops::kOptimStep, CheckOptimStep},
      {ops::kLambMoments, All({Flags({"shard", "eps_inside_sqrt"}), [](const NodeView& v) {
         RETURN_IF_ERROR(IntIn(v, "chunk_of", 0, std::numeric_limits<int64_t>::max()));
         return IntIn(v, "world", 1, std::numeric_limits<int32_t>::max());
       }})},
      {ops::kLambApply, All({Flags({"shard", "eps_inside_sqrt", "bias_correction", "copy_shard"}), [](const NodeView& v) {
         RETURN_IF_ERROR(IntIn(v, "slot", 0, std::numeric_limits<int32_t>::max()));
         return IntIn(v, "world", 1, std::numeric_limits<int32_t>::max());
       }})},
      {ops::kMuonMomentum, All({Flags({"shard"}), [](const NodeView& v) {
         return IntIn(v, "world", 1, std::numeric_limits<int32_t>::max());
       }})},
      {ops::kMuonApply, All({Flags({"shard"}), Enum("ns_method", {"standard", "gram"}), [](const NodeView& v) {
         RETURN_IF_ERROR(IntIn(v, "ns_steps", 1, 1000));
         RETURN_IF_ERROR(IntIn(v, "chunk_of", 0, std::numeric_limits<int64_t>::max()));
         return IntIn(v, "world", 1, std::numeric_limits<int32_t>::max());
       }})},
      {ops::kOnebitMomentum, [](const NodeView& v) { return IntIn(v, "freeze_step", 2, std::numeric_limits<int64_t>::max()); }},
      {ops::kOnebitAdamStep, [](const NodeView& v) { return IntIn(v, "freeze_step", 2, std::numeric_limits<int64_t>::max()); }},
      {ops::kZoadamStep, CheckZoadamSchedule},
      {ops::kZoadamPhase, CheckZoadamSchedule},
      {ops::kZoadamApply, CheckZoadamSchedule},
      {ops::kOnebitLambSnapshot, [](const NodeView& v) { return IntIn(v, "freeze_step", 2, std::numeric_limits<int64_t>::max()); }},
      {ops::kOnebitLambMomentum, [](const NodeView& v) {
         RETURN_IF_ERROR(IntIn(v, "slot", 0, std::numeric_limits<int32_t>::max()));
         return IntIn(v, "freeze_step", 2, std::numeric_limits<int64_t>::max());
       }},
      {ops::kOnebitLambStep, [](const NodeView& v) {
         // fresh_step 0: DeepSpeed never copies exp_avg_sq (its freeze_step is no step it counts).
         RETURN_IF_ERROR(IntIn(v, "fresh_step", 0, std::numeric_limits<int64_t>::max()));
         return IntIn(v, "freeze_step", 2, std::numeric_limits<int64_t>::max());
       }},
      {ops::kCompressedAllReduce, [](const NodeView& v) {
         RETURN_IF_ERROR(IntIn(v, "freeze_step", 2, std::numeric_limits<int64_t>::max()));
         return IntIn(v, "world", 1, std::numeric_limits<int32_t>::max());
       }},
      {ops::kAssign, All({Flags({"shard"}), [](const NodeView& v) {
         return IntIn(v, "world", 1, std::numeric_limits<int32_t>::max());
       }})},
  };
  return *table;
}

// What ONNX's schema gives for its ops, for ours (ir/dsc_ops.h): input and output counts and the
// inputs that must be present; kernels index inputs by position.
struct Arity {
  int min_in, max_in, min_out, max_out;
  std::vector<int> required;
};

const std::unordered_map<std::string, Arity>& DscArity() {
  static const auto* table = [] {
    auto* t = new std::unordered_map<std::string, Arity>;
    for (const char* op : {ops::kReluGrad, ops::kLeakyReluGrad, ops::kSigmoidGrad, ops::kTanhGrad, ops::kSoftmaxGrad,
                           ops::kLogSoftmaxGrad, ops::kGeluGrad, ops::kMishGrad, ops::kHardSwishGrad,
                           ops::kHardSigmoidGrad, ops::kSoftplusGrad, ops::kEluGrad, ops::kCeluGrad, ops::kSeluGrad, ops::kSoftsignGrad,
                           ops::kMaxPoolGrad, ops::kGatherGrad, ops::kGatherElementsGrad, ops::kGatherNDGrad})
      (*t)[op] = Arity{2, 2, 1, 1, {0, 1}};
    (*t)[ops::kLayerNormalizationGrad] = Arity{3, 3, 1, 3, {0, 1, 2}};
    (*t)[ops::kBatchNormalizationGrad] = Arity{3, 3, 1, 3, {0, 1, 2}};
    (*t)[ops::kRMSNormalizationGrad] = Arity{3, 3, 1, 2, {0, 1, 2}};
    (*t)[ops::kConvGrad] = Arity{3, 3, 1, 3, {0, 1, 2}};
    (*t)[ops::kConvTransposeGrad] = Arity{3, 3, 1, 3, {0, 1, 2}};
    (*t)[ops::kAveragePoolGrad] = Arity{1, 1, 1, 1, {0}};
    (*t)[ops::kResizeGrad] = Arity{3, 4, 1, 1, {0}};  // Resize's inputs after X: roi, scales[, sizes]
    (*t)[ops::kGridSampleGrad] = Arity{3, 3, 1, 2, {0, 1, 2}};  // (dY, X, Grid) -> dX[, dGrid]
    (*t)[ops::kGelu] = Arity{1, 1, 1, 1, {0}};
    (*t)[ops::kStopGradient] = Arity{1, 1, 1, 1, {0}};
    (*t)[ops::kSliceGrad] = Arity{3, 5, 1, 1, {0, 1, 2}};
    (*t)[ops::kSoftmaxCrossEntropyLossGrad] = Arity{3, 4, 1, 1, {0, 1, 2}};
    (*t)[ops::kNegativeLogLikelihoodLossGrad] = Arity{3, 4, 1, 1, {0, 1, 2}};
    (*t)[ops::kAttentionGrad] = Arity{4, 8, 3, 4, {0, 1, 2, 3}};
    (*t)[ops::kAttention] = Arity{3, 7, 1, 4, {0, 1, 2}};  // ONNX Attention's (opset 23)
    (*t)[ops::kFusedMatMul] = Arity{2, 2, 1, 1, {0, 1}};
    (*t)[ops::kSumSquares] = Arity{1, std::numeric_limits<int>::max(), 1, 1, {}};
    (*t)[ops::kClipScale] = Arity{1, 1, 1, 1, {0}};
    (*t)[ops::kAccumulate] = Arity{2, 2, 0, 0, {0, 1}};
    (*t)[ops::kZeroFill] = Arity{1, 1, 0, 0, {0}};
    (*t)[ops::kAssign] = Arity{2, 2, 0, 0, {0, 1}};
    // A trailing skip input (mixed precision's overflow verdict) is optional on both updates, and
    // after it the fuse pass's param_copy.
    (*t)[ops::kAdamStep] = Arity{7, 10, 0, 0, {0, 1, 2, 3, 4, 5, 6}};
    (*t)[ops::kSGDStep] = Arity{6, 8, 0, 0, {0, 1, 3, 4, 5}};  // the momentum buffer may be omitted
    // OptimStep's state count depends on its algorithm; CheckOptimStep checks the exact count.
    (*t)[ops::kOptimStep] = Arity{6, 9 + kMaxOptimStates, 0, 0, {0, 1}};
    // Lamb's and OptimStep's optional beta1_override follows skip (OneCycle's cycled momentum).
    (*t)[ops::kLambMoments] = Arity{5, 7, 1, 1, {0, 1, 2, 3, 4}};
    (*t)[ops::kLambApply] = Arity{6, 9, 0, 0, {0, 1, 2, 3, 4, 5}};
    (*t)[ops::kMuonMomentum] = Arity{4, 5, 1, 1, {0, 1, 2, 3}};
    (*t)[ops::kMuonApply] = Arity{3, 4, 0, 0, {0, 1, 2}};
    (*t)[ops::kOnebitMomentum] = Arity{5, 6, 0, 0, {0, 1, 2, 3, 4}};
    (*t)[ops::kOnebitAdamStep] = Arity{7, 8, 0, 0, {0, 1, 2, 3, 4, 5, 6}};
    (*t)[ops::kZoadamStep] = Arity{9, 10, 0, 0, {0, 1, 2, 3, 4, 5, 6, 7, 8}};
    (*t)[ops::kZoadamPhase] = Arity{3, 4, 1, 1, {0, 1, 2}};
    (*t)[ops::kZoadamApply] = Arity{7, 8, 0, 0, {0, 1, 2, 3, 4, 5, 6}};
    (*t)[ops::kOnebitLambSnapshot] = Arity{3, 4, 2, 2, {0, 1, 2}};
    (*t)[ops::kOnebitLambMomentum] = Arity{7, 8, 0, 0, {0, 1, 2, 3, 4, 5, 6}};
    (*t)[ops::kOnebitLambStep] = Arity{10, 11, 0, 0, {0, 1, 2, 3, 4, 5, 6, 7, 8, 9}};
    for (const char* op : {ops::kAllReduce, ops::kReduceScatter, ops::kAllGather}) (*t)[op] = Arity{1, 1, 1, 1, {0}};
    (*t)[ops::kAllGatherInPlace] = Arity{1, 1, 0, 0, {0}};
    constexpr int kMany = std::numeric_limits<int>::max();
    for (const char* op : {ops::kAllReduceStart, ops::kReduceScatterStart, ops::kAllGatherStart,
                           ops::kAllGatherInPlaceStart})
      (*t)[op] = Arity{1, kMany, 1, 1, {}};
    (*t)[ops::kCollectiveWait] = Arity{1, kMany, 0, kMany, {0}};
    (*t)[ops::kRelease] = Arity{1, kMany, 0, 0, {}};
    (*t)[ops::kCompressedAllReduce] = Arity{5, kMany, 0, 0, {0, 1, 2, 4}};  // skip (input 3) may be empty
    return t;
  }();
  return *table;
}

Status CheckDscArity(const NodeView& v) {
  const Node& n = v.node();
  auto it = DscArity().find(n.op_type());
  if (it == DscArity().end()) return Status::OK();
  const Arity& a = it->second;
  const int num_in = static_cast<int>(n.num_inputs()), num_out = static_cast<int>(n.num_outputs());
  if (num_in < a.min_in || num_in > a.max_in)
    return Bad(v, StrCat("has ", num_in, " inputs, needs ", a.min_in, a.max_in == a.min_in ? "" : StrCat(" to ", a.max_in)));
  if (num_out < a.min_out || num_out > a.max_out)
    return Bad(v, StrCat("has ", num_out, " outputs, needs ", a.min_out, a.max_out == a.min_out ? "" : StrCat(" to ", a.max_out)));
  for (int i : a.required)
    if (!n.input(static_cast<size_t>(i))) return Bad(v, StrCat("required input ", i, " is missing"));
  return Status::OK();
}

AttrKind KindOfOnnxAttr(onnx::AttributeProto::AttributeType t, bool* known) {
  *known = true;
  switch (t) {
    case onnx::AttributeProto::INT: return AttrKind::kInt;
    case onnx::AttributeProto::FLOAT: return AttrKind::kFloat;
    case onnx::AttributeProto::STRING: return AttrKind::kString;
    case onnx::AttributeProto::TENSOR: return AttrKind::kTensor;
    case onnx::AttributeProto::INTS: return AttrKind::kInts;
    case onnx::AttributeProto::FLOATS: return AttrKind::kFloats;
    case onnx::AttributeProto::STRINGS: return AttrKind::kStrings;
    default: *known = false; return AttrKind::kInt;
  }
}

// Input arity, required inputs and attribute kinds from ONNX's own operator schema: the rest of
// the compiler reads attributes by kind (a wrongly typed one reads as its default) and inputs by
// position (a missing required one is a null pointer).
Status CheckSchema(const NodeView& v, int64_t opset) {
  const Node& n = v.node();
  const onnx::OpSchema* s = onnx::OpSchemaRegistry::Schema(n.op_type(), static_cast<int>(opset), "");
  if (!s) return Status::OK();  // ops newer than the opset are evaluated by their newest definition
  const int num_in = static_cast<int>(n.num_inputs()), num_out = static_cast<int>(n.num_outputs());
  if (num_in < s->min_input() || num_in > s->max_input())
    return Bad(v, StrCat("has ", num_in, " inputs, opset ", opset, " allows ", s->min_input(), " to ", s->max_input()));
  if (num_out < s->min_output() || num_out > s->max_output())
    return Bad(v, StrCat("has ", num_out, " outputs, opset ", opset, " allows ", s->min_output(), " to ", s->max_output()));
  const auto& formal = s->inputs();
  for (size_t i = 0; i < formal.size() && i < n.num_inputs(); ++i)
    if (formal[i].GetOption() == onnx::OpSchema::Single && !n.input(i))
      return Bad(v, StrCat("required input ", i, " ('", formal[i].GetName(), "') is missing"));
  // Values bound to one type parameter ("T") must share their element type: kernels choose the
  // dtype from one of them and read the others' buffers as that type.
  std::unordered_map<std::string, const Value*> bound;
  auto bind = [&](const std::vector<onnx::OpSchema::FormalParameter>& params, const std::vector<Value*>& values,
                  const char* kind) -> Status {
    for (size_t i = 0; i < values.size(); ++i) {
      if (params.empty()) break;
      const bool variadic_tail = i >= params.size() && params.back().GetOption() == onnx::OpSchema::Variadic;
      if (i >= params.size() && !variadic_tail) break;
      const auto& f = params[std::min(i, params.size() - 1)];
      if (f.GetOption() == onnx::OpSchema::Variadic && !f.GetIsHomogeneous()) continue;
      const Value* val = values[i];
      if (!val || val->type.dtype == DType::kUndefined) continue;
      auto [it, inserted] = bound.emplace(f.GetTypeStr(), val);
      if (!inserted && it->second->type.dtype != val->type.dtype)
        return Bad(v, StrCat(kind, " ", i, " '", val->name(), "' is ", DTypeName(val->type.dtype), " but '",
                             it->second->name(), "' is ", DTypeName(it->second->type.dtype), "; both have type ",
                             f.GetTypeStr()));
    }
    return Status::OK();
  };
  RETURN_IF_ERROR(bind(s->inputs(), n.inputs(), "input"));
  RETURN_IF_ERROR(bind(s->outputs(), n.outputs(), "output"));
  for (const auto& [name, attr] : s->attributes()) {
    auto it = n.attrs().find(name);
    if (it == n.attrs().end()) {
      if (attr.required) return Bad(v, StrCat("attribute '", name, "' is required"));
      continue;
    }
    bool known = false;
    const AttrKind want = KindOfOnnxAttr(attr.type, &known);
    const AttrKind got = KindOf(it->second);
    // An int where a float is expected reads correctly (Node::GetFloat converts).
    if (known && got != want && !(want == AttrKind::kFloat && got == AttrKind::kInt))
      return Bad(v, StrCat("attribute '", name, "' is ", AttrKindName(got), ", must be ", AttrKindName(want)));
  }
  return Status::OK();
}

}  // namespace

Status CheckNode(const Node& n, int64_t opset, NodeCheckStage stage) {
  NodeView v(n, stage);
  const std::unordered_map<std::string, Check>* table = nullptr;
  if (n.domain().empty()) {
    RETURN_IF_ERROR(CheckSchema(v, opset));
    table = &OnnxChecks();
  } else if (n.domain() == kDscDomain) {
    RETURN_IF_ERROR(CheckDscArity(v));
    table = &DscChecks();
  }
  if (table) {
    auto it = table->find(n.op_type());
    if (it != table->end()) RETURN_IF_ERROR(it->second(v));
  }
  return Status::OK();
}

Status CheckValueSize(const Value& v) {
  if (!v.type.shape || !IsStatic(*v.type.shape)) return Status::OK();
  std::vector<int64_t> dims;
  for (const Dim& d : *v.type.shape) dims.push_back(d.value);
  StatusOr<int64_t> bytes = NumBytes(dims, v.type.dtype);
  if (bytes.ok() && *NumElements(dims) <= kMaxElements) return Status::OK();
  return OutOfRange("value '", v.name(), "' has shape ", ShapeToString(*v.type.shape), ": more than ", kMaxElements,
                    " elements");
}

Status CheckNodes(const Graph& g, NodeCheckStage stage) {
  auto it = g.opsets.find("");
  const int64_t opset = it == g.opsets.end() ? 0 : it->second;
  for (const auto& n : g.nodes()) RETURN_IF_ERROR(CheckNode(*n, opset, stage));
  return Status::OK();
}

}  // namespace dsc
