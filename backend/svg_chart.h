// A small SVG writer for dsinspect's charts: a document of panels, each with axes, ticks and
// data coordinates mapped to pixels.
//
//   SvgDocument doc(900, 400);
//   ChartPanel p(&doc, {.x = 70, .y = 30, .width = 800, .height = 300}, 0, n, 0, max_bytes);
//   p.Axes("node", "bytes", HumanBytes);
//   p.StepBand(xs, lower, upper, "#4e79a7");
//   std::string svg = doc.Finish();
#pragma once

#include <functional>
#include <string>
#include <vector>

namespace dsc {

// Text for XML character data and attribute values.
std::string XmlEscape(const std::string& s);

class SvgDocument {
 public:
  SvgDocument(double width, double height);
  // Appends raw SVG elements (already escaped).
  void Add(const std::string& element) { body_ += element; }
  void Text(double x, double y, const std::string& text, double size = 12, const std::string& anchor = "start",
            const std::string& style = "");
  void Line(double x1, double y1, double x2, double y2, const std::string& stroke, double width = 1,
            const std::string& dash = "");
  void Rect(double x, double y, double w, double h, const std::string& fill, const std::string& stroke = "none");
  std::string Finish() const;  // the whole document
  double width() const { return width_; }
  double height() const { return height_; }

 private:
  double width_, height_;
  std::string body_;
};

// About `target` round tick values (1, 2 or 5 times a power of ten) covering [lo, hi].
std::vector<double> NiceTicks(double lo, double hi, int target = 5);

struct PanelBox {
  double x = 0, y = 0, width = 0, height = 0;  // pixels, top-left origin
};

// A plotting area of `doc` showing data x in [x0, x1] and y in [y0, y1] (y up).
class ChartPanel {
 public:
  ChartPanel(SvgDocument* doc, PanelBox box, double x0, double x1, double y0, double y1);
  double X(double x) const;
  double Y(double y) const;
  const PanelBox& box() const { return box_; }
  // Frame, ticks, grid lines and axis titles; `y_label` formats a y tick (x ticks print as integers
  // unless `x_label` is given). y ticks are round multiples of `y_unit` (1024^k for bytes).
  void Axes(const std::string& x_title, const std::string& y_title, const std::function<std::string(double)>& y_label,
            const std::function<std::string(double)>& x_label = nullptr, double y_unit = 1);
  // A filled band between lower[i] and upper[i] over [xs[i], xs[i+1]) (a step function; the last
  // step ends at x1). Consecutive equal steps are merged.
  void StepBand(const std::vector<double>& xs, const std::vector<double>& lower, const std::vector<double>& upper,
                const std::string& fill, const std::string& title = "");
  // The step function y[i] over [xs[i], xs[i+1]) as a line.
  void StepLine(const std::vector<double>& xs, const std::vector<double>& ys, const std::string& stroke,
                double width = 1, const std::string& dash = "");
  // A polyline through (xs[i], ys[i]), skipping non-finite points (the line breaks there).
  void Polyline(const std::vector<double>& xs, const std::vector<double>& ys, const std::string& stroke,
                double width = 1.5);

 private:
  SvgDocument* doc_;
  PanelBox box_;
  double x0_, x1_, y0_, y1_;
};

// A fixed palette (Tableau 10), index taken modulo its size.
const char* PaletteColor(size_t i);

}  // namespace dsc
