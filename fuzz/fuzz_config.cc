// libFuzzer target: DeepSpeed config text through the parser, the resolver at several world sizes,
// and what dscompile --explain-config and --lr-schedule print.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <iostream>
#include <string>
#include <vector>

#include "frontend/config/ds_config.h"
#include "frontend/config/json_text.h"
#include "runtime/lr_schedule.h"

namespace {

// ResolvedConfigJson promises a config that parses back to itself; a break is a bug even when
// nothing crashes, so it aborts like one.
void CheckRoundTrip(const dsc::DsConfig& cfg, const dsc::ConfigOptions& opts) {
  const nlohmann::json resolved = dsc::ResolvedConfigJson(cfg);
  std::vector<std::string> warnings;
  dsc::StatusOr<dsc::DsConfig> again = dsc::ParseDsConfigJson(resolved, opts, &warnings, "resolved");
  if (!again.ok()) {
    std::cerr << "fuzz_config: the resolved config does not parse back: " << again.status().message() << "\n"
              << resolved.dump(2) << "\n";
    std::abort();
  }
  if (dsc::ResolvedConfigJson(*again) != resolved) {
    std::cerr << "fuzz_config: the resolved config resolves differently:\n"
              << resolved.dump(2) << "\nthen\n" << dsc::ResolvedConfigJson(*again).dump(2) << "\n";
    std::abort();
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  if (!dsc::ParseConfigJson(text, "fuzz.json").ok()) return 0;
  for (int world_size : {1, 2, 3, 8}) {
    for (bool strict : {false, true}) {
      dsc::ConfigOptions opts;
      opts.world_size = world_size;
      opts.strict = strict;
      std::vector<std::string> warnings;
      dsc::StatusOr<dsc::DsConfig> cfg = dsc::ParseDsConfig(text, opts, &warnings, "fuzz.json");
      if (!cfg.ok()) continue;
      (void)dsc::ResolvedConfigJson(*cfg).dump(2);  // --explain-config
      (void)dsc::OptimizerWrapper(*cfg);
      (void)dsc::FormatLrSchedule(*cfg, 3);         // --lr-schedule 3
      CheckRoundTrip(*cfg, opts);
    }
  }
  return 0;
}
