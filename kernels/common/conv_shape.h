// The shape of a Conv/ConvGrad node as GEMM operands, read once at Init by the CPU kernels
// (kernels/cpu/conv.cc) and their CUDA twins (kernels/cuda/conv.cu).
#pragma once

#include <climits>
#include <vector>

#include "kernels/cpu/nn_util.h"

namespace dsc::conv {

// Sizes of a grouped conv X:(N,C,H,W) * W:(M,C/group,kh,kw) -> Y:(N,M,OH,OW), as GEMM operands:
// per image and group, Y_g:(Mg, P) = W_g:(Mg, K) @ col:(K, P) with K = Cg*kh*kw, P = OH*OW.
struct ConvShape {
  nn::Window2D w;
  int64_t n = 0, c = 0, m = 0, group = 1, cg = 0, mg = 0, k = 0, p = 0;
};

inline StatusOr<ConvShape> ReadConv(const Node& node, const Value* xv, const Value* wv, const Value* yv) {
  ASSIGN_OR_RETURN(std::vector<int64_t> x, nn::StaticDims(xv, "X"));
  ASSIGN_OR_RETURN(std::vector<int64_t> wd, nn::StaticDims(wv, "W"));
  ASSIGN_OR_RETURN(std::vector<int64_t> y, nn::StaticDims(yv, "Y"));
  if (!((x.size() == 4 && wd.size() == 4) || (x.size() == 3 && wd.size() == 3)))
    return Unimplemented("only 1-D and 2-D Conv are supported: X ", nn::DimsToString(x), ", W ", nn::DimsToString(wd));
  ConvShape s;
  const bool one_d = x.size() == 3;  // (N,C,L) * (M,C/group,k): the 2-D conv of height 1
  const int64_t kh = one_d ? 1 : wd[2], kw = wd.back();
  ASSIGN_OR_RETURN(s.w, nn::ParseWindow2D(node, x, y, one_d ? std::vector<int64_t>{kw} : std::vector<int64_t>{kh, kw},
                                          /*ceil_mode=*/false));
  if (s.w.kh != kh || s.w.kw != kw)
    return InvalidArgument("kernel_shape ", s.w.kh, "x", s.w.kw, " does not match W ", nn::DimsToString(wd));
  s.n = x[0], s.c = x[1], s.m = wd[0], s.group = node.GetInt("group", 1);
  if (s.group < 1 || s.c % s.group || s.m % s.group || wd[1] * s.group != s.c)
    return InvalidArgument("group ", s.group, " does not fit X ", nn::DimsToString(x), " and W ", nn::DimsToString(wd));
  if (y[0] != s.n || y[1] != s.m)
    return InvalidArgument("Y ", nn::DimsToString(y), " must be (", s.n, ",", s.m, ",...)");
  s.cg = s.c / s.group, s.mg = s.m / s.group, s.k = s.cg * s.w.kh * s.w.kw, s.p = s.w.oh * s.w.ow;
  if (s.k > INT_MAX || s.p > INT_MAX || s.mg > INT_MAX) return Unimplemented("conv too large for 32-bit BLAS sizes");
  return s;
}

}  // namespace dsc::conv
