// libFuzzer target: a dsrun --metrics JSONL file through dsinspect --plot-metrics
// (backend/metrics_plot.h). Every input either fails with a Status or gives an SVG that an XML
// parser (expat) accepts and whose coordinates are all finite numbers.
#include <expat.h>

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <sstream>
#include <string>

#include "backend/metrics_plot.h"

namespace {

struct Check {
  int depth = 0;
  bool saw_svg = false;
  std::string problem;
};

[[noreturn]] void Fail(const std::string& why, const std::string& svg) {
  std::cerr << "fuzz_metrics_plot: " << why << "\n" << svg.substr(0, 4000) << "\n";
  std::abort();
}

// A viewer draws nothing (or garbage) at "nan" or "inf"; the plot must never write one.
bool FiniteNumber(const char* s) {
  char* end = nullptr;
  const double v = std::strtod(s, &end);
  return end != s && *end == '\0' && std::isfinite(v);
}

bool PathDataFinite(const char* d) {
  for (const char* p = d; *p;) {
    if (std::strchr("MLZ, ", *p)) {
      ++p;
      continue;
    }
    char* end = nullptr;
    const double v = std::strtod(p, &end);
    if (end == p || !std::isfinite(v)) return false;
    p = end;
  }
  return true;
}

void XMLCALL Start(void* user, const XML_Char* name, const XML_Char** attrs) {
  Check* c = static_cast<Check*>(user);
  if (c->depth++ == 0) c->saw_svg = std::strcmp(name, "svg") == 0;
  for (int i = 0; attrs[i]; i += 2) {
    const std::string key = attrs[i];
    const char* value = attrs[i + 1];
    const bool coordinate = key == "x" || key == "y" || key == "x1" || key == "y1" || key == "x2" || key == "y2" ||
                            key == "font-size" || key == "stroke-width" ||
                            ((key == "width" || key == "height") && std::strchr(value, '%') == nullptr);
    const bool bad_transform = key == "transform" && (std::strstr(value, "nan") || std::strstr(value, "inf"));
    if ((coordinate && !FiniteNumber(value)) || (key == "d" && !PathDataFinite(value)) || bad_transform)
      c->problem = "<" + std::string(name) + " " + key + "=\"" + value + "\"> is not a finite number";
  }
}

void XMLCALL End(void* user, const XML_Char*) { --static_cast<Check*>(user)->depth; }

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::istringstream in(std::string(reinterpret_cast<const char*>(data), size));
  dsc::StatusOr<std::string> svg = dsc::PlotMetricsSvg(in, "fuzz.jsonl");
  if (!svg.ok()) {
    if (svg.status().message().find("fuzz.jsonl") == std::string::npos)
      Fail("an error that does not name the file: " + svg.status().message(), "");
    return 0;
  }
  XML_Parser parser = XML_ParserCreate("UTF-8");
  Check check;
  XML_SetUserData(parser, &check);
  XML_SetElementHandler(parser, Start, End);
  const bool parsed = XML_Parse(parser, svg->data(), static_cast<int>(svg->size()), /*isFinal=*/1) == XML_STATUS_OK;
  const std::string error = parsed ? "" : XML_ErrorString(XML_GetErrorCode(parser)) + std::string(" at line ") +
                                              std::to_string(XML_GetCurrentLineNumber(parser));
  XML_ParserFree(parser);
  if (!parsed) Fail("the SVG is not well-formed XML: " + error, *svg);
  if (!check.saw_svg) Fail("the document's root is not <svg>", *svg);
  if (!check.problem.empty()) Fail(check.problem, *svg);
  return 0;
}
