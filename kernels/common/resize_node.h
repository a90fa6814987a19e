// Reads a Resize node (or its ResizeGrad, which has the same attributes and constant inputs) into
// resize::Geom once at Init, for kernels/cpu/resize.cc and kernels/cuda/resize.cu; the per-element
// math is kernels/common/resize_math.h.
//   ASSIGN_OR_RETURN(resize::Geom g, resize::ReadResize(node, node.input(0), node.output(0)));
//
// Inputs (X or dY, roi, scales, sizes): scales or sizes, exactly one non-empty, must be constants
// (initializers once fold-constants has run): the output shape and every weight are fixed at compile
// time. roi and extrapolation_value are read only by tf_crop_and_resize, which is refused (as is
// antialias = 1), so they have no effect here. keep_aspect_ratio_policy applies to sizes only.
#pragma once

#include <cmath>
#include <string>
#include <vector>

#include "kernels/common/resize_math.h"
#include "kernels/cpu/nn_util.h"

namespace dsc::resize {

// The index of `s` in `names`, or an error naming the attribute and the values taken.
inline StatusOr<int32_t> ParseEnum(const Node& node, const char* attr, const char* dflt,
                                   std::initializer_list<const char*> names) {
  const std::string s = node.GetString(attr, dflt);
  int32_t i = 0;
  std::string list;
  for (const char* n : names) {
    if (s == n) return i;
    list += StrCat(i++ ? ", " : "", "'", n, "'");
  }
  return Unimplemented("attribute '", attr, "' is '", s, "'; dscompile's Resize takes ", list);
}

// The float contents of a constant input, or an error saying it must be one.
inline StatusOr<std::vector<double>> ConstantInput(const Node& node, size_t i, const char* what) {
  const Value* v = node.input(i);
  if (!v->is_initializer())
    return Unimplemented(what, " '", v->name(),
                         "' is computed at run time; dscompile's Resize needs it constant after fold-constants "
                         "(export with static shapes and a fixed scale_factor or size)");
  const Tensor& t = v->initializer();
  std::vector<double> out;
  for (int64_t k = 0; k < t.numel(); ++k) out.push_back(t.GetAsDouble(k));
  return out;
}

// x: Resize's X (ResizeGrad's dX), y: Resize's Y (ResizeGrad's dY); both static.
inline StatusOr<Geom> ReadResize(const Node& node, const Value* x, const Value* y) {
  ASSIGN_OR_RETURN(std::vector<int64_t> xd, nn::StaticDims(x, "X"));
  ASSIGN_OR_RETURN(std::vector<int64_t> yd, nn::StaticDims(y, "Y"));
  const int64_t rank = static_cast<int64_t>(xd.size());
  if (rank < 1 || rank > kMaxRank) return Unimplemented("X has rank ", rank, "; Resize takes rank 1 to ", kMaxRank);
  if (yd.size() != xd.size()) return InvalidArgument("X ", nn::DimsToString(xd), " and Y ", nn::DimsToString(yd), " differ in rank");
  Geom g;
  g.rank = static_cast<int32_t>(rank);
  ASSIGN_OR_RETURN(g.mode, ParseEnum(node, "mode", "nearest", {"nearest", "linear", "cubic"}));
  const std::string ctm = node.GetString("coordinate_transformation_mode", "half_pixel");
  if (ctm == "tf_crop_and_resize")
    return Unimplemented("coordinate_transformation_mode 'tf_crop_and_resize' (crops to roi) is not supported");
  ASSIGN_OR_RETURN(g.transform, ParseEnum(node, "coordinate_transformation_mode", "half_pixel",
                                          {"half_pixel", "pytorch_half_pixel", "align_corners", "asymmetric",
                                           "half_pixel_symmetric"}));
  ASSIGN_OR_RETURN(g.nearest, ParseEnum(node, "nearest_mode", "round_prefer_floor",
                                        {"round_prefer_floor", "round_prefer_ceil", "floor", "ceil"}));
  g.cubic_a = static_cast<double>(node.GetFloat("cubic_coeff_a", -0.75f));
  g.exclude_outside = node.GetInt("exclude_outside", 0) != 0;
  if (node.GetInt("antialias", 0) != 0) return Unimplemented("antialias = 1 is not supported");

  // Opset 18's axes: scales/sizes list only these axes, the others keep their length.
  std::vector<int64_t> axes;
  if (node.HasAttr("axes")) {
    std::vector<bool> seen(static_cast<size_t>(rank), false);
    for (int64_t a : node.GetInts("axes")) {
      ASSIGN_OR_RETURN(int64_t n, nn::NormalizeAxis(a, rank));
      if (seen[static_cast<size_t>(n)]) return InvalidArgument("axes repeats axis ", a);
      seen[static_cast<size_t>(n)] = true;
      axes.push_back(n);
    }
  } else {
    for (int64_t a = 0; a < rank; ++a) axes.push_back(a);
  }
  auto non_empty = [&](size_t i) {
    const Value* v = node.input(i);
    if (!v) return false;
    StatusOr<std::vector<int64_t>> d = nn::StaticDims(v, "input");
    return !d.ok() || nn::Product(*d) > 0;
  };
  const bool has_scales = node.num_inputs() > 2 && non_empty(2);
  const bool has_sizes = node.num_inputs() > 3 && non_empty(3);
  if (has_scales == has_sizes)
    return InvalidArgument(has_scales ? "both scales and sizes are given" : "neither scales nor sizes is given",
                           "; Resize takes exactly one");
  std::vector<double> scale(static_cast<size_t>(rank), 1.0);
  std::vector<int64_t> out = xd;
  for (int64_t a = 0; a < rank; ++a)
    if (xd[static_cast<size_t>(a)] < 1) return Unimplemented("X ", nn::DimsToString(xd), " has an empty axis");
  if (has_scales) {
    ASSIGN_OR_RETURN(std::vector<double> s, ConstantInput(node, 2, "scales"));
    if (s.size() != axes.size())
      return InvalidArgument("scales has ", s.size(), " values for ", axes.size(), " axes");
    for (size_t k = 0; k < axes.size(); ++k) {
      const size_t a = static_cast<size_t>(axes[k]);
      if (!(s[k] > 0) || !std::isfinite(s[k])) return InvalidArgument("scales[", k, "] is ", s[k], ", must be > 0");
      scale[a] = s[k];
      out[a] = static_cast<int64_t>(std::floor(static_cast<double>(xd[a]) * s[k]));
    }
  } else {
    ASSIGN_OR_RETURN(std::vector<double> s, ConstantInput(node, 3, "sizes"));
    if (s.size() != axes.size()) return InvalidArgument("sizes has ", s.size(), " values for ", axes.size(), " axes");
    ASSIGN_OR_RETURN(const int32_t policy, ParseEnum(node, "keep_aspect_ratio_policy", "stretch",
                                                     {"stretch", "not_larger", "not_smaller"}));
    for (size_t k = 0; k < axes.size(); ++k) {
      if (s[k] < 0) return InvalidArgument("sizes[", k, "] is ", s[k], ", must be >= 0");
      const size_t a = static_cast<size_t>(axes[k]);
      out[a] = static_cast<int64_t>(s[k]);
      scale[a] = s[k] / static_cast<double>(xd[a]);
    }
    if (policy != 0) {  // one scale for all listed axes, the smallest (not_larger) or largest
      double common = scale[static_cast<size_t>(axes[0])];
      for (int64_t a : axes) common = policy == 1 ? std::min(common, scale[a]) : std::max(common, scale[a]);
      for (int64_t a : axes) {
        scale[a] = common;
        out[a] = static_cast<int64_t>(common * static_cast<double>(xd[a]) + 0.5);  // the reference's round half up
      }
    }
  }
  if (out != yd)
    return InvalidArgument("X ", nn::DimsToString(xd), " resized by its scales/sizes gives ", nn::DimsToString(out),
                           ", but Y is ", nn::DimsToString(yd));
  for (int64_t a = 0; a < rank; ++a) {
    g.in[a] = xd[a];
    g.out[a] = out[a];
    g.scale[a] = scale[a];
    g.resized[a] = !(scale[a] == 1.0 && out[a] == xd[a]);
  }
  return g;
}

}  // namespace dsc::resize
