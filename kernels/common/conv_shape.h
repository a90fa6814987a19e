// The shape of a Conv/ConvGrad node, or of the conv a ConvTranspose(Grad) node is the adjoint of, as
// GEMM operands, read once at Init by the CPU kernels (kernels/cpu/conv.cc) and their CUDA twins
// (kernels/cuda/conv.cu).
#pragma once

#include <algorithm>
#include <climits>
#include <string>
#include <vector>

#include "kernels/common/window_node.h"
#include "kernels/cpu/nn_util.h"

namespace dsc::conv {

// Sizes of a grouped conv X:(N,C,spatial...) * W:(M,C/group,k...) -> Y:(N,M,spatial'...) over 1 to
// 3 spatial dims, as GEMM operands: per image and group, Y_g:(Mg, P) = W_g:(Mg, K) @ col:(K, P) with
// K = Cg * taps (kd*kh*kw) and P the output positions (OD*OH*OW).
struct ConvShape {
  nn::Window w;
  int64_t n = 0, c = 0, m = 0, group = 1, cg = 0, mg = 0, k = 0, p = 0;
};

inline StatusOr<ConvShape> ReadConv(const Node& node, const Value* xv, const Value* wv, const Value* yv) {
  ASSIGN_OR_RETURN(std::vector<int64_t> x, nn::StaticDims(xv, "X"));
  ASSIGN_OR_RETURN(std::vector<int64_t> wd, nn::StaticDims(wv, "W"));
  ASSIGN_OR_RETURN(std::vector<int64_t> y, nn::StaticDims(yv, "Y"));
  if (x.size() != wd.size() || x.size() < 3 || x.size() > 2 + nn::kMaxSpatial)
    return Unimplemented("only 1-D, 2-D and 3-D Conv are supported: X ", nn::DimsToString(x), ", W ",
                         nn::DimsToString(wd));
  ConvShape s;
  const std::vector<int64_t> kernel(wd.begin() + 2, wd.end());
  ASSIGN_OR_RETURN(s.w, nn::ParseWindow(node, x, y, kernel, /*ceil_mode=*/false));
  for (size_t i = 0; i < kernel.size(); ++i)
    if (s.w.k[nn::kMaxSpatial - kernel.size() + i] != kernel[i])
      return InvalidArgument("kernel_shape ", nn::DimsToString(node.GetInts("kernel_shape")), " does not match W ",
                             nn::DimsToString(wd));
  s.n = x[0], s.c = x[1], s.m = wd[0], s.group = node.GetInt("group", 1);
  if (s.group < 1 || s.c % s.group || s.m % s.group || wd[1] * s.group != s.c)
    return InvalidArgument("group ", s.group, " does not fit X ", nn::DimsToString(x), " and W ", nn::DimsToString(wd));
  if (y[0] != s.n || y[1] != s.m)
    return InvalidArgument("Y ", nn::DimsToString(y), " must be (", s.n, ",", s.m, ",...)");
  s.cg = s.c / s.group, s.mg = s.m / s.group, s.k = s.cg * s.w.Taps(), s.p = s.w.OutSize();
  if (s.k > INT_MAX || s.p > INT_MAX || s.mg > INT_MAX) return Unimplemented("conv too large for 32-bit BLAS sizes");
  return s;
}

// A ConvTranspose node X:(N,C,spatial...) * W:(C,M/group,k...) -> Y:(N,M,spatial'...) (1 to 3 spatial
// dims) as the Conv it is the adjoint of: the conv from Y's space to X's, Conv(Y', W) -> X' with the
// same strides, dilations and group. So the returned shape reads c = M (Y's channels), m = C (X's),
// w.in = Y's spatial dims and w.out = X's, and ConvTranspose(X) = col2im(W^T @ X) is ConvGrad's dX
// with dY = X; its gradient is Conv's forward (dX = Conv(dY, W)) and ConvGrad's dW with the roles of
// X and dY swapped.
//
// Pads follow the ONNX spec: `pads` (NOTSET), none (VALID), or, with output_shape or SAME_*, the
// total padding stride*(in-1) + output_padding + (k-1)*dilation+1 - out split in half (the odd one
// at the end for SAME_UPPER, at the beginning otherwise). output_padding extends the end of the
// output: in the adjoint conv it shortens the end padding, which may therefore go negative (the
// kernels never read end pads: the output size is given).
inline StatusOr<ConvShape> ReadConvTranspose(const Node& node, const Value* xv, const Value* wv, const Value* yv) {
  ASSIGN_OR_RETURN(std::vector<int64_t> x, nn::StaticDims(xv, "X"));
  ASSIGN_OR_RETURN(std::vector<int64_t> wd, nn::StaticDims(wv, "W"));
  ASSIGN_OR_RETURN(std::vector<int64_t> y, nn::StaticDims(yv, "Y"));
  if (x.size() != wd.size() || x.size() != y.size() || x.size() < 3 || x.size() > 2 + nn::kMaxSpatial)
    return Unimplemented("only 1-D, 2-D and 3-D ConvTranspose are supported: X ", nn::DimsToString(x), ", W ",
                         nn::DimsToString(wd), ", Y ", nn::DimsToString(y));
  const size_t r = x.size() - 2;
  auto ints = [&](const char* name, int64_t fill, size_t count) -> StatusOr<std::vector<int64_t>> {
    std::vector<int64_t> v = node.GetInts(name, std::vector<int64_t>(count, fill));
    if (v.size() != count) return InvalidArgument("attribute '", name, "' needs ", count, " values, has ", v.size());
    return v;
  };
  std::vector<int64_t> kernel(wd.begin() + 2, wd.end());
  if (node.HasAttr("kernel_shape") && node.GetInts("kernel_shape") != kernel)
    return InvalidArgument("kernel_shape ", nn::DimsToString(node.GetInts("kernel_shape")), " does not match W ",
                           nn::DimsToString(wd));
  ASSIGN_OR_RETURN(std::vector<int64_t> strides, ints("strides", 1, r));
  ASSIGN_OR_RETURN(std::vector<int64_t> dil, ints("dilations", 1, r));
  ASSIGN_OR_RETURN(std::vector<int64_t> out_pad, ints("output_padding", 0, r));
  ASSIGN_OR_RETURN(std::vector<int64_t> pads, ints("pads", 0, 2 * r));
  for (size_t i = 0; i < r; ++i) {
    if (kernel[i] < 1 || strides[i] < 1 || dil[i] < 1)
      return InvalidArgument("kernel_shape, strides and dilations must be positive");
    if (out_pad[i] < 0 || (out_pad[i] >= strides[i] && out_pad[i] >= dil[i]))
      return InvalidArgument("output_padding ", nn::DimsToString(out_pad),
                             " must be non-negative and less than the stride or the dilation");
  }
  const std::string auto_pad = node.GetString("auto_pad", "NOTSET");
  if (auto_pad != "NOTSET" && auto_pad != "VALID" && auto_pad != "SAME_UPPER" && auto_pad != "SAME_LOWER")
    return InvalidArgument("unknown auto_pad '", auto_pad, "'");
  // The output length before padding, and the one the pads leave.
  auto full = [&](size_t i) { return strides[i] * (x[i + 2] - 1) + out_pad[i] + (kernel[i] - 1) * dil[i] + 1; };
  const bool explicit_shape = node.HasAttr("output_shape");
  if (explicit_shape || auto_pad == "SAME_UPPER" || auto_pad == "SAME_LOWER") {
    std::vector<int64_t> want(r);
    if (explicit_shape) {
      ASSIGN_OR_RETURN(want, ints("output_shape", 0, r));
    } else {
      for (size_t i = 0; i < r; ++i) want[i] = x[i + 2] * strides[i];
    }
    for (size_t i = 0; i < r; ++i) {
      const int64_t total = full(i) - want[i];
      if (total < 0)
        return Unimplemented("output length ", want[i], " exceeds the full transposed convolution (", full(i),
                             ") along spatial dim ", i, ": negative padding is not supported");
      const int64_t begin = auto_pad == "SAME_UPPER" ? total / 2 : total - total / 2;
      pads[i] = begin, pads[i + r] = total - begin;
    }
  } else if (auto_pad == "VALID") {
    std::fill(pads.begin(), pads.end(), 0);
  }
  for (int64_t p : pads)
    if (p < 0) return InvalidArgument("pads ", nn::DimsToString(pads), " must be non-negative");
  for (size_t i = 0; i < r; ++i)
    if (y[i + 2] != full(i) - pads[i] - pads[i + r])
      return InvalidArgument("output spatial dims ", nn::DimsToString(y), " do not match ConvTranspose of X ",
                             nn::DimsToString(x), " (spatial dim ", i, " should be ", full(i) - pads[i] - pads[i + r],
                             ")");
  ConvShape s;
  s.n = x[0], s.m = x[1], s.group = node.GetInt("group", 1);
  if (s.group < 1 || s.m % s.group || wd[0] != s.m)
    return InvalidArgument("group ", s.group, " does not fit X ", nn::DimsToString(x), " and W ", nn::DimsToString(wd),
                           " (W is (C, M/group, k...) with C the channels of X)");
  s.c = wd[1] * s.group;
  if (y[0] != s.n || y[1] != s.c)
    return InvalidArgument("Y ", nn::DimsToString(y), " must be (", s.n, ",", s.c, ",...)");
  nn::Window& w = s.w;
  w.rank = static_cast<int>(r);
  for (size_t i = 0; i < r; ++i) {
    const size_t a = nn::kMaxSpatial - r + i;
    w.k[a] = kernel[i], w.s[a] = strides[i], w.d[a] = dil[i];
    w.pb[a] = pads[i], w.pe[a] = pads[i + r] - out_pad[i];
    w.in[a] = y[i + 2], w.out[a] = x[i + 2];
  }
  s.cg = s.c / s.group, s.mg = s.m / s.group, s.k = s.cg * w.Taps(), s.p = w.OutSize();
  if (s.k > INT_MAX || s.p > INT_MAX || s.mg > INT_MAX || w.InSize() > INT_MAX)
    return Unimplemented("ConvTranspose too large for 32-bit BLAS sizes");
  return s;
}

}  // namespace dsc::conv
