// Config errors: one message shape (source: json.path: what is wrong [DeepSpeedKind]) and its kinds.
//
// Every config error names the JSON path and the offending value; the trailing tag says which
// exception DeepSpeed raises for the same input, so tests (and users reading a port) can map our
// message onto DeepSpeed's behaviour:
//   "ds.json: fp16.loss_scale: must be >= 0 (0 enables dynamic loss scaling), got -1 [ValidationError]"
#pragma once

#include <string>

#include <nlohmann/json.hpp>

#include "ir/status.h"

namespace dsc {

enum class DsErrorKind {
  kAssertionError,
  kValueError,
  kValidationError,  // pydantic sections: type, range, enum, unknown key
  kTypeError,
  kKeyError,
  kDeepSpeedConfigError,
  kNotImplementedError,
  kException,  // DynamicLossScaler at its minimum
  kElasticityConfigError,
  kElasticityError,
  kElasticityIncompatibleWorldSize,
  kRuntimeError,  // apex's amp.initialize (unknown opt_level, an option its level forbids)
  kOverflowError,  // hjson-py reading a number beyond a double's range
  kHjsonDecodeError,  // config text that is not Hjson (a ValueError)
  kIndexError,  // hjson-py running off the text's end (an unterminated /* comment)
  kUnicodeDecodeError,  // a config file that is not UTF-8 (a ValueError)
  kZeroDivisionError,  // batch resolution dividing by a zero micro batch or accumulation count
  kAttributeError,  // a string method called on a non-string (communication_data_type: 5)
  kUnsupported,  // DeepSpeed accepts it; dscompile does not implement it
};

const char* DsErrorKindName(DsErrorKind kind);

// Builds the Status for a config error. `path` may be empty (whole document).
Status ConfigError(DsErrorKind kind, const std::string& source, const std::string& path,
                   const std::string& message);

// The kind tag of a Status built by ConfigError ("ValidationError"), or "" if it has none.
std::string DeepSpeedErrorKind(const Status& status);

// A JSON value shortened for messages: "CPU", 5.5, [1,2], {...}.
std::string ShortJson(const nlohmann::json& value);

// Text from the config (a key, a JSON path) shortened for messages when it is very long:
// its first 80 bytes, "...", and its length.
std::string ShortText(const std::string& text);
}  // namespace dsc
