#include "frontend/config/elasticity.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <set>
#include <sstream>

namespace dsc {
namespace {

const std::vector<int64_t> kHighlyCompositeNumbers = {
    1, 2, 4, 6, 12, 24, 36, 48, 60, 120, 180, 240, 360, 720, 840, 1260, 1680, 2520, 5040, 7560, 10080, 15120,
    20160, 25200, 27720, 45360, 50400, 55440, 83160, 110880, 166320, 221760, 277200, 332640, 498960, 554400,
    665280, 720720};

std::string PyList(const std::vector<int64_t>& v) {
  std::string s = "[";
  for (size_t i = 0; i < v.size(); ++i) s += (i ? ", " : "") + std::to_string(v[i]);
  return s + "]";
}

std::vector<int64_t> ValidGpus(int64_t batch, const std::vector<int64_t>& micro, int64_t min_gpus, int64_t max_gpus) {
  std::set<int64_t> valid;
  for (int64_t mb : micro) {
    if (batch % mb != 0) continue;
    const int64_t most = batch / mb;
    if (min_gpus <= most && most <= max_gpus) valid.insert(most);
    for (int64_t i = 1; i <= most / 2; ++i) {
      if (i > max_gpus) break;
      if (i < min_gpus) continue;
      if (most % i == 0) valid.insert(i);
    }
  }
  return {valid.begin(), valid.end()};
}

struct Compatible {
  int64_t batch = 0;
  std::optional<std::vector<int64_t>> gpus;  // None: no candidate beat the smallest micro batch
};

// _get_compatible_gpus_v01: candidates are each micro batch (and their lcm) scaled by the largest
// highly composite number that keeps them under the maximum; the one most GPU counts divide wins.
// A GPU bound of 0 (elasticity 0.2's node counts truncate to it) takes DeepSpeed's default.
StatusOr<Compatible> CompatibleGpusV01(const std::vector<int64_t>& micro, int64_t max_batch, int64_t min_gpus,
                                       int64_t max_gpus, bool prefer_larger, const std::string& source) {
  const int64_t smallest = *std::min_element(micro.begin(), micro.end());
  if (min_gpus == 0) min_gpus = 1;
  if (max_gpus == 0) max_gpus = max_batch / smallest;
  for (int64_t mb : micro) {
    if (mb > max_batch) {
      return ConfigError(DsErrorKind::kValueError, source, "elasticity.micro_batch_sizes",
                         StrCat("micro batch ", mb, " is larger than the acceptable batch size ", max_batch));
    }
  }
  std::vector<int64_t> bases = micro;
  int64_t lcm = 1;
  for (int64_t mb : micro) lcm = std::lcm(lcm, mb);
  bases.push_back(lcm);
  std::set<int64_t> candidates;
  for (int64_t base : bases) {
    if (base > max_batch) continue;
    if (base == max_batch) {
      candidates.insert(base);
      continue;
    }
    const int64_t value = max_batch / base;
    size_t index = 0;  // numpy argmax: the first HCN > value, or 0 when there is none
    while (index < kHighlyCompositeNumbers.size() && kHighlyCompositeNumbers[index] <= value) ++index;
    if (index == kHighlyCompositeNumbers.size()) index = 0;
    const int64_t hcn = index == 0 ? kHighlyCompositeNumbers.back() : kHighlyCompositeNumbers[index - 1];
    candidates.insert(hcn * base);
  }
  Compatible best{smallest, std::nullopt};
  size_t best_count = 0;
  for (int64_t batch : candidates) {
    std::vector<int64_t> gpus = ValidGpus(batch, micro, min_gpus, max_gpus);
    if (gpus.size() > best_count || (gpus.size() == best_count && ((prefer_larger && batch > best.batch) ||
                                                                   (!prefer_larger && batch < best.batch)))) {
      best_count = gpus.size();
      best = {batch, std::move(gpus)};
    }
  }
  return best;
}

// (major, minor, patch) of "0.19.6"; missing parts are 0.
std::vector<int64_t> VersionTuple(const std::string& v) {
  std::vector<int64_t> parts;
  std::stringstream in(v);
  std::string part;
  while (std::getline(in, part, '.')) parts.push_back(std::atoll(part.c_str()));
  parts.resize(3, 0);
  return parts;
}

Status ElasticError(const std::string& source, DsErrorKind kind, const std::string& key, const std::string& msg) {
  return ConfigError(kind, source, key.empty() ? "elasticity" : "elasticity." + key, msg);
}

}  // namespace

StatusOr<ElasticResult> ComputeElasticConfig(const nlohmann::json& ds_config, const std::string& target_version,
                                             int64_t world_size, std::optional<int64_t> env_world_size,
                                             const std::string& source) {
  const DsErrorKind kConfig = DsErrorKind::kElasticityConfigError;
  if (!ds_config.is_object() || !ds_config.contains("elasticity") || !ds_config["elasticity"].is_object()) {
    return ElasticError(source, kConfig, "", "is missing; add it to run an elastic training job");
  }
  const nlohmann::json& e = ds_config["elasticity"];
  bool enabled = false;
  if (e.contains("enabled") && (!LaxBool(e["enabled"], &enabled).empty())) {
    return ElasticError(source, kConfig, "enabled", "expected true or false, got " + ShortJson(e["enabled"]));
  }
  if (!enabled) return ElasticError(source, kConfig, "enabled", "elasticity is disabled; set \"enabled\": true to run an elastic training job");
  if (!e.contains("max_train_batch_size")) return ElasticError(source, kConfig, "max_train_batch_size", "is missing (required when elasticity is enabled)");
  if (!e.contains("micro_batch_sizes")) return ElasticError(source, kConfig, "micro_batch_sizes", "is missing (required when elasticity is enabled)");
  const nlohmann::json& mbs = e["micro_batch_sizes"];
  if (!mbs.is_array()) return ElasticError(source, kConfig, "micro_batch_sizes", "expected a list of micro batch sizes, got " + ShortJson(mbs));
  std::vector<int64_t> micro;
  for (const nlohmann::json& m : mbs) {
    if (!m.is_number_integer()) return ElasticError(source, kConfig, "micro_batch_sizes", "expected a list of integers, got " + ShortJson(mbs));
  }
  for (const nlohmann::json& m : mbs) {
    if (m.get<int64_t>() <= 0) return ElasticError(source, kConfig, "micro_batch_sizes", "expected only positive integers, got " + ShortJson(mbs));
    micro.push_back(m.get<int64_t>());
  }
  if (micro.empty()) return ElasticError(source, kConfig, "micro_batch_sizes", "must not be empty");
  auto get_int = [&](const char* key, int64_t fallback, int64_t* out) -> Status {
    *out = fallback;
    if (!e.contains(key)) return Status::OK();
    if (!e[key].is_number_integer()) return ElasticError(source, kConfig, key, "expected an integer, got " + ShortJson(e[key]));
    *out = e[key].get<int64_t>();
    return Status::OK();
  };
  int64_t max_batch = 0, min_gpus = 1, max_gpus = 10000, mp = 1, per_node = 1;
  RETURN_IF_ERROR(get_int("max_train_batch_size", 2000, &max_batch));
  RETURN_IF_ERROR(get_int("min_gpus", 1, &min_gpus));
  RETURN_IF_ERROR(get_int("max_gpus", 10000, &max_gpus));
  if (min_gpus < 1 || max_gpus < 1) {
    return ElasticError(source, kConfig, "min_gpus", StrCat("min/max gpus must be > 0, given min_gpus: ", min_gpus, ", max_gpus: ", max_gpus));
  }
  if (max_gpus < min_gpus) {
    return ElasticError(source, kConfig, "min_gpus", StrCat("min_gpus (", min_gpus, ") cannot be greater than max_gpus (", max_gpus, ")"));
  }
  RETURN_IF_ERROR(get_int("model_parallel_size", 1, &mp));
  if (mp < 1) return ElasticError(source, kConfig, "model_parallel_size", StrCat("must be >= 1, got ", mp));
  RETURN_IF_ERROR(get_int("num_gpus_per_node", 1, &per_node));
  if (per_node < 1) return ElasticError(source, kConfig, "num_gpus_per_node", StrCat("must be >= 1, got ", per_node));
  if (e.contains("min_time") && (!e["min_time"].is_number() || e["min_time"].get<double>() < 0)) {
    return ElasticError(source, kConfig, "min_time", "must be a number >= 0, got " + ShortJson(e["min_time"]));
  }
  double version = 0.2;
  if (e.contains("version")) {
    const nlohmann::json& v = e["version"];
    if (!LaxFloat(v, &version).empty() || v.is_boolean()) return ElasticError(source, kConfig, "version", "expected 0.1 or 0.2, got " + ShortJson(v));
  }
  bool prefer_larger = true;
  if (e.contains("prefer_larger_batch") && !LaxBool(e["prefer_larger_batch"], &prefer_larger).empty()) {
    return ElasticError(source, kConfig, "prefer_larger_batch", "expected true or false, got " + ShortJson(e["prefer_larger_batch"]));
  }
  if (mp > 1 && version != 0.2) {
    return ElasticError(source, kConfig, "model_parallel_size",
                        StrCat("elasticity version ", version, " does not support model-parallel training (model_parallel_size ", mp, "); use version 0.2"));
  }
  if (version > 0.2) {
    return ElasticError(source, kConfig, "version", StrCat("is ", version, " but this runtime only supports up to 0.2"));
  }
  if (VersionTuple(target_version) < VersionTuple("0.3.8")) {
    return ElasticError(source, DsErrorKind::kElasticityError, "",
                        "target DeepSpeed version " + target_version + " is older than 0.3.8, the first supporting elasticity");
  }
  for (int64_t mb : micro) {
    if (mb > max_batch) {
      return ElasticError(source, DsErrorKind::kValueError, "micro_batch_sizes",
                          StrCat("micro batch ", mb, " is larger than max_train_batch_size ", max_batch));
    }
  }
  ElasticResult result;
  if (version == 0.1) {
    ASSIGN_OR_RETURN(Compatible c, CompatibleGpusV01(micro, max_batch, min_gpus, max_gpus, prefer_larger, source));
    result.final_batch_size = c.batch;
    result.valid_gpus = std::move(c.gpus);
  } else if (version == 0.2) {
    int64_t current = world_size;
    if (current == 0) {
      if (!env_world_size) {
        return ElasticError(source, kConfig, "version", "elasticity 0.2 needs the world size (DeepSpeed reads $WORLD_SIZE)");
      }
      current = *env_world_size;
    }
    if (per_node % mp != 0) {
      return ElasticError(source, DsErrorKind::kElasticityError, "num_gpus_per_node",
                          StrCat("number of GPUs per node (", per_node, ") must be divisible by the model parallel size ", mp));
    }
    const int64_t dp_per_node = per_node / mp;
    ASSIGN_OR_RETURN(Compatible c,
                     CompatibleGpusV01(micro, static_cast<int64_t>(static_cast<double>(max_batch) / dp_per_node),
                                       static_cast<int64_t>(static_cast<double>(min_gpus) / per_node),
                                       static_cast<int64_t>(static_cast<double>(max_gpus) / per_node), prefer_larger,
                                       source));
    if (!c.gpus) {
      return ElasticError(source, DsErrorKind::kTypeError, "",
                          "no candidate batch size has a valid GPU count in range (DeepSpeed: 'NoneType' object is "
                          "not iterable)");
    }
    result.final_batch_size = c.batch * dp_per_node;
    std::vector<int64_t>& valid = result.valid_gpus.emplace();
    for (int64_t g : *c.gpus) valid.push_back(g * dp_per_node);
    if (std::find(valid.begin(), valid.end(), current / mp) == valid.end()) {
      const double dp = (static_cast<double>(current) / per_node) * dp_per_node;
      std::vector<int64_t> sizes;
      for (int64_t mb : micro) {
        const double min_batch = mb * dp;
        sizes.push_back(static_cast<int64_t>(std::floor(max_batch / min_batch) * min_batch));
      }
      result.final_batch_size = prefer_larger ? *std::max_element(sizes.begin(), sizes.end())
                                              : *std::min_element(sizes.begin(), sizes.end());
      result.valid_gpus = std::vector<int64_t>{static_cast<int64_t>(dp)};
    }
  } else {
    return ElasticError(source, kConfig, "version", StrCat("unknown elasticity version ", version));
  }
  if (world_size > 0) {
    if (!result.valid_gpus) {
      return ElasticError(source, DsErrorKind::kTypeError, "",
                          StrCat("no candidate batch size has a valid GPU count in range, so world size ", world_size,
                                 " cannot be checked (DeepSpeed: argument of type 'NoneType' is not iterable)"));
    }
    if (std::find(result.valid_gpus->begin(), result.valid_gpus->end(), world_size) == result.valid_gpus->end()) {
      return ElasticError(source, DsErrorKind::kElasticityIncompatibleWorldSize, "",
                          StrCat("world size (", world_size, ") is not valid with the current list of valid GPU counts: ",
                                 PyList(*result.valid_gpus)));
    }
    std::vector<int64_t> sorted = micro;
    std::sort(sorted.rbegin(), sorted.rend());
    for (int64_t mb : sorted) {
      if ((result.final_batch_size / world_size) % mb == 0) {
        result.micro_batch_size = mb;
        break;
      }
    }
    if (!result.micro_batch_size) {
      return ElasticError(source, DsErrorKind::kAssertionError, "micro_batch_sizes",
                          StrCat("no micro batch divides ", result.final_batch_size, " / ", world_size));
    }
  }
  return result;
}

}  // namespace dsc
