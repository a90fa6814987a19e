// Parser behaviour beyond DeepSpeed's own cases: JSON extensions, unknown keys, "auto", messages.
#include <algorithm>
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
  // A missing comma at a line's end is Hjson, which DeepSpeed reads; "{]" is not.
  std::string msg = ErrorOf("{\n\"train_batch_size\": 8\n\"fp16\": {]}");
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

// DeepSpeed's engine asserts dynamic_loss_scale() for lamb (engine.py's sanity checks): fp16's
// loss_scale must be 0, read whether or not fp16 is enabled; the default 0 passes.
TEST(ConfigParse, LambNeedsDynamicLossScale) {
  std::string msg = ErrorOf(R"({"train_batch_size": 8, "optimizer": {"type": "Lamb"}, "fp16": {"enabled": true, "loss_scale": 128}})");
  EXPECT_NE(msg.find("fp16.loss_scale"), std::string::npos) << msg;
  EXPECT_NE(msg.find("Lamb needs dynamic loss scaling (loss_scale 0), got 128"), std::string::npos) << msg;
  EXPECT_NE(msg.find("[AssertionError]"), std::string::npos) << msg;
  msg = ErrorOf(R"({"train_batch_size": 8, "optimizer": {"type": "Lamb"}, "fp16": {"enabled": false, "loss_scale": 4}})");
  EXPECT_NE(msg.find("Lamb needs dynamic loss scaling"), std::string::npos) << msg;
  for (const char* ok : {R"({"train_batch_size": 8, "optimizer": {"type": "Lamb"}, "fp16": {"enabled": true}})",
                         R"({"train_batch_size": 8, "optimizer": {"type": "Lamb"}})",
                         R"({"train_batch_size": 8, "optimizer": {"type": "Adam"}, "fp16": {"enabled": true, "loss_scale": 128}})"}) {
    StatusOr<DsConfig> cfg = Parse(ok);
    EXPECT_TRUE(cfg.ok()) << ok << ": " << cfg.status().message();
  }
  StatusOr<DsConfig> cfg = Parse(R"({"train_batch_size": 8, "optimizer": {"type": "Lamb", "params": {"eps_inside_sqrt": true, "max_coeff": 5}}})");
  ASSERT_TRUE(cfg.ok()) << cfg.status().message();
  EXPECT_EQ(cfg->optimizer.implementation, "FusedLamb");
  EXPECT_TRUE(cfg->optimizer.eps_inside_sqrt);
  EXPECT_EQ(cfg->optimizer.max_coeff, 5.0);
  EXPECT_EQ(cfg->optimizer.min_coeff, 0.01);
}

// What DeepSpeed accepts and dscompile does not implement parses (so --explain-config explains it),
// is recorded with its JSON path, and is refused by RefuseUnsupported, which compiling runs first.
std::vector<std::string> UnsupportedIn(const std::string& text, const std::string& refusal_needle) {
  StatusOr<DsConfig> cfg = Parse(text);
  EXPECT_TRUE(cfg.ok()) << text << ": " << cfg.status().message();
  if (!cfg.ok()) return {};
  const Status refused = RefuseUnsupported(*cfg);
  EXPECT_EQ(DeepSpeedErrorKind(refused), "Unsupported") << text;
  EXPECT_NE(refused.message().find("not supported by dscompile"), std::string::npos) << refused.message();
  EXPECT_NE(refused.message().find(refusal_needle), std::string::npos) << refused.message();
  return cfg->unsupported;
}

TEST(ConfigParse, UnsupportedSettingsAreRecordedAndRefusedAtCompileTime) {
  const std::string base = R"("train_batch_size": 8, "optimizer": {"type": "Adam"})";
  struct Case {
    std::string extra, path, needle;
  } cases[] = {
      {R"("sparse_attention": {"mode": "fixed"})", "sparse_attention", "sparse attention"},
      {R"("pipeline": {"stages": 2})", "pipeline", "pipeline parallelism"},
      {R"("wandb": {"enabled": true})", "wandb", "Weights & Biases monitor needs its service; \"tensorboard\" and \"csv_monitor\" write the same metrics offline"},
      {R"("comet": {"enabled": true, "project": "p"})", "comet", "Comet monitor needs its service; \"tensorboard\" and \"csv_monitor\" write the same metrics offline"},
      {R"("flops_profiler": {"enabled": true, "module_depth": 2})", "flops_profiler.module_depth", "only -1"},
      {R"("zero_optimization": {"stage": 2, "offload_optimizer": {"device": "nvme"}})",
       "zero_optimization.offload_optimizer.nvme_path", "needs the folder"},
      {R"("zero_optimization": {"stage": 1, "offload_optimizer": {"device": "nvme", "nvme_path": "/x", "buffer_count": 0}})",
       "zero_optimization.offload_optimizer.buffer_count", "at least 1 buffer"},
      {R"("zero_optimization": {"stage": 3, "offload_optimizer": {"device": "nvme", "nvme_path": "/x", "ratio": 0.5}})",
       "zero_optimization.offload_optimizer.ratio", "partial offload"},
      {R"("zero_optimization": {"stage": 3, "offload_param": {"device": "nvme"}})",
       "zero_optimization.offload_param.nvme_path", "needs the folder"},
      {R"("zero_optimization": {"stage": 3, "offload_param": {"device": "nvme", "nvme_path": "/x", "buffer_count": 0}})",
       "zero_optimization.offload_param.buffer_count", "at least 1 buffer"},
      {R"("zero_optimization": {"stage": 3, "zero_quantized_weights": true})", "zero_optimization.zero_quantized_weights", "ZeRO++"},
      {R"("data_parallel_size": 2)", "data_parallel_size", "data parallel only"},
      {R"("gradient_predivide_factor": 0)", "gradient_predivide_factor", "must be > 0"},
      {R"("steps_per_print": 0)", "steps_per_print", "n >= 1"},
      {R"("scheduler": {"type": "StepLR", "params": {"step_size": 10}})", "scheduler.type", "torch LR scheduler \"StepLR\""},
  };
  for (const Case& c : cases) {
    std::vector<std::string> unsupported = UnsupportedIn("{" + base + ", " + c.extra + "}", c.path + ": ");
    ASSERT_EQ(unsupported.size(), 1u) << c.extra;
    EXPECT_EQ(unsupported[0].rfind(c.path + ": ", 0), 0u) << unsupported[0];
    EXPECT_NE(unsupported[0].find(c.needle), std::string::npos) << unsupported[0];
  }
  // An optimizer dscompile does not build: recorded too (the optimizer pass would refuse it as well).
  // Each says why: muP's widths are not in an ONNX graph (the 1-bit family is built: OneBitAdam,
  // OneBitLamb and ZeroOneAdam).
  const std::vector<std::pair<std::string, std::string>> optimizers = {
      {"MuAdam", "base shapes"},
      {"MuAdamW", "base shapes"}, {"MuSGD", "base shapes"},
      {"Rprop", "torch.optim.Rprop is not implemented"}};
  for (const auto& [type, why] : optimizers) {
    std::vector<std::string> u = UnsupportedIn(R"({"train_batch_size": 8, "optimizer": {"type": ")" + type + R"("}})",
                                               "optimizer.type: optimizer \"" + type + "\"");
    ASSERT_EQ(u.size(), 1u) << type;
    EXPECT_NE(u[0].find(why), std::string::npos) << u[0];
  }
  // Offloaded parameters below stage 3 are ignored by DeepSpeed, with a warning here: not refused.
  std::vector<std::string> warnings;
  StatusOr<DsConfig> cfg = Parse(R"({"train_batch_size": 8, "optimizer": {"type": "Adam"},
                                     "zero_optimization": {"stage": 2, "offload_param": {"device": "cpu"}}})", {}, &warnings);
  ASSERT_TRUE(cfg.ok()) << cfg.status().message();
  EXPECT_TRUE(cfg->unsupported.empty());
  EXPECT_TRUE(RefuseUnsupported(*cfg).ok());
  // Optimizer offload at ZeRO 1-3: to "cpu" where CPU ranks keep the states anyway, to "nvme" by
  // swapping them; each key that changes nothing on CPU ranks says so, and so does an unused aio.
  warnings.clear();
  cfg = Parse(R"({"train_batch_size": 8, "optimizer": {"type": "Adam"}, "aio": {"block_size": 4096},
                  "zero_optimization": {"stage": 2, "offload_optimizer": {"device": "cpu", "pin_memory": true,
                                        "nvme_path": "/x", "buffer_count": 2, "ratio": 1.0}}})", {}, &warnings);
  ASSERT_TRUE(cfg.ok()) << cfg.status().message();
  EXPECT_TRUE(cfg->unsupported.empty());
  EXPECT_EQ(cfg->optimizer.implementation, "DeepSpeedCPUAdam");
  std::string all;
  for (const std::string& w : warnings) all += w + "\n";
  for (const char* needle : {"offload_optimizer.device: \"cpu\": on CPU ranks the optimizer states already live in host memory",
                             "offload_optimizer.pin_memory: has no effect with device \"cpu\"",
                             "offload_optimizer.nvme_path: has no effect with device \"cpu\"",
                             "offload_optimizer.buffer_count: has no effect with device \"cpu\"",
                             "offload_optimizer.ratio: has no effect with device \"cpu\"",
                             "aio: has no effect: it configures the I/O of offload to \"nvme\""})
    EXPECT_NE(all.find(needle), std::string::npos) << needle << "\n" << all;
  warnings.clear();
  cfg = Parse(R"({"train_batch_size": 8, "optimizer": {"type": "Adam"}, "aio": {"block_size": 4096, "queue_depth": 4},
                  "zero_optimization": {"stage": 3, "offload_optimizer": {"device": "nvme", "nvme_path": "/x",
                                        "buffer_count": 2, "pipeline_read": true, "fast_init": true}}})", {}, &warnings);
  ASSERT_TRUE(cfg.ok()) << cfg.status().message();
  EXPECT_TRUE(cfg->unsupported.empty());
  all.clear();
  for (const std::string& w : warnings) all += w + "\n";
  EXPECT_EQ(all.find("aio:"), std::string::npos) << all;
  EXPECT_EQ(all.find("buffer_count"), std::string::npos) << all;
  EXPECT_EQ(all.find("pipeline_read"), std::string::npos) << all;
  EXPECT_NE(all.find("offload_optimizer.fast_init: has no effect with device \"nvme\""), std::string::npos) << all;
  warnings.clear();
  cfg = Parse(R"({"train_batch_size": 8, "optimizer": {"type": "Adam"},
                  "zero_optimization": {"stage": 2, "offload_optimizer": {"device": "none", "nvme_path": "/x"}}})", {}, &warnings);
  ASSERT_TRUE(cfg.ok()) << cfg.status().message();
  all.clear();
  for (const std::string& w : warnings) all += w + "\n";
  EXPECT_NE(all.find("offload_optimizer.nvme_path: has no effect: nothing is offloaded"), std::string::npos) << all;
  // Parameter offload to "cpu" at stage 3: accepted (CPU ranks keep the parameters in host memory
  // anyway) with a warning, and every other key says it changes nothing.
  warnings.clear();
  cfg = Parse(R"({"train_batch_size": 8, "optimizer": {"type": "Adam"},
                  "zero_optimization": {"stage": 3, "offload_param": {"device": "cpu", "pin_memory": true,
                                        "nvme_path": "/x", "buffer_count": 4, "buffer_size": 1000, "max_in_cpu": 10}}})",
              {}, &warnings);
  ASSERT_TRUE(cfg.ok()) << cfg.status().message();
  EXPECT_TRUE(cfg->unsupported.empty());
  EXPECT_TRUE(RefuseUnsupported(*cfg).ok());
  EXPECT_EQ(cfg->zero.offload_param->device, "cpu");
  all.clear();
  for (const std::string& w : warnings) all += w + "\n";
  for (const char* needle : {"offload_param.device: \"cpu\": on CPU ranks the parameters already live in host memory",
                             "offload_param.pin_memory: has no effect with device \"cpu\"",
                             "offload_param.nvme_path: has no effect with device \"cpu\": read only with device \"nvme\"",
                             "offload_param.buffer_count: has no effect with device \"cpu\"",
                             "offload_param.buffer_size: has no effect with device \"cpu\"",
                             "offload_param.max_in_cpu: has no effect with device \"cpu\""})
    EXPECT_NE(all.find(needle), std::string::npos) << needle << "\n" << all;
  // The deprecated cpu_offload_param means the same.
  cfg = Parse(R"({"train_batch_size": 8, "zero_optimization": {"stage": 3, "cpu_offload_param": true}})");
  ASSERT_TRUE(cfg.ok()) << cfg.status().message();
  EXPECT_TRUE(cfg->unsupported.empty());
  // Device "none" at stage 3: its other keys say nothing is offloaded.
  warnings.clear();
  cfg = Parse(R"({"train_batch_size": 8,
                  "zero_optimization": {"stage": 3, "offload_param": {"device": "none", "buffer_size": 10}}})", {}, &warnings);
  ASSERT_TRUE(cfg.ok()) << cfg.status().message();
  all.clear();
  for (const std::string& w : warnings) all += w + "\n";
  EXPECT_NE(all.find("offload_param.buffer_size: has no effect: nothing is offloaded"), std::string::npos) << all;
  // Present but switched off: nothing to refuse.
  cfg = Parse(R"({"train_batch_size": 8, "flops_profiler": {"enabled": false}, "wandb": {"enabled": false}})");
  ASSERT_TRUE(cfg.ok());
  EXPECT_TRUE(cfg->unsupported.empty());
}

// The explained config is itself a config: it parses back with the same refusals.
// activation_checkpointing: present switches the rematerialize pass on (and survives the resolved
// config's round trip); absent stays absent; the keys dscompile cannot act on warn by name, and
// cpu_checkpointing, which it acts on, does not warn and survives the round trip.
TEST(ConfigParse, ActivationCheckpointingPresenceAndItsInertKeys) {
  StatusOr<DsConfig> cfg = Parse(R"({"train_batch_size": 8})");
  ASSERT_TRUE(cfg.ok());
  EXPECT_FALSE(cfg->activation_checkpointing.present);
  EXPECT_TRUE(ResolvedConfigJson(*cfg)["activation_checkpointing"].is_null());
  std::vector<std::string> warnings;
  cfg = Parse(R"({"train_batch_size": 8, "activation_checkpointing": {"number_checkpoints": 3, "partition_activations": true,
                  "contiguous_memory_optimization": true, "cpu_checkpointing": true,
                  "synchronize_checkpoint_boundary": true, "profile": true}})", {}, &warnings);
  ASSERT_TRUE(cfg.ok()) << cfg.status().message();
  EXPECT_TRUE(cfg->activation_checkpointing.present);
  for (const char* key : {"partition_activations", "contiguous_memory_optimization", "cpu_checkpointing",
                          "synchronize_checkpoint_boundary", "profile"}) {
    bool named = false;
    for (const std::string& w : warnings) named = named || w.find(std::string("activation_checkpointing.") + key) != std::string::npos;
    EXPECT_EQ(named, std::string(key) != "cpu_checkpointing") << key;
  }
  EXPECT_TRUE(cfg->activation_checkpointing.cpu_checkpointing);
  StatusOr<DsConfig> back = Parse(ResolvedConfigJson(*cfg).dump());
  ASSERT_TRUE(back.ok()) << back.status().message();
  EXPECT_TRUE(back->activation_checkpointing.present);
  EXPECT_TRUE(back->activation_checkpointing.cpu_checkpointing);
  EXPECT_EQ(back->activation_checkpointing.number_checkpoints, 3);
}

TEST(ConfigParse, ResolvedConfigOfAnUnsupportedConfigParsesBack) {
  StatusOr<DsConfig> cfg = Parse(R"({"train_batch_size": 8, "optimizer": {"type": "Adam"}, "pipeline": {"stages": 2},
      "scheduler": {"type": "StepLR", "params": {"step_size": 10}},
      "zero_optimization": {"stage": 1, "offload_optimizer": {"device": "cpu"}}})");
  ASSERT_TRUE(cfg.ok()) << cfg.status().message();
  std::vector<std::string> warnings;
  StatusOr<DsConfig> again = ParseDsConfigJson(ResolvedConfigJson(*cfg), {}, &warnings);
  ASSERT_TRUE(again.ok()) << again.status().message();
  EXPECT_EQ(again->unsupported, cfg->unsupported);
  EXPECT_EQ(ResolvedConfigJson(*again), ResolvedConfigJson(*cfg));
  EXPECT_EQ(ResolvedConfigJson(*cfg)["scheduler"]["type"], "StepLR");
}

// tensorboard and csv_monitor are acted on (dsrun writes them): nothing is refused, every key
// (monitor/config.py TensorBoardConfig, CSVConfig) reaches the plan's resolved config, and an
// unknown key is an error, as pydantic's extra="forbid" makes it.
TEST(ConfigParse, TensorBoardAndCsvMonitorAreActedOn) {
  StatusOr<DsConfig> cfg = Parse(R"({"train_batch_size": 8, "optimizer": {"type": "Adam"},
      "tensorboard": {"enabled": true, "output_path": "runs", "job_name": "j1"},
      "csv_monitor": {"enabled": true, "output_path": "/tmp/csv"}})");
  ASSERT_TRUE(cfg.ok()) << cfg.status().message();
  EXPECT_TRUE(cfg->unsupported.empty());
  EXPECT_TRUE(RefuseUnsupported(*cfg).ok());
  std::vector<std::string> warnings;
  StatusOr<DsConfig> again = ParseDsConfigJson(ResolvedConfigJson(*cfg), {}, &warnings);
  ASSERT_TRUE(again.ok()) << again.status().message();
  EXPECT_TRUE(again->tensorboard.enabled);
  EXPECT_EQ(again->tensorboard.output_path, "runs");
  EXPECT_EQ(again->tensorboard.job_name, "j1");
  EXPECT_TRUE(again->csv_monitor.enabled);
  EXPECT_EQ(again->csv_monitor.output_path, "/tmp/csv");
  EXPECT_EQ(again->csv_monitor.job_name, "DeepSpeedJobName");
  EXPECT_NE(ErrorOf(R"({"train_batch_size": 8, "tensorboard": {"enabled": true, "flush_secs": 5}})").find("tensorboard.flush_secs"),
            std::string::npos);
}

// comms_logger (comm/config.py CommsLoggerConfig): every key acted on by dsrun except debug, which
// is refused when the logger is on; the defaults are DeepSpeed's (comm/constants.py).
TEST(ConfigParse, CommsLoggerKeys) {
  StatusOr<DsConfig> cfg = Parse(R"({"train_batch_size": 8})");
  ASSERT_TRUE(cfg.ok());
  EXPECT_FALSE(cfg->comms_logger.enabled);
  EXPECT_TRUE(cfg->comms_logger.prof_all);
  EXPECT_TRUE(cfg->comms_logger.prof_ops.empty());
  EXPECT_FALSE(cfg->comms_logger.verbose);
  EXPECT_FALSE(cfg->comms_logger.debug);
  cfg = Parse(R"({"train_batch_size": 8, "comms_logger": {"enabled": true, "verbose": true, "prof_all": false,
                  "prof_ops": ["all_reduce", "all_gather_into_tensor"]}})");
  ASSERT_TRUE(cfg.ok()) << cfg.status().message();
  EXPECT_TRUE(cfg->unsupported.empty());
  EXPECT_EQ(cfg->comms_logger.prof_ops, (std::vector<std::string>{"all_reduce", "all_gather_into_tensor"}));
  std::vector<std::string> warnings;
  StatusOr<DsConfig> again = ParseDsConfigJson(ResolvedConfigJson(*cfg), {}, &warnings);
  ASSERT_TRUE(again.ok()) << again.status().message();
  EXPECT_EQ(ResolvedConfigJson(*again)["comms_logger"], ResolvedConfigJson(*cfg)["comms_logger"]);
  EXPECT_FALSE(again->comms_logger.prof_all);
  EXPECT_TRUE(again->comms_logger.verbose);
  // debug: refused when the logger is on, nothing to refuse when it is off.
  std::vector<std::string> u =
      UnsupportedIn(R"({"train_batch_size": 8, "comms_logger": {"enabled": true, "debug": true}})", "comms_logger.debug: ");
  ASSERT_EQ(u.size(), 1u);
  EXPECT_NE(u[0].find("which plan node issued a collective"), std::string::npos) << u[0];
  cfg = Parse(R"({"train_batch_size": 8, "comms_logger": {"enabled": false, "debug": true}})");
  ASSERT_TRUE(cfg.ok());
  EXPECT_TRUE(cfg->unsupported.empty());
  EXPECT_NE(ErrorOf(R"({"train_batch_size": 8, "comms_logger": {"prof_ops": "all_reduce"}})").find("comms_logger.prof_ops"),
            std::string::npos);
  EXPECT_NE(ErrorOf(R"({"train_batch_size": 8, "comms_logger": {"prof_ops": [3]}})").find("comms_logger.prof_ops[0]"),
            std::string::npos);
  EXPECT_NE(ErrorOf(R"({"train_batch_size": 8, "comms_logger": {"enabled": true, "log_file": "x"}})").find("comms_logger.log_file"),
            std::string::npos);
}

// DeepSpeed reads optimizer/scheduler params only with a type and ignores them otherwise; so does
// dscompile, with a warning. (Without an optimizer the optimizer pass refuses to compile.)
TEST(ConfigParse, ParamsWithoutTypeAreIgnoredAsDeepSpeedDoes) {
  std::vector<std::string> warnings;
  StatusOr<DsConfig> cfg = Parse(R"({"train_batch_size": 8, "optimizer": {"params": {"lr": 0.1}},
                                     "scheduler": {"params": {"warmup_num_steps": 5}}})", {}, &warnings);
  ASSERT_TRUE(cfg.ok()) << cfg.status().message();
  EXPECT_FALSE(cfg->optimizer.present());
  EXPECT_FALSE(cfg->scheduler.present());
  ASSERT_EQ(warnings.size(), 2u);
  EXPECT_NE(warnings[0].find("optimizer.params: ignored without optimizer.type"), std::string::npos) << warnings[0];
  EXPECT_NE(warnings[1].find("scheduler.params: ignored without scheduler.type"), std::string::npos) << warnings[1];
  EXPECT_TRUE(cfg->unsupported.empty());
}

// DeepSpeed reads plain-dict sections with dict.get, so it ignores their unknown keys: a warning
// with the nearest key here, an error with strict.
TEST(ConfigParse, UnknownKeysOfPlainDictSectionsWarn) {
  const std::string text = R"({"train_batch_size": 8, "optimizer": {"type": "Adam", "parms": {}},
      "data_types": {"grad_acum_dtype": "fp32"}, "checkpoint": {"tag_validaton": "Warn"},
      "aio": {"block_sise": 8}, "activation_checkpointing": {"profil": true}})";
  std::vector<std::string> warnings;
  StatusOr<DsConfig> cfg = Parse(text, {}, &warnings);
  ASSERT_TRUE(cfg.ok()) << cfg.status().message();
  // One per unknown key, and aio's own: it has no effect without NVMe offload.
  ASSERT_EQ(warnings.size(), 6u);
  for (const std::string& w : warnings)
    EXPECT_TRUE(w.find("DeepSpeed ignores it") != std::string::npos || w.find("aio: has no effect") != std::string::npos) << w;
  EXPECT_NE(std::count_if(warnings.begin(), warnings.end(), [](const std::string& w) {
              return w.find("optimizer.parms: unknown key (did you mean \"params\"?)") != std::string::npos;
            }),
            0);
  std::string msg = ErrorOf(R"({"train_batch_size": 8, "optimizer": {"type": "Adam", "parms": {}}})", {.strict = true});
  EXPECT_NE(msg.find("optimizer.parms: unknown key"), std::string::npos) << msg;
}

// Values DeepSpeed does not validate are taken as given: gradient_clipping < 0 disables clipping as
// 0 does; the plain-dict numbers below are never range-checked.
TEST(ConfigParse, ValuesDeepSpeedDoesNotCheckAreAccepted) {
  StatusOr<DsConfig> cfg = Parse(R"({"train_batch_size": 8, "gradient_clipping": -1, "vocabulary_size": 0,
      "aio": {"block_size": 0, "queue_depth": 0, "thread_count": 0}, "activation_checkpointing": {"number_checkpoints": 0},
      "checkpoint": {"writer": {"io_buffer_size": 0, "io_multiplier": 0}}})");
  ASSERT_TRUE(cfg.ok()) << cfg.status().message();
  EXPECT_EQ(cfg->gradient_clipping, -1.0);
  EXPECT_EQ(cfg->aio.block_size, 0);
  EXPECT_EQ(cfg->aio.intra_op_parallelism, 0);
  EXPECT_EQ(cfg->activation_checkpointing.number_checkpoints, 0);
  EXPECT_EQ(cfg->checkpoint.writer["io_buffer_size"], 0);
  EXPECT_TRUE(cfg->unsupported.empty());
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

// Keys that change only DeepSpeed's logging or its Python side are accepted; a non-default value
// is never passed over in silence: a warning names the key and says why nothing changes.
TEST(ConfigParse, KeysWithoutEffectSaySo) {
  for (const char* kv : {R"("dump_state": true)", R"("memory_breakdown": true)", R"("log_level": "info")",
                         R"("graph_harvesting": true)", R"("sparse_gradients": true)", R"("disable_allgather": true)",
                         R"("use_data_before_expert_parallelism": true)", R"("zero_force_ds_cpu_optimizer": false)",
                         R"("dataloader_drop_last": true)", R"("dataloader_drop_last": false)",
                         R"("managed_gradient_accumulation": false)"}) {
    const std::string text = std::string(R"({"train_batch_size": 8, )") + kv + "}";
    const std::string key = std::string(kv).substr(1, std::string(kv).find('"', 1) - 1);
    std::vector<std::string> warnings;
    ASSERT_TRUE(Parse(text, {}, &warnings).ok()) << text;
    EXPECT_TRUE(std::any_of(warnings.begin(), warnings.end(),
                            [&](const std::string& w) { return w.find("ds.json: " + key + ": ") != std::string::npos; }))
        << text;
  }
  std::vector<std::string> defaults;
  ASSERT_TRUE(Parse(R"({"train_batch_size": 8, "dump_state": false, "sparse_gradients": false,
                        "zero_force_ds_cpu_optimizer": true, "managed_gradient_accumulation": true})",
                    {}, &defaults).ok());
  EXPECT_TRUE(defaults.empty()) << defaults.front();
}

// DeepSpeed's engine asserts these before it builds the optimizer (engine.py:1705-1713).
TEST(ConfigParse, UnmanagedAccumulationKeepsTheEnginesAssertions) {
  EXPECT_NE(ErrorOf(R"({"train_batch_size": 8, "managed_gradient_accumulation": false,
                       "zero_optimization": {"stage": 1, "overlap_comm": true}})")
                .find("managed_gradient_accumulation: false supports zero_optimization.overlap_comm only"),
            std::string::npos);
  EXPECT_NE(ErrorOf(R"({"train_batch_size": 8, "managed_gradient_accumulation": false, "amp": {"enabled": true}})")
                .find("apex AMP"),
            std::string::npos);
  // ZeRO 2 and 3 partition gradients: overlap is allowed there (stage 3 turns it on by default).
  EXPECT_TRUE(Parse(R"({"train_batch_size": 8, "managed_gradient_accumulation": false,
                        "zero_optimization": {"stage": 3}})").ok());
}

// The same for ZeRO's knobs of DeepSpeed's hooks, collective calls and checkpoint files; and
// load_from_fp32_weights: false, which would change a resume, is refused.
TEST(ConfigParse, ZeroKeysWithoutEffectSaySo) {
  for (const char* kv : {R"("round_robin_gradients": true)", R"("sub_group_size": 1000)",
                         R"("stage3_gather_16bit_weights_on_model_save": true)", R"("memory_efficient_linear": false)",
                         R"("allgather_partitions": false)", R"("use_multi_rank_bucket_allreduce": false)",
                         R"("elastic_checkpoint": true)", R"("ignore_unused_parameters": false)"}) {
    const std::string text = std::string(R"({"train_batch_size": 8, "zero_optimization": {"stage": 3, )") + kv + "}}";
    const std::string key = std::string(kv).substr(1, std::string(kv).find('"', 1) - 1);
    std::vector<std::string> warnings;
    StatusOr<DsConfig> cfg = Parse(text, {}, &warnings);
    ASSERT_TRUE(cfg.ok()) << text;
    EXPECT_TRUE(cfg->unsupported.empty()) << text;
    EXPECT_TRUE(std::any_of(warnings.begin(), warnings.end(), [&](const std::string& w) {
      return w.find("ds.json: zero_optimization." + key + ": ") != std::string::npos;
    })) << text;
  }
  std::vector<std::string> defaults;
  ASSERT_TRUE(Parse(R"({"train_batch_size": 8, "zero_optimization": {"stage": 2, "round_robin_gradients": false,
                        "sub_group_size": 1e9, "allgather_partitions": true}})", {}, &defaults).ok());
  EXPECT_TRUE(defaults.empty()) << defaults.front();
  StatusOr<DsConfig> fp16_load =
      Parse(R"({"train_batch_size": 8, "zero_optimization": {"stage": 2, "load_from_fp32_weights": false}})");
  ASSERT_TRUE(fp16_load.ok());
  ASSERT_EQ(fp16_load->unsupported.size(), 1u);
  EXPECT_NE(fp16_load->unsupported[0].find("load_from_fp32_weights"), std::string::npos);
}

}  // namespace
}  // namespace dsc
