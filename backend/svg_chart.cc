// A small SVG writer for dsinspect's charts.
#include "backend/svg_chart.h"

#include <algorithm>
#include <cmath>
#include <cstdio>

namespace dsc {
namespace {

std::string Num(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.2f", v);
  std::string s = buf;
  // Trailing zeros cost bytes in pictures of thousands of points.
  while (!s.empty() && s.back() == '0') s.pop_back();
  if (!s.empty() && s.back() == '.') s.pop_back();
  return s == "-0" ? "0" : s;
}

// Appends the parts (strings, C strings) to *out: chains of std::string operator+ trip GCC 12's
// -Wrestrict false positive.
template <typename... Parts>
void Append(std::string* out, const Parts&... parts) {
  (out->append(parts), ...);
}

std::string DefaultLabel(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%g", v);
  return buf;
}

}  // namespace

std::string XmlEscape(const std::string& s) {
  std::string out;
  out.reserve(s.size());
  for (char c : s) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&quot;"; break;
      case '\'': out += "&apos;"; break;
      default:
        // Control characters are not allowed in XML 1.0 text.
        if (static_cast<unsigned char>(c) < 0x20 && c != '\t' && c != '\n') out += '?';
        else out += c;
    }
  }
  return out;
}

SvgDocument::SvgDocument(double width, double height) : width_(width), height_(height) {}

void SvgDocument::Text(double x, double y, const std::string& text, double size, const std::string& anchor,
                       const std::string& style) {
  Append(&body_, "<text x=\"", Num(x), "\" y=\"", Num(y), "\" font-size=\"", Num(size), "\"");
  if (anchor != "start") Append(&body_, " text-anchor=\"", anchor, "\"");
  if (!style.empty()) Append(&body_, " ", style);
  Append(&body_, ">", XmlEscape(text), "</text>\n");
}

void SvgDocument::Line(double x1, double y1, double x2, double y2, const std::string& stroke, double width,
                       const std::string& dash) {
  Append(&body_, "<line x1=\"", Num(x1), "\" y1=\"", Num(y1), "\" x2=\"", Num(x2), "\" y2=\"", Num(y2), "\" stroke=\"", stroke, "\" stroke-width=\"", Num(width), "\"");
  if (!dash.empty()) Append(&body_, " stroke-dasharray=\"", dash, "\"");
  Append(&body_, "/>\n");
}

void SvgDocument::Rect(double x, double y, double w, double h, const std::string& fill, const std::string& stroke) {
  Append(&body_, "<rect x=\"", Num(x), "\" y=\"", Num(y), "\" width=\"", Num(w), "\" height=\"", Num(h), "\" fill=\"", fill, "\" stroke=\"", stroke, "\"/>\n");
}

std::string SvgDocument::Finish() const {
  std::string out;
  Append(&out, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"",
         Num(width_), "\" height=\"", Num(height_), "\" viewBox=\"0 0 ", Num(width_), " ", Num(height_),
         "\" font-family=\"DejaVu Sans, Helvetica, Arial, sans-serif\">\n<rect width=\"100%\" height=\"100%\" "
         "fill=\"white\"/>\n",
         body_, "</svg>\n");
  return out;
}

std::vector<double> NiceTicks(double lo, double hi, int target) {
  if (!(hi > lo) || !std::isfinite(lo) || !std::isfinite(hi)) return {lo};
  const double raw = (hi - lo) / std::max(1, target);
  const double mag = std::pow(10.0, std::floor(std::log10(raw)));
  double step = mag;
  for (double m : {1.0, 2.0, 5.0, 10.0})
    if (m * mag >= raw) {
      step = m * mag;
      break;
    }
  if (!std::isfinite(step) || !(step > 0)) return {lo};
  // Counted from the first tick rather than accumulated: where step is below the spacing of
  // doubles near lo (lo = 1e17, hi = lo + 16), t += step would never move.
  const double first = std::ceil(lo / step) * step;
  std::vector<double> ticks;
  for (int i = 0; i <= 2 * std::max(1, target) + 2; ++i) {
    const double t = first + i * step;
    if (!(t <= hi + step * 1e-9)) break;
    if (ticks.empty() || t != ticks.back()) ticks.push_back(std::abs(t) < step * 1e-9 ? 0.0 : t);
  }
  return ticks;
}

namespace {

// The top of a data range that must not be empty: at 1e17 and beyond, lo + 1 == lo.
double AboveOrWiden(double lo, double hi) { return hi > lo ? hi : lo + std::max(1.0, std::abs(lo) * 1e-6); }

}  // namespace

ChartPanel::ChartPanel(SvgDocument* doc, PanelBox box, double x0, double x1, double y0, double y1)
    : doc_(doc), box_(box), x0_(x0), x1_(AboveOrWiden(x0, x1)), y0_(y0), y1_(AboveOrWiden(y0, y1)) {}

double ChartPanel::X(double x) const { return box_.x + (x - x0_) / (x1_ - x0_) * box_.width; }
double ChartPanel::Y(double y) const { return box_.y + box_.height - (y - y0_) / (y1_ - y0_) * box_.height; }

void ChartPanel::Axes(const std::string& x_title, const std::string& y_title,
                      const std::function<std::string(double)>& y_label,
                      const std::function<std::string(double)>& x_label, double y_unit) {
  for (double u : NiceTicks(y0_ / y_unit, y1_ / y_unit, 5)) {
    const double t = u * y_unit;
    if (t < y0_ || t > y1_) continue;
    doc_->Line(box_.x, Y(t), box_.x + box_.width, Y(t), "#e0e0e0");
    doc_->Text(box_.x - 6, Y(t) + 4, y_label ? y_label(t) : DefaultLabel(t), 11, "end");
  }
  for (double t : NiceTicks(x0_, x1_, 8)) {
    if (t < x0_ || t > x1_) continue;
    doc_->Line(X(t), box_.y + box_.height, X(t), box_.y + box_.height + 4, "#444");
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.0f", t);
    doc_->Text(X(t), box_.y + box_.height + 16, x_label ? x_label(t) : buf, 11, "middle");
  }
  doc_->Rect(box_.x, box_.y, box_.width, box_.height, "none", "#444");
  doc_->Text(box_.x + box_.width / 2, box_.y + box_.height + 32, x_title, 12, "middle");
  // Left of the widest tick labels ("1023.5 KiB").
  const double tx = box_.x - 76, ty = box_.y + box_.height / 2;
  std::string rotate;
  Append(&rotate, "transform=\"rotate(-90 ", Num(tx), " ", Num(ty), ")\"");
  doc_->Text(tx, ty, y_title, 12, "middle", rotate);
}

void ChartPanel::StepBand(const std::vector<double>& xs, const std::vector<double>& lower,
                          const std::vector<double>& upper, const std::string& fill, const std::string& title) {
  const size_t n = std::min({xs.size(), lower.size(), upper.size()});
  if (n == 0) return;
  // Runs of equal (lower, upper) become one step.
  std::vector<size_t> starts;
  for (size_t i = 0; i < n; ++i)
    if (i == 0 || lower[i] != lower[i - 1] || upper[i] != upper[i - 1]) starts.push_back(i);
  auto end_of = [&](size_t k) { return k + 1 < starts.size() ? xs[starts[k + 1]] : x1_; };
  std::string d;
  Append(&d, "M", Num(X(xs[0])), ",", Num(Y(upper[0])));
  for (size_t k = 0; k < starts.size(); ++k) {
    const size_t i = starts[k];
    Append(&d, "L", Num(X(xs[i])), ",", Num(Y(upper[i])), "L", Num(X(end_of(k))), ",", Num(Y(upper[i])));
  }
  for (size_t k = starts.size(); k-- > 0;) {
    const size_t i = starts[k];
    Append(&d, "L", Num(X(end_of(k))), ",", Num(Y(lower[i])), "L", Num(X(xs[i])), ",", Num(Y(lower[i])));
  }
  std::string el;
  Append(&el, "<path d=\"", d, "Z\" fill=\"", fill, "\" stroke=\"none\">");
  if (!title.empty()) Append(&el, "<title>", XmlEscape(title), "</title>");
  Append(&el, "</path>\n");
  doc_->Add(el);
}

void ChartPanel::StepLine(const std::vector<double>& xs, const std::vector<double>& ys, const std::string& stroke,
                          double width, const std::string& dash) {
  const size_t n = std::min(xs.size(), ys.size());
  if (n == 0) return;
  std::string d;
  Append(&d, "M", Num(X(xs[0])), ",", Num(Y(ys[0])));
  for (size_t i = 0; i < n; ++i) {
    if (i > 0 && ys[i] == ys[i - 1]) continue;
    if (i > 0) Append(&d, "L", Num(X(xs[i])), ",", Num(Y(ys[i - 1])));
    Append(&d, "L", Num(X(xs[i])), ",", Num(Y(ys[i])));
  }
  Append(&d, "L", Num(X(x1_)), ",", Num(Y(ys[n - 1])));
  std::string el;
  Append(&el, "<path d=\"", d, "\" fill=\"none\" stroke=\"", stroke, "\" stroke-width=\"", Num(width), "\"");
  if (!dash.empty()) Append(&el, " stroke-dasharray=\"", dash, "\"");
  Append(&el, "/>\n");
  doc_->Add(el);
}

void ChartPanel::Polyline(const std::vector<double>& xs, const std::vector<double>& ys, const std::string& stroke,
                          double width) {
  std::string d;
  bool pen_down = false;
  for (size_t i = 0; i < std::min(xs.size(), ys.size()); ++i) {
    if (!std::isfinite(ys[i]) || !std::isfinite(xs[i])) {
      pen_down = false;
      continue;
    }
    Append(&d, (pen_down ? "L" : "M"), Num(X(xs[i])), ",", Num(Y(ys[i])));
    pen_down = true;
  }
  if (d.empty()) return;
  std::string el;
  Append(&el, "<path d=\"", d, "\" fill=\"none\" stroke=\"", stroke, "\" stroke-width=\"", Num(width),
         "\" stroke-linejoin=\"round\"/>\n");
  doc_->Add(el);
}

const char* PaletteColor(size_t i) {
  static const char* kColors[] = {"#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f",
                                  "#edc948", "#b07aa1", "#ff9da7", "#9c755f", "#bab0ac"};
  return kColors[i % (sizeof kColors / sizeof kColors[0])];
}

}  // namespace dsc
