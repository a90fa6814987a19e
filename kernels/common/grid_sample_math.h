// GridSample (F.grid_sample / affine_grid: spatial transformers, deformable attention) on 4-D input,
// and its gradient GridSampleGrad: the per-output-point math shared by kernels/cpu/grid_sample.cc
// and kernels/cuda/grid_sample.cu. It follows PyTorch's aten/src/ATen/native/GridSampler.h (and
// UpSample.h's cubic coefficients, A = -0.75) step by step, so values and both gradients are torch's:
// dGrid is zero for nearest; under border/reflection padding the clamp and the reflection pass their
// slope (0 or +-1) into dGrid; bicubic pads each tap, not the coordinate, and dGrid ignores that.
//
//   ASSIGN_OR_RETURN(grid::Spec s, grid::ReadGridSample(node, grad));   // attributes and shapes, once
//   grid::SampleAt(s, gx, gy, load, store);         // every channel of one output point
//   grid::SampleGradAt(s, gx, gy, dy, load, add, &dgx, &dgy);
#pragma once

#include <math.h>

#include <cstdint>
#include <string>
#include <vector>

#include "kernels/common/hd.h"
#include "kernels/cpu/nn_util.h"

namespace dsc::grid {

enum Mode : int32_t { kNearest = 0, kLinear = 1, kCubic = 2 };
enum Padding : int32_t { kZeros = 0, kBorder = 1, kReflection = 2 };

// X (n, c, h, w), Grid (n, ho, wo, 2) with (x, y) = (width, height) coordinates in [-1, 1], Y (n, c, ho, wo).
struct Spec {
  int32_t mode = kLinear, padding = kZeros;
  bool align = false;
  int64_t n = 0, c = 0, h = 0, w = 0, ho = 0, wo = 0;
};

// Grid coordinate -> pixel coordinate; *grad = its slope.
DSC_HD float Unnormalize(float coord, int64_t size, bool align, float* grad) {
  if (align) {
    *grad = static_cast<float>(size - 1) / 2;
    return ((coord + 1) / 2) * static_cast<float>(size - 1);
  }
  *grad = static_cast<float>(size) / 2;
  return ((coord + 1) * static_cast<float>(size) - 1) / 2;
}

// Clamp into [0, size - 1]; *grad = 1 inside, 0 where clamped.
DSC_HD float Clip(float in, int64_t size, float* grad) {
  const float hi = static_cast<float>(size - 1);
  if (in <= 0) {
    *grad = 0;
    return 0;
  }
  if (in >= hi) {
    *grad = 0;
    return hi;
  }
  *grad = 1;
  return in;
}

// Reflect into [twice_low / 2, twice_high / 2]; *grad = +-1 (the reflection's direction).
DSC_HD float Reflect(float in, int64_t twice_low, int64_t twice_high, float* grad) {
  if (twice_low == twice_high) {
    *grad = 0;
    return 0;
  }
  const float lo = static_cast<float>(twice_low) / 2, span = static_cast<float>(twice_high - twice_low) / 2;
  float sign = 1;
  in -= lo;
  if (in < 0) {
    sign = -1;
    in = -in;
  }
  const float extra = ::fmodf(in, span);
  const int64_t flips = static_cast<int64_t>(::floorf(in / span));
  if (flips % 2 == 0) {
    *grad = sign;
    return extra + lo;
  }
  *grad = -sign;
  return span - extra + lo;
}

// Border / reflection padding of a pixel coordinate; *grad = its slope.
DSC_HD float Pad(float coord, int64_t size, int32_t padding, bool align, float* grad) {
  *grad = 1;
  if (padding == kBorder) return Clip(coord, size, grad);
  if (padding == kReflection) {
    float refl = 1, clip = 1;
    coord = align ? Reflect(coord, 0, 2 * (size - 1), &refl) : Reflect(coord, -1, 2 * size - 1, &refl);
    coord = Clip(coord, size, &clip);
    *grad = refl * clip;
  }
  return coord;
}

// A coordinate far outside every plane for NaN/inf grids (PyTorch's safe_downgrade_to_int_range).
DSC_HD float Finite(float coord) { return ::isfinite(coord) && ::fabsf(coord) < 1e9f ? coord : -100.0f; }

// Grid coordinate -> sampled pixel coordinate (linear, nearest); *grad = its slope.
DSC_HD float SourceIndex(float coord, int64_t size, int32_t padding, bool align, float* grad) {
  float g_un = 1, g_pad = 1;
  coord = Pad(Unnormalize(coord, size, align, &g_un), size, padding, align, &g_pad);
  *grad = g_un * g_pad;
  return Finite(coord);
}

DSC_HD bool Inside(int64_t y, int64_t x, const Spec& s) { return y >= 0 && y < s.h && x >= 0 && x < s.w; }

// Cubic convolution weights of the taps at -1, 0, 1, 2 around t in [0, 1) and their derivatives in t.
DSC_HD void CubicWeights(float t, float w[4]) {
  constexpr float A = -0.75f;
  auto near = [](float x) { return ((A + 2) * x - (A + 3)) * x * x + 1; };    // |x| <= 1
  auto far = [](float x) { return ((A * x - 5 * A) * x + 8 * A) * x - 4 * A; };  // 1 < |x| < 2
  w[0] = far(t + 1);
  w[1] = near(t);
  w[2] = near(1 - t);
  w[3] = far(2 - t);
}
DSC_HD void CubicWeightsGrad(float t, float g[4]) {
  constexpr float A = -0.75f;
  float x = -1 - t;
  g[0] = (-3 * A * x - 10 * A) * x - 8 * A;
  x = -t;
  g[1] = (-3 * (A + 2) * x - 2 * (A + 3)) * x;
  x = 1 - t;
  g[2] = (3 * (A + 2) * x - 2 * (A + 3)) * x;
  x = 2 - t;
  g[3] = (3 * A * x - 10 * A) * x + 8 * A;
}

// A bicubic tap (xx, yy) padded on its own; false when it reads nothing (outside under zeros).
DSC_HD bool CubicTap(const Spec& s, int64_t xx, int64_t yy, int64_t* off) {
  float unused = 0;
  const float x = Finite(Pad(static_cast<float>(xx), s.w, s.padding, s.align, &unused));
  const float y = Finite(Pad(static_cast<float>(yy), s.h, s.padding, s.align, &unused));
  const int64_t ix = static_cast<int64_t>(x), iy = static_cast<int64_t>(y);
  if (!Inside(iy, ix, s)) return false;
  *off = iy * s.w + ix;
  return true;
}

// Y at one output point for every channel: store(c, v); load(off) reads X[c-plane offset `off`] as
// float, off = c * h * w + y * w + x.
template <typename Load, typename Store>
DSC_HD void SampleAt(const Spec& s, float gx, float gy, Load load, Store store) {
  const int64_t plane = s.h * s.w;
  float unused = 0;
  if (s.mode == kCubic) {
    const float ix = Unnormalize(gx, s.w, s.align, &unused), iy = Unnormalize(gy, s.h, s.align, &unused);
    const float fx = ::floorf(ix), fy = ::floorf(iy);
    float wx[4], wy[4];
    CubicWeights(ix - fx, wx);
    CubicWeights(iy - fy, wy);
    int64_t off[4][4];
    bool in[4][4];
    const int64_t x0 = static_cast<int64_t>(Finite(fx)) - 1, y0 = static_cast<int64_t>(Finite(fy)) - 1;
    for (int j = 0; j < 4; ++j)
      for (int i = 0; i < 4; ++i) in[j][i] = CubicTap(s, x0 + i, y0 + j, &off[j][i]);
    for (int64_t c = 0; c < s.c; ++c) {
      float v = 0;
      for (int j = 0; j < 4; ++j) {
        float row = 0;
        for (int i = 0; i < 4; ++i) row += (in[j][i] ? load(c * plane + off[j][i]) : 0.0f) * wx[i];
        v += row * wy[j];
      }
      store(c, v);
    }
    return;
  }
  const float ix = SourceIndex(gx, s.w, s.padding, s.align, &unused);
  const float iy = SourceIndex(gy, s.h, s.padding, s.align, &unused);
  if (s.mode == kNearest) {
    const int64_t x = static_cast<int64_t>(::nearbyintf(ix)), y = static_cast<int64_t>(::nearbyintf(iy));
    const bool in = Inside(y, x, s);
    for (int64_t c = 0; c < s.c; ++c) store(c, in ? load(c * plane + y * s.w + x) : 0.0f);
    return;
  }
  const float fx = ::floorf(ix), fy = ::floorf(iy);
  const int64_t x0 = static_cast<int64_t>(fx), y0 = static_cast<int64_t>(fy);
  // nw, ne, sw, se as torch weighs them
  const float w_nw = (fx + 1 - ix) * (fy + 1 - iy), w_ne = (ix - fx) * (fy + 1 - iy);
  const float w_sw = (fx + 1 - ix) * (iy - fy), w_se = (ix - fx) * (iy - fy);
  const bool nw = Inside(y0, x0, s), ne = Inside(y0, x0 + 1, s), sw = Inside(y0 + 1, x0, s), se = Inside(y0 + 1, x0 + 1, s);
  const int64_t o = y0 * s.w + x0;
  for (int64_t c = 0; c < s.c; ++c) {
    const int64_t b = c * plane + o;
    float v = 0;
    if (nw) v += load(b) * w_nw;
    if (ne) v += load(b + 1) * w_ne;
    if (sw) v += load(b + s.w) * w_sw;
    if (se) v += load(b + s.w + 1) * w_se;
    store(c, v);
  }
}

// The gradient at one output point: add(off, v) accumulates v into dX (offsets as `load`'s), dy(c)
// reads dY there; *dgx, *dgy receive dGrid.
template <typename DyAt, typename Load, typename Add>
DSC_HD void SampleGradAt(const Spec& s, float gx, float gy, DyAt dy, Load load, Add add, float* dgx, float* dgy) {
  const int64_t plane = s.h * s.w;
  float gix = 0, giy = 0;
  if (s.mode == kCubic) {
    float mx = 1, my = 1;
    const float ix = Unnormalize(gx, s.w, s.align, &mx), iy = Unnormalize(gy, s.h, s.align, &my);
    const float fx = ::floorf(ix), fy = ::floorf(iy);
    float wx[4], wy[4], dwx[4], dwy[4];
    CubicWeights(ix - fx, wx);
    CubicWeights(iy - fy, wy);
    CubicWeightsGrad(ix - fx, dwx);
    CubicWeightsGrad(iy - fy, dwy);
    const int64_t x0 = static_cast<int64_t>(Finite(fx)) - 1, y0 = static_cast<int64_t>(Finite(fy)) - 1;
    int64_t off[4][4];
    bool in[4][4];
    for (int j = 0; j < 4; ++j)
      for (int i = 0; i < 4; ++i) in[j][i] = CubicTap(s, x0 + i, y0 + j, &off[j][i]);
    for (int64_t c = 0; c < s.c; ++c) {
      const float g = dy(c);
      for (int j = 0; j < 4; ++j)
        for (int i = 0; i < 4; ++i) {
          if (!in[j][i]) continue;
          const int64_t at = c * plane + off[j][i];
          add(at, g * wx[i] * wy[j]);
          const float v = load(at);
          gix -= v * dwx[i] * wy[j] * g;
          giy -= v * dwy[j] * wx[i] * g;
        }
    }
    *dgx = mx * gix;
    *dgy = my * giy;
    return;
  }
  float mx = 1, my = 1;
  const float ix = SourceIndex(gx, s.w, s.padding, s.align, &mx);
  const float iy = SourceIndex(gy, s.h, s.padding, s.align, &my);
  if (s.mode == kNearest) {
    const int64_t x = static_cast<int64_t>(::nearbyintf(ix)), y = static_cast<int64_t>(::nearbyintf(iy));
    if (Inside(y, x, s))
      for (int64_t c = 0; c < s.c; ++c) add(c * plane + y * s.w + x, dy(c));
    *dgx = 0;
    *dgy = 0;
    return;
  }
  const float fx = ::floorf(ix), fy = ::floorf(iy);
  const int64_t x0 = static_cast<int64_t>(fx), y0 = static_cast<int64_t>(fy);
  const float e = fx + 1 - ix, w_ = ix - fx, so = fy + 1 - iy, n_ = iy - fy;  // distances to the four sides
  const bool nw = Inside(y0, x0, s), ne = Inside(y0, x0 + 1, s), sw = Inside(y0 + 1, x0, s), se = Inside(y0 + 1, x0 + 1, s);
  const int64_t o = y0 * s.w + x0;
  for (int64_t c = 0; c < s.c; ++c) {
    const float g = dy(c);
    const int64_t b = c * plane + o;
    if (nw) {
      add(b, e * so * g);
      const float v = load(b);
      gix -= v * so * g;
      giy -= v * e * g;
    }
    if (ne) {
      add(b + 1, w_ * so * g);
      const float v = load(b + 1);
      gix += v * so * g;
      giy -= v * w_ * g;
    }
    if (sw) {
      add(b + s.w, e * n_ * g);
      const float v = load(b + s.w);
      gix -= v * n_ * g;
      giy += v * e * g;
    }
    if (se) {
      add(b + s.w + 1, w_ * n_ * g);
      const float v = load(b + s.w + 1);
      gix += v * n_ * g;
      giy += v * w_ * g;
    }
  }
  *dgx = mx * gix;
  *dgy = my * giy;
}

// Reads GridSample's attributes (opset 16's and opset 20's mode names) and the static shapes of X and
// Grid; only 4-D X is supported. x, grid: GridSample's inputs (GridSampleGrad's inputs 1 and 2).
inline StatusOr<Spec> ReadGridSample(const Node& node, const Value* x, const Value* grid) {
  Spec s;
  const std::string mode = node.GetString("mode", "linear");
  if (mode == "bilinear" || mode == "linear") s.mode = kLinear;
  else if (mode == "nearest") s.mode = kNearest;
  else if (mode == "bicubic" || mode == "cubic") s.mode = kCubic;
  else return Unimplemented("mode '", mode, "'; GridSample takes linear (bilinear), nearest and cubic (bicubic)");
  const std::string pad = node.GetString("padding_mode", "zeros");
  if (pad == "zeros") s.padding = kZeros;
  else if (pad == "border") s.padding = kBorder;
  else if (pad == "reflection") s.padding = kReflection;
  else return Unimplemented("padding_mode '", pad, "'; GridSample takes zeros, border and reflection");
  const int64_t align = node.GetInt("align_corners", 0);
  if (align != 0 && align != 1) return InvalidArgument("align_corners must be 0 or 1, got ", align);
  s.align = align == 1;
  ASSIGN_OR_RETURN(std::vector<int64_t> xd, nn::StaticDims(x, "X"));
  ASSIGN_OR_RETURN(std::vector<int64_t> gd, nn::StaticDims(grid, "Grid"));
  if (xd.size() != 4)
    return Unimplemented("X has rank ", xd.size(), "; dscompile's GridSample takes 4-D X (N, C, H, W) only");
  if (gd.size() != 4 || gd[3] != 2 || gd[0] != xd[0])
    return InvalidArgument("Grid ", nn::DimsToString(gd), " must be (N, H_out, W_out, 2) for X ", nn::DimsToString(xd));
  s.n = xd[0];
  s.c = xd[1];
  s.h = xd[2];
  s.w = xd[3];
  s.ho = gd[1];
  s.wo = gd[2];
  return s;
}

}  // namespace dsc::grid
