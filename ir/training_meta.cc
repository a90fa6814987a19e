// Training metadata <-> metadata_props.
#include "ir/training_meta.h"

#include <sstream>

namespace dsc {

namespace {

std::string Join(const std::vector<std::string>& names) {
  std::string joined;
  for (size_t i = 0; i < names.size(); ++i) joined += (i ? "," : "") + names[i];
  return joined;
}

// Removes `key` from `metadata` and returns its comma-separated items.
std::vector<std::string> TakeList(std::map<std::string, std::string>* metadata, const char* key) {
  std::vector<std::string> out;
  auto it = metadata->find(key);
  if (it == metadata->end()) return out;
  std::stringstream ss(it->second);
  std::string item;
  while (std::getline(ss, item, ','))
    if (!item.empty()) out.push_back(item);
  metadata->erase(it);
  return out;
}

}  // namespace

std::vector<std::pair<std::string, std::string>> TrainingToMetadata(const TrainingInfo& t) {
  std::vector<std::pair<std::string, std::string>> out;
  if (!t.loss.empty()) out.emplace_back(kLossMetaKey, t.loss);
  if (!t.parameters.empty()) out.emplace_back(kParametersMetaKey, Join(t.parameters));
  if (!t.gradients.empty()) out.emplace_back(kGradientsMetaKey, Join(t.gradients));
  return out;
}

TrainingInfo TrainingFromMetadata(std::map<std::string, std::string>* metadata) {
  TrainingInfo t;
  auto loss = metadata->find(kLossMetaKey);
  if (loss != metadata->end()) {
    t.loss = loss->second;
    metadata->erase(loss);
  }
  t.parameters = TakeList(metadata, kParametersMetaKey);
  t.gradients = TakeList(metadata, kGradientsMetaKey);
  return t;
}

}  // namespace dsc
