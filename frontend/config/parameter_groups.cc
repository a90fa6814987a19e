// The "dscompile" section's parameter groups: reading them, resolving them, and assigning parameters.
#include "frontend/config/parameter_groups.h"

#include <fnmatch.h>

#include <cctype>
#include <cmath>
#include <limits>

#include "frontend/config/optimizer_config.h"
#include "frontend/config/section_reader.h"

namespace dsc {
namespace {

inline constexpr const char* kNoDecayGroup = "no_decay_bias_norm";
inline constexpr const char* kDefaultGroup = "default";

// Our own section has no pydantic model to be lax like: numbers are JSON numbers, flags JSON booleans.
Status ReadNumber(SectionReader& r, const std::string& key, double min, std::optional<double>* out) {
  const nlohmann::json* v = r.Get(key);
  if (!v) return Status::OK();
  double d = 0;
  if (std::string why = StrictNumber(*v, &d); !why.empty()) return r.Error(key, why);
  // The update nodes take both as float32.
  if (!std::isfinite(d) || d < min || d > std::numeric_limits<float>::max())
    return r.Error(key, StrCat("must be a number >= ", min, " that fits in a float32, got ", ShortJson(*v)));
  *out = d;
  return Status::OK();
}

Status ReadGroup(ParseContext& ctx, const std::string& path, const nlohmann::json& item, ParameterGroupSpec* g) {
  if (!item.is_object()) return ctx.Error(DsErrorKind::kValidationError, path, "expected an object, got " + ShortJson(item));
  SectionReader r(ctx, path, item, DsErrorKind::kValidationError, /*strip_auto=*/false);
  const nlohmann::json* params = r.Get("params");
  if (!params) return r.Error("params", "is required: a list of parameter name patterns");
  if (!params->is_array() || params->empty())
    return r.Error("params", "expected a non-empty list of name patterns, got " + ShortJson(*params));
  for (size_t j = 0; j < params->size(); ++j) {
    const nlohmann::json& p = (*params)[j];
    if (!p.is_string() || p.get<std::string>().empty())
      return ctx.Error(DsErrorKind::kValidationError, StrCat(r.Path("params"), "[", j, "]"),
                       "expected a non-empty name pattern, got " + ShortJson(p));
    g->params.push_back(p.get<std::string>());
  }
  RETURN_IF_ERROR(ReadNumber(r, "weight_decay", 0.0, &g->weight_decay));
  std::optional<double> scale;
  RETURN_IF_ERROR(ReadNumber(r, "lr_scale", 0.0, &scale));
  g->lr_scale = scale.value_or(1.0);
  if (const nlohmann::json* v = r.Get("use_muon")) {
    if (!v->is_boolean()) return r.Error("use_muon", "expected true or false, got " + ShortJson(*v));
    g->use_muon = v->get<bool>();
  }
  // torch's param groups take an absolute "lr"; ours scale the schedule's, which stays one scalar.
  if (r.Has("lr"))
    return r.Error("lr", "a group takes lr_scale (a multiple of the scheduled learning rate), not an absolute lr");
  return r.Finish();
}

bool Matches(const std::string& pattern, const std::string& name) {
  return fnmatch(pattern.c_str(), name.c_str(), 0) == 0;
}

}  // namespace

Status ParseDscompileSection(ParseContext& ctx, const nlohmann::json& section, DscompileConfig* out) {
  *out = DscompileConfig{};
  if (section.is_null()) return Status::OK();
  if (!section.is_object())
    return ctx.Error(DsErrorKind::kValidationError, kDscompileSection, "expected an object, got " + ShortJson(section));
  SectionReader r(ctx, kDscompileSection, section, DsErrorKind::kValidationError, /*strip_auto=*/false);
  if (const nlohmann::json* v = r.Get("no_decay_bias_norm")) {
    if (!v->is_boolean()) return r.Error("no_decay_bias_norm", "expected true or false, got " + ShortJson(*v));
    out->no_decay_bias_norm = v->get<bool>();
  }
  if (const nlohmann::json* v = r.Get("recognize_attention")) {
    if (!v->is_boolean()) return r.Error("recognize_attention", "expected true or false, got " + ShortJson(*v));
    out->recognize_attention = v->get<bool>();
  }
  if (const nlohmann::json* groups = r.Get("parameter_groups")) {
    if (!groups->is_array()) return r.Error("parameter_groups", "expected a list of groups, got " + ShortJson(*groups));
    for (size_t i = 0; i < groups->size(); ++i) {
      ParameterGroupSpec g;
      RETURN_IF_ERROR(ReadGroup(ctx, StrCat(r.Path("parameter_groups"), "[", i, "]"), (*groups)[i], &g));
      out->parameter_groups.push_back(std::move(g));
    }
  }
  return r.Finish();
}

nlohmann::json DscompileToJson(const DscompileConfig& c) {
  nlohmann::json groups = nlohmann::json::array();
  for (const ParameterGroupSpec& g : c.parameter_groups) {
    // An omitted weight_decay stays omitted: it follows the optimizer's, which DeepSpeed does not
    // range-check and so need not parse back as a group's.
    nlohmann::json group = {{"params", g.params}, {"lr_scale", g.lr_scale}};
    if (g.weight_decay) group["weight_decay"] = *g.weight_decay;
    if (g.use_muon) group["use_muon"] = *g.use_muon;
    groups.push_back(group);
  }
  return {{"no_decay_bias_norm", c.no_decay_bias_norm},
          {"parameter_groups", groups},
          {"recognize_attention", c.recognize_attention}};
}

std::string DescribeParameterGroups(const DscompileConfig& c, const OptimizerConfig& optimizer) {
  if (!c.has_groups()) return "";
  std::string out;
  for (size_t i = 0; i < c.parameter_groups.size(); ++i) {
    const ParameterGroupSpec& g = c.parameter_groups[i];
    out += StrCat("parameter_groups[", i, "]: params ", nlohmann::json(g.params).dump(), ", weight_decay ",
                  g.weight_decay.value_or(optimizer.weight_decay), ", lr_scale ", g.lr_scale,
                  g.use_muon ? StrCat(", use_muon ", *g.use_muon ? "true" : "false") : std::string(), "\n");
  }
  if (c.no_decay_bias_norm)
    out += StrCat(kNoDecayGroup, ": the other parameters with fewer than 2 dimensions, weight_decay 0, lr_scale 1\n");
  out += StrCat(kDefaultGroup, ": the rest, weight_decay ", optimizer.weight_decay, " (the optimizer section's), lr_scale 1\n");
  if (optimizer.type == "muon")
    out += "muon: a group without use_muon follows DeepSpeed's rule (2+ dims, no \"embed\"/\"lm_head\" in the name)\n";
  return out;
}

bool UsesMuonByDefault(const std::string& name, const std::vector<int64_t>& dims) {
  std::string lower = name;
  for (char& c : lower) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return dims.size() >= 2 && lower.find("embed") == std::string::npos && lower.find("lm_head") == std::string::npos;
}

StatusOr<ParameterGroupAssignment> AssignParameterGroups(
    const DscompileConfig& c, const OptimizerConfig& optimizer, const std::string& source,
    const std::vector<std::pair<std::string, std::vector<int64_t>>>& params) {
  // Candidate groups in precedence order: the explicit ones, the preset, the default.
  std::vector<ParameterGroup> candidates;
  for (size_t i = 0; i < c.parameter_groups.size(); ++i) {
    const ParameterGroupSpec& g = c.parameter_groups[i];
    if (g.use_muon && optimizer.type != "muon")
      return ConfigError(DsErrorKind::kValidationError, source, StrCat(kDscompileSection, ".parameter_groups[", i, "].use_muon"),
                         StrCat("applies to the \"muon\" optimizer only, not \"", optimizer.type, "\""));
    candidates.push_back({StrCat("parameter_groups[", i, "]"), g.weight_decay.value_or(optimizer.weight_decay), g.lr_scale,
                          g.use_muon});
  }
  const int preset = static_cast<int>(candidates.size());
  candidates.push_back({kNoDecayGroup, 0.0, 1.0, std::nullopt});
  const int fallback = static_cast<int>(candidates.size());
  candidates.push_back({kDefaultGroup, optimizer.weight_decay, 1.0, std::nullopt});

  std::vector<int> chosen(params.size(), fallback);
  for (size_t k = 0; k < params.size(); ++k) {
    const auto& [name, dims] = params[k];
    int group = -1;
    for (size_t i = 0; i < c.parameter_groups.size() && group < 0; ++i)
      for (const std::string& pattern : c.parameter_groups[i].params)
        if (Matches(pattern, name)) {
          group = static_cast<int>(i);
          break;
        }
    // Structural, as nanoGPT's configure_optimizers: biases, LayerNorm/RMSNorm/BatchNorm scales
    // (and any scalar) have fewer than 2 dimensions whatever they are called; embeddings and
    // weight matrices have 2 or more and keep decaying.
    if (group < 0 && c.no_decay_bias_norm && dims.size() < 2) group = preset;
    if (group >= 0) chosen[k] = group;
  }
  // Every pattern must name something: a typo would otherwise leave its parameters in another group.
  for (size_t i = 0; i < c.parameter_groups.size(); ++i)
    for (size_t j = 0; j < c.parameter_groups[i].params.size(); ++j) {
      const std::string& pattern = c.parameter_groups[i].params[j];
      bool any = false;
      for (const auto& p : params) any = any || Matches(pattern, p.first);
      if (any) continue;
      std::string names;
      for (size_t k = 0; k < params.size() && k < 8; ++k) names += StrCat(k ? ", " : "", params[k].first);
      if (params.size() > 8) names += StrCat(", ... (", params.size(), " in all)");
      return ConfigError(DsErrorKind::kValidationError, source,
                         StrCat(kDscompileSection, ".parameter_groups[", i, "].params[", j, "]"),
                         StrCat("pattern \"", ShortText(pattern), "\" matches no trainable parameter (fnmatch on the names: ",
                                names.empty() ? "none" : names, ")"));
    }

  // Keep only the groups that hold a parameter, in candidate order.
  ParameterGroupAssignment a;
  std::vector<int> index(candidates.size(), -1);
  std::vector<bool> used(candidates.size(), false);
  for (int g : chosen) used[static_cast<size_t>(g)] = true;
  for (size_t i = 0; i < candidates.size(); ++i)
    if (used[i]) {
      index[i] = static_cast<int>(a.groups.size());
      a.groups.push_back(candidates[i]);
    }
  for (int g : chosen) a.group_of.push_back(index[static_cast<size_t>(g)]);
  return a;
}

nlohmann::json ParameterGroupsJson(const ParameterGroupAssignment& a,
                                   const std::vector<std::pair<std::string, std::vector<int64_t>>>& params) {
  nlohmann::json out = nlohmann::json::array();
  for (const ParameterGroup& g : a.groups) {
    out.push_back({{"name", g.name}, {"weight_decay", g.weight_decay}, {"lr_scale", g.lr_scale},
                   {"parameters", nlohmann::json::array()}});
    if (g.use_muon) out.back()["use_muon"] = *g.use_muon;
  }
  for (size_t k = 0; k < params.size(); ++k) out[static_cast<size_t>(a.group_of[k])]["parameters"].push_back(params[k].first);
  return out;
}

}  // namespace dsc
