// Limits on config input found by fuzzing: nesting depth, file size and kind, very long keys.
#include <sys/stat.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "frontend/config/ds_config.h"
#include "frontend/config/json_text.h"
#include "frontend/config/key_suggest.h"

namespace dsc {
namespace {

std::string Nested(int depth) { return std::string(depth, '[') + std::string(depth, ']'); }

// 600 KB nested 100k deep took 10 GB in the duplicate-key tracking; printing it overflowed the stack.
TEST(ConfigLimits, NestingDeeperThanTheLimitIsRefusedWithItsPlace) {
  StatusOr<nlohmann::json> doc = ParseConfigJson("{\n \"a\":\n" + Nested(100000) + "\n}", "deep.json");
  ASSERT_FALSE(doc.ok());
  // '{' is level 1, so the 64th '[' on line 3 opens level 65.
  EXPECT_EQ(doc.status().message(),
            "deep.json: nesting deeper than 64 objects and arrays at line 3, column 64 (DeepSpeed configs nest about 4 "
            "deep) [ValueError]");
  EXPECT_TRUE(ParseConfigJson("{\"a\": " + Nested(kMaxConfigNesting - 1) + "}", "ok.json").ok());
  // Brackets inside strings (escaped quotes included) are text, not nesting.
  EXPECT_TRUE(ParseConfigJson("{\"a\": \"\\\"" + std::string(1000, '[') + "\"}", "str.json").ok());

  std::vector<std::string> warnings;
  StatusOr<DsConfig> cfg = ParseDsConfig("{\"train_batch_size\": 1, \"x\": " + Nested(70) + "}", {}, &warnings, "cfg.json");
  ASSERT_FALSE(cfg.ok());
  EXPECT_NE(cfg.status().message().find("cfg.json: nesting deeper than 64"), std::string::npos) << cfg.status().message();
}

TEST(ConfigLimits, OnlyRegularFilesOfPlausibleSizeAreRead) {
  std::vector<std::string> warnings;
  StatusOr<DsConfig> cfg = LoadDsConfig("/dev/zero", {}, &warnings);  // used to read until memory ran out
  ASSERT_FALSE(cfg.ok());
  EXPECT_EQ(cfg.status().message(), "/dev/zero: not a regular file, so not a DeepSpeed config");

  const std::filesystem::path dir = std::filesystem::temp_directory_path() / ("dsc_config_limits_" + std::to_string(getpid()));
  std::filesystem::create_directories(dir);
  const std::string fifo = (dir / "fifo.json").string();
  ASSERT_EQ(mkfifo(fifo.c_str(), 0600), 0);
  cfg = LoadDsConfig(fifo, {}, &warnings);  // would block until a writer came
  ASSERT_FALSE(cfg.ok());
  EXPECT_NE(cfg.status().message().find("not a regular file"), std::string::npos) << cfg.status().message();

  const std::string big = (dir / "big.json").string();
  { std::ofstream(big) << "{}"; }
  std::filesystem::resize_file(big, (16 << 20) + 1);  // sparse: costs no disk
  cfg = LoadDsConfig(big, {}, &warnings);
  ASSERT_FALSE(cfg.ok());
  EXPECT_EQ(cfg.status().message(), big + ": 16777217 bytes; DeepSpeed configs larger than 16 MiB are refused");

  cfg = LoadDsConfig((dir / "absent.json").string(), {}, &warnings);
  ASSERT_FALSE(cfg.ok());
  EXPECT_NE(cfg.status().message().find("absent.json: cannot open the DeepSpeed config: No such file"), std::string::npos)
      << cfg.status().message();
  std::filesystem::remove_all(dir);
}

// A 10 MB unknown key took a minute in "did you mean" and was printed whole.
TEST(ConfigLimits, VeryLongKeysAreCheapAndPrintedShort) {
  const std::string key(10'000'000, 'k');
  const std::string base = R"({"train_batch_size": 8, ")";
  const auto start = std::chrono::steady_clock::now();
  std::vector<std::string> warnings;
  StatusOr<DsConfig> cfg = ParseDsConfig(base + key + "\": 1}", {.strict = true}, &warnings, "long.json");
  ASSERT_FALSE(cfg.ok());
  const std::string& m = cfg.status().message();
  EXPECT_EQ(m.rfind("long.json: " + std::string(80, 'k') + "... (10000000 bytes): unknown top-level key", 0), 0u)
      << m.substr(0, 300);
  EXPECT_LT(m.size(), 300u);

  cfg = ParseDsConfig(R"({"train_batch_size": 8, "optimizer": {"type": "Adam", "params": {")" + key + "\": 1}}}",
                      {}, &warnings, "long.json");
  ASSERT_FALSE(cfg.ok());
  EXPECT_LT(cfg.status().message().size(), 300u) << cfg.status().message().substr(0, 300);
  EXPECT_NE(cfg.status().message().find("long.json: optimizer.params.kkkk"), std::string::npos);
  EXPECT_NE(cfg.status().message().find("... (10000017 bytes): is not a parameter of"), std::string::npos)
      << cfg.status().message().substr(0, 300);
  EXPECT_LT(std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count(), 10.0);

  EXPECT_EQ(NearestKey(std::string(kMaxSuggestedKeyLength + 1, 'a') + "optimizer", {"optimizer"}), "");
  EXPECT_EQ(NearestKey("optimzer", {"optimizer"}), "optimizer");
}

}  // namespace
}  // namespace dsc
