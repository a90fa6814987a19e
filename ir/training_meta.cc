// Training metadata <-> metadata_props.
#include "ir/training_meta.h"

#include <sstream>

namespace dsc {

std::vector<std::pair<std::string, std::string>> TrainingToMetadata(const TrainingInfo& t) {
  std::vector<std::pair<std::string, std::string>> out;
  if (!t.loss.empty()) out.emplace_back(kLossMetaKey, t.loss);
  if (!t.parameters.empty()) {
    std::string joined;
    for (size_t i = 0; i < t.parameters.size(); ++i) joined += (i ? "," : "") + t.parameters[i];
    out.emplace_back(kParametersMetaKey, joined);
  }
  return out;
}

TrainingInfo TrainingFromMetadata(std::map<std::string, std::string>* metadata) {
  TrainingInfo t;
  auto loss = metadata->find(kLossMetaKey);
  if (loss != metadata->end()) {
    t.loss = loss->second;
    metadata->erase(loss);
  }
  auto params = metadata->find(kParametersMetaKey);
  if (params != metadata->end()) {
    std::stringstream ss(params->second);
    std::string item;
    while (std::getline(ss, item, ','))
      if (!item.empty()) t.parameters.push_back(item);
    metadata->erase(params);
  }
  return t;
}

}  // namespace dsc
