// Typed, path-aware reading of one JSON object of the config, with DeepSpeed's coercions.
//
// DeepSpeed validates most sections with pydantic in "lax" mode (an int field takes 5e8, "1000"
// and true; a bool field takes "yes"; "auto" means "the default"). SectionReader reproduces those
// rules, remembers which keys were read, and Finish() turns every other key into an error with
// the nearest known key.
//
//   SectionReader r(ctx, "zero_optimization", json, DsErrorKind::kValidationError);
//   RETURN_IF_ERROR(r.Int("reduce_bucket_size", &zero.reduce_bucket_size, /*min=*/0));
//   RETURN_IF_ERROR(r.Finish());
#pragma once

#include <cstdint>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "frontend/config/config_error.h"
#include "ir/status.h"

namespace dsc {

struct ConfigOptions;

// State shared by all section parsers of one document.
struct ParseContext {
  std::string source;
  int world_size = 1;
  bool strict = false;
  std::vector<std::string>* warnings = nullptr;
  std::vector<std::string> auto_keys;    // paths whose value was "auto"
  std::vector<std::string> unsupported;  // enabled features dscompile does not implement

  void Warn(const std::string& path, const std::string& message);
  void Unsupported(const std::string& path, const std::string& what);
  Status Error(DsErrorKind kind, const std::string& path, const std::string& message) const {
    return ConfigError(kind, source, path, message);
  }
};

std::string JoinPath(const std::string& parent, const std::string& key);

// Coercions; each returns an empty string on success or what is wrong with the value.
std::string LaxInt(const nlohmann::json& v, int64_t* out);
std::string LaxBool(const nlohmann::json& v, bool* out);
std::string LaxFloat(const nlohmann::json& v, double* out);
// A strict JSON number (integral or not; not bool, not a string).
std::string StrictNumber(const nlohmann::json& v, double* out);

class SectionReader {
 public:
  // `object` must be a JSON object. With strip_auto, a value "auto" reads as absent (DeepSpeed's
  // pydantic base class drops such keys) and is recorded in ctx.auto_keys.
  SectionReader(ParseContext& ctx, std::string path, const nlohmann::json& object,
                DsErrorKind kind = DsErrorKind::kValidationError, bool strip_auto = true);

  // The value under `key` (or `alias`), marked as read; nullptr if absent or "auto".
  // Giving both the key and its alias is an error reported by Finish() (an "auto" under one of
  // them is dropped, so the other is read).
  const nlohmann::json* Get(const std::string& key, const std::string& alias = "");
  // Get for a key whose "auto" DeepSpeed does not resolve (it reads it as a plain value and refuses it).
  const nlohmann::json* GetKeepingAuto(const std::string& key);
  bool Has(const std::string& key) const;  // present, "auto" included; does not mark it read
  // Present and not an "auto" this section drops (DeepSpeedConfigModel filters them out before
  // pydantic, so they are not in its fields_set); does not mark it read.
  bool Given(const std::string& key) const;
  std::string Path(const std::string& key) const { return JoinPath(path_, key); }
  // The key the user actually wrote for a (key, alias) pair read last by Get.
  const std::string& last_key() const { return last_key_; }

  Status Int(const std::string& key, int64_t* out, std::optional<int64_t> min = std::nullopt,
             const std::string& alias = "");
  Status OptInt(const std::string& key, std::optional<int64_t>* out,
                std::optional<int64_t> min = std::nullopt);
  Status Bool(const std::string& key, bool* out, const std::string& alias = "");
  Status OptBool(const std::string& key, std::optional<bool>* out);
  Status Float(const std::string& key, double* out, std::optional<double> min = std::nullopt,
               std::optional<double> max = std::nullopt);
  Status String(const std::string& key, std::string* out);
  Status OptString(const std::string& key, std::optional<std::string>* out);
  Status Enum(const std::string& key, const std::vector<std::string>& allowed, std::string* out);

  Status Error(const std::string& key, const std::string& message) const {
    return ctx_.Error(kind_, Path(key), message);
  }
  Status Error(DsErrorKind kind, const std::string& key, const std::string& message) const {
    return ctx_.Error(kind, Path(key), message);
  }

  // Rejects keys never read; `also_known` are keys accepted without being read.
  Status Finish(const std::vector<std::string>& also_known = {});
  // The same for DeepSpeed's plain-dict sections, which it reads with dict.get and so ignores
  // unknown keys in: each is a warning with the nearest known key (an error with strict).
  Status FinishPlainDict(const std::vector<std::string>& also_known = {});

  ParseContext& ctx() { return ctx_; }
  const nlohmann::json& object() const { return object_; }

 private:
  Status FinishSection(const std::vector<std::string>& also_known, bool unknown_is_warning);

  ParseContext& ctx_;
  std::string path_;
  const nlohmann::json& object_;
  DsErrorKind kind_;
  bool strip_auto_;
  std::set<std::string> read_;
  std::vector<std::string> known_;
  std::vector<std::pair<std::string, std::string>> both_given_;
  std::string last_key_;
};

}  // namespace dsc
