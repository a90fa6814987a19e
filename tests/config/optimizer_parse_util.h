// What the per-optimizer config tests share: parsing a config whose optimizer is of one type with
// given params, and the check that the 1-bit optimizers' never-read keys each get a warning.
#pragma once

#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "frontend/config/ds_config.h"

namespace dsc::config_test {

// {"train_batch_size": 8, "optimizer": {"type": TYPE, "params": PARAMS}EXTRA} parsed as ds.json;
// `extra` adds sections (", \"fp16\": {...}").
inline StatusOr<DsConfig> ParseOptimizer(const std::string& type, const std::string& params,
                                         const std::string& extra = "", std::vector<std::string>* warnings = nullptr) {
  std::vector<std::string> w;
  return ParseDsConfig(R"({"train_batch_size": 8, "optimizer": {"type": ")" + type + R"(", "params": )" + params + "}" +
                           extra + "}",
                       {}, warnings ? warnings : &w, "ds.json");
}

// bias_correction, eps_inside_sqrt and cuda_aware are accepted by DeepSpeed's 1-bit optimizers and
// never read by their arithmetic: set to other than their defaults, each is named in a warning that
// names `implementation` too.
inline void ExpectOnebitUnreadKeysWarn(const std::string& type, const std::string& implementation) {
  std::vector<std::string> warnings;
  StatusOr<DsConfig> cfg = ParseOptimizer(
      type, R"({"bias_correction": false, "eps_inside_sqrt": true, "cuda_aware": true})", "", &warnings);
  ASSERT_TRUE(cfg.ok()) << cfg.status().message();
  for (const char* key : {"bias_correction", "eps_inside_sqrt", "cuda_aware"}) {
    bool named = false;
    for (const std::string& w : warnings)
      named = named || (w.find(std::string("optimizer.params.") + key) != std::string::npos &&
                        w.find(implementation) != std::string::npos);
    EXPECT_TRUE(named) << key;
  }
}

}  // namespace dsc::config_test
