// Trained weights out as ONNX: the user's original model file with its initializers replaced by the
// trained values (parameters, BatchNorm running statistics), everything else kept as it was.
//
//   ASSIGN_OR_RETURN(auto dtypes, OnnxInitializerDTypes("model.onnx"));
//   ASSIGN_OR_RETURN(auto weights, TrainedWeightsFromState(plan, full_state, dtypes));
//   // or, from a saved checkpoint:  TrainedWeightsFromCheckpoint(ckpt, dtypes)
//   RETURN_IF_ERROR(ExportTrainedOnnx("model.onnx", weights, "trained.onnx", ExportOptions{}));
//
// Names. The plan's state tensors are named after the ONNX initializers they start from (passes
// keep initializer names: accumulate makes a parameter P the state P, its fp32 master P::master,
// and a BatchNorm statistic S the buffer S), so a trained tensor replaces the initializer of its
// name. The model's PyTorch list ("dscompile.parameters") maps initializers to PyTorch names; it
// is kept in the exported model unchanged. A default dynamo export is written as the import rebuilt
// it (frontend/restore_parameters.h): each parameter onnxscript's optimizer folded (a transposed
// weight, a dropped zero bias) or merged (equal biases and norm scales) is an initializer under
// PyTorch's name again, read through the ops that rebuild what the file computed, and the folded
// and merged tensors it replaced are gone. What else exporters merged or duplicated is exported as
// the ONNX model holds it:
//  - merged (an exporter fused several PyTorch parameters into one initializer, or folded one into
//    another; the list's "missing" names): the merged initializer is what was trained and is what
//    is exported; the PyTorch names it absorbed have no tensor of their own in the export.
//  - duplicated (a tied PyTorch parameter written as two initializers, which select-loss warns
//    about): each copy was trained as its own parameter and each is exported with its own value.
//  - tied (the list's "tied" names: PyTorch shares one tensor, the exporter wrote one initializer):
//    one initializer, exported once.
// Only the main graph's initializers are replaced (not those of If/Loop bodies or Constant nodes).
#pragma once

#include <cstdint>
#include <map>
#include <string>

#include <vector>

#include "backend/plan.h"
#include "ir/tensor.h"
#include "runtime/checkpoint_format.h"

namespace dsc {

struct ExportOptions {
  // The model is written inline when its serialized size stays under this (protobuf's 2 GB
  // limit); else initializers of at least external_min_bytes go to OUT.data next to OUT.
  int64_t inline_limit_bytes = (int64_t{1} << 31) - 1;
  int64_t external_min_bytes = 1024;
  // Each tensor's offset in OUT.data is a multiple of this (page size: the file can be mmapped).
  int64_t external_alignment = 4096;
};

// Reads `source_model_path` (and its external data), replaces the initializers named in `weights`
// (each must exist with the same dtype and dims, else an error names it; all unknown names are
// listed in one error), runs ONNX's checker, and writes `out_path` atomically (temporary file,
// fsync, rename, fsync of the folder): inline, or with external data in `out_path + ".data"` (its
// location recorded as that file's name, so OUT and OUT.data move together). Nothing is written
// when anything fails.
Status ExportTrainedOnnx(const std::string& source_model_path, const std::map<std::string, Tensor>& weights,
                         const std::string& out_path, const ExportOptions& options);

// The dtype of every main-graph initializer of an ONNX file as the export writes it (external data
// is read only for a default dynamo export, whose parameters the import rebuilt).
StatusOr<std::map<std::string, DType>> OnnxInitializerDTypes(const std::string& model_path);

// Before training: every tensor `plan` would export has an initializer of its name in the model
// ExportTrainedOnnx writes from `source_model_path` (one error lists the missing names).
Status CheckOnnxExportable(const Plan& plan, const std::string& source_model_path);

// One persistent tensor as the weight selection sees it; a plan's state table and a checkpoint's
// manifest both describe their tensors this way.
struct StateTensorRef {
  std::string name;
  StateKind kind = StateKind::kParameter;
  std::string owner;  // for a master: the parameter it is the fp32 copy of
};
std::vector<StateTensorRef> StateTensorRefs(const Plan& plan);
// A checkpoint's tensors; a master's owner is its name without the "::master" suffix
// (ops::MasterName), and a master named otherwise is an error.
StatusOr<std::vector<StateTensorRef>> StateTensorRefs(const CheckpointManifest& manifest);

// What is exported, as initializer name -> the state tensor its value comes from: for each
// parameter P the master whose owner is P when there is one, else P itself; plus every buffer
// (BatchNorm running statistics). Gradients and optimizer states are left out. Errors: two
// tensors exported under one name (two masters of one parameter, a buffer named like a parameter).
StatusOr<std::map<std::string, std::string>> SelectExportedState(const std::vector<StateTensorRef>& tensors);

// From the full (consolidated, unsharded) state tensors of a plan, by state name: the values to
// export, keyed by initializer name (the choice SelectExportedState makes). A value is converted to
// the dtype `source_dtypes` gives for its name (float to float only: a half model's fp32 master goes
// back to fp32, or to fp16 for a model that was exported in fp16); names absent from
// `source_dtypes` keep the chosen tensor's dtype (the 2-argument form converts nothing). Errors name
// a missing state tensor or one whose element count is not the plan's.
StatusOr<std::map<std::string, Tensor>> TrainedWeightsFromState(const Plan& plan,
                                                                const std::map<std::string, Tensor>& full_state,
                                                                const std::map<std::string, DType>& source_dtypes);
StatusOr<std::map<std::string, Tensor>> TrainedWeightsFromState(const Plan& plan,
                                                                const std::map<std::string, Tensor>& full_state);

// The same choice and conversion from a saved checkpoint: reads only the chosen tensors (full
// shape, whatever ranks and ZeRO stage saved them; data checksums verified), so a checkpoint's
// optimizer states are never read. Read errors name the checkpoint file.
StatusOr<std::map<std::string, Tensor>> TrainedWeightsFromCheckpoint(const Checkpoint& checkpoint,
                                                                     const std::map<std::string, DType>& source_dtypes);

}  // namespace dsc
