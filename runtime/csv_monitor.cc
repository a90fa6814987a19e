#include "runtime/csv_monitor.h"

#include <charconv>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <system_error>

namespace dsc {

std::string PythonFloatRepr(double v) {
  if (std::isnan(v)) return "nan";
  if (std::isinf(v)) return v > 0 ? "inf" : "-inf";
  // The shortest round-trip digits, as d.ddddde±XX; Python's float_repr_style 'short' picks the
  // same digits (David Gay's algorithm) and lays them out by the exponent (Python/pystrtod.c,
  // format_float_short: positional when -4 <= exp < 16).
  char buf[64];
  auto res = std::to_chars(buf, buf + sizeof buf, v, std::chars_format::scientific);
  std::string s(buf, res.ptr);
  std::string sign;
  if (s[0] == '-') {
    sign = "-";
    s.erase(0, 1);
  }
  const size_t e = s.find('e');
  const int exp = std::atoi(s.c_str() + e + 1);
  std::string digits = s.substr(0, e);
  if (digits.size() > 1) digits.erase(1, 1);  // drop the '.'
  if (v == 0) return sign + "0.0";
  if (exp < -4 || exp >= 16) {
    std::string mant = digits.substr(0, 1);
    if (digits.size() > 1) mant += "." + digits.substr(1);
    char ebuf[16];
    std::snprintf(ebuf, sizeof ebuf, "e%c%02d", exp < 0 ? '-' : '+', std::abs(exp));
    return sign + mant + ebuf;
  }
  const int n = static_cast<int>(digits.size());
  if (exp < 0) return sign + "0." + std::string(static_cast<size_t>(-exp - 1), '0') + digits;
  if (exp + 1 >= n) return sign + digits + std::string(static_cast<size_t>(exp + 1 - n), '0') + ".0";
  return sign + digits.substr(0, static_cast<size_t>(exp + 1)) + "." + digits.substr(static_cast<size_t>(exp + 1));
}

std::string CsvMonitorFileName(const std::string& tag) {
  std::string name = tag;
  for (char& c : name)
    if (c == '/' || c == ' ') c = '_';
  return name + ".csv";
}

StatusOr<CsvMonitor> CsvMonitor::Create(const std::string& dir) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) return InvalidArgument("csv_monitor: cannot create the folder ", dir, ": ", ec.message());
  return CsvMonitor(dir);
}

Status CsvMonitor::Write(const std::string& tag, double value, int64_t step) {
  const std::string name = CsvMonitorFileName(tag);
  const std::string path = (std::filesystem::path(dir_) / name).string();
  std::ofstream out(path, std::ios::binary | std::ios::app);
  if (!out) return InvalidArgument("csv_monitor: cannot open ", path);
  if (started_.insert(name).second) {
    const size_t slash = tag.rfind('/');
    out << "step," << (slash == std::string::npos ? tag : tag.substr(slash + 1)) << "\r\n";
  }
  out << step << "," << PythonFloatRepr(value) << "\r\n";
  out.flush();
  if (!out) return InvalidArgument("csv_monitor: cannot write ", path);
  return Status::OK();
}

}  // namespace dsc
