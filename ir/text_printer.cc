// PrintGraph / PrintNode: the IR in ONNX text syntax (grammar and extensions in ir/text.h).
#include <cmath>
#include <string>

#include "ir/text.h"
#include "ir/text_lexer.h"
#include "ir/training_meta.h"

namespace dsc {
namespace {

using text::FormatDouble;
using text::FormatFloat;
using text::FormatName;
using text::QuoteString;

std::string FormatDims(const Shape& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) {
    if (i) s += ",";
    const Dim& d = shape[i];
    if (d.is_static()) s += std::to_string(d.value);
    else if (!d.symbol.empty()) s += FormatName(d.symbol);
    else s += "?";
  }
  return s + "]";
}

std::string FormatType(const TensorType& t) {
  std::string s = DTypeName(t.dtype);
  if (t.shape) s += FormatDims(*t.shape);
  return s;
}

std::string FormatTensorType(const Tensor& t) {
  std::string s = DTypeName(t.dtype()) + std::string("[");
  for (size_t i = 0; i < t.dims().size(); ++i) {
    if (i) s += ",";
    s += std::to_string(t.dims()[i]);
  }
  return s + "]";
}

std::string FormatElement(const Tensor& t, int64_t i) {
  switch (t.dtype()) {
    case DType::kFloat32:
    case DType::kFloat16:
    case DType::kBFloat16:
      return FormatFloat(static_cast<float>(t.GetAsDouble(i)));  // f16/bf16 widen exactly to float
    case DType::kFloat64: return FormatDouble(t.GetAsDouble(i));
    default: return std::to_string(t.GetAsInt(i));
  }
}

std::string FormatTensorData(const Tensor& t) {
  std::string s = "{";
  for (int64_t i = 0; i < t.numel(); ++i) {
    if (i) s += ", ";
    s += FormatElement(t, i);
  }
  return s + "}";
}

// A value in a signature: "float[2] x"; a bare name when the element type is unknown.
std::string FormatValueInfo(const Value* v) {
  if (v->type.dtype == DType::kUndefined) return FormatName(v->name());
  return FormatType(v->type) + " " + FormatName(v->name());
}

template <typename T, typename F>
std::string FormatList(const std::vector<T>& items, F format) {
  std::string s = "[";
  for (size_t i = 0; i < items.size(); ++i) s += (i ? ", " : "") + format(items[i]);
  return s + "]";
}

bool AllFinite(const std::vector<float>& v) {
  for (float f : v)
    if (!std::isfinite(f)) return false;
  return true;
}

std::string FormatAttr(const std::string& name, const AttrValue& value) {
  // The untyped form `name = value` is used unless the parser could not tell the kind back:
  // empty lists, and inf/nan (bare identifiers in value position).
  std::string typed = FormatName(name) + ": " + AttrKindName(KindOf(value)) + " = ";
  std::string untyped = FormatName(name) + " = ";
  switch (KindOf(value)) {
    case AttrKind::kInt: return untyped + std::to_string(std::get<int64_t>(value));
    case AttrKind::kFloat: {
      float f = std::get<float>(value);
      return (std::isfinite(f) ? untyped : typed) + FormatFloat(f);
    }
    case AttrKind::kString: return untyped + QuoteString(std::get<std::string>(value));
    case AttrKind::kTensor: {
      const Tensor& t = std::get<Tensor>(value);
      return untyped + FormatTensorType(t) + " " + FormatTensorData(t);
    }
    case AttrKind::kInts: {
      const auto& v = std::get<std::vector<int64_t>>(value);
      return (v.empty() ? typed : untyped) + FormatList(v, [](int64_t x) { return std::to_string(x); });
    }
    case AttrKind::kFloats: {
      const auto& v = std::get<std::vector<float>>(value);
      return (v.empty() || !AllFinite(v) ? typed : untyped) + FormatList(v, FormatFloat);
    }
    case AttrKind::kStrings: {
      const auto& v = std::get<std::vector<std::string>>(value);
      return (v.empty() ? typed : untyped) + FormatList(v, [](const std::string& x) { return QuoteString(x); });
    }
  }
  return untyped;
}

// Node inputs/outputs; an omitted one prints as nothing ("a, , c"), except alone: `""`, so that
// one omitted output differs from none.
std::string FormatValueList(const std::vector<Value*>& values) {
  if (values.size() == 1 && (!values[0] || values[0]->name().empty())) return "\"\"";
  std::string s;
  for (size_t i = 0; i < values.size(); ++i) {
    if (i) s += ", ";
    if (values[i] && !values[i]->name().empty()) s += FormatName(values[i]->name());
  }
  return s;
}

std::string FormatOpName(const Node& n) {
  if (n.domain().empty()) return FormatName(n.op_type());
  bool simple_domain = true;
  const std::string& d = n.domain();
  for (size_t start = 0; start <= d.size();) {
    size_t dot = d.find('.', start);
    if (dot == std::string::npos) dot = d.size();
    simple_domain = simple_domain && text::IsSimpleIdentifier(std::string_view(d).substr(start, dot - start));
    start = dot + 1;
  }
  return (simple_domain ? d : QuoteString(d)) + "." + FormatName(n.op_type());
}

}  // namespace

std::string PrintNode(const Node& n) {
  std::string s;
  if (!n.name().empty()) {
    s += '[';
    s += FormatName(n.name());
    s += "] ";
  }
  std::string outs = FormatValueList(n.outputs());
  s += outs;
  s += outs.empty() || outs.back() == ' ' ? "= " : " = ";  // "p, = Op(x)": a trailing omitted output
  s += FormatOpName(n);
  if (!n.attrs().empty()) {
    s += " <";
    bool first = true;
    for (const auto& [name, value] : n.attrs()) {
      s += (first ? "" : ", ") + FormatAttr(name, value);
      first = false;
    }
    s += "> ";
  }
  return s + "(" + FormatValueList(n.inputs()) + ")";
}

std::string PrintGraph(const Graph& g, const PrintOptions& opts) {
  std::string s = "<\n  ir_version: " + std::to_string(g.ir_version) + ",\n  opset_import: [";
  bool first = true;
  for (const auto& [domain, version] : g.opsets) {  // std::map: domain "" comes first
    s += (first ? "" : ", ") + QuoteString(domain) + " : " + std::to_string(version);
    first = false;
  }
  s += "]";
  std::vector<std::pair<std::string, std::string>> meta(g.metadata.begin(), g.metadata.end());
  for (auto& kv : TrainingToMetadata(g.training)) meta.push_back(std::move(kv));
  if (!meta.empty()) {
    s += ",\n  metadata_props: [";
    for (size_t i = 0; i < meta.size(); ++i)
      s += (i ? ", " : "") + QuoteString(meta[i].first) + " : " + QuoteString(meta[i].second);
    s += "]";
  }
  s += "\n>\n" + FormatName(g.name) + " (";
  for (size_t i = 0; i < g.inputs().size(); ++i) s += (i ? ", " : "") + FormatValueInfo(g.inputs()[i]);
  s += ") => (";
  for (size_t i = 0; i < g.outputs().size(); ++i) s += (i ? ", " : "") + FormatValueInfo(g.outputs()[i]);
  s += ")\n";

  std::vector<std::string> section;
  for (const Value* v : g.initializers()) {
    const Tensor& t = v->initializer();
    bool elide = opts.elide_above >= 0 && t.numel() > opts.elide_above;
    section.push_back(FormatTensorType(t) + " " + FormatName(v->name()) + " = " +
                      (elide ? std::string("...") : FormatTensorData(t)));
  }
  for (const auto& n : g.nodes())
    for (const Value* v : n->outputs())
      if (!v->is_graph_output() && !v->name().empty() && v->type.dtype != DType::kUndefined)
        section.push_back(FormatType(v->type) + " " + FormatName(v->name()));
  if (!section.empty()) {
    s += "<\n";
    for (size_t i = 0; i < section.size(); ++i) s += "  " + section[i] + (i + 1 < section.size() ? ",\n" : "\n");
    s += ">\n";
  }

  s += "{\n";
  for (const auto& n : g.nodes()) s += "  " + PrintNode(*n) + "\n";
  return s + "}\n";
}

}  // namespace dsc
