// Helpers shared by the NN CPU kernels: static dims of a node's values, axes, 2-D window geometry,
// and a kernel base whose errors name the node.
//
//   ASSIGN_OR_RETURN(std::vector<int64_t> x, StaticDims(node, node.input(0), "X"));
//   ASSIGN_OR_RETURN(Window2D w, ParseWindow2D(node, x, y, /*kernel=*/{}, /*is_pool=*/true));
#pragma once

#include <algorithm>
#include <cstdint>
#include <string>
#include <vector>

#include "ir/graph.h"
#include "ir/status.h"
#include "kernels/kernel.h"

namespace dsc::nn {

// Below this many elements a loop runs serially: thread start-up would cost more than it saves.
inline constexpr int64_t kParallelThreshold = 1 << 15;

inline StatusOr<std::vector<int64_t>> StaticDims(const Value* v, const char* what) {
  if (!v) return InvalidArgument("missing ", what);
  if (!v->type.shape || !IsStatic(*v->type.shape))
    return InvalidArgument(what, " '", v->name(), "' needs a static shape, has ", TypeToString(v->type));
  std::vector<int64_t> dims;
  for (const Dim& d : *v->type.shape) dims.push_back(d.value);
  return dims;
}

inline int64_t Product(const std::vector<int64_t>& dims, size_t begin, size_t end) {
  int64_t p = 1;
  for (size_t i = begin; i < end && i < dims.size(); ++i) p *= dims[i];
  return p;
}
inline int64_t Product(const std::vector<int64_t>& dims) { return Product(dims, 0, dims.size()); }

inline StatusOr<int64_t> NormalizeAxis(int64_t axis, int64_t rank) {
  if (axis < -rank || axis >= rank) return InvalidArgument("axis ", axis, " out of range for rank ", rank);
  return axis < 0 ? axis + rank : axis;
}

using ::dsc::DimsToString;

// Geometry of a 2-D sliding window over X:(N,C,H,W) giving Y:(N,M,OH,OW). Pads are resolved
// (auto_pad applied): top/left are the begin pads, bottom/right the end pads.
struct Window2D {
  int64_t kh = 1, kw = 1;
  int64_t sh = 1, sw = 1;
  int64_t dh = 1, dw = 1;
  int64_t pt = 0, pl = 0, pb = 0, pr = 0;
  int64_t ih = 0, iw = 0, oh = 0, ow = 0;
};

// Output length along one axis. With ceil_mode a window that would start in the end padding is
// dropped (PyTorch's rule, also ONNX's reference since opset 19), so `alt` is the ceil size before
// that drop: both are accepted from shape inference.
inline int64_t WindowOutSize(int64_t in, int64_t k, int64_t s, int64_t d, int64_t pb, int64_t pe, bool ceil_mode,
                             int64_t* alt = nullptr) {
  int64_t span = in + pb + pe - ((k - 1) * d + 1);
  if (span < 0) return 0;
  int64_t out = (ceil_mode ? (span + s - 1) / s : span / s) + 1;
  if (alt) *alt = out;
  if (ceil_mode && (out - 1) * s >= in + pb) --out;
  return out;
}

// Reads kernel_shape (or `kernel` when the attribute is absent, e.g. Conv's W dims), strides,
// dilations, pads and auto_pad; checks the output dims `y` against them. `x` and `y` are NCHW, or
// NCL for a 1-D window, which is read as the 2-D window of height 1 over (N,C,1,L): the same
// memory layout, so 2-D kernels run 1-D convolutions and pools unchanged.
inline StatusOr<Window2D> ParseWindow2D(const Node& n, const std::vector<int64_t>& x, const std::vector<int64_t>& y,
                                        std::vector<int64_t> kernel, bool ceil_mode) {
  const bool one_d = x.size() == 3 && y.size() == 3;
  if (!one_d && (x.size() != 4 || y.size() != 4))
    return Unimplemented("only 1-D and 2-D windows over (N,C,L) or (N,C,H,W) are supported, got input ",
                         DimsToString(x), " and output ", DimsToString(y));
  const size_t r = one_d ? 1 : 2;
  Window2D w;
  w.ih = one_d ? 1 : x[2], w.iw = x.back(), w.oh = one_d ? 1 : y[2], w.ow = y.back();
  if (n.HasAttr("kernel_shape")) kernel = n.GetInts("kernel_shape");
  std::vector<int64_t> strides = n.GetInts("strides", std::vector<int64_t>(r, 1));
  std::vector<int64_t> dil = n.GetInts("dilations", std::vector<int64_t>(r, 1));
  std::vector<int64_t> pads = n.GetInts("pads", std::vector<int64_t>(2 * r, 0));
  if (kernel.size() != r || strides.size() != r || dil.size() != r || pads.size() != 2 * r)
    return InvalidArgument("kernel_shape, strides, dilations need ", r, " values and pads ", 2 * r);
  if (one_d) {  // height 1: kernel, stride and dilation 1, no padding
    kernel = {1, kernel[0]}, strides = {1, strides[0]}, dil = {1, dil[0]};
    pads = {0, pads[0], 0, pads[1]};
  }
  w.kh = kernel[0], w.kw = kernel[1], w.sh = strides[0], w.sw = strides[1], w.dh = dil[0], w.dw = dil[1];
  if (w.kh < 1 || w.kw < 1 || w.sh < 1 || w.sw < 1 || w.dh < 1 || w.dw < 1)
    return InvalidArgument("kernel_shape, strides and dilations must be positive");
  std::string auto_pad = n.GetString("auto_pad", "NOTSET");
  if (auto_pad == "NOTSET") {
    w.pt = pads[0], w.pl = pads[1], w.pb = pads[2], w.pr = pads[3];
    if (w.pt < 0 || w.pl < 0 || w.pb < 0 || w.pr < 0) return InvalidArgument("pads must be non-negative");
  } else if (auto_pad == "VALID") {
    // all pads stay 0
  } else if (auto_pad == "SAME_UPPER" || auto_pad == "SAME_LOWER") {
    // Output = ceil(in / stride); the odd pad goes at the end (UPPER) or the beginning (LOWER).
    auto same = [&](int64_t in, int64_t k, int64_t s, int64_t d, int64_t* begin, int64_t* end) {
      int64_t out = (in + s - 1) / s;
      int64_t total = std::max<int64_t>(0, (out - 1) * s + (k - 1) * d + 1 - in);
      int64_t small = total / 2;
      *begin = auto_pad == "SAME_UPPER" ? small : total - small;
      *end = total - *begin;
    };
    same(w.ih, w.kh, w.sh, w.dh, &w.pt, &w.pb);
    same(w.iw, w.kw, w.sw, w.dw, &w.pl, &w.pr);
  } else {
    return InvalidArgument("unknown auto_pad '", auto_pad, "'");
  }
  int64_t alt_h = -1, alt_w = -1;
  int64_t oh = WindowOutSize(w.ih, w.kh, w.sh, w.dh, w.pt, w.pb, ceil_mode, &alt_h);
  int64_t ow = WindowOutSize(w.iw, w.kw, w.sw, w.dw, w.pl, w.pr, ceil_mode, &alt_w);
  if ((w.oh != oh && w.oh != alt_h) || (w.ow != ow && w.ow != alt_w))
    return InvalidArgument("output spatial dims ", DimsToString(y), " do not match the window over ", DimsToString(x),
                           " (expected ", oh, "x", ow, ")");
  return w;
}

// A kernel whose Compute errors name its node: Compute runs Run and adds desc_ (set it in Init
// with node.Describe()) as context to any error.
class DescribedKernel : public OpKernel {
 public:
  Status Compute(KernelContext& ctx) final {
    Status s = Run(ctx);
    return s.ok() ? s : s.WithContext(desc_);
  }

 protected:
  virtual Status Run(KernelContext& ctx) = 0;
  std::string desc_;
};

}  // namespace dsc::nn
