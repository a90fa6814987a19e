// ONNX file import.
#include "frontend/onnx_import.h"

#include <filesystem>
#include <sstream>

#include "frontend/decompose_ops.h"
#include "frontend/torch_cross_entropy.h"
#include "frontend/external_data.h"
#include "frontend/fold_sequences.h"
#include "frontend/supported_ops.h"
#include "frontend/torch_detach.h"
#include "frontend/torch_embedding_bag.h"
#include "frontend/torch_max_dim.h"
#include "frontend/torch_shape_ops.h"
#include "frontend/torch_node_metadata.h"
#include "frontend/restore_parameters.h"
#include "frontend/torch_parameters.h"
#include "ir/node_checks.h"
#include "ir/onnx_convert.h"
#include "ir/shape_inference.h"
#include "ir/utf8.h"
#include "ir/verifier.h"
#include "onnx/checker.h"

namespace dsc {
namespace {

Status CheckOpsets(const onnx::ModelProto& model) {
  bool has_default = false;
  for (const auto& op : model.opset_import()) {
    const std::string& d = op.domain();
    if (d.empty() || d == "ai.onnx") {
      has_default = true;
      if (op.version() < kMinOpset || op.version() > MaxOpset())
        return Unimplemented("the model uses ONNX opset ", op.version(), "; dscompile supports opsets ", kMinOpset,
                             " to ", MaxOpset(), " (", ExportAdvice(), ")");
    }
  }
  if (!has_default) return InvalidArgument("the model imports no default-domain opset");
  return Status::OK();
}

// Checked before ONNX's checker, whose refusal of an IR version names neither what is supported
// nor how to get it.
Status CheckIrVersion(const onnx::ModelProto& model) {
  const int64_t v = model.ir_version();
  if (v >= kMinIrVersion && v <= MaxIrVersion()) return Status::OK();
  return Unimplemented("the model has ONNX IR version ", v, v == 0 ? " (unset)" : "",
                       "; dscompile supports IR versions ", kMinIrVersion, " to ", MaxIrVersion(),
                       " (the newest its ONNX library knows; ", ExportAdvice(), ")");
}

// ONNX's checker multiplies dims without overflow checks (a wrapped product reads as "0-element"),
// so element counts are checked first, naming the tensor and its shape.
Status CheckElementCounts(const onnx::ModelProto& model) {
  auto check = [](const std::string& what, std::vector<int64_t> dims) -> Status {
    StatusOr<int64_t> n = NumElements(dims);
    if (n.ok()) return Status::OK();
    std::string shape;
    for (size_t i = 0; i < dims.size(); ++i) shape += StrCat(i ? "," : "", dims[i]);
    return OutOfRange(what, " has shape [", shape, "]: ", n.status().message());
  };
  for (const auto& t : model.graph().initializer())
    RETURN_IF_ERROR(check(StrCat("initializer '", t.name(), "'"), {t.dims().begin(), t.dims().end()}));
  for (const auto& in : model.graph().input()) {
    std::vector<int64_t> dims;
    for (const auto& d : in.type().tensor_type().shape().dim())
      if (d.has_dim_value()) dims.push_back(d.dim_value());
    RETURN_IF_ERROR(check(StrCat("graph input '", in.name(), "'"), dims));
  }
  return Status::OK();
}

// Every string that becomes a name, attribute or metadata entry: plans and dumps are JSON, whose
// writer throws on invalid UTF-8, so such a model is refused here, naming where the bytes are.
// Metadata of the model, the graph, values and nodes (torch.export's graph signature, fx node
// records) feeds parameter lists and names too.
Status CheckPropsAreUtf8(const google::protobuf::RepeatedPtrField<onnx::StringStringEntryProto>& props,
                         const std::string& where) {
  for (const auto& p : props) {
    RETURN_IF_ERROR(CheckUtf8(p.key(), StrCat("a metadata key of ", where)));
    RETURN_IF_ERROR(CheckUtf8(p.value(), StrCat("metadata '", EscapeBytes(p.key()), "' of ", where)));
  }
  return Status::OK();
}

Status CheckStringsAreUtf8(const onnx::ModelProto& model) {
  RETURN_IF_ERROR(CheckPropsAreUtf8(model.metadata_props(), "the model"));
  const onnx::GraphProto& g = model.graph();
  RETURN_IF_ERROR(CheckUtf8(g.name(), "the graph name"));
  RETURN_IF_ERROR(CheckPropsAreUtf8(g.metadata_props(), "the graph"));
  auto check_info = [](const onnx::ValueInfoProto& vi, const char* what) -> Status {
    RETURN_IF_ERROR(CheckUtf8(vi.name(), StrCat("the name of a ", what)));
    RETURN_IF_ERROR(CheckPropsAreUtf8(vi.metadata_props(), StrCat(what, " '", vi.name(), "'")));
    for (const auto& d : vi.type().tensor_type().shape().dim())
      RETURN_IF_ERROR(CheckUtf8(d.dim_param(), StrCat("a dim of ", what, " '", vi.name(), "'")));
    return Status::OK();
  };
  for (const auto& vi : g.input()) RETURN_IF_ERROR(check_info(vi, "graph input"));
  for (const auto& vi : g.output()) RETURN_IF_ERROR(check_info(vi, "graph output"));
  for (const auto& vi : g.value_info()) RETURN_IF_ERROR(check_info(vi, "value_info entry"));
  for (const auto& t : g.initializer()) {
    RETURN_IF_ERROR(CheckUtf8(t.name(), "the name of an initializer"));
    RETURN_IF_ERROR(CheckPropsAreUtf8(t.metadata_props(), StrCat("initializer '", t.name(), "'")));
  }
  for (int i = 0; i < g.node_size(); ++i) {
    const onnx::NodeProto& n = g.node(i);
    const std::string what = StrCat("node ", i, " (", EscapeBytes(n.op_type()), ")");
    RETURN_IF_ERROR(CheckUtf8(n.name(), StrCat("the name of ", what)));
    RETURN_IF_ERROR(CheckUtf8(n.op_type(), StrCat("the op type of node ", i)));
    RETURN_IF_ERROR(CheckUtf8(n.domain(), StrCat("the domain of ", what)));
    RETURN_IF_ERROR(CheckPropsAreUtf8(n.metadata_props(), what));
    for (const auto& in : n.input()) RETURN_IF_ERROR(CheckUtf8(in, StrCat("an input of ", what)));
    for (const auto& out : n.output()) RETURN_IF_ERROR(CheckUtf8(out, StrCat("an output of ", what)));
    for (const auto& a : n.attribute()) {
      RETURN_IF_ERROR(CheckUtf8(a.name(), StrCat("an attribute name of ", what)));
      const std::string attr = StrCat("attribute '", a.name(), "' of ", what);
      if (a.type() == onnx::AttributeProto::STRING) RETURN_IF_ERROR(CheckUtf8(a.s(), attr));
      for (const auto& x : a.strings()) RETURN_IF_ERROR(CheckUtf8(x, attr));
    }
  }
  return Status::OK();
}

// Forms the checker accepts but the model's opset leaves undefined, refused by node: ops are
// evaluated with their newest definition, which older opsets may not give.
Status CheckOpsetSemantics(const Graph& g) {
  auto it = g.opsets.find("");
  const int64_t opset = it == g.opsets.end() ? 0 : it->second;
  for (const auto& n : g.nodes()) {
    if (!n->domain().empty()) continue;
    if (n->op_type() == "Mod" && opset < 28 && n->GetInt("fmod", 0) == 0 && n->input(0) &&
        IsFloat(n->input(0)->type.dtype))
      return InvalidArgument(n->Describe(), ": floating-point Mod with fmod=0 is defined from opset 28 on, the model "
                             "has opset ", opset, " (set fmod=1, or export at opset 28)");
  }
  return Status::OK();
}

// The model file's bytes, mapped, and the initializer raw_data cut out of them before parsing.
struct CutWeights {
  std::shared_ptr<const MappedFile> file;
  std::vector<RawDataRange> ranges;
};

Status ImportInto(onnx::ModelProto& model, const std::string& base_dir, const CutWeights* cut,
                  const ImportOptions& options, std::unique_ptr<Graph>* out) {
  RETURN_IF_ERROR(CheckIrVersion(model));
  RETURN_IF_ERROR(CheckOpsets(model));
  RETURN_IF_ERROR(CheckStringsAreUtf8(model));
  RETURN_IF_ERROR(CheckElementCounts(model));
  // Weights stay in the mapped files: no pass copies a tensor it does not change.
  HeldInitializers held;
  if (cut) RETURN_IF_ERROR(HoldCutRawData(&model, cut->ranges, cut->file, &held));
  RETURN_IF_ERROR(MapExternalData(&model, base_dir, &held));
  try {
    onnx::checker::check_model(model);
  } catch (const std::exception& e) {
    return InvalidArgument("ONNX checker: ", e.what());
  }
  RETURN_IF_ERROR(RestoreOptimizedParameters(&model, &held));
  RETURN_IF_ERROR(RecordTorchParameters(&model));
  RETURN_IF_ERROR(RecordEmbeddingPadding(&model));
  RETURN_IF_ERROR(RestoreBatchNormTraining(&model));
  RETURN_IF_ERROR(EmbeddingBagAsSegmentReduction(&model));
  RETURN_IF_ERROR(RestoreCrossEntropy(&model));
  RETURN_IF_ERROR(RestoreDetach(&model));
  RETURN_IF_ERROR(MaxDimAsGatherAtArgMax(&model));
  RETURN_IF_ERROR(ShapeOpsAsTorchDoes(&model, options.dims));
  RETURN_IF_ERROR(FoldSequenceOps(&model, &held));
  RETURN_IF_ERROR(DecomposeOps(&model, options.dims));
  ASSIGN_OR_RETURN(*out, GraphFromOnnxReleasingWeights(&model, &held));  // inline data: one copy, not two
  RETURN_IF_ERROR(CheckSupportedOps(**out));
  // Attributes first: ONNX's shape inference divides by strides and indexes by axes unchecked.
  RETURN_IF_ERROR(CheckNodes(**out, NodeCheckStage::kAttributes));
  RETURN_IF_ERROR(InferShapes(**out));
  RETURN_IF_ERROR(VerifyGraph(**out));
  return CheckOpsetSemantics(**out);
}

}  // namespace

static StatusOr<std::unique_ptr<Graph>> ImportModel(onnx::ModelProto& model, const std::string& base_dir,
                                                    const std::string& name, const ImportOptions& options,
                                                    const CutWeights* cut = nullptr) {
  if (!model.has_graph()) return InvalidArgument(name, ": the model has no graph");
  std::unique_ptr<Graph> g;
  Status s = ImportInto(model, base_dir, cut, options, &g);
  if (!s.ok()) return s.WithContext(name);
  return g;
}

StatusOr<std::unique_ptr<Graph>> ImportOnnxBytes(const std::string& bytes, const std::string& base_dir,
                                                 const std::string& name, const ImportOptions& options) {
  onnx::ModelProto model;
  if (bytes.empty()) return DataLoss(name, ": the file is empty");
  if (!model.ParseFromString(bytes)) return DataLoss(name, ": not a valid ONNX protobuf (ModelProto failed to parse)");
  return ImportModel(model, base_dir, name, options);
}

StatusOr<std::unique_ptr<Graph>> ImportOnnxFile(const std::string& path, const ImportOptions& options) {
  std::error_code ec;
  if (!std::filesystem::is_regular_file(path, ec)) return NotFound(path, ": no such model file");
  const std::filesystem::path p(path);
  const std::string dir = p.has_parent_path() ? p.parent_path().string() : std::string(".");
  StatusOr<std::shared_ptr<const MappedFile>> file = MappedFile::Open(path);
  if (!file.ok()) return file.status();
  if ((*file)->size() == 0) return DataLoss(path, ": the file is empty");
  // Parsed with the weights cut out: they stay in the mapping, the graph's tensors borrow them.
  StatusOr<StrippedModel> stripped = StripInitializerData((*file)->data(), (*file)->size(), kCutRawDataBytes);
  if (!stripped.ok())
    return DataLoss(path, ": not a valid ONNX protobuf (ModelProto failed to parse: ", stripped.status().message(), ")");
  onnx::ModelProto model;
  if (!model.ParseFromString(stripped->bytes))
    return DataLoss(path, ": not a valid ONNX protobuf (ModelProto failed to parse)");
  std::string().swap(stripped->bytes);
  const CutWeights cut{*file, std::move(stripped->ranges)};
  return ImportModel(model, dir, path, options, &cut);
}

}  // namespace dsc
