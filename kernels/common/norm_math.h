// Per-element math of LayerNormalization, BatchNormalization and RMSNormalization and their
// gradients, shared by kernels/cpu/{norm,rms_norm}.cc and kernels/cuda/{norm,rms_norm}.cu.
// Statistics are doubles (sums accumulate in double); values are read as float.
#pragma once

#include <cmath>

#include "kernels/common/hd.h"

namespace dsc::norm {

// 1/sqrt(var + eps), var biased.
DSC_HD double InvStd(double var, float eps) { return 1.0 / ::sqrt(var + eps); }
DSC_HD double Centered(float x, double mean) { return x - mean; }

// LayerNormalization: y = (x - mean) * rstd * scale + bias.
DSC_HD float LayerNormOut(float x, double mean, double rstd, float scale, float bias) {
  const double xhat = (x - mean) * rstd;
  return static_cast<float>(xhat * scale + bias);
}
// Its gradient per row, g = dY * Scale: the two row means' terms, then
//   dX = rstd * (g - mean(g) - xhat * mean(g * xhat)).
DSC_HD double LayerNormG(float dy, float scale) { return static_cast<double>(dy) * scale; }
DSC_HD float LayerNormGradDx(double g, double xhat, double rstd, double mg, double mgx) {
  return static_cast<float>(rstd * (g - mg - xhat * mgx));
}
// dScale's term of one element (dBias's is dy).
DSC_HD double LayerNormDScaleTerm(float dy, float x, double mean, double rstd) { return dy * (x - mean) * rstd; }

// BatchNormalization: y = x * a + shift with a = scale / sqrt(var + eps), shift = bias - mean * a.
struct Affine {
  double a, shift;
};
DSC_HD Affine BatchNormAffine(float scale, float bias, double mean, double var, float eps) {
  const double a = scale / ::sqrt(var + eps);
  return Affine{a, bias - mean * a};
}
DSC_HD float BatchNormOut(float x, Affine f) { return static_cast<float>(x * f.a + f.shift); }
// running = input * momentum + batch * (1 - momentum)
DSC_HD float RunningStat(float input, double batch, double momentum) {
  return static_cast<float>(input * momentum + batch * (1.0 - momentum));
}
// Gradient per channel over m = N*S: dX = scale * rstd / m * (m * dY - dBias - xhat * dScale).
DSC_HD double BatchNormDScaleTerm(float dy, float x, double mean, double rstd) { return dy * (x - mean) * rstd; }
DSC_HD float BatchNormGradDx(float dy, float x, float scale, double mean, double rstd, double m, double db, double ds) {
  const double k = scale * rstd / m;
  const double xhat = (x - mean) * rstd;
  return static_cast<float>(k * (m * dy - db - xhat * ds));
}

// RMSNormalization: inv = 1/sqrt(mean(x^2) + eps), y = x * inv * scale.
DSC_HD double Square(float x) { return static_cast<double>(x) * x; }
DSC_HD double RmsInv(double sum_sq, double cols, float eps) { return 1.0 / ::sqrt(sum_sq / cols + eps); }
DSC_HD float RmsOut(float x, double inv, float scale) { return static_cast<float>(x * inv * scale); }
// Gradient, g = dY * Scale, xhat = x * inv:  dX = inv * (g - xhat * mean(g * xhat)).
DSC_HD double RmsGxTerm(float dy, float scale, float x, double inv) { return static_cast<double>(dy) * scale * x * inv; }
DSC_HD float RmsGradDx(float dy, float scale, float x, double inv, double mgx) {
  return static_cast<float>(inv * (static_cast<double>(dy) * scale - x * inv * mgx));
}
DSC_HD double RmsDScaleTerm(float dy, float x, double inv) { return static_cast<double>(dy) * x * inv; }

}  // namespace dsc::norm
