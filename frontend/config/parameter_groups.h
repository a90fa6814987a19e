// Parameter groups: the "dscompile" config section (dscompile's own key, which DeepSpeed ignores)
// that gives parameters, chosen by name pattern, their own weight decay and learning-rate scale,
// and the no-decay preset (no weight decay on biases and normalisation weights).
//
//   "dscompile": {
//     "no_decay_bias_norm": true,
//     "parameter_groups": [{"params": ["lm_head.*"], "weight_decay": 0.0, "lr_scale": 0.1}]
//   }
//
// With the "muon" optimizer a group may also say "use_muon": true/false, overriding DeepSpeed's
// rule (UsesMuonByDefault) for its parameters: which ones Muon updates and which the aux Adam.
//
// The section also holds "recognize_attention" (default true): false keeps an exporter's
// MatMul-Softmax-MatMul attention chains as they are instead of one Attention node
// (passes/recognize_attention.cc), e.g. to hold a half-precision chain to PyTorch's roundings.
//
// A parameter's group: the first parameter_groups entry one of whose patterns matches its name
// (fnmatch(3) globs on the ONNX initializer name, torch's name); else, with the preset, the
// "no_decay_bias_norm" group when it has fewer than 2 dimensions (weight_decay 0); else the
// "default" group (the optimizer section's weight_decay, lr_scale 1). A group's learning rate is
// lr_scale x the scheduled learning rate at every step.
//
//   ASSIGN_OR_RETURN(ParameterGroupAssignment a, AssignParameterGroups(cfg, {{"fc.bias", {64}}, ...}));
//   a.groups[a.group_of[0]].weight_decay;
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "ir/status.h"

namespace dsc {

struct ParseContext;
struct OptimizerConfig;

inline constexpr const char* kDscompileSection = "dscompile";

struct ParameterGroupSpec {
  std::vector<std::string> params;     // fnmatch patterns on parameter names
  std::optional<double> weight_decay;  // none: the optimizer section's
  double lr_scale = 1.0;
  std::optional<bool> use_muon;  // none: DeepSpeed's rule
};

struct DscompileConfig {
  bool no_decay_bias_norm = false;
  bool recognize_attention = true;
  std::vector<ParameterGroupSpec> parameter_groups;

  bool has_groups() const { return no_decay_bias_norm || !parameter_groups.empty(); }
};

// Reads the "dscompile" section (null or absent: the defaults). Unknown keys are errors with the
// nearest known key; every error names the JSON path.
Status ParseDscompileSection(ParseContext& ctx, const nlohmann::json& section, DscompileConfig* out);
// The section with its defaults filled in, parsing back to the same groups; a group's omitted
// weight_decay stays omitted (it is the optimizer's; DescribeParameterGroups shows the value).
nlohmann::json DscompileToJson(const DscompileConfig& config);

// The groups in precedence order, one line each, for --explain-config ("" when none is configured):
//   parameter_groups[0]: params ["*.bias"], weight_decay 0, lr_scale 0.5
std::string DescribeParameterGroups(const DscompileConfig& config, const OptimizerConfig& optimizer);

// One resolved group.
struct ParameterGroup {
  std::string name;  // "parameter_groups[0]", "no_decay_bias_norm" or "default"
  double weight_decay = 0;
  double lr_scale = 1;
  std::optional<bool> use_muon;  // the group's override of UsesMuonByDefault ("muon" only)
};

// DeepSpeed's rule for the "muon" optimizer (deepspeed/__init__.py set_optimizer_flags): Muon
// takes a parameter of 2 or more dimensions whose name, lower-cased, contains neither "embed"
// nor "lm_head"; the aux Adam the others.
bool UsesMuonByDefault(const std::string& name, const std::vector<int64_t>& dims);

struct ParameterGroupAssignment {
  std::vector<ParameterGroup> groups;  // every group that holds a parameter, in config order, "default" last
  std::vector<int> group_of;           // per parameter given: its index in `groups`
};

// Each parameter (name, dims) to its group. A pattern that matches no parameter is an error naming
// its JSON path (source: dscompile.parameter_groups[i].params[j]: ...).
StatusOr<ParameterGroupAssignment> AssignParameterGroups(
    const DscompileConfig& config, const OptimizerConfig& optimizer, const std::string& source,
    const std::vector<std::pair<std::string, std::vector<int64_t>>>& params);

// The assignment as the optimizer pass records it in the step program's metadata
// (kParameterGroupsMetadata) for dsinspect: [{"name", "weight_decay", "lr_scale", "parameters": [...]}].
inline constexpr const char* kParameterGroupsMetadata = "dsc.parameter_groups";
nlohmann::json ParameterGroupsJson(const ParameterGroupAssignment& a,
                                   const std::vector<std::pair<std::string, std::vector<int64_t>>>& params);

}  // namespace dsc
