// dsinspect --plot-metrics: a dsrun --metrics file as an SVG of loss, lr and gradient norm per step.
#include "backend/metrics_plot.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <limits>
#include <vector>

#include <nlohmann/json.hpp>

#include "backend/svg_chart.h"

namespace dsc {
namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

struct Series {
  const char* key;
  const char* title;
  std::vector<double> values;
};

std::string Short(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.3g", v);
  return buf;
}

}  // namespace

StatusOr<std::string> PlotMetricsSvg(const std::string& jsonl_path) {
  std::ifstream in(jsonl_path);
  if (!in) return NotFound("cannot read the metrics file '", jsonl_path, "'");
  return PlotMetricsSvg(in, jsonl_path);
}

StatusOr<std::string> PlotMetricsSvg(std::istream& in, const std::string& jsonl_path) {
  std::vector<double> steps;
  std::vector<bool> skipped;
  std::vector<Series> series = {{"loss", "loss", {}}, {"lr", "learning rate", {}},
                                {"grad_norm", "gradient norm (before clipping)", {}}, {"loss_scale", "loss scale", {}}};
  std::string line;
  for (int lineno = 1; std::getline(in, line); ++lineno) {
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    const nlohmann::json j = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
    const std::string where = jsonl_path + ":" + std::to_string(lineno);
    if (j.is_discarded() || !j.is_object()) return InvalidArgument(where, ": not a JSON object (is this a dsrun --metrics file?)");
    if (!j.contains("step") || !j["step"].is_number()) return InvalidArgument(where, ": no numeric \"step\"");
    if (!j.contains("loss") || !j["loss"].is_number()) return InvalidArgument(where, ": no numeric \"loss\"");
    if (!std::isfinite(j["step"].get<double>())) return InvalidArgument(where, ": step ", j["step"].dump(), " is out of range");
    if (!steps.empty() && j["step"].get<double>() <= steps.back())
      return InvalidArgument(where, ": step ", j["step"].dump(), " does not follow step ", Short(steps.back()),
                             " (one run per file: a resumed run appends to a new file)");
    steps.push_back(j["step"].get<double>());
    // dsrun writes true or false; anything else is not a metrics file of ours (and would throw).
    const auto skip = j.find("skipped");
    if (skip != j.end() && !skip->is_boolean() && !skip->is_null())
      return InvalidArgument(where, ": \"skipped\" is ", skip->dump(), ", not true or false");
    skipped.push_back(skip != j.end() && skip->is_boolean() && skip->get<bool>());
    for (Series& s : series) {
      auto v = j.find(s.key);
      s.values.push_back(v != j.end() && v->is_number() ? v->get<double>() : kNaN);
    }
  }
  if (in.bad()) return DataLoss("cannot read '", jsonl_path, "' to its end");
  if (steps.empty()) return InvalidArgument(jsonl_path, ": no metrics lines");
  if (!std::isfinite(steps.back() - steps.front()))
    return InvalidArgument(jsonl_path, ": steps run from ", Short(steps.front()), " to ", Short(steps.back()),
                           ", too wide a range to plot");

  // A series shows when it has a number; loss_scale only when it changes (fp16's dynamic scale).
  std::vector<const Series*> shown;
  for (const Series& s : series) {
    double lo = INFINITY, hi = -INFINITY;
    for (double v : s.values)
      if (std::isfinite(v)) lo = std::min(lo, v), hi = std::max(hi, v);
    if (!std::isfinite(lo)) continue;
    if (std::string(s.key) == "loss_scale" && lo == hi) continue;
    shown.push_back(&s);
  }
  constexpr double kLeft = 100, kWidth = 760, kHeight = 170, kGap = 70, kTop = 50;
  SvgDocument doc(kLeft + kWidth + 40, kTop + static_cast<double>(shown.size()) * (kHeight + kGap));
  int n_skipped = static_cast<int>(std::count(skipped.begin(), skipped.end(), true));
  doc.Text(kLeft, 24,
           "Training metrics: " + jsonl_path + " (" + std::to_string(steps.size()) + " steps" +
               (n_skipped ? ", " + std::to_string(n_skipped) + " skipped" : "") + ")",
           15, "start", "font-weight=\"bold\"");
  double y = kTop;
  for (size_t k = 0; k < shown.size(); ++k) {
    const Series& s = *shown[k];
    double lo = INFINITY, hi = -INFINITY;
    for (double v : s.values)
      if (std::isfinite(v)) lo = std::min(lo, v), hi = std::max(hi, v);
    const double pad = hi > lo ? (hi - lo) * 0.06 : std::max(std::abs(hi) * 0.1, 1e-12);
    const double y0 = lo >= 0 && lo - pad < 0 ? 0 : lo - pad;
    // Beyond a double's range (a loss of -1e308 and another of 1e308) every coordinate would be NaN.
    if (!std::isfinite(hi + pad - y0))
      return InvalidArgument(jsonl_path, ": ", s.key, " runs from ", Short(lo), " to ", Short(hi), ", too wide a range to plot");
    ChartPanel panel(&doc, {kLeft, y, kWidth, kHeight}, steps.front(), steps.back(), y0,
                     hi + pad);
    panel.Axes("step", s.title, Short);
    panel.Polyline(steps, s.values, PaletteColor(k));
    if (std::string(s.key) == "loss")
      for (size_t i = 0; i < steps.size(); ++i)
        if (skipped[i]) doc.Line(panel.X(steps[i]), y, panel.X(steps[i]), y + kHeight, "#c00", 1, "2,2");
    doc.Text(kLeft, y - 8, std::string(s.title) + ": first " + Short(s.values.front()) + ", last " +
                              Short(s.values.back()) + ", min " + Short(lo) + ", max " + Short(hi),
             12, "start", "font-weight=\"bold\"");
    y += kHeight + kGap;
  }
  return doc.Finish();
}

}  // namespace dsc
