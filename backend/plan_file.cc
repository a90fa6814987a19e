// Plan file encoding and decoding; the layout is documented in plan_file.h.
#include "backend/plan_file.h"

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <exception>
#include <filesystem>
#include <fstream>
#include <limits>
#include <set>
#include <vector>

#include "backend/plan_summary.h"
#include "backend/plan_verify.h"
#include "frontend/config/json_text.h"
#include "ir/file_write.h"
#include "ir/onnx_convert.h"
#include "runtime/checkpoint_format.h"

namespace dsc {
namespace {

// Reserved blob name of Module::initial_state (program names never start with '@').
constexpr const char* kInitialStateBlob = "@initial_state";

using json = nlohmann::json;

constexpr size_t kMagicSize = sizeof(kPlanMagic);
constexpr size_t kPreambleSize = kMagicSize + 4 + 8;  // magic, version, header length
constexpr size_t kChecksumSize = 8;

class Fnv1a64 {
 public:
  void Update(const char* p, size_t n) {
    uint64_t h = h_;
    for (size_t i = 0; i < n; ++i) {
      h ^= static_cast<uint8_t>(p[i]);
      h *= 0x100000001b3ULL;
    }
    h_ = h;
  }
  void Update(const std::string& s) { Update(s.data(), s.size()); }
  uint64_t value() const { return h_; }

 private:
  uint64_t h_ = 0xcbf29ce484222325ULL;
};

void PutLE(std::string* out, uint64_t v, int bytes) {
  for (int i = 0; i < bytes; ++i) out->push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}

uint64_t GetLE(const char* p, int bytes) {
  uint64_t v = 0;
  for (int i = 0; i < bytes; ++i) v |= static_cast<uint64_t>(static_cast<uint8_t>(p[i])) << (8 * i);
  return v;
}

// The file as pieces, so a large plan is written without concatenating its weights once more.
struct Encoded {
  std::vector<std::string> pieces;  // preamble + header, then one blob per program
  std::string trailer;              // checksum
};

// Where Encode says the initial values are, when they are not inline.
struct ExternalValues {
  std::string checkpoint;  // relative to the plan's folder (or absolute)
  uint32_t manifest_crc = 0;
};

StatusOr<Encoded> Encode(const Plan& plan, const ExternalValues* external) {
  Encoded enc;
  std::vector<std::string> blobs;
  std::set<std::string> names;
  // The initial state travels as one more blob under a reserved name.
  std::vector<std::pair<std::string, const Graph*>> graphs;
  for (const PlanProgram& p : plan.programs) graphs.emplace_back(p.name, p.graph.get());
  if (plan.initial_state && !external) graphs.emplace_back(kInitialStateBlob, plan.initial_state.get());
  if (!plan.initial_state && !external && !plan.initial_values_dir.empty())
    return FailedPrecondition("the plan's initial values are in ", plan.initial_values_dir,
                              ", which an in-memory plan cannot refer to; write it with WritePlan");
  for (const auto& [name, graph] : graphs) {
    const PlanProgram p{name, nullptr};
    if (p.name.empty()) return InvalidArgument("a plan program has no name");
    if (!names.insert(p.name).second) return InvalidArgument("plan program '", p.name, "' appears twice");
    if (!graph) return Internal("plan program '", p.name, "' has no graph");
    onnx::ModelProto model = GraphToOnnx(*graph);
    const size_t size = model.ByteSizeLong();
    if (size > static_cast<size_t>(std::numeric_limits<int>::max()))
      return Unimplemented("plan program '", p.name, "' serializes to ", size,
                           " bytes; programs over 2 GiB (protobuf's limit) are not supported yet");
    std::string blob;
    if (!model.SerializeToString(&blob)) return Internal("cannot serialize plan program '", p.name, "'");
    blobs.push_back(std::move(blob));
  }

  json header = json::object();
  header["producer"] = plan.producer;
  header["format_version"] = kPlanFormatVersion;
  header["source_model"] = plan.source_model;
  header["world_size"] = plan.world_size;
  header["command_line"] = plan.command_line;
  json pipeline = json::array();
  for (const PassRecord& r : plan.pipeline)
    pipeline.push_back({{"name", r.name}, {"changed", r.changed}, {"seconds", r.seconds}});
  header["pipeline"] = pipeline;
  header["config"] = plan.config;
  header["checksum"] = "fnv1a64, last 8 bytes";
  json state = json::array();
  for (const StateInfo& st : plan.state)
    state.push_back({{"name", st.name}, {"kind", StateKindName(st.kind)}, {"owner", st.owner},
                     {"dtype", DTypeName(st.dtype)}, {"dims", st.dims}, {"zero_init", st.zero_init},
                     {"shard_of_numel", st.shard_of_numel}, {"shape", plan.FullShape(st)}});
  header["state"] = state;
  if (external)
    header["initial_values"] = {{"checkpoint", external->checkpoint},
                                {"manifest_crc32c", Crc32cHex(external->manifest_crc)}};

  json params = json::array();
  std::set<std::string> seen;
  for (const PlanProgram& p : plan.programs)
    for (const json& row : ParameterTable(*p.graph))
      if (seen.insert(row["name"].get<std::string>()).second) params.push_back(row);

  // Offsets depend on the header's length, which depends on the offsets' digits: iterate until the
  // length stops changing (two rounds in practice).
  std::string text;
  size_t header_len = 0;
  for (int round = 0; round < 8; ++round) {
    json programs = json::array();
    uint64_t offset = kPreambleSize + header_len;
    for (size_t i = 0; i < blobs.size(); ++i) {
      programs.push_back({{"name", graphs[i].first}, {"offset", offset}, {"size", blobs[i].size()}});
      offset += blobs[i].size();
    }
    header["programs"] = programs;
    header["parameters"] = params;
    text = header.dump(1, ' ', false, json::error_handler_t::replace) + "\n";
    if (text.size() == header_len) break;
    header_len = text.size();
  }
  if (text.size() != header_len) return Internal("plan header length did not settle");

  std::string head(kPlanMagic, kMagicSize);
  PutLE(&head, kPlanFormatVersion, 4);
  PutLE(&head, header_len, 8);
  head += text;
  enc.pieces.push_back(std::move(head));
  for (std::string& b : blobs) enc.pieces.push_back(std::move(b));

  Fnv1a64 sum;
  for (const std::string& p : enc.pieces) sum.Update(p);
  PutLE(&enc.trailer, sum.value(), 8);
  return enc;
}

// Typed access to the header: a corrupted or hand-edited header is an error, never an exception.
class HeaderReader {
 public:
  explicit HeaderReader(const std::string& file) : file_(file) {}

  Status Error(const std::string& what) const {
    return DataLoss(file_, " is corrupted: plan header ", what);
  }
  StatusOr<const json*> Field(const json& obj, const char* key, json::value_t type, const std::string& where) const {
    auto it = obj.find(key);
    if (it == obj.end()) return Error(StrCat("has no '", key, "'", where));
    bool match = it->type() == type ||
                 (type == json::value_t::number_unsigned && it->is_number_integer() && *it >= 0) ||
                 (type == json::value_t::number_float && it->is_number());
    if (!match) return Error(StrCat("field '", key, "'", where, " has the wrong type"));
    return &*it;
  }

 private:
  const std::string& file_;
};


// Checks initializer sizes before GraphFromOnnx allocates them: a damaged shape must not turn into a
// multi-terabyte allocation.
Status CheckTensorSizes(const onnx::TensorProto& t, const std::string& what) {
  StatusOr<DType> dt = DTypeFromOnnx(t.data_type());
  if (!dt.ok()) return dt.status().WithContext(what);
  uint64_t bytes = DTypeSize(*dt);
  for (int64_t d : t.dims()) {
    if (d < 0) return InvalidArgument(what, " has a negative dimension");
    if (d != 0 && bytes > std::numeric_limits<uint64_t>::max() / static_cast<uint64_t>(d))
      return InvalidArgument(what, " is too large");
    bytes *= static_cast<uint64_t>(d);
  }
  if (!t.has_raw_data()) return InvalidArgument(what, " has no raw_data");
  if (bytes != t.raw_data().size())
    return InvalidArgument(what, " holds ", t.raw_data().size(), " bytes; its shape needs ", bytes);
  return Status::OK();
}

Status CheckModelSizes(const onnx::ModelProto& m) {
  for (const auto& t : m.graph().initializer()) RETURN_IF_ERROR(CheckTensorSizes(t, StrCat("initializer '", t.name(), "'")));
  for (const auto& n : m.graph().node())
    for (const auto& a : n.attribute())
      if (a.has_t()) RETURN_IF_ERROR(CheckTensorSizes(a.t(), StrCat("attribute '", a.name(), "' of node '", n.name(), "'")));
  return Status::OK();
}

StatusOr<Plan> Decode(const std::string& bytes, const std::string& file) {
  const size_t n = bytes.size();
  // Magic first: a file that starts differently is not a plan, whatever its length.
  const size_t magic_seen = std::min(n, kMagicSize);
  if (std::memcmp(bytes.data(), kPlanMagic, magic_seen) != 0 || n == 0)
    return InvalidArgument(file, " is not a dscompile plan");
  if (n < kPreambleSize) return DataLoss(file, " is truncated (", n, " bytes; a plan has at least ", kPreambleSize + kChecksumSize, ")");
  const uint32_t version = static_cast<uint32_t>(GetLE(bytes.data() + kMagicSize, 4));
  if (version != kPlanFormatVersion)
    return FailedPrecondition(file, " was written by plan format version ", version, "; this dsrun/dsinspect reads version ",
                              kPlanFormatVersion, ": recompile with dscompile");
  if (n < kPreambleSize + kChecksumSize) return DataLoss(file, " is truncated (", n, " bytes)");
  const uint64_t header_len = GetLE(bytes.data() + kMagicSize + 4, 8);
  const size_t body_end = n - kChecksumSize;
  if (header_len > body_end - kPreambleSize)
    return DataLoss(file, " is truncated or corrupted: its header needs ", header_len, " bytes, the file holds ", n);
  Fnv1a64 sum;
  sum.Update(bytes.data(), body_end);
  if (sum.value() != GetLE(bytes.data() + body_end, 8))
    return DataLoss(file, " is truncated or corrupted (checksum mismatch)");

  // The config inside the header is held to the config parser's nesting limit (plus the header's own
  // two levels): deeper values would overflow the stack when printed.
  if (Status nesting = CheckJsonNesting(bytes.substr(kPreambleSize, header_len), kMaxConfigNesting + 2); !nesting.ok())
    return DataLoss(file, " is corrupted: its plan header has ", nesting.message());
  json h = json::parse(bytes.begin() + kPreambleSize, bytes.begin() + kPreambleSize + static_cast<std::ptrdiff_t>(header_len),
                       nullptr, /*allow_exceptions=*/false);
  if (h.is_discarded() || !h.is_object()) return DataLoss(file, " is corrupted: its plan header is not a JSON object");
  HeaderReader r(file);
  using vt = json::value_t;

  Plan plan;
  ASSIGN_OR_RETURN(const json* fv, r.Field(h, "format_version", vt::number_unsigned, ""));
  if (fv->get<uint64_t>() != version) return r.Error("format_version disagrees with the file's version");
  plan.format_version = version;
  ASSIGN_OR_RETURN(const json* producer, r.Field(h, "producer", vt::string, ""));
  plan.producer = producer->get<std::string>();
  ASSIGN_OR_RETURN(const json* source, r.Field(h, "source_model", vt::string, ""));
  plan.source_model = source->get<std::string>();
  ASSIGN_OR_RETURN(const json* ws, r.Field(h, "world_size", vt::number_unsigned, ""));
  if (*ws < 1 || *ws > std::numeric_limits<int>::max()) return r.Error("world_size is out of range");
  plan.world_size = ws->get<int>();
  ASSIGN_OR_RETURN(const json* cl, r.Field(h, "command_line", vt::array, ""));
  for (const json& a : *cl) {
    if (!a.is_string()) return r.Error("command_line holds a non-string");
    plan.command_line.push_back(a.get<std::string>());
  }
  ASSIGN_OR_RETURN(const json* pipeline, r.Field(h, "pipeline", vt::array, ""));
  for (const json& p : *pipeline) {
    if (!p.is_object()) return r.Error("pipeline holds a non-object");
    PassRecord rec;
    ASSIGN_OR_RETURN(const json* name, r.Field(p, "name", vt::string, " in pipeline"));
    ASSIGN_OR_RETURN(const json* changed, r.Field(p, "changed", vt::boolean, " in pipeline"));
    ASSIGN_OR_RETURN(const json* seconds, r.Field(p, "seconds", vt::number_float, " in pipeline"));
    rec.name = name->get<std::string>();
    rec.changed = changed->get<bool>();
    rec.seconds = seconds->get<double>();
    plan.pipeline.push_back(std::move(rec));
  }
  auto cfg = h.find("config");
  if (cfg == h.end()) return r.Error("has no 'config'");
  plan.config = *cfg;

  // The whole table is checked before any program is parsed: a damaged header fails as such.
  struct Entry {
    std::string name;
    uint64_t offset, size;
  };
  std::vector<Entry> entries;
  std::set<std::string> names;
  ASSIGN_OR_RETURN(const json* programs, r.Field(h, "programs", vt::array, ""));
  const uint64_t data_begin = kPreambleSize + header_len;
  for (const json& p : *programs) {
    if (!p.is_object()) return r.Error("programs holds a non-object");
    ASSIGN_OR_RETURN(const json* name, r.Field(p, "name", vt::string, " in programs"));
    ASSIGN_OR_RETURN(const json* off, r.Field(p, "offset", vt::number_unsigned, " in programs"));
    ASSIGN_OR_RETURN(const json* sz, r.Field(p, "size", vt::number_unsigned, " in programs"));
    Entry e{name->get<std::string>(), off->get<uint64_t>(), sz->get<uint64_t>()};
    if (e.name.empty() || !names.insert(e.name).second) return r.Error(StrCat("names program '", e.name, "' twice or not at all"));
    entries.push_back(std::move(e));
  }
  for (const Entry& e : entries) {
    if (e.offset < data_begin || e.offset > body_end || e.size > body_end - e.offset ||
        e.size > static_cast<uint64_t>(std::numeric_limits<int>::max()))
      return DataLoss(file, " is truncated or corrupted: program '", e.name, "' lies outside the file");
    onnx::ModelProto model;
    if (!model.ParseFromArray(bytes.data() + e.offset, static_cast<int>(e.size)))
      return DataLoss(file, " is corrupted: program '", e.name, "' is not a valid ONNX model");
    Status sizes = CheckModelSizes(model);
    if (!sizes.ok()) return DataLoss(file, " is corrupted: program '", e.name, "': ", sizes.message());
    StatusOr<std::unique_ptr<Graph>> g = GraphFromOnnx(model);
    if (!g.ok()) return DataLoss(file, " is corrupted: program '", e.name, "': ", g.status().message());
    if (e.name == kInitialStateBlob) plan.initial_state = std::move(g).value();
    else plan.programs.push_back(PlanProgram{e.name, std::move(g).value()});
  }
  if (auto iv = h.find("initial_values"); iv != h.end()) {
    if (plan.initial_state) return r.Error("has both inline initial values and an initial_values checkpoint");
    if (!iv->is_object()) return r.Error("field 'initial_values' has the wrong type");
    ASSIGN_OR_RETURN(const json* dir, r.Field(*iv, "checkpoint", vt::string, " in initial_values"));
    ASSIGN_OR_RETURN(const json* crc, r.Field(*iv, "manifest_crc32c", vt::string, " in initial_values"));
    const std::string c = crc->get<std::string>();
    if (dir->get<std::string>().empty() || c.size() != 8 || c.find_first_not_of("0123456789abcdef") != std::string::npos)
      return r.Error("initial_values is malformed");
    // Relative to the plan's folder, so a plan and its weights move together.
    const std::filesystem::path rel = dir->get<std::string>();
    plan.initial_values_dir = rel.is_absolute() ? rel.string() : (std::filesystem::path(file).parent_path() / rel).string();
    plan.initial_values_manifest_crc = static_cast<uint32_t>(std::stoul(c, nullptr, 16));
  }
  ASSIGN_OR_RETURN(const json* state, r.Field(h, "state", vt::array, ""));
  for (const json& st : *state) {
    if (!st.is_object()) return r.Error("state holds a non-object");
    StateInfo info;
    ASSIGN_OR_RETURN(const json* name, r.Field(st, "name", vt::string, " in state"));
    ASSIGN_OR_RETURN(const json* kind, r.Field(st, "kind", vt::string, " in state"));
    ASSIGN_OR_RETURN(const json* owner, r.Field(st, "owner", vt::string, " in state"));
    ASSIGN_OR_RETURN(const json* dtype, r.Field(st, "dtype", vt::string, " in state"));
    ASSIGN_OR_RETURN(const json* dims, r.Field(st, "dims", vt::array, " in state"));
    ASSIGN_OR_RETURN(const json* zero, r.Field(st, "zero_init", vt::boolean, " in state"));
    ASSIGN_OR_RETURN(const json* shard, r.Field(st, "shard_of_numel", vt::number_unsigned, " in state"));
    info.shard_of_numel = shard->get<int64_t>();
    info.name = name->get<std::string>();
    info.owner = owner->get<std::string>();
    info.zero_init = zero->get<bool>();
    StatusOr<StateKind> k = StateKindFromName(kind->get<std::string>());
    StatusOr<DType> dt = DTypeFromName(dtype->get<std::string>());
    if (!k.ok() || !dt.ok()) return r.Error(StrCat("state '", info.name, "' has a bad kind or dtype"));
    info.kind = *k;
    info.dtype = *dt;
    for (const json& d : *dims) {
      if (!d.is_number_unsigned()) return r.Error(StrCat("state '", info.name, "' has a bad dimension"));
      info.dims.push_back(d.get<int64_t>());
    }
    if (!NumElements(info.dims).ok()) return r.Error(StrCat("state '", info.name, "' has an overflowing shape"));
    ASSIGN_OR_RETURN(const json* shape, r.Field(st, "shape", vt::array, " in state"));
    std::vector<int64_t> full;
    for (const json& d : *shape) {
      if (!d.is_number_unsigned()) return r.Error(StrCat("state '", info.name, "' has a bad dimension in its shape"));
      full.push_back(d.get<int64_t>());
    }
    StatusOr<int64_t> full_numel = NumElements(full);
    const int64_t want = info.shard_of_numel > 0 ? info.shard_of_numel : NumElements(info.dims).value();
    if (!full_numel.ok() || *full_numel != want)
      return r.Error(StrCat("state '", info.name, "' has a shape that does not hold its ", want, " elements"));
    if (info.shard_of_numel > 0) info.full_dims = std::move(full);
    const bool has_value = plan.initial_state && plan.initial_state->FindValue(info.name);
    if (!plan.initial_values_dir.empty()) {
      // The values are in the step-0 checkpoint; dsrun checks them against the table when it loads.
    } else if (has_value == info.zero_init)
      return r.Error(StrCat("state '", info.name, "' ", info.zero_init ? "is zero-initialised but has an initial value" : "has no initial value"));
    plan.state.push_back(std::move(info));
  }
  if (Status s = VerifyPlan(plan); !s.ok()) return DataLoss(file, " is corrupted or inconsistent: ", s.message());
  return plan;
}

}  // namespace

StatusOr<std::string> SerializePlan(const Plan& plan) {
  ASSIGN_OR_RETURN(Encoded enc, Encode(plan, nullptr));
  std::string out;
  size_t total = enc.trailer.size();
  for (const std::string& p : enc.pieces) total += p.size();
  out.reserve(total);
  for (const std::string& p : enc.pieces) out += p;
  out += enc.trailer;
  return out;
}

StatusOr<Plan> ParsePlan(const std::string& bytes, const std::string& name) {
  // Backstop: the checks above should turn every malformed input into a Status, but a plan loader
  // must never take the process down (bad_alloc from a damaged but checksum-valid file, for one).
  try {
    return Decode(bytes, name);
  } catch (const std::exception& e) {
    return DataLoss(name, " is corrupted: ", e.what());
  }
}

Status WritePlan(const Plan& plan, const std::string& path, const WritePlanOptions& options) {
  namespace fs = std::filesystem;
  ExternalValues external;
  const std::string weights = path + ".weights";
  std::error_code ec;
  const bool weights_existed = fs::exists(weights, ec);
  if (plan.initial_state) {
    // The values go out first: the plan names them by their manifest's checksum.
    CheckpointWriter writer(weights, StepTag(0), /*rank=*/0, /*world_size=*/1);
    for (const StateInfo& s : plan.state) {
      if (s.zero_init) continue;
      const Value* init = plan.initial_state->FindValue(s.name);
      if (!init || !init->is_initializer()) return Internal("state '", s.name, "' has no initial value");
      const Tensor& t = init->initializer();
      if (t.dtype() != s.dtype) return Internal("the initial value of state '", s.name, "' has another dtype");
      const TensorKind kind = *TensorKindFromName(StateKindName(s.kind));
      // Weights still the model file's bytes are referred to there, not written again.
      if (t.source() && !options.copy_weights)
        RETURN_IF_ERROR(writer.AddFileRegion(s.name, kind, t.dtype(), plan.FullShape(s), *t.source()));
      else
        RETURN_IF_ERROR(writer.AddTensor(s.name, kind, t.dtype(), plan.FullShape(s), t.raw()));
    }
    CheckpointMeta meta;
    meta.source_model = plan.source_model;
    meta.config = plan.config;
    RETURN_IF_ERROR(writer.Commit(meta, [](bool ok) { return ok ? Status::OK() : Internal("writing failed"); })
                        .WithContext(StrCat("writing the initial values of ", path)));
    const std::string manifest = (fs::path(writer.final_dir()) / "manifest.json").string();
    std::ifstream in(manifest, std::ios::binary);
    const std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    if (!in.good() && !in.eof()) return DataLoss("cannot read back ", manifest);
    external.checkpoint = (fs::path(path).filename().string() + ".weights") + "/" + StepTag(0);
    external.manifest_crc = Crc32c(bytes.data(), bytes.size());
  } else if (!plan.initial_values_dir.empty()) {
    // A plan read from a file, written elsewhere: it keeps pointing at the same values.
    external.checkpoint = fs::absolute(plan.initial_values_dir, ec).string();
    external.manifest_crc = plan.initial_values_manifest_crc;
  }
  const bool has_external = plan.initial_state || !plan.initial_values_dir.empty();
  StatusOr<Encoded> enc = Encode(plan, has_external ? &external : nullptr);
  if (!enc.ok()) {
    if (plan.initial_state && !weights_existed) fs::remove_all(weights, ec);
    return enc.status().WithContext(StrCat("while writing ", path));
  }
  std::vector<const std::string*> pieces;
  for (const std::string& p : enc->pieces) pieces.push_back(&p);
  pieces.push_back(&enc->trailer);
  Status written = WritePiecesAtomically(path, pieces);
  // A failed write leaves nothing new behind (a replaced weights folder stays: its old plan's
  // checksum no longer matches it, so that plan is refused rather than trained on other values).
  if (!written.ok() && plan.initial_state && !weights_existed) fs::remove_all(weights, ec);
  return written;
}

StatusOr<Plan> ReadPlan(const std::string& path) {
  std::error_code ec;
  if (std::filesystem::is_directory(path, ec)) return InvalidArgument("cannot read plan ", path, ": it is a directory");
  std::ifstream in(path, std::ios::binary);
  if (!in) return NotFound("cannot open plan ", path, ": ", std::strerror(errno));
  in.seekg(0, std::ios::end);
  const std::streamoff size = in.tellg();
  if (size < 0) return InvalidArgument("cannot read plan ", path, " (is it a directory?)");
  in.seekg(0, std::ios::beg);
  std::string bytes(static_cast<size_t>(size), '\0');
  if (size > 0 && !in.read(bytes.data(), size)) return InvalidArgument("cannot read plan ", path);
  return ParsePlan(bytes, path);
}

}  // namespace dsc
