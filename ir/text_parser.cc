// ParseGraph: ONNX text syntax (with the extensions listed in ir/text.h) into the IR.
//
// One pass over the tokens builds the graph; node inputs are wired after the node list so that
// nodes may come in any order (TopoSort then orders them and reports cycles). Every error is a
// Status carrying the line and column; nothing throws.
#include <charconv>
#include <cmath>
#include <limits>
#include <map>
#include <new>
#include <optional>
#include <set>

#include "ir/text.h"
#include "ir/text_lexer.h"
#include "ir/training_meta.h"

namespace dsc {
namespace {

using text::Lexer;
using text::Token;
using text::TokenKind;

struct Pos {
  int line = 1;
  int column = 1;
};
Pos PosOf(const Token& t) { return Pos{t.line, t.column}; }

struct NameRef {
  std::string name;
  Pos pos;
};

// A numeric literal in tensor data or an attribute.
struct Number {
  bool is_int = false;
  int64_t i = 0;
  double d = 0;
  double AsDouble() const { return is_int ? static_cast<double>(i) : d; }
};

bool SameType(const TensorType& a, const TensorType& b) {
  return a.dtype == b.dtype && a.shape == b.shape;
}

// Elided initializers are zero-filled; past this they are refused rather than risk the host.
constexpr int64_t kMaxElidedBytes = int64_t{1} << 34;

class Parser {
 public:
  Parser(const std::string& text, const ParseOptions& opts) : lex_(text), opts_(opts) {}

  StatusOr<std::unique_ptr<Graph>> Run() {
    if (lex_.Peek().Is('<')) RETURN_IF_ERROR(ParseHeader());
    ASSIGN_OR_RETURN(g_->name, ParseName("the graph name"));
    RETURN_IF_ERROR(ParseInputs());
    if (lex_.Peek().kind != TokenKind::kArrow) return Expected("'=>'");
    lex_.Next();
    RETURN_IF_ERROR(ParseOutputs());
    if (lex_.Peek().Is('<')) RETURN_IF_ERROR(ParseValueSection());
    RETURN_IF_ERROR(ParseNodes());
    if (lex_.Peek().kind != TokenKind::kEnd) return Expected("the end of the text after the graph's '}'");
    RETURN_IF_ERROR(WireInputs());
    RETURN_IF_ERROR(ApplyValueInfos());
    RETURN_IF_ERROR(SetOutputs());
    g_->training = TrainingFromMetadata(&g_->metadata);
    RETURN_IF_ERROR(g_->TopoSort());
    return std::move(g_);
  }

 private:
  // ------------------------------------------------------------ errors

  Status ErrorAt(Pos p, const std::string& msg) {
    std::string line(lex_.LineText(p.line));
    std::string caret(static_cast<size_t>(p.column > 0 ? p.column - 1 : 0), ' ');
    for (size_t i = 0; i < caret.size() && i < line.size(); ++i)
      if (line[i] == '\t') caret[i] = '\t';  // keep the caret under the column with tabs
    return InvalidArgument("line ", p.line, ", column ", p.column, ": ", msg, "\n  ", line, "\n  ", caret, "^");
  }

  static std::string Describe(const Token& t) {
    if (t.kind == TokenKind::kEnd) return "end of input";
    std::string s(t.text.substr(0, 40));
    if (t.text.size() > 40) s += "...";
    return "'" + s + "'";
  }

  // "expected X, found 'Y'" at the next token (a lexical error reports itself instead).
  Status Expected(const std::string& what) {
    const Token& t = lex_.Peek();
    if (t.kind == TokenKind::kError) return ErrorAt(PosOf(t), t.value);
    return ErrorAt(PosOf(t), "expected " + what + ", found " + Describe(t));
  }

  Status Expect(char punct) {
    if (!lex_.Peek().Is(punct)) return Expected(std::string("'") + punct + "'");
    lex_.Next();
    return Status::OK();
  }

  bool Accept(char punct) {
    if (!lex_.Peek().Is(punct)) return false;
    lex_.Next();
    return true;
  }

  // ------------------------------------------------------------ names and literals

  StatusOr<std::string> ParseName(const std::string& what) {
    if (!lex_.Peek().IsName()) return Expected(what);
    Token t = lex_.Next();
    return t.kind == TokenKind::kString ? std::move(t.value) : std::string(t.text);
  }

  StatusOr<NameRef> ParseNameRef(const std::string& what) {
    Pos p = PosOf(lex_.Peek());
    ASSIGN_OR_RETURN(std::string name, ParseName(what));
    return NameRef{std::move(name), p};
  }

  StatusOr<std::string> ParseString(const std::string& what) {
    if (lex_.Peek().kind != TokenKind::kString) return Expected(what);
    return lex_.Next().value;
  }

  bool AtNumber() {
    const Token& t = lex_.Peek();
    if (t.kind == TokenKind::kInt || t.kind == TokenKind::kFloat || t.Is('-')) return true;
    return t.kind == TokenKind::kIdent && (t.text == "inf" || t.text == "nan");
  }

  // int, float, inf, nan, -inf, -nan.
  StatusOr<Number> ParseNumber(const std::string& what) {
    Token t = lex_.Peek();
    Number n;
    if (t.kind == TokenKind::kInt || t.kind == TokenKind::kFloat) {
      lex_.Next();
      std::string_view s = t.text;
      if (!s.empty() && s[0] == '+') s.remove_prefix(1);
      if (t.kind == TokenKind::kInt) {
        n.is_int = true;
        auto r = std::from_chars(s.data(), s.data() + s.size(), n.i);
        if (r.ec != std::errc()) return ErrorAt(PosOf(t), "integer literal out of range: " + std::string(t.text));
      } else {
        auto r = std::from_chars(s.data(), s.data() + s.size(), n.d);
        if (r.ec != std::errc()) return ErrorAt(PosOf(t), "float literal out of range: " + std::string(t.text));
      }
      return n;
    }
    bool negative = false;
    if (t.Is('-')) {
      lex_.Next();
      negative = true;
    }
    const Token& w = lex_.Peek();
    if (w.kind != TokenKind::kIdent || (w.text != "inf" && w.text != "nan")) return Expected(what);
    n.d = w.text == "inf" ? std::numeric_limits<double>::infinity() : std::numeric_limits<double>::quiet_NaN();
    if (negative) n.d = -n.d;
    lex_.Next();
    return n;
  }

  StatusOr<int64_t> ParseInt(const std::string& what) {
    Pos p = PosOf(lex_.Peek());
    ASSIGN_OR_RETURN(Number n, ParseNumber(what));
    if (!n.is_int) return ErrorAt(p, "expected " + what + ", found a float");
    return n.i;
  }

  // A float literal narrowed to float; finite values beyond float's range are an error.
  StatusOr<float> ToFloat(const Number& n, Pos p) {
    double d = n.AsDouble();
    float f = static_cast<float>(d);
    if (std::isinf(f) && !std::isinf(d)) return ErrorAt(p, "value " + text::FormatDouble(d) + " is out of range for float");
    return f;
  }

  // ------------------------------------------------------------ header

  Status ParseHeader() {
    RETURN_IF_ERROR(Expect('<'));
    std::set<std::string> seen;
    if (!lex_.Peek().Is('>')) {
      do {
        const Token key = lex_.Peek();
        if (key.kind != TokenKind::kIdent) return Expected("a model header field (ir_version, opset_import, ...)");
        lex_.Next();
        std::string k(key.text);
        if (!seen.insert(k).second) return ErrorAt(PosOf(key), "model header field '" + k + "' is given twice");
        RETURN_IF_ERROR(Expect(':'));
        if (k == "ir_version") {
          ASSIGN_OR_RETURN(g_->ir_version, ParseInt("an integer"));
        } else if (k == "opset_import") {
          g_->opsets.clear();
          RETURN_IF_ERROR(ParsePairs([&](const Token& at, std::string domain) -> Status {
            ASSIGN_OR_RETURN(int64_t version, ParseInt("an opset version"));
            if (!g_->opsets.emplace(domain, version).second)
              return ErrorAt(PosOf(at), "opset domain \"" + domain + "\" is imported twice");
            return Status::OK();
          }));
        } else if (k == "metadata_props") {
          RETURN_IF_ERROR(ParsePairs([&](const Token& at, std::string key_name) -> Status {
            ASSIGN_OR_RETURN(std::string value, ParseString("a string value"));
            if (!g_->metadata.emplace(key_name, value).second)
              return ErrorAt(PosOf(at), "metadata key \"" + key_name + "\" is given twice");
            return Status::OK();
          }));
        } else if (k == "producer_name" || k == "producer_version" || k == "domain" || k == "doc_string") {
          RETURN_IF_ERROR(ParseString("a string").status());  // Graph has no field for these
        } else if (k == "model_version") {
          RETURN_IF_ERROR(ParseInt("an integer").status());
        } else {
          return ErrorAt(PosOf(key), "unknown model header field '" + k + "'");
        }
      } while (Accept(','));
    }
    return Expect('>');
  }

  // '[' "key" ':' value (',' ...)* ']' — the value parsed by `value(key_token, key)`.
  template <typename F>
  Status ParsePairs(F value) {
    RETURN_IF_ERROR(Expect('['));
    if (Accept(']')) return Status::OK();
    do {
      const Token at = lex_.Peek();
      ASSIGN_OR_RETURN(std::string key, ParseString("a quoted string"));
      RETURN_IF_ERROR(Expect(':'));
      RETURN_IF_ERROR(value(at, std::move(key)));
    } while (Accept(','));
    return Expect(']');
  }

  // ------------------------------------------------------------ types and signature

  // After the element type's identifier: optional [dims].
  StatusOr<TensorType> ParseTypeRest(const Token& dtype_token) {
    StatusOr<DType> dt = DTypeFromName(std::string(dtype_token.text));
    if (!dt.ok() || dtype_token.kind != TokenKind::kIdent)
      return ErrorAt(PosOf(dtype_token), "unknown element type " + Describe(dtype_token) +
                                             " (float, float16, bfloat16, double, int64, int32, int16, int8, uint8, bool)");
    TensorType t{*dt, std::nullopt};
    if (!Accept('[')) return t;
    Shape shape;
    if (!lex_.Peek().Is(']')) {
      do {
        const Token& d = lex_.Peek();
        if (d.Is('?')) {
          lex_.Next();
          shape.push_back(Dim{});
        } else if (d.IsName()) {
          ASSIGN_OR_RETURN(std::string sym, ParseName("a dimension"));
          shape.push_back(sym.empty() ? Dim{} : Dim::Symbol(std::move(sym)));
        } else {
          Pos p = PosOf(d);
          ASSIGN_OR_RETURN(int64_t v, ParseInt("a dimension (integer, name or '?')"));
          if (v < 0) return ErrorAt(p, "negative dimension " + std::to_string(v));
          shape.push_back(Dim::Static(v));
        }
      } while (Accept(','));
    }
    RETURN_IF_ERROR(Expect(']'));
    t.shape = std::move(shape);
    return t;
  }

  StatusOr<TensorType> ParseType(const std::string& what) {
    if (lex_.Peek().kind != TokenKind::kIdent) return Expected(what);
    return ParseTypeRest(lex_.Next());
  }

  // `type name`, or a bare `name` (element type unknown).
  Status ParseSignatureEntry(TensorType* type, NameRef* name) {
    const Token& first = lex_.Peek();
    if (first.kind == TokenKind::kIdent) {
      Token t = lex_.Next();
      const Token& next = lex_.Peek();
      if (!next.Is('[') && !next.IsName()) {  // a bare name
        *type = TensorType{};
        *name = NameRef{std::string(t.text), PosOf(t)};
        return Status::OK();
      }
      ASSIGN_OR_RETURN(*type, ParseTypeRest(t));
      ASSIGN_OR_RETURN(*name, ParseNameRef("a value name"));
      return Status::OK();
    }
    *type = TensorType{};
    ASSIGN_OR_RETURN(*name, ParseNameRef("a type and a value name"));
    return Status::OK();
  }

  Status DefineCheck(const NameRef& n) {
    if (n.name.empty()) return ErrorAt(n.pos, "a graph input, initializer or node output needs a name here");
    if (g_->FindValue(n.name)) return ErrorAt(n.pos, "value '" + n.name + "' is defined twice");
    return Status::OK();
  }

  Status ParseInputs() {
    RETURN_IF_ERROR(Expect('('));
    if (Accept(')')) return Status::OK();
    do {
      TensorType type;
      NameRef name;
      RETURN_IF_ERROR(ParseSignatureEntry(&type, &name));
      RETURN_IF_ERROR(DefineCheck(name));
      g_->AddInput(name.name, type);
    } while (Accept(','));
    return Expect(')');
  }

  Status ParseOutputs() {
    RETURN_IF_ERROR(Expect('('));
    if (Accept(')')) return Status::OK();
    do {
      PendingOutput o;
      RETURN_IF_ERROR(ParseSignatureEntry(&o.type, &o.ref));
      outputs_.push_back(std::move(o));
    } while (Accept(','));
    return Expect(')');
  }

  // ------------------------------------------------------------ initializers and value_info

  Status ParseValueSection() {
    RETURN_IF_ERROR(Expect('<'));
    if (Accept('>')) return Status::OK();
    do {
      Pos type_pos = PosOf(lex_.Peek());
      ASSIGN_OR_RETURN(TensorType type, ParseType("a type (initializer or value_info)"));
      ASSIGN_OR_RETURN(NameRef name, ParseNameRef("a value name"));
      if (!Accept('=')) {
        if (name.name.empty()) return ErrorAt(name.pos, "value_info needs a name");
        if (!value_infos_.emplace(name.name, PendingInfo{type, name.pos}).second)
          return ErrorAt(name.pos, "value_info for '" + name.name + "' is given twice");
        continue;
      }
      RETURN_IF_ERROR(DefineCheck(name));
      std::vector<int64_t> dims;
      if (!type.shape) return ErrorAt(type_pos, "initializer '" + name.name + "' needs a shape ([] for a scalar)");
      for (const Dim& d : *type.shape) {
        if (!d.is_static()) return ErrorAt(type_pos, "initializer '" + name.name + "' must have a static shape");
        dims.push_back(d.value);
      }
      const std::string what = "initializer '" + name.name + "'";
      if (lex_.Peek().kind == TokenKind::kEllipsis) {
        Pos p = PosOf(lex_.Next());
        if (!opts_.allow_elided)
          return ErrorAt(p, what + " has elided data: use the .onnx dump to reload it (or parse with allow_elided)");
        ASSIGN_OR_RETURN(Tensor t, ZeroTensor(type.dtype, dims, what, p));
        g_->AddInitializer(name.name, std::move(t));
        continue;
      }
      ASSIGN_OR_RETURN(Tensor t, ParseTensorLiteral(type.dtype, dims, what));
      g_->AddInitializer(name.name, std::move(t));
    } while (Accept(','));
    return Expect('>');
  }

  StatusOr<Tensor> ZeroTensor(DType dtype, const std::vector<int64_t>& dims, const std::string& what, Pos p) {
    StatusOr<int64_t> n = NumElements(dims);
    if (!n.ok() || *n > kMaxElidedBytes / static_cast<int64_t>(DTypeSize(dtype)))
      return ErrorAt(p, what + " is too large to zero-fill");
    try {
      return Tensor(dtype, dims);
    } catch (const std::bad_alloc&) {
      return ErrorAt(p, what + " is too large to zero-fill");
    }
  }

  // '{' values '}' for a tensor of `dtype` and `dims`.
  StatusOr<Tensor> ParseTensorLiteral(DType dtype, const std::vector<int64_t>& dims, const std::string& what) {
    const Pos open = PosOf(lex_.Peek());
    RETURN_IF_ERROR(Expect('{'));
    StatusOr<int64_t> numel = NumElements(dims);
    if (!numel.ok()) return ErrorAt(open, what + ": " + numel.status().message());
    // Each value takes at least one character: a shape needing more than the rest of the text
    // cannot match, so only count the values (and never allocate for a bogus shape).
    const bool store = *numel <= static_cast<int64_t>(lex_.remaining());
    Tensor t = store ? Tensor(dtype, dims) : Tensor();
    int64_t count = 0;
    if (!lex_.Peek().Is('}')) {
      do {
        Pos p = PosOf(lex_.Peek());
        ASSIGN_OR_RETURN(Number n, ParseNumber("a number"));
        if (store && count < *numel) RETURN_IF_ERROR(StoreElement(&t, count, n, p));
        ++count;
      } while (Accept(','));
    }
    RETURN_IF_ERROR(Expect('}'));
    if (count != *numel)
      return ErrorAt(open, StrCat(what, " has ", count, " values, its type ", DTypeName(dtype),
                                  ShapeToString(ToShape(dims)), " needs ", *numel));
    return t;
  }

  static Shape ToShape(const std::vector<int64_t>& dims) {
    Shape s;
    for (int64_t d : dims) s.push_back(Dim::Static(d));
    return s;
  }

  Status StoreElement(Tensor* t, int64_t i, const Number& n, Pos p) {
    const DType dt = t->dtype();
    if (IsFloat(dt)) {
      if (dt == DType::kFloat64) {
        t->SetFromDouble(i, n.AsDouble());
        return Status::OK();
      }
      ASSIGN_OR_RETURN(float f, ToFloat(n, p));
      t->SetFromDouble(i, f);
      if (std::isfinite(f) && std::isinf(t->GetAsDouble(i)))
        return ErrorAt(p, std::string("value is out of range for ") + DTypeName(dt));
      return Status::OK();
    }
    if (!n.is_int) return ErrorAt(p, std::string("expected an integer for ") + DTypeName(dt) + " data, found a float");
    int64_t lo = std::numeric_limits<int64_t>::min(), hi = std::numeric_limits<int64_t>::max();
    switch (dt) {
      case DType::kInt32: lo = std::numeric_limits<int32_t>::min(); hi = std::numeric_limits<int32_t>::max(); break;
      case DType::kInt16: lo = std::numeric_limits<int16_t>::min(); hi = std::numeric_limits<int16_t>::max(); break;
      case DType::kInt8: lo = -128; hi = 127; break;
      case DType::kUInt8: lo = 0; hi = 255; break;
      case DType::kBool: lo = 0; hi = 1; break;
      default: break;
    }
    if (n.i < lo || n.i > hi)
      return ErrorAt(p, StrCat("value ", n.i, " is out of range for ", DTypeName(dt)));
    t->SetFromInt(i, n.i);
    return Status::OK();
  }

  // ------------------------------------------------------------ nodes

  Status ParseNodes() {
    RETURN_IF_ERROR(Expect('{'));
    while (!Accept('}')) {
      if (lex_.Peek().kind == TokenKind::kEnd) return Expected("a node or '}'");
      RETURN_IF_ERROR(ParseNode());
    }
    return Status::OK();
  }

  // Comma-separated names where an empty slot is an omitted value; ends before `end`.
  Status ParseValueList(char end, std::vector<NameRef>* out) {
    if (lex_.Peek().Is(end)) return Status::OK();
    while (true) {
      const Token& t = lex_.Peek();
      if (t.IsName()) {
        ASSIGN_OR_RETURN(NameRef n, ParseNameRef("a value name"));
        out->push_back(std::move(n));
      } else if (t.Is(',') || t.Is(end)) {
        out->push_back(NameRef{"", PosOf(t)});
      } else {
        return Expected(std::string("a value name, ',' or '") + end + "'");
      }
      if (!Accept(',')) return Status::OK();
    }
  }

  Status ParseNode() {
    std::string node_name;
    if (lex_.Peek().Is('[')) {
      lex_.Next();
      if (lex_.AtQuote()) {
        ASSIGN_OR_RETURN(node_name, ParseName("a node name"));
        RETURN_IF_ERROR(Expect(']'));
      } else {
        Token err;
        if (!lex_.RawUntil(']', &node_name, &err)) return ErrorAt(PosOf(err), err.value);
        lex_.Next();  // the ']'
      }
    }
    std::vector<NameRef> outs;
    RETURN_IF_ERROR(ParseValueList('=', &outs));
    RETURN_IF_ERROR(Expect('='));
    const Pos op_pos = PosOf(lex_.Peek());
    std::vector<std::string> parts;
    do {
      ASSIGN_OR_RETURN(std::string part, ParseName("an operator (OpType or domain.OpType)"));
      parts.push_back(std::move(part));
    } while (Accept('.'));
    std::string op = parts.back();
    std::string domain;
    for (size_t i = 0; i + 1 < parts.size(); ++i) domain += (i ? "." : "") + parts[i];
    if (op.empty()) return ErrorAt(op_pos, "empty operator name");

    std::map<std::string, AttrValue> attrs;
    if (lex_.Peek().Is('<')) RETURN_IF_ERROR(ParseAttrs(&attrs));
    RETURN_IF_ERROR(Expect('('));
    std::vector<NameRef> ins;
    RETURN_IF_ERROR(ParseValueList(')', &ins));
    RETURN_IF_ERROR(Expect(')'));
    if (lex_.Peek().Is('<')) RETURN_IF_ERROR(ParseAttrs(&attrs));  // ONNX also allows attributes last

    std::vector<std::string> out_names;
    for (const NameRef& o : outs) {
      if (!o.name.empty()) {
        if (g_->FindValue(o.name)) return ErrorAt(o.pos, "value '" + o.name + "' is defined twice");
        for (const std::string& prev : out_names)
          if (prev == o.name) return ErrorAt(o.pos, "value '" + o.name + "' is defined twice");
      }
      out_names.push_back(o.name);
    }
    Node* n = g_->AddNode(op, {}, out_names, domain, node_name);
    for (auto& [k, v] : attrs) n->SetAttr(k, std::move(v));
    pending_inputs_.push_back(PendingInputs{n, std::move(ins)});
    return Status::OK();
  }

  Status ParseAttrs(std::map<std::string, AttrValue>* attrs) {
    RETURN_IF_ERROR(Expect('<'));
    do {
      ASSIGN_OR_RETURN(NameRef name, ParseNameRef("an attribute name"));
      std::optional<AttrKind> kind;
      if (Accept(':')) {
        const Token t = lex_.Peek();
        if (t.kind != TokenKind::kIdent) return Expected("an attribute type");
        lex_.Next();
        kind = KindFromName(t.text);
        if (!kind)
          return ErrorAt(PosOf(t), "unknown or unsupported attribute type " + Describe(t) +
                                       " (int, float, string, tensor, ints, floats, strings)");
      }
      RETURN_IF_ERROR(Expect('='));
      ASSIGN_OR_RETURN(AttrValue v, ParseAttrValue(kind, name.name));
      if (!attrs->emplace(name.name, std::move(v)).second)
        return ErrorAt(name.pos, "attribute '" + name.name + "' is given twice");
    } while (Accept(','));
    return Expect('>');
  }

  static std::optional<AttrKind> KindFromName(std::string_view s) {
    for (AttrKind k : {AttrKind::kInt, AttrKind::kFloat, AttrKind::kString, AttrKind::kTensor, AttrKind::kInts,
                       AttrKind::kFloats, AttrKind::kStrings})
      if (s == AttrKindName(k)) return k;
    return std::nullopt;
  }

  // One scalar of an attribute: a string or a number.
  struct Scalar {
    bool is_string = false;
    std::string s;
    Number n;
    Pos pos;
  };

  StatusOr<Scalar> ParseScalar() {
    Scalar sc;
    sc.pos = PosOf(lex_.Peek());
    if (lex_.Peek().kind == TokenKind::kString) {
      sc.is_string = true;
      sc.s = lex_.Next().value;
      return sc;
    }
    ASSIGN_OR_RETURN(sc.n, ParseNumber("an attribute value (number, string, list or tensor)"));
    return sc;
  }

  StatusOr<AttrValue> ParseAttrValue(std::optional<AttrKind> kind, const std::string& name) {
    const Token& t = lex_.Peek();
    const Pos pos = PosOf(t);
    if (t.Is('@')) return ErrorAt(pos, "attribute references (@name) are not supported");
    if (t.Is('{') || (t.kind == TokenKind::kIdent && t.text != "inf" && t.text != "nan")) {
      if (kind && *kind != AttrKind::kTensor)
        return ErrorAt(pos, std::string("attribute '") + name + "' is declared " + AttrKindName(*kind) + ", found a tensor");
      return ParseTensorAttr(name);
    }
    if (kind == AttrKind::kTensor) return Expected("a tensor (e.g. float[2] {1.0, 2.0})");

    if (Accept('[')) {
      std::vector<Scalar> items;
      if (!lex_.Peek().Is(']')) {
        do {
          ASSIGN_OR_RETURN(Scalar s, ParseScalar());
          items.push_back(std::move(s));
        } while (Accept(','));
      }
      RETURN_IF_ERROR(Expect(']'));
      if (!kind) {
        if (items.empty())
          return ErrorAt(pos, "the type of an empty list is ambiguous: write '" + name + ": ints = []' (or floats, strings)");
        bool any_string = false, any_float = false;
        for (const Scalar& s : items) {
          any_string |= s.is_string;
          any_float |= !s.is_string && !s.n.is_int;
        }
        kind = any_string ? AttrKind::kStrings : any_float ? AttrKind::kFloats : AttrKind::kInts;
      }
      switch (*kind) {
        case AttrKind::kInts: {
          std::vector<int64_t> v;
          for (const Scalar& s : items) {
            if (s.is_string || !s.n.is_int) return ErrorAt(s.pos, "expected an integer in ints attribute '" + name + "'");
            v.push_back(s.n.i);
          }
          return AttrValue(std::move(v));
        }
        case AttrKind::kFloats: {
          std::vector<float> v;
          for (const Scalar& s : items) {
            if (s.is_string) return ErrorAt(s.pos, "expected a number in floats attribute '" + name + "'");
            ASSIGN_OR_RETURN(float f, ToFloat(s.n, s.pos));
            v.push_back(f);
          }
          return AttrValue(std::move(v));
        }
        case AttrKind::kStrings: {
          std::vector<std::string> v;
          for (Scalar& s : items) {
            if (!s.is_string) return ErrorAt(s.pos, "expected a string in strings attribute '" + name + "'");
            v.push_back(std::move(s.s));
          }
          return AttrValue(std::move(v));
        }
        default:
          return ErrorAt(pos, std::string("attribute '") + name + "' is declared " + AttrKindName(*kind) + ", found a list");
      }
    }

    ASSIGN_OR_RETURN(Scalar s, ParseScalar());
    if (!kind) kind = s.is_string ? AttrKind::kString : s.n.is_int ? AttrKind::kInt : AttrKind::kFloat;
    switch (*kind) {
      case AttrKind::kString:
        if (!s.is_string) break;
        return AttrValue(std::move(s.s));
      case AttrKind::kInt:
        if (s.is_string || !s.n.is_int) break;
        return AttrValue(s.n.i);
      case AttrKind::kFloat: {
        if (s.is_string) break;
        ASSIGN_OR_RETURN(float f, ToFloat(s.n, s.pos));
        return AttrValue(f);
      }
      default:
        break;
    }
    return ErrorAt(pos, std::string("attribute '") + name + "' is declared " + AttrKindName(*kind) +
                            ", found " + (s.is_string ? "a string" : s.n.is_int ? "an integer" : "a float"));
  }

  // float[2] {1.0, 2.0}; ONNX's optional tensor name and '=' before the data are accepted.
  StatusOr<AttrValue> ParseTensorAttr(const std::string& attr) {
    const Pos pos = PosOf(lex_.Peek());
    ASSIGN_OR_RETURN(TensorType type, ParseType("a tensor type"));
    const std::string what = "tensor attribute '" + attr + "'";
    if (!type.shape) return ErrorAt(pos, what + " needs a shape ([] for a scalar)");
    std::vector<int64_t> dims;
    for (const Dim& d : *type.shape) {
      if (!d.is_static()) return ErrorAt(pos, what + " must have a static shape");
      dims.push_back(d.value);
    }
    if (lex_.Peek().IsName()) lex_.Next();
    Accept('=');
    ASSIGN_OR_RETURN(Tensor t, ParseTensorLiteral(type.dtype, dims, what));
    return AttrValue(std::move(t));
  }

  // ------------------------------------------------------------ resolution after the node list

  Status WireInputs() {
    for (PendingInputs& p : pending_inputs_) {
      for (const NameRef& in : p.inputs) {
        if (in.name.empty()) {
          p.node->AddInput(nullptr);
          continue;
        }
        Value* v = g_->FindValue(in.name);
        if (!v)
          return ErrorAt(in.pos, p.node->Describe() + " uses '" + in.name +
                                     "', which is not a graph input, an initializer or a node output");
        p.node->AddInput(v);
      }
    }
    return Status::OK();
  }

  Status ApplyValueInfos() {
    for (const auto& [name, info] : value_infos_) {
      Value* v = g_->FindValue(name);
      if (!v) return ErrorAt(info.pos, "value_info for '" + name + "', which no node produces");
      if (!v->producer())
        return ErrorAt(info.pos, "value_info for '" + name + "', a graph input or initializer (typed where defined)");
      v->type = info.type;
    }
    return Status::OK();
  }

  Status SetOutputs() {
    std::vector<Value*> outs;
    for (const PendingOutput& o : outputs_) {
      Value* v = o.ref.name.empty() ? nullptr : g_->FindValue(o.ref.name);
      if (!v) return ErrorAt(o.ref.pos, "graph output '" + o.ref.name + "' is never produced");
      if (v->producer()) {
        if (o.type.dtype != DType::kUndefined) v->type = o.type;
      } else if (o.type.dtype != DType::kUndefined && !SameType(o.type, v->type)) {
        return ErrorAt(o.ref.pos, "graph output '" + o.ref.name + "' is declared " + TypeToString(o.type) +
                                      " but defined as " + TypeToString(v->type));
      }
      outs.push_back(v);
    }
    g_->SetOutputs(std::move(outs));
    return Status::OK();
  }

  struct PendingOutput {
    TensorType type;
    NameRef ref;
  };
  struct PendingInfo {
    TensorType type;
    Pos pos;
  };
  struct PendingInputs {
    Node* node;
    std::vector<NameRef> inputs;
  };

  Lexer lex_;
  const ParseOptions& opts_;
  std::unique_ptr<Graph> g_ = std::make_unique<Graph>();
  std::vector<PendingOutput> outputs_;
  std::map<std::string, PendingInfo> value_infos_;
  std::vector<PendingInputs> pending_inputs_;
};

}  // namespace

StatusOr<std::unique_ptr<Graph>> ParseGraph(const std::string& text, const ParseOptions& opts) {
  return Parser(text, opts).Run();
}

}  // namespace dsc
