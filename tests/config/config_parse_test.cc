// Parser behaviour beyond DeepSpeed's own cases: JSON extensions, unknown keys, "auto", messages.
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "frontend/config/ds_config.h"
#include "frontend/config/key_suggest.h"

namespace dsc {
namespace {

StatusOr<DsConfig> Parse(const std::string& text, ConfigOptions options = {}, std::vector<std::string>* warnings = nullptr) {
  std::vector<std::string> local;
  return ParseDsConfig(text, options, warnings ? warnings : &local, "ds.json");
}

std::string ErrorOf(const std::string& text, ConfigOptions options = {}) {
  StatusOr<DsConfig> cfg = Parse(text, options);
  EXPECT_FALSE(cfg.ok()) << text;
  return cfg.ok() ? "" : cfg.status().message();
}

TEST(ConfigParse, CommentsAndTrailingCommasAreAllowed) {
  StatusOr<DsConfig> cfg = Parse(R"({
    // line comment
    "train_batch_size": 8, /* block */
    # hjson-style comment
    "optimizer": {"type": "Adam", "params": {"lr": 0.1,},},
  })");
  ASSERT_TRUE(cfg.ok()) << cfg.status().message();
  EXPECT_EQ(cfg->optimizer.lr, 0.1);
}

TEST(ConfigParse, CommentMarkersInsideStringsAreText) {
  StatusOr<DsConfig> cfg = Parse(R"({"train_batch_size": 8, "tensorboard": {"output_path": "a//b#c/*d*/,}"}})");
  ASSERT_TRUE(cfg.ok()) << cfg.status().message();
  EXPECT_EQ(cfg->tensorboard.output_path, "a//b#c/*d*/,}");
}

TEST(ConfigParse, DuplicateKeysNameTheirPath) {
  std::string msg = ErrorOf(R"({"train_batch_size": 8, "zero_optimization": {"stage": 1, "stage": 2}})");
  EXPECT_NE(msg.find("zero_optimization.stage"), std::string::npos) << msg;
  EXPECT_NE(msg.find("[ValueError]"), std::string::npos) << msg;
}

TEST(ConfigParse, SyntaxErrorsNameTheFileAndLine) {
  std::string msg = ErrorOf("{\n\"train_batch_size\": 8\n\"fp16\": {}}");
  EXPECT_NE(msg.find("ds.json"), std::string::npos) << msg;
  EXPECT_NE(msg.find("line 3"), std::string::npos) << msg;
}

TEST(ConfigParse, UnknownTopLevelKeyWarnsWithSuggestion) {
  std::vector<std::string> warnings;
  StatusOr<DsConfig> cfg = Parse(R"({"train_batch_size": 8, "gradient_clippping": 0.5})", {}, &warnings);
  ASSERT_TRUE(cfg.ok());
  ASSERT_EQ(warnings.size(), 1u);
  EXPECT_NE(warnings[0].find("did you mean \"gradient_clipping\""), std::string::npos) << warnings[0];
  EXPECT_EQ(cfg->gradient_clipping, 1.0);
}

TEST(ConfigParse, StrictModeMakesUnknownTopLevelKeysErrors) {
  std::string msg = ErrorOf(R"({"train_batch_size": 8, "steps_per_prnt": 5})", {.strict = true});
  EXPECT_NE(msg.find("steps_per_prnt"), std::string::npos);
  EXPECT_NE(msg.find("steps_per_print"), std::string::npos);
}

TEST(ConfigParse, UnknownKeyInsideASectionIsAnError) {
  std::string msg = ErrorOf(R"({"train_batch_size": 8, "zero_optimization": {"stage": 2, "overlap_com": true}})");
  EXPECT_NE(msg.find("zero_optimization.overlap_com"), std::string::npos) << msg;
  EXPECT_NE(msg.find("overlap_comm"), std::string::npos) << msg;
  EXPECT_NE(msg.find("[ValidationError]"), std::string::npos) << msg;
}

TEST(ConfigParse, ErrorsNameThePathAndTheValue) {
  std::string msg = ErrorOf(R"({"train_batch_size": 8, "zero_optimization": {"stage": 3, "offload_optimizer": {"device": "CPU"}}})");
  EXPECT_NE(msg.find("zero_optimization.offload_optimizer.device"), std::string::npos) << msg;
  EXPECT_NE(msg.find("\"CPU\""), std::string::npos) << msg;
  EXPECT_NE(msg.find("did you mean \"cpu\""), std::string::npos) << msg;
}

TEST(ConfigParse, BatchErrorsShowTheArithmetic) {
  std::string msg = ErrorOf(R"({"train_batch_size": 12, "train_micro_batch_size_per_gpu": 4})", {.world_size = 2});
  EXPECT_NE(msg.find("4 × 2 = 8"), std::string::npos) << msg;
  EXPECT_NE(msg.find("[AssertionError]"), std::string::npos) << msg;
  msg = ErrorOf(R"({"train_batch_size": 10})", {.world_size = 3});
  EXPECT_NE(msg.find("world size 3"), std::string::npos) << msg;
}

TEST(ConfigParse, AutoBatchKeysAreDerived) {
  StatusOr<DsConfig> cfg = Parse(R"({"train_batch_size": "auto", "train_micro_batch_size_per_gpu": 4,
                                     "gradient_accumulation_steps": 2})", {.world_size = 4});
  ASSERT_TRUE(cfg.ok()) << cfg.status().message();
  EXPECT_EQ(cfg->train_batch_size, 32);
  std::string msg = ErrorOf(R"({"train_batch_size": "auto", "train_micro_batch_size_per_gpu": "auto"})");
  EXPECT_NE(msg.find("auto"), std::string::npos) << msg;
}

TEST(ConfigParse, AutoInSectionsMeansDeepSpeedsDefault) {
  StatusOr<DsConfig> cfg = Parse(R"({"train_batch_size": 8, "gradient_clipping": "auto",
      "zero_optimization": {"stage": 3, "stage3_prefetch_bucket_size": "auto", "reduce_bucket_size": "auto"}})");
  ASSERT_TRUE(cfg.ok()) << cfg.status().message();
  EXPECT_EQ(cfg->gradient_clipping, 1.0);
  EXPECT_EQ(cfg->zero.prefetch_bucket_size, 50000000);
  EXPECT_EQ(cfg->auto_keys.size(), 3u);
}

TEST(ConfigParse, AdamIsAdamWUnlessAdamWModeIsFalse) {
  StatusOr<DsConfig> cfg = Parse(R"({"train_batch_size": 8, "optimizer": {"type": "Adam", "params": {"adam_w_mode": false}}})");
  ASSERT_TRUE(cfg.ok());
  EXPECT_FALSE(cfg->optimizer.adam_w_mode);
  cfg = Parse(R"({"train_batch_size": 8, "optimizer": {"type": "AdamW", "params": {"adam_w_mode": false}}})");
  ASSERT_TRUE(cfg.ok());
  EXPECT_TRUE(cfg->optimizer.adam_w_mode);
  cfg = Parse(R"({"train_batch_size": 8, "optimizer": {"type": "Adam", "params": {"torch_adam": true}}})");
  ASSERT_TRUE(cfg.ok());
  EXPECT_EQ(cfg->optimizer.implementation, "torch.optim.AdamW");
  EXPECT_EQ(cfg->optimizer.weight_decay, 0.01);  // torch AdamW's default, unlike FusedAdam's 0
}

TEST(ConfigParse, OptimizerNamesAndParams) {
  EXPECT_NE(ErrorOf(R"({"train_batch_size": 8, "optimizer": {"type": "sgd"}})").find("did you mean \"SGD\""), std::string::npos);
  std::string msg = ErrorOf(R"({"train_batch_size": 8, "optimizer": {"type": "Adam", "params": {"max_grad_norm": 1.0}}})");
  EXPECT_NE(msg.find("gradient_clipping"), std::string::npos) << msg;
  EXPECT_NE(msg.find("[ValueError]"), std::string::npos) << msg;
  msg = ErrorOf(R"({"train_batch_size": 8, "optimizer": {"type": "Adam", "params": {"wieght_decay": 0.1}}})");
  EXPECT_NE(msg.find("weight_decay"), std::string::npos) << msg;
  EXPECT_NE(msg.find("[TypeError]"), std::string::npos) << msg;
  StatusOr<DsConfig> cfg = Parse(R"({"train_batch_size": 8, "optimizer": {"type": "Lion"}, "zero_optimization": {"stage": 2}})");
  ASSERT_TRUE(cfg.ok()) << cfg.status().message();
  EXPECT_EQ(cfg->optimizer.type, "lion");
  msg = ErrorOf(R"({"train_batch_size": 8, "optimizer": {"type": "Lamb"}, "zero_optimization": {"stage": 2}})");
  EXPECT_NE(msg.find("zero_allow_untested_optimizer"), std::string::npos) << msg;
  cfg = Parse(R"({"train_batch_size": 8, "optimizer": {"type": "Adagrad"}})");
  ASSERT_TRUE(cfg.ok());
  EXPECT_EQ(cfg->optimizer.lr, 1e-2);
}

TEST(ConfigParse, UnsupportedSectionsAreErrorsNamingTheFeature) {
  std::string msg = ErrorOf(R"({"train_batch_size": 8, "sparse_attention": {"mode": "fixed"}})");
  EXPECT_NE(msg.find("sparse attention"), std::string::npos) << msg;
  EXPECT_NE(msg.find("not supported by dscompile"), std::string::npos) << msg;
  msg = ErrorOf(R"({"train_batch_size": 8, "optimizer": {"type": "OneBitAdam"}})");
  EXPECT_NE(msg.find("OneBitAdam"), std::string::npos) << msg;
  msg = ErrorOf(R"({"train_batch_size": 8, "pipeline": {"stages": 2}})");
  EXPECT_NE(msg.find("pipeline parallelism"), std::string::npos) << msg;
  // Present but switched off: accepted.
  EXPECT_TRUE(Parse(R"({"train_batch_size": 8, "flops_profiler": {"enabled": false}, "wandb": {"enabled": false}})").ok());
}

TEST(ConfigParse, PrecisionConflicts) {
  std::string msg = ErrorOf(R"({"train_batch_size": 8, "fp16": {"enabled": true}, "bf16": {"enabled": true}})");
  EXPECT_NE(msg.find("[AssertionError]"), std::string::npos) << msg;
  msg = ErrorOf(R"({"train_batch_size": 8, "fp16": {"enabled": true}, "data_types": {"grad_accum_dtype": "fp32"}})");
  EXPECT_NE(msg.find("[NotImplementedError]"), std::string::npos) << msg;
  EXPECT_TRUE(Parse(R"({"train_batch_size": 8, "fp16": {"enabled": true}, "zero_optimization": {"stage": 1},
                        "data_types": {"grad_accum_dtype": "fp32"}})").ok());
}

TEST(ConfigParse, WorldSizeMustBePositive) {
  EXPECT_FALSE(Parse(R"({"train_batch_size": 8})", {.world_size = 0}).ok());
}

TEST(ConfigParse, LoadNamesTheFile) {
  std::vector<std::string> warnings;
  StatusOr<DsConfig> cfg = LoadDsConfig("/nonexistent/ds.json", {}, &warnings);
  ASSERT_FALSE(cfg.ok());
  EXPECT_NE(cfg.status().message().find("/nonexistent/ds.json"), std::string::npos);
}

TEST(KeySuggest, FindsNearKeysOnly) {
  EXPECT_EQ(NearestKey("train_batch_sise", {"train_batch_size", "fp16"}), "train_batch_size");
  EXPECT_EQ(NearestKey("completely_different", {"fp16", "bf16"}), "");
}

}  // namespace
}  // namespace dsc
