// Reads a sliding window (kernel_shape, strides, dilations, pads, auto_pad) of a Conv, MaxPool or
// AveragePool node or their gradients into nn::Window (kernels/common/window.h) once at Init, for the
// CPU kernels and their CUDA twins (conv_shape.h and pool_node.h build on it).
//
//   ASSIGN_OR_RETURN(nn::Window w, nn::ParseWindow(node, x_dims, y_dims, /*kernel=*/{}, /*ceil_mode=*/false));
#pragma once

#include <algorithm>
#include <string>
#include <vector>

#include "kernels/common/window.h"
#include "kernels/cpu/nn_util.h"

namespace dsc::nn {

// Output length along one axis. With ceil_mode a window that would start in the end padding is
// dropped (PyTorch's rule, also ONNX's reference since opset 19), so `alt` is the ceil size before
// that drop: both are accepted from shape inference. With ceil_mode one window may also be longer than
// the padded input (span in [1 - s, 0)): it covers the input, as in HF EfficientNet's
// AvgPool2d(hidden_dim, ceil_mode=True) over a 1x1 map, PyTorch's and ONNX's output length 1.
inline int64_t WindowOutSize(int64_t in, int64_t k, int64_t s, int64_t d, int64_t pb, int64_t pe, bool ceil_mode,
                             int64_t* alt = nullptr) {
  const int64_t span = in + pb + pe - ((k - 1) * d + 1);
  const int64_t reach = ceil_mode ? span + s - 1 : span;  // floor(reach / s) + 1 windows when reach >= 0
  if (reach < 0) return 0;
  int64_t out = reach / s + 1;
  if (alt) *alt = out;
  if (ceil_mode && (out - 1) * s >= in + pb) --out;
  return out;
}

// Reads kernel_shape (or `kernel` when the attribute is absent, e.g. Conv's W dims), strides,
// dilations, pads and auto_pad of a window over `x` giving `y` (N,C and 1 to 3 spatial dims each),
// and checks y's spatial dims against them. The node's axes are the window's last ones.
inline StatusOr<Window> ParseWindow(const Node& n, const std::vector<int64_t>& x, const std::vector<int64_t>& y,
                                    std::vector<int64_t> kernel, bool ceil_mode) {
  if (x.size() != y.size() || x.size() < 3 || x.size() > 2 + kMaxSpatial)
    return Unimplemented("only 1-D, 2-D and 3-D windows over (N,C,L), (N,C,H,W) or (N,C,D,H,W) are supported, got input ",
                         DimsToString(x), " and output ", DimsToString(y));
  const size_t r = x.size() - 2, off = kMaxSpatial - r;
  if (n.HasAttr("kernel_shape")) kernel = n.GetInts("kernel_shape");
  const std::vector<int64_t> strides = n.GetInts("strides", std::vector<int64_t>(r, 1));
  const std::vector<int64_t> dil = n.GetInts("dilations", std::vector<int64_t>(r, 1));
  const std::vector<int64_t> pads = n.GetInts("pads", std::vector<int64_t>(2 * r, 0));
  if (kernel.size() != r || strides.size() != r || dil.size() != r || pads.size() != 2 * r)
    return InvalidArgument("kernel_shape, strides, dilations need ", r, " values and pads ", 2 * r);
  const std::string auto_pad = n.GetString("auto_pad", "NOTSET");
  if (auto_pad != "NOTSET" && auto_pad != "VALID" && auto_pad != "SAME_UPPER" && auto_pad != "SAME_LOWER")
    return InvalidArgument("unknown auto_pad '", auto_pad, "'");
  Window w;
  w.rank = static_cast<int>(r);
  bool match = true;
  std::vector<int64_t> expect(r);
  for (size_t i = 0; i < r; ++i) {
    const size_t a = off + i;
    w.k[a] = kernel[i], w.s[a] = strides[i], w.d[a] = dil[i], w.in[a] = x[i + 2], w.out[a] = y[i + 2];
    if (w.k[a] < 1 || w.s[a] < 1 || w.d[a] < 1) return InvalidArgument("kernel_shape, strides and dilations must be positive");
    if (auto_pad == "NOTSET") {
      w.pb[a] = pads[i], w.pe[a] = pads[i + r];
      if (w.pb[a] < 0 || w.pe[a] < 0) return InvalidArgument("pads must be non-negative");
    } else if (auto_pad != "VALID") {
      // Output = ceil(in / stride); the odd pad goes at the end (UPPER) or the beginning (LOWER).
      const int64_t out = (w.in[a] + w.s[a] - 1) / w.s[a];
      const int64_t total = std::max<int64_t>(0, (out - 1) * w.s[a] + (w.k[a] - 1) * w.d[a] + 1 - w.in[a]);
      w.pb[a] = auto_pad == "SAME_UPPER" ? total / 2 : total - total / 2;
      w.pe[a] = total - w.pb[a];
    }
    int64_t alt = -1;
    expect[i] = WindowOutSize(w.in[a], w.k[a], w.s[a], w.d[a], w.pb[a], w.pe[a], ceil_mode, &alt);
    match = match && (w.out[a] == expect[i] || w.out[a] == alt);
  }
  if (!match)
    return InvalidArgument("output spatial dims ", DimsToString(y), " do not match the window over ", DimsToString(x),
                           " (expected ", DimsToString(expect), ")");
  // Each kernel dim may be up to 2^31 (ir/node_checks.h), so three of them could overflow Taps().
  int64_t taps = 1;
  for (int a = 0; a < kMaxSpatial; ++a) {
    if (w.k[a] > (int64_t{1} << 40) / taps)
      return Unimplemented("kernel_shape ", DimsToString(kernel), " has more than 2^40 taps");
    taps *= w.k[a];
  }
  return w;
}

}  // namespace dsc::nn
