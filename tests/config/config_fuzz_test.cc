// Malformed JSON and wrong types: the parser never crashes and always says what is wrong.
#include <algorithm>
#include <random>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "frontend/config/ds_config.h"
#include "runtime/loss_scaler.h"
#include "runtime/lr_schedule.h"

namespace dsc {
namespace {

const char* kBase = R"({
  "train_batch_size": 32, "train_micro_batch_size_per_gpu": 4, "gradient_accumulation_steps": 4,
  "gradient_clipping": 1.0, "steps_per_print": 10, "prescale_gradients": false,
  "optimizer": {"type": "Adam", "params": {"lr": 0.001, "betas": [0.9, 0.999], "eps": 1e-8, "weight_decay": 0.0}},
  "scheduler": {"type": "OneCycle", "params": {"cycle_min_lr": 0.0001, "cycle_max_lr": 0.001, "cycle_first_step_size": 10}},
  "fp16": {"enabled": true, "loss_scale": 0, "hysteresis": 2, "min_loss_scale": 1},
  "zero_optimization": {"stage": 3, "offload_optimizer": {"device": "cpu", "ratio": 0.5},
                        "stage3_prefetch_bucket_size": 1000, "leaf_module": {"names": ["a"]}},
  "checkpoint": {"tag_validation": "Warn"}, "data_types": {"grad_accum_dtype": "fp16"},
  "tensorboard": {"enabled": true, "output_path": "tb"}, "elasticity": {"enabled": false}
})";

// Whatever the input, a failure carries a message and a success is usable.
void CheckNoCrash(const std::string& text) {
  std::vector<std::string> warnings;
  StatusOr<DsConfig> cfg = ParseDsConfig(text, {.world_size = 2}, &warnings);
  if (!cfg.ok()) {
    EXPECT_FALSE(cfg.status().message().empty());
    EXPECT_FALSE(DeepSpeedErrorKind(cfg.status()).empty()) << cfg.status().message();
    return;
  }
  (void)ResolvedConfigJson(*cfg).dump();
  StatusOr<LrSchedule> schedule = LrSchedule::Create(*cfg);
  if (schedule.ok()) (void)schedule->LrForStep(5);
  LossScaler scaler = LossScaler::Create(*cfg);
  for (int i = 0; i < 4; ++i) (void)scaler.Update(i % 2 == 0);
}

std::vector<std::string> Paths(const nlohmann::json& j, const std::string& prefix = "") {
  std::vector<std::string> out;
  if (j.is_object()) {
    for (auto it = j.begin(); it != j.end(); ++it) {
      std::string p = prefix + "/" + it.key();
      out.push_back(p);
      for (const std::string& q : Paths(it.value(), p)) out.push_back(q);
    }
  }
  return out;
}

TEST(ConfigFuzz, WrongTypesAtEveryPath) {
  const nlohmann::json base = nlohmann::json::parse(kBase);
  const std::vector<nlohmann::json> values = {
      nullptr, true, false, 0, -1, 1.5, 1e300, -1e300, "", "auto", "abc", "inf", nlohmann::json::array(),
      nlohmann::json::array({1, 2, 3}), nlohmann::json::object(), nlohmann::json::object({{"x", 1}}),
      9223372036854775807LL, 18446744073709551615ULL};
  for (const std::string& path : Paths(base)) {
    for (const nlohmann::json& v : values) {
      nlohmann::json doc = base;
      doc[nlohmann::json::json_pointer(path)] = v;
      SCOPED_TRACE(path + " = " + v.dump());
      CheckNoCrash(doc.dump());
    }
  }
}

TEST(ConfigFuzz, MalformedText) {
  const std::string base = kBase;
  std::mt19937 rng(1234);
  const std::string junk = "{}[],:\"\\/#*'0e-+ \n";
  for (int i = 0; i < 3000; ++i) {
    std::string text = base;
    int edits = 1 + static_cast<int>(rng() % 4);
    for (int e = 0; e < edits; ++e) {
      size_t pos = rng() % text.size();
      switch (rng() % 3) {
        case 0: text = text.substr(0, pos) + text.substr(std::min(text.size(), pos + 1 + rng() % 8)); break;
        case 1: text = text.substr(0, pos) + junk[rng() % junk.size()] + text.substr(pos); break;
        default: text = text.substr(0, pos); break;
      }
      if (text.empty()) text.push_back('{');
    }
    CheckNoCrash(text);
  }
  for (const char* text : {"", "   ", "null", "[]", "42", "\"x\"", "{", "}", "/*", "{\"a\":", "{\"train_batch_size\": 1} trailing",
                           "{\"train_batch_size\": 1e999}", "{\"train_batch_size\": -0}", "\xff\xfe{}"}) {
    CheckNoCrash(text);
  }
}

}  // namespace
}  // namespace dsc
