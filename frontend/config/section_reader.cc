// Typed, path-naming access to one config section, and the parse context it reports into.
#include "frontend/config/section_reader.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdlib>

#include "frontend/config/key_suggest.h"

namespace dsc {
namespace {

std::string Trim(const std::string& s) {
  size_t b = 0, e = s.size();
  while (b < e && std::isspace(static_cast<unsigned char>(s[b]))) ++b;
  while (e > b && std::isspace(static_cast<unsigned char>(s[e - 1]))) --e;
  return s.substr(b, e - b);
}

std::string Lower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

// Python's float(str): decimal/exponent forms plus inf/infinity/nan, surrounding blanks allowed.
bool ParsePythonFloat(const std::string& text, double* out) {
  std::string s = Lower(Trim(text));
  if (s.empty()) return false;
  std::string body = (s[0] == '+' || s[0] == '-') ? s.substr(1) : s;
  double sign = s[0] == '-' ? -1.0 : 1.0;
  if (body == "inf" || body == "infinity") { *out = sign * HUGE_VAL; return true; }
  if (body == "nan") { *out = std::nan(""); return true; }
  if (body.empty() || body.find_first_not_of("0123456789.e+-_") != std::string::npos) return false;
  char* end = nullptr;
  *out = std::strtod(s.c_str(), &end);
  return end == s.c_str() + s.size();
}

}  // namespace

void ParseContext::Warn(const std::string& path, const std::string& message) {
  if (warnings)
    warnings->push_back((source.empty() ? "" : source + ": ") + (path.empty() ? "" : ShortText(path) + ": ") + message);
}

void ParseContext::Unsupported(const std::string& path, const std::string& what) {
  unsupported.push_back(ShortText(path) + ": " + what);
}

std::string JoinPath(const std::string& parent, const std::string& key) {
  return parent.empty() ? key : parent + "." + key;
}

std::string LaxInt(const nlohmann::json& v, int64_t* out) {
  if (v.is_boolean()) { *out = v.get<bool>() ? 1 : 0; return ""; }
  if (v.is_number_integer()) {
    if (v.is_number_unsigned() && v.get<uint64_t>() > static_cast<uint64_t>(INT64_MAX)) {
      return "expected an integer that fits in 64 bits, got " + ShortJson(v);
    }
    *out = v.get<int64_t>();
    return "";
  }
  if (v.is_number_float()) {
    double d = v.get<double>();
    if (!std::isfinite(d) || d != std::floor(d)) return "expected an integer, got " + ShortJson(v);
    if (std::fabs(d) >= 9.2e18) return "expected an integer that fits in 64 bits, got " + ShortJson(v);
    *out = static_cast<int64_t>(d);
    return "";
  }
  if (v.is_string()) {
    // pydantic's lax str -> int: blanks around, a sign, single '_' between digits, and a fraction
    // of zeros ("12.0", "1_000").
    std::string s = Trim(v.get<std::string>());
    const size_t point = s.find('.');
    if (point != std::string::npos) {
      if (point + 1 == s.size() || s.find_first_not_of('0', point + 1) != std::string::npos) s.clear();
      else s.resize(point);
    }
    std::string digits;
    size_t i = (!s.empty() && (s[0] == '+' || s[0] == '-')) ? 1 : 0;
    bool ok = i < s.size();
    for (; ok && i < s.size(); ++i) {
      if (s[i] >= '0' && s[i] <= '9') digits += s[i];
      else ok = s[i] == '_' && i + 1 < s.size() && !digits.empty() && s[i - 1] != '_';
    }
    if (ok && digits.size() < 19) {
      *out = std::strtoll(digits.c_str(), nullptr, 10) * (s[0] == '-' ? -1 : 1);
      return "";
    }
  }
  return "expected an integer, got " + ShortJson(v);
}

std::string LaxBool(const nlohmann::json& v, bool* out) {
  if (v.is_boolean()) { *out = v.get<bool>(); return ""; }
  if (v.is_number()) {
    double d = v.get<double>();
    if (d == 0 || d == 1) { *out = d == 1; return ""; }
  }
  if (v.is_string()) {
    std::string s = Lower(Trim(v.get<std::string>()));
    for (const char* t : {"1", "on", "t", "true", "y", "yes"}) if (s == t) { *out = true; return ""; }
    for (const char* f : {"0", "off", "f", "false", "n", "no"}) if (s == f) { *out = false; return ""; }
  }
  return "expected true or false, got " + ShortJson(v);
}

std::string LaxFloat(const nlohmann::json& v, double* out) {
  if (v.is_boolean()) { *out = v.get<bool>() ? 1.0 : 0.0; return ""; }
  if (v.is_number()) { *out = v.get<double>(); return ""; }
  if (v.is_string() && ParsePythonFloat(v.get<std::string>(), out)) return "";
  return "expected a number, got " + ShortJson(v);
}

std::string StrictNumber(const nlohmann::json& v, double* out) {
  if (v.is_number()) { *out = v.get<double>(); return ""; }
  return "expected a number, got " + ShortJson(v);
}

SectionReader::SectionReader(ParseContext& ctx, std::string path, const nlohmann::json& object,
                             DsErrorKind kind, bool strip_auto)
    : ctx_(ctx), path_(std::move(path)), object_(object), kind_(kind), strip_auto_(strip_auto) {}

bool SectionReader::Has(const std::string& key) const {
  return object_.is_object() && object_.contains(key);
}

bool SectionReader::Given(const std::string& key) const {
  if (!Has(key)) return false;
  const nlohmann::json& v = object_.at(key);
  return !(strip_auto_ && v.is_string() && v.get<std::string>() == "auto");
}

const nlohmann::json* SectionReader::Get(const std::string& key, const std::string& alias) {
  known_.push_back(key);
  if (!alias.empty()) known_.push_back(alias);
  last_key_ = key;
  const bool alias_present = !alias.empty() && Has(alias), key_present = Has(key);
  if (alias_present) read_.insert(alias);
  if (key_present) read_.insert(key);
  // "auto" values are dropped before anything else looks: an "auto" beside a value under the
  // other name is no conflict, and the value is what is read.
  const bool alias_given = alias_present && Given(alias), key_given = key_present && Given(key);
  if (alias_given && key_given) both_given_.emplace_back(alias, key);
  if (alias_given) {
    last_key_ = alias;
    return &object_.at(alias);
  }
  if (key_given) return &object_.at(key);
  if (alias_present) ctx_.auto_keys.push_back(Path(alias));
  if (key_present) ctx_.auto_keys.push_back(Path(key));
  if (alias_present && !key_present) last_key_ = alias;
  return nullptr;
}

const nlohmann::json* SectionReader::GetKeepingAuto(const std::string& key) {
  const bool strip = strip_auto_;
  strip_auto_ = false;
  const nlohmann::json* v = Get(key);
  strip_auto_ = strip;
  return v;
}

Status SectionReader::Int(const std::string& key, int64_t* out, std::optional<int64_t> min,
                          const std::string& alias) {
  const nlohmann::json* v = Get(key, alias);
  if (!v) return Status::OK();
  int64_t value = 0;
  std::string why = LaxInt(*v, &value);
  if (!why.empty()) return Error(last_key_, why);
  if (min && value < *min) return Error(last_key_, StrCat("must be >= ", *min, ", got ", ShortJson(*v)));
  *out = value;
  return Status::OK();
}

Status SectionReader::OptInt(const std::string& key, std::optional<int64_t>* out,
                             std::optional<int64_t> min) {
  const nlohmann::json* v = Get(key);
  if (!v) return Status::OK();
  if (v->is_null()) { *out = std::nullopt; return Status::OK(); }
  int64_t value = 0;
  std::string why = LaxInt(*v, &value);
  if (!why.empty()) return Error(key, why);
  if (min && value < *min) return Error(key, StrCat("must be >= ", *min, ", got ", ShortJson(*v)));
  *out = value;
  return Status::OK();
}

Status SectionReader::Bool(const std::string& key, bool* out, const std::string& alias) {
  const nlohmann::json* v = Get(key, alias);
  if (!v) return Status::OK();
  std::string why = LaxBool(*v, out);
  return why.empty() ? Status::OK() : Error(last_key_, why);
}

Status SectionReader::OptBool(const std::string& key, std::optional<bool>* out) {
  const nlohmann::json* v = Get(key);
  if (!v) return Status::OK();
  if (v->is_null()) { *out = std::nullopt; return Status::OK(); }
  bool value = false;
  std::string why = LaxBool(*v, &value);
  if (!why.empty()) return Error(key, why);
  *out = value;
  return Status::OK();
}

Status SectionReader::Float(const std::string& key, double* out, std::optional<double> min,
                            std::optional<double> max) {
  const nlohmann::json* v = Get(key);
  if (!v) return Status::OK();
  double value = 0;
  std::string why = LaxFloat(*v, &value);
  if (!why.empty()) return Error(key, why);
  if ((min && !(value >= *min)) || (max && !(value <= *max))) {
    std::string range = min && max ? StrCat("in [", *min, ", ", *max, "]")
                        : min      ? StrCat(">= ", *min)
                                   : StrCat("<= ", *max);
    return Error(key, "must be " + range + ", got " + ShortJson(*v));
  }
  *out = value;
  return Status::OK();
}

Status SectionReader::String(const std::string& key, std::string* out) {
  const nlohmann::json* v = Get(key);
  if (!v) return Status::OK();
  if (!v->is_string()) return Error(key, "expected a string, got " + ShortJson(*v));
  *out = v->get<std::string>();
  return Status::OK();
}

Status SectionReader::OptString(const std::string& key, std::optional<std::string>* out) {
  const nlohmann::json* v = Get(key);
  if (!v) return Status::OK();
  if (v->is_null()) { *out = std::nullopt; return Status::OK(); }
  if (!v->is_string()) return Error(key, "expected a string or null, got " + ShortJson(*v));
  *out = v->get<std::string>();
  return Status::OK();
}

Status SectionReader::Enum(const std::string& key, const std::vector<std::string>& allowed,
                           std::string* out) {
  const nlohmann::json* v = Get(key);
  if (!v) return Status::OK();
  if (v->is_string()) {
    std::string s = v->get<std::string>();
    if (std::find(allowed.begin(), allowed.end(), s) != allowed.end()) {
      *out = s;
      return Status::OK();
    }
  }
  std::string list;
  for (const std::string& a : allowed) list += (list.empty() ? "\"" : ", \"") + a + "\"";
  std::string hint = v->is_string() ? DidYouMean(v->get<std::string>(), allowed) : "";
  return Error(key, "expected one of " + list + ", got " + ShortJson(*v) + hint);
}

Status SectionReader::Finish(const std::vector<std::string>& also_known) { return FinishSection(also_known, false); }

Status SectionReader::FinishPlainDict(const std::vector<std::string>& also_known) {
  return FinishSection(also_known, !ctx_.strict);
}

Status SectionReader::FinishSection(const std::vector<std::string>& also_known, bool unknown_is_warning) {
  if (!both_given_.empty()) {
    const auto& [alias, key] = both_given_.front();
    return Error(key, "given together with its alias \"" + alias + "\"; give only one");
  }
  std::vector<std::string> known = known_;
  known.insert(known.end(), also_known.begin(), also_known.end());
  for (auto it = object_.begin(); it != object_.end(); ++it) {
    if (read_.count(it.key()) ||
        std::find(also_known.begin(), also_known.end(), it.key()) != also_known.end()) {
      continue;
    }
    std::string message = "unknown key" + DidYouMean(it.key(), known) +
                          (path_.empty() ? "" : " in section \"" + path_ + "\"");
    // DeepSpeed's pydantic sections drop every "auto" before checking for unknown keys.
    const bool dropped_auto = !Given(it.key()) && !ctx_.strict;
    if (!unknown_is_warning && !dropped_auto) return Error(it.key(), message);
    ctx_.Warn(Path(it.key()), message + (dropped_auto ? "; DeepSpeed drops its \"auto\" and ignores it"
                                                       : "; DeepSpeed ignores it"));
  }
  return Status::OK();
}

}  // namespace dsc
