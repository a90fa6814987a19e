// frontend/config/hjson.cc against what DeepSpeed's loader (hjson-py with DeepSpeed's duplicate-key
// hook) read from the same texts: cases/hjson_cases.json, written by generate_hjson_cases.py.
#include <cstdlib>
#include <fstream>
#include <string>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "frontend/config/config_error.h"
#include "frontend/config/ds_config.h"
#include "frontend/config/hjson.h"
#include "frontend/config/json_text.h"

namespace dsc {
namespace {

using nlohmann::json;

// Equal values of equal types: hjson-py's 2 (an int) is not its 2.0.
bool SameTyped(const json& a, const json& b) {
  if (a.is_number_float() != b.is_number_float()) return false;
  if (a.is_object() && b.is_object()) {
    if (a.size() != b.size()) return false;
    for (auto it = a.begin(); it != a.end(); ++it)
      if (!b.contains(it.key()) || !SameTyped(it.value(), b[it.key()])) return false;
    return true;
  }
  if (a.is_array() && b.is_array()) {
    if (a.size() != b.size()) return false;
    for (size_t i = 0; i < a.size(); ++i)
      if (!SameTyped(a[i], b[i])) return false;
    return true;
  }
  return a == b;
}

// DSC_HJSON_CASES names another file of the same form (a differential fuzz run's).
TEST(Hjson, ReadsEveryCaseAsDeepSpeedsLoaderDoes) {
  const char* other = std::getenv("DSC_HJSON_CASES");
  const std::string file = other ? other : DSC_HJSON_CASES_FILE;
  std::ifstream in(file);
  ASSERT_TRUE(in) << file;
  const json all = json::parse(in);
  ASSERT_GE(all["cases"].size(), 70u);
  for (const json& c : all["cases"]) {
    const std::string text = c["text"];
    SCOPED_TRACE("text: " + json(text).dump());
    StatusOr<json> got = ParseHjson(text, "ds.json", kMaxConfigNesting);
    if (c.contains("error")) {
      ASSERT_FALSE(got.ok()) << "hjson-py raised " << c["error"] << ": " << c["message"] << "; got " << got->dump();
      EXPECT_EQ(DeepSpeedErrorKind(got.status()), c["error"].get<std::string>()) << got.status().message();
      EXPECT_EQ(got.status().message().rfind("ds.json: ", 0), 0u) << got.status().message();
      continue;
    }
    ASSERT_TRUE(got.ok()) << got.status().message();
    EXPECT_TRUE(SameTyped(*got, c["value"])) << "got " << got->dump() << ", hjson-py read " << c["value"].dump();
  }
}

TEST(Hjson, ErrorsNameTheLineAndColumn) {
  StatusOr<json> got = ParseHjson("{\n  \"a\": 1,\n  b c: 2\n}", "cfg.json", kMaxConfigNesting);
  ASSERT_FALSE(got.ok());
  EXPECT_EQ(got.status().message(),
            "cfg.json: invalid Hjson/JSON: Found whitespace in your key name (use quotes to include) at line 3, column "
            "4 [HjsonDecodeError]");
  got = ParseHjson("{\"a\": \"\xff\"}", "cfg.json", kMaxConfigNesting);
  ASSERT_FALSE(got.ok());
  EXPECT_EQ(DeepSpeedErrorKind(got.status()), "UnicodeDecodeError") << got.status().message();
}

// A config in Hjson's own style (what DeepSpeed accepts from a file) resolves like its JSON twin.
TEST(Hjson, AnHjsonConfigResolvesLikeItsJsonTwin) {
  const std::string hjson_text = R"(
    # DeepSpeed reads this file with hjson
    train_batch_size: 16
    train_micro_batch_size_per_gpu: 2
    optimizer: {
      type: AdamW
      params: { lr: 3e-4, weight_decay: 0.01 }   // commas optional at line ends
    }
    zero_optimization: { stage: 2 }
    fp16: { enabled: false }
  )";
  const std::string json_text = R"({"train_batch_size": 16, "train_micro_batch_size_per_gpu": 2,
    "optimizer": {"type": "AdamW", "params": {"lr": 3e-4, "weight_decay": 0.01}},
    "zero_optimization": {"stage": 2}, "fp16": {"enabled": false}})";
  std::vector<std::string> warnings;
  ConfigOptions options;
  options.world_size = 4;
  StatusOr<DsConfig> a = ParseDsConfig(hjson_text, options, &warnings, "ds.hjson");
  StatusOr<DsConfig> b = ParseDsConfig(json_text, options, &warnings, "ds.json");
  ASSERT_TRUE(a.ok()) << a.status().message();
  ASSERT_TRUE(b.ok()) << b.status().message();
  EXPECT_EQ(ResolvedConfigJson(*a), ResolvedConfigJson(*b));
  EXPECT_EQ(a->gradient_accumulation_steps, 2);
}

}  // namespace
}  // namespace dsc
