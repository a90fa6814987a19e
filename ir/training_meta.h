// How Graph::training (loss, trainable parameters) is stored in model metadata_props, shared by the
// .onnx converter and the text form so both dumps carry the same keys.
//
//   for (auto& [k, v] : TrainingToMetadata(g.training)) add_meta(k, v);
//   g->training = TrainingFromMetadata(&g->metadata);  // removes the dsc.* keys it consumed
#pragma once

#include <map>
#include <string>
#include <utility>
#include <vector>

#include "ir/graph.h"

namespace dsc {

inline constexpr const char* kLossMetaKey = "dsc.loss";
inline constexpr const char* kParametersMetaKey = "dsc.parameters";  // comma-joined names
inline constexpr const char* kGradientsMetaKey = "dsc.gradients";    // comma-joined, parallel to parameters

// The metadata pairs for `t`, in a fixed order (loss, parameters, gradients); empty fields are omitted.
std::vector<std::pair<std::string, std::string>> TrainingToMetadata(const TrainingInfo& t);
// Extracts the training keys from `metadata` (erasing them) into a TrainingInfo.
TrainingInfo TrainingFromMetadata(std::map<std::string, std::string>* metadata);

}  // namespace dsc
