// Trained ONNX export: replace initializers in the user's model, check, write atomically.
#include "backend/export_onnx.h"

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <set>
#include <sstream>

#include <fcntl.h>
#include <unistd.h>

#include "frontend/external_data.h"
#include "frontend/restore_parameters.h"
#include "frontend/torch_node_metadata.h"
#include "ir/dsc_ops.h"
#include "onnx/checker.h"
#include "onnx/onnx_pb.h"

namespace dsc {
namespace fs = std::filesystem;
namespace {

std::string TypeString(DType dtype, const std::vector<int64_t>& dims) {
  return StrCat(DTypeName(dtype), DimsToString(dims));
}

StatusOr<onnx::ModelProto> ParseModel(const std::string& path) {
  std::error_code ec;
  if (!fs::is_regular_file(path, ec)) return NotFound(path, ": no such model file");
  std::ifstream in(path, std::ios::binary);
  if (!in) return NotFound(path, ": cannot open");
  std::ostringstream ss;
  ss << in.rdbuf();
  onnx::ModelProto model;
  if (!model.ParseFromString(ss.str()))
    return DataLoss(path, ": not a valid ONNX protobuf (ModelProto failed to parse)");
  if (!model.has_graph()) return InvalidArgument(path, ": the model has no graph");
  return model;
}

// Replaces t's data by `w`, keeping its name, dims, type, doc string and metadata.
Status Replace(onnx::TensorProto* t, const Tensor& w, const std::string& source) {
  StatusOr<DType> dtype = DTypeFromOnnx(t->data_type());
  const std::vector<int64_t> dims(t->dims().begin(), t->dims().end());
  const std::string what = StrCat("initializer '", t->name(), "'");
  if (!dtype.ok()) return InvalidArgument(what, " of ", source, ": ", dtype.status().message());
  if (*dtype != w.dtype() || dims != w.dims())
    return InvalidArgument(what, " is ", TypeString(*dtype, dims), " in ", source, ", but the trained value is ",
                           TypeString(w.dtype(), w.dims()));
  t->clear_float_data();
  t->clear_int32_data();
  t->clear_string_data();
  t->clear_int64_data();
  t->clear_double_data();
  t->clear_uint64_data();
  t->clear_external_data();
  t->clear_data_location();
  t->set_raw_data(reinterpret_cast<const char*>(w.raw()), w.nbytes());
  return Status::OK();
}

Status Errno(const std::string& path, const std::string& doing) {
  return InvalidArgument("cannot write ", path, ": ", doing, ": ", std::strerror(errno));
}

// Writes `bytes` to a fresh temporary file next to `path` (created exclusively) and fsyncs it;
// returns its name. Commit renames it into place; on any error the temporary file is removed.
StatusOr<std::string> WriteTemp(const std::string& path, const std::string& bytes) {
  std::error_code ec;
  const fs::file_status st = fs::symlink_status(path, ec);
  if (!ec && fs::exists(st) && !fs::is_regular_file(st))
    return InvalidArgument("cannot write ", path, ": it exists and is not a regular file");
  const std::string tmp = StrCat(path, ".tmp", ::getpid());
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
  if (fd < 0) return Errno(path, StrCat("cannot create ", tmp));
  Status s = Status::OK();
  const char* p = bytes.data();
  size_t left = bytes.size();
  while (left > 0) {
    const ssize_t n = ::write(fd, p, left);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      if (n == 0) errno = EIO;
      s = Errno(path, "write");
      break;
    }
    p += n;
    left -= static_cast<size_t>(n);
  }
  if (s.ok() && ::fsync(fd) != 0) s = Errno(path, "fsync");
  if (::close(fd) != 0 && s.ok()) s = Errno(path, "close");
  if (!s.ok()) {
    ::unlink(tmp.c_str());
    return s;
  }
  return tmp;
}

Status Commit(const std::string& tmp, const std::string& path) {
  if (::rename(tmp.c_str(), path.c_str()) == 0) return Status::OK();
  Status s = Errno(path, "rename");
  ::unlink(tmp.c_str());
  return s;
}

void FsyncParentOf(const std::string& file) {
  const fs::path p(file);
  const std::string dir = p.has_parent_path() ? p.parent_path().string() : ".";
  const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return;
  ::fsync(fd);  // best effort: some file systems refuse fsync on directories
  ::close(fd);
}

// Moves initializers with raw_data of at least min_bytes into one blob, each at an aligned
// offset, setting ONNX's external-data fields (location, offset, length).
std::string Externalize(onnx::ModelProto* model, const std::string& location, const ExportOptions& o) {
  std::string blob;
  const int64_t align = o.external_alignment > 0 ? o.external_alignment : 1;
  for (auto& t : *model->mutable_graph()->mutable_initializer()) {
    if (!t.has_raw_data() || static_cast<int64_t>(t.raw_data().size()) < o.external_min_bytes) continue;
    const int64_t offset = (static_cast<int64_t>(blob.size()) + align - 1) / align * align;
    blob.resize(static_cast<size_t>(offset), '\0');
    blob += t.raw_data();
    const int64_t length = static_cast<int64_t>(t.raw_data().size());
    t.clear_raw_data();
    t.clear_external_data();
    t.set_data_location(onnx::TensorProto_DataLocation_EXTERNAL);
    for (const auto& [k, v] : {std::pair<std::string, std::string>{"location", location},
                               {"offset", std::to_string(offset)}, {"length", std::to_string(length)}}) {
      onnx::StringStringEntryProto* e = t.add_external_data();
      e->set_key(k);
      e->set_value(v);
    }
  }
  return blob;
}

// The names the nodes of `g` and its subgraphs read, and its outputs.
std::set<std::string> ReadNames(const onnx::GraphProto& g) {
  std::set<std::string> read;
  std::function<void(const onnx::GraphProto&)> walk = [&](const onnx::GraphProto& sub) {
    for (const auto& n : sub.node()) {
      for (const std::string& in : n.input()) read.insert(in);
      for (const auto& a : n.attribute()) {
        if (a.has_g()) walk(a.g());
        for (const auto& inner : a.graphs()) walk(inner);
      }
    }
    for (const auto& o : sub.output()) read.insert(o.name());
  };
  walk(g);
  return read;
}

bool IsDynamoExport(const onnx::ModelProto& model) {
  return FindProp(model.graph().metadata_props(), kTorchSignatureKey) != nullptr;
}

// `model` (parsed from `path`) as dscompile's import saw its parameters, every tensor inline. In a
// default dynamo export the import rebuilt the parameters onnxscript's optimizer folded or merged
// (frontend/restore_parameters.h): the plan trained those, so the export writes that rebuilt model,
// which computes what the file computes, without the folded and merged tensors it replaced.
Status AsImported(onnx::ModelProto* model, const std::string& path) {
  const fs::path src(path);
  Status s = InlineExternalData(model, src.has_parent_path() ? src.parent_path().string() : ".");
  if (!s.ok() || !IsDynamoExport(*model)) return s.WithContext(path);
  const std::set<std::string> read_before = ReadNames(model->graph());
  HeldInitializers restored;
  s = RestoreOptimizedParameters(model, &restored);
  if (!s.ok()) return s.WithContext(path);
  InlineHeld(model, restored);
  const std::set<std::string> read_after = ReadNames(model->graph());
  auto* inits = model->mutable_graph()->mutable_initializer();
  for (int i = inits->size() - 1; i >= 0; --i)
    if (read_before.count(inits->Get(i).name()) && !read_after.count(inits->Get(i).name())) inits->DeleteSubrange(i, 1);
  return Status::OK();
}

}  // namespace

Status ExportTrainedOnnx(const std::string& source_model_path, const std::map<std::string, Tensor>& weights,
                         const std::string& out_path, const ExportOptions& options) {
  ASSIGN_OR_RETURN(onnx::ModelProto model, ParseModel(source_model_path));
  RETURN_IF_ERROR(AsImported(&model, source_model_path));

  // Decide everything before changing the model: unknown names first, all of them at once.
  std::map<std::string, onnx::TensorProto*> by_name;
  for (auto& t : *model.mutable_graph()->mutable_initializer()) by_name.emplace(t.name(), &t);
  std::vector<std::string> unknown;
  for (const auto& [name, w] : weights)
    if (!by_name.count(name)) unknown.push_back(name);
  if (!unknown.empty()) {
    std::string list;
    for (const std::string& n : unknown) list += StrCat(list.empty() ? "'" : ", '", n, "'");
    return InvalidArgument(source_model_path, " has no initializer named ", list,
                           " (a trained value replaces an initializer of the main graph of the same name)");
  }
  for (const auto& [name, w] : weights) RETURN_IF_ERROR(Replace(by_name.at(name), w, source_model_path));

  const std::string data_path = out_path + ".data";
  std::string blob;
  // ONNX's checker on the model with every tensor inline (its external-data check needs the files).
  try {
    onnx::checker::check_model(model);
  } catch (const std::exception& e) {
    return InvalidArgument("the exported model fails ONNX's checker (nothing written to ", out_path, "): ", e.what());
  }
  const bool external = static_cast<int64_t>(model.ByteSizeLong()) >= options.inline_limit_bytes;
  if (external) {
    blob = Externalize(&model, fs::path(data_path).filename().string(), options);
    if (static_cast<int64_t>(model.ByteSizeLong()) >= int64_t{2147483647})
      return OutOfRange("cannot write ", out_path, ": the model is ", model.ByteSizeLong(),
                        " bytes without its external tensors, over protobuf's 2 GB limit");
  }
  std::string bytes;
  if (!model.SerializeToString(&bytes)) return Internal("cannot serialize the exported model for ", out_path);
  if (!external) {
    ASSIGN_OR_RETURN(const std::string tmp, WriteTemp(out_path, bytes));
    RETURN_IF_ERROR(Commit(tmp, out_path));
    FsyncParentOf(out_path);
    return Status::OK();
  }
  // External data: OUT.data goes into place first; then the model, checked by path (so the checker
  // resolves the data file next to it) before its rename.
  ASSIGN_OR_RETURN(const std::string data_tmp, WriteTemp(data_path, blob));
  RETURN_IF_ERROR(Commit(data_tmp, data_path));
  ASSIGN_OR_RETURN(const std::string tmp, WriteTemp(out_path, bytes));
  try {
    onnx::checker::check_model(tmp);
  } catch (const std::exception& e) {
    ::unlink(tmp.c_str());
    return Internal("the exported model with external data fails ONNX's checker (", out_path, " not written): ",
                    e.what());
  }
  RETURN_IF_ERROR(Commit(tmp, out_path));
  FsyncParentOf(out_path);
  return Status::OK();
}

StatusOr<std::map<std::string, DType>> OnnxInitializerDTypes(const std::string& model_path) {
  ASSIGN_OR_RETURN(onnx::ModelProto model, ParseModel(model_path));
  // A default dynamo export's rebuilt parameters have names of their own: read them as exported.
  if (IsDynamoExport(model)) RETURN_IF_ERROR(AsImported(&model, model_path));
  std::map<std::string, DType> out;
  for (const auto& t : model.graph().initializer()) {
    StatusOr<DType> d = DTypeFromOnnx(t.data_type());
    if (d.ok()) out[t.name()] = *d;
  }
  return out;
}

Status CheckOnnxExportable(const Plan& plan, const std::string& source_model_path) {
  ASSIGN_OR_RETURN(const auto chosen, SelectExportedState(StateTensorRefs(plan)));
  ASSIGN_OR_RETURN(const auto dtypes, OnnxInitializerDTypes(source_model_path));
  std::string missing;
  for (const auto& [name, state] : chosen)
    if (!dtypes.count(name)) missing += StrCat(missing.empty() ? "'" : ", '", name, "'");
  if (!missing.empty())
    return InvalidArgument(source_model_path, " has no initializer named ", missing,
                           " (a trained value replaces an initializer of the main graph of the same name)");
  return Status::OK();
}

std::vector<StateTensorRef> StateTensorRefs(const Plan& plan) {
  std::vector<StateTensorRef> out;
  out.reserve(plan.state.size());
  for (const StateInfo& s : plan.state) out.push_back({s.name, s.kind, s.owner});
  return out;
}

StatusOr<std::vector<StateTensorRef>> StateTensorRefs(const CheckpointManifest& manifest) {
  static const std::string kSuffix = ops::MasterName("");
  std::vector<StateTensorRef> out;
  out.reserve(manifest.tensors.size());
  for (const CheckpointTensor& t : manifest.tensors) {
    StateTensorRef r{t.name, StateKind::kParameter, ""};
    bool rank_copy = false;
    switch (t.kind) {
      case TensorKind::kParameter: r.kind = StateKind::kParameter; break;
      case TensorKind::kMaster: r.kind = StateKind::kMaster; break;
      case TensorKind::kOptimizer: r.kind = StateKind::kOptimizer; break;
      case TensorKind::kGradient: r.kind = StateKind::kGradient; break;
      case TensorKind::kBuffer: r.kind = StateKind::kBuffer; break;
      case TensorKind::kRankCopy: rank_copy = true; break;  // other ranks' statistics: exports take rank 0's
    }
    if (rank_copy) continue;
    if (r.kind == StateKind::kMaster) {
      const bool named = t.name.size() > kSuffix.size() &&
                         t.name.compare(t.name.size() - kSuffix.size(), kSuffix.size(), kSuffix) == 0;
      if (!named)
        return DataLoss("checkpoint ", manifest.tag, ": master tensor '", t.name, "' is not named PARAMETER", kSuffix,
                        " (the parameter it belongs to is taken from the name)");
      r.owner = t.name.substr(0, t.name.size() - kSuffix.size());
    }
    out.push_back(std::move(r));
  }
  return out;
}

StatusOr<std::map<std::string, std::string>> SelectExportedState(const std::vector<StateTensorRef>& tensors) {
  std::set<std::string> mastered;
  for (const StateTensorRef& s : tensors)
    if (s.kind == StateKind::kMaster) mastered.insert(s.owner);
  std::map<std::string, std::string> out;
  for (const StateTensorRef& s : tensors) {
    std::string name;  // the initializer it is exported as
    if (s.kind == StateKind::kMaster) name = s.owner;
    else if (s.kind == StateKind::kBuffer) name = s.name;
    else if (s.kind == StateKind::kParameter && !mastered.count(s.name)) name = s.name;
    else continue;
    auto [it, inserted] = out.emplace(name, s.name);
    if (!inserted)
      return InvalidArgument("both '", it->second, "' and '", s.name, "' (", StateKindName(s.kind),
                             ") would be exported as initializer '", name, "'");
  }
  return out;
}

namespace {

// `value` in the dtype the source model gives initializer `name` (float types only convert).
StatusOr<Tensor> InSourceDType(Tensor value, const std::string& state_name, const std::string& name,
                               const std::map<std::string, DType>& source_dtypes) {
  auto src = source_dtypes.find(name);
  if (src == source_dtypes.end() || src->second == value.dtype()) return value;
  if (!IsFloat(src->second) || !IsFloat(value.dtype()))
    return InvalidArgument("state tensor '", state_name, "' is ", DTypeName(value.dtype()), " but initializer '", name,
                           "' is ", DTypeName(src->second), " (only float types convert)");
  Tensor conv(src->second, value.dims());
  for (int64_t i = 0; i < value.numel(); ++i) conv.SetFromDouble(i, value.GetAsDouble(i));
  return conv;
}

}  // namespace

StatusOr<std::map<std::string, Tensor>> TrainedWeightsFromState(const Plan& plan,
                                                                const std::map<std::string, Tensor>& full_state,
                                                                const std::map<std::string, DType>& source_dtypes) {
  ASSIGN_OR_RETURN(const auto chosen, SelectExportedState(StateTensorRefs(plan)));
  std::map<std::string, Tensor> out;
  for (const auto& [name, state_name] : chosen) {
    const StateInfo& s = *plan.FindState(state_name);
    auto it = full_state.find(s.name);
    if (it == full_state.end())
      return NotFound("the state has no tensor '", s.name, "' (", StateKindName(s.kind), ") to export");
    const Tensor& t = it->second;
    StatusOr<int64_t> want = s.shard_of_numel > 0 ? StatusOr<int64_t>(s.shard_of_numel) : NumElements(s.dims);
    if (!want.ok()) return want.status().WithContext(StrCat("state tensor '", s.name, "'"));
    if (t.numel() != *want || t.dtype() != s.dtype)
      return InvalidArgument("state tensor '", s.name, "' is ", TypeString(t.dtype(), t.dims()), "; the plan has ",
                             DTypeName(s.dtype), " with ", *want, " elements");
    // The full shape: the initial value's when the plan still holds it.
    Tensor value = t;
    if (plan.initial_state)
      if (const Value* init = plan.initial_state->FindValue(s.name); init && init->is_initializer())
        if (init->initializer().numel() == t.numel() && init->initializer().dims() != t.dims())
          value = t.Reshaped(init->initializer().dims());
    ASSIGN_OR_RETURN(out[name], InSourceDType(std::move(value), s.name, name, source_dtypes));
  }
  return out;
}

StatusOr<std::map<std::string, Tensor>> TrainedWeightsFromCheckpoint(const Checkpoint& checkpoint,
                                                                     const std::map<std::string, DType>& source_dtypes) {
  ASSIGN_OR_RETURN(const auto refs, StateTensorRefs(checkpoint.manifest()));
  ASSIGN_OR_RETURN(const auto chosen, SelectExportedState(refs));
  std::map<std::string, Tensor> out;
  for (const auto& [name, state_name] : chosen) {
    ASSIGN_OR_RETURN(Tensor value, checkpoint.ReadTensor(state_name));
    ASSIGN_OR_RETURN(out[name], InSourceDType(std::move(value), state_name, name, source_dtypes));
  }
  return out;
}

StatusOr<std::map<std::string, Tensor>> TrainedWeightsFromState(const Plan& plan,
                                                                const std::map<std::string, Tensor>& full_state) {
  return TrainedWeightsFromState(plan, full_state, {});
}

}  // namespace dsc
