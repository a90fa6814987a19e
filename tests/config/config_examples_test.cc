// Every example in configs/ and every DeepSpeed/Hugging Face config in tests/config/data parses
// unmodified, and the resolved JSON parses back to itself.
#include <filesystem>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "frontend/config/ds_config.h"

namespace dsc {
namespace {

std::vector<std::string> JsonFiles(const std::string& dir) {
  std::vector<std::string> files;
  for (const auto& entry : std::filesystem::directory_iterator(dir)) {
    if (entry.path().extension() == ".json") files.push_back(entry.path().string());
  }
  return files;
}

void ExpectParsesAndRoundTrips(const std::string& path, int world_size) {
  std::vector<std::string> warnings;
  StatusOr<DsConfig> cfg = LoadDsConfig(path, {.world_size = world_size}, &warnings);
  ASSERT_TRUE(cfg.ok()) << cfg.status().message();
  nlohmann::json resolved = ResolvedConfigJson(*cfg);
  std::vector<std::string> again_warnings;
  StatusOr<DsConfig> again = ParseDsConfig(resolved.dump(), {.world_size = world_size, .strict = true}, &again_warnings, path + " (resolved)");
  ASSERT_TRUE(again.ok()) << again.status().message();
  EXPECT_EQ(ResolvedConfigJson(*again), resolved) << path;
}

TEST(ConfigExamples, EveryExampleParses) {
  std::vector<std::string> files = JsonFiles(DSC_CONFIGS_DIR);
  ASSERT_FALSE(files.empty());
  for (const std::string& f : files) {
    SCOPED_TRACE(f);
    ExpectParsesAndRoundTrips(f, 1);
  }
}

TEST(ConfigExamples, DeepSpeedAndHuggingFaceConfigsParseUnmodified) {
  for (const std::string& f : JsonFiles(DSC_TEST_DATA_DIR)) {
    SCOPED_TRACE(f);
    ExpectParsesAndRoundTrips(f, 2);
  }
}

TEST(ConfigExamples, GettingStartedMeansWhatItMeansToDeepSpeed) {
  std::vector<std::string> warnings;
  StatusOr<DsConfig> cfg = LoadDsConfig(std::string(DSC_TEST_DATA_DIR) + "/ds_getting_started.json", {.world_size = 4}, &warnings);
  ASSERT_TRUE(cfg.ok()) << cfg.status().message();
  EXPECT_EQ(cfg->train_micro_batch_size_per_gpu, 2);
  EXPECT_EQ(cfg->zero.stage, 1);  // "zero_optimization": true is the legacy stage-1 form
  EXPECT_EQ(cfg->optimizer.type, "adam");
  EXPECT_TRUE(cfg->optimizer.adam_w_mode);  // DeepSpeed's "Adam" is AdamW
  EXPECT_EQ(cfg->optimizer.implementation, "FusedAdam");
  EXPECT_EQ(cfg->gradient_clipping, 1.0);
  EXPECT_FALSE(cfg->steps_per_print.has_value());
}

TEST(ConfigExamples, HuggingFaceAutoValuesResolve) {
  std::vector<std::string> warnings;
  StatusOr<DsConfig> cfg = LoadDsConfig(std::string(DSC_TEST_DATA_DIR) + "/hf_zero3_auto.json", {.world_size = 2}, &warnings);
  ASSERT_TRUE(cfg.ok()) << cfg.status().message();
  EXPECT_EQ(cfg->train_batch_size, 8);
  EXPECT_EQ(cfg->gradient_accumulation_steps, 1);
  EXPECT_EQ(cfg->zero.reduce_bucket_size, 500000000);
  EXPECT_EQ(cfg->optimizer.implementation, "DeepSpeedCPUAdam");
  EXPECT_FALSE(cfg->fp16.enabled);
  EXPECT_FALSE(warnings.empty());
}

}  // namespace
}  // namespace dsc
