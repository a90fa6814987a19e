// The state RestoreOptimizedParameters' rules share: the file's signature, initializers and reads,
// and the nodes the rules add. One rule family per file (restore_*.cc); frontend-internal.
#pragma once

#include <map>
#include <set>
#include <string>
#include <vector>

#include "frontend/external_data.h"
#include "frontend/torch_node_metadata.h"
#include "ir/status.h"
#include "onnx/onnx_pb.h"

namespace dsc {

class ParameterRestorer {
 public:
  ParameterRestorer(onnx::ModelProto* model, HeldInitializers* held)
      : model_(model), g_(model->mutable_graph()), held_(held) {}

  // Runs every rule on a file with torch.export's printed graph signature `signature`.
  Status Run(const std::string& signature);

  // Where an initializer is read: a node of the main graph and the input index.
  struct Use {
    onnx::NodeProto* node;
    int input;
  };

  static const std::string* Fx(const onnx::NodeProto& n) { return FindProp(n.metadata_props(), kFxNodeKey); }
  static bool IsGroupNorm(const std::string& fx);
  static bool IsRewritten(const onnx::NodeProto& n);

 private:
  void Index();
  onnx::TensorProto* FindInitializer(const std::string& name);
  void AddValueInfo(const std::string& name, const Tensor& data, const std::string& placeholder);
  void DropFolded(const std::vector<std::string>& names);
  void RemoveInitializer(const std::string& name);

  // restore_transposes.cc
  Status RestoreFoldedTransposes();
  // restore_folded_values.cc
  Status RestoreFoldedLookups();
  Status RestoreFoldedViews();
  Status RestoreFoldedUnaryChains();
  bool ReadAsGroupNormAffine(const std::string& folded);
  Status FlattenGroupNormAffines();
  // restore_recurrent.cc
  Status RestoreFoldedRecurrentWeights();
  // restore_merges.cc
  Status SplitMergedDuplicates();
  // restore_merged_calls.cc
  Status SplitMergedCalls();
  std::vector<std::pair<Use, std::string>> PairReads(const std::vector<Use>& uses,
                                                     const std::vector<std::string>& operands) const;
  std::vector<int64_t> DroppedBiasShape(const onnx::NodeProto& n) const;

  onnx::ModelProto* model_;
  onnx::GraphProto* g_;
  HeldInitializers* held_;
  std::map<std::string, SignatureInput> signature_;
  std::map<std::string, std::string> by_target_;       // target -> placeholder
  std::map<std::string, std::string> placeholder_of_;  // initializer -> its signature placeholder
  std::map<std::string, std::vector<std::string>> folded_from_;
  std::map<std::string, std::vector<Use>> uses_;       // initializer -> main-graph reads
  std::map<std::string, std::vector<int64_t>> initializer_dims_;
  std::map<std::string, std::set<std::string>> aliases_;  // restored initializer -> fx names read as it
  std::set<std::string> initializers_, names_, missing_, read_in_subgraph_;
  std::vector<onnx::NodeProto> prepend_;  // nodes reading initializers only, put first
  std::vector<Use> constant_reads_;
};

}  // namespace dsc
