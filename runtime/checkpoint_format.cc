// Checkpoint manifest, writer with the commit protocol, reader and resolution (see checkpoint_format.h).
#include "runtime/checkpoint_format.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <mutex>
#include <set>

namespace dsc {
namespace {

namespace fs = std::filesystem;
using ojson = nlohmann::ordered_json;

constexpr char kFormat[] = "dscompile-checkpoint";
constexpr char kManifestName[] = "manifest.json";
constexpr char kCrcPrefix[] = "{\"manifest_crc32c\": \"";
constexpr size_t kCrcPrefixLen = sizeof(kCrcPrefix) - 1;
constexpr char kTmpPrefix[] = ".tmp-";

std::string Join(const std::string& dir, const std::string& name) { return (fs::path(dir) / name).string(); }

// The last component of a folder path, ignoring trailing slashes ("a/.tmp-x/" -> ".tmp-x").
std::string BaseName(const std::string& path) {
  fs::path p = fs::path(path).lexically_normal();
  if (p.filename().empty()) p = p.parent_path();
  return p.filename().string();
}

std::string RankFileName(int rank) { return StrCat("rank-", rank, ".safetensors"); }

Status ErrnoStatus(const std::string& what, const std::string& path, int err) {
  return Status(err == ENOENT ? StatusCode::kNotFound : StatusCode::kFailedPrecondition,
                StrCat(what, " ", path, ": ", std::strerror(err), " (errno ", err, ")"));
}

Status MakeDir(const std::string& path) {
  if (::mkdir(path.c_str(), 0755) != 0 && errno != EEXIST) return ErrnoStatus("creating folder", path, errno);
  return Status::OK();
}

Status ValidateTag(const std::string& tag) {
  if (tag.empty() || tag[0] == '.' || tag.find('/') != std::string::npos || tag == "latest")
    return InvalidArgument("checkpoint tag \"", tag, "\" must be a plain folder name (no '/', not starting with '.')");
  return Status::OK();
}

bool IsPlainFileName(const std::string& s) {
  return !s.empty() && s[0] != '.' && s.find('/') == std::string::npos && s.find('\0') == std::string::npos;
}

// Pieces sorted by start must tile [0, numel).
Status CheckTiling(CheckpointTensor& t, const std::string& where) {
  std::sort(t.pieces.begin(), t.pieces.end(),
            [](const CheckpointPiece& a, const CheckpointPiece& b) { return a.start < b.start; });
  int64_t at = 0;
  for (const CheckpointPiece& p : t.pieces) {
    if (p.start < 0 || p.count < 0) return DataLoss(where, ": tensor \"", t.name, "\" has a negative piece range");
    if (p.start > at)
      return DataLoss(where, ": tensor \"", t.name, "\": elements [", at, ", ", p.start, ") are in no piece");
    if (p.start < at)
      return DataLoss(where, ": tensor \"", t.name, "\": elements from ", p.start, " are in two pieces (", p.file,
                      " and an earlier one)");
    at = p.start + p.count;
  }
  if (at != t.numel)
    return DataLoss(where, ": tensor \"", t.name, "\": pieces cover [0, ", at, ") of its ", t.numel, " elements");
  return Status::OK();
}

StatusOr<int64_t> GetInt(const nlohmann::json& j, const char* key, const std::string& where) {
  if (!j.is_object() || !j.contains(key) || !j[key].is_number_integer())
    return DataLoss(where, ": \"", key, "\" must be an integer");
  return j[key].get<int64_t>();
}

StatusOr<std::string> GetString(const nlohmann::json& j, const char* key, const std::string& where) {
  if (!j.is_object() || !j.contains(key) || !j[key].is_string()) return DataLoss(where, ": \"", key, "\" must be a string");
  return j[key].get<std::string>();
}

StatusOr<std::vector<int64_t>> GetShape(const nlohmann::json& j, const std::string& where) {
  if (!j.is_object() || !j.contains("shape") || !j["shape"].is_array()) return DataLoss(where, ": \"shape\" must be an array");
  std::vector<int64_t> shape;
  for (const auto& d : j["shape"]) {
    if (!d.is_number_integer() || d.get<int64_t>() < 0) return DataLoss(where, ": bad dim ", d.dump(), " in shape");
    shape.push_back(d.get<int64_t>());
  }
  return shape;
}

// One entry of a rank file's "dsc.pieces" or a manifest tensor: name, kind, dtype, shape.
Status ParseTensorHead(const nlohmann::json& j, CheckpointTensor* t, const std::string& where) {
  ASSIGN_OR_RETURN(t->name, GetString(j, "name", where));
  const std::string w = StrCat(where, ": tensor \"", t->name, "\"");
  ASSIGN_OR_RETURN(std::string kind, GetString(j, "kind", w));
  auto k = TensorKindFromName(kind);
  if (!k.ok()) return DataLoss(w, ": ", k.status().message());
  t->kind = *k;
  ASSIGN_OR_RETURN(std::string dtype, GetString(j, "dtype", w));
  auto dt = DTypeFromSafetensorsName(dtype);
  if (!dt.ok()) return DataLoss(w, ": ", dt.status().message());
  t->dtype = *dt;
  ASSIGN_OR_RETURN(t->shape, GetShape(j, w));
  auto n = NumBytes(t->shape, t->dtype);
  if (!n.ok()) return DataLoss(w, ": shape ", DimsToString(t->shape), " overflows");
  t->numel = *NumElements(t->shape);
  return Status::OK();
}

ojson TensorHeadJson(const std::string& name, TensorKind kind, DType dtype, const std::vector<int64_t>& shape) {
  return ojson{{"name", name}, {"kind", TensorKindName(kind)}, {"dtype", *SafetensorsDTypeName(dtype)}, {"shape", shape}};
}

// DSC_DEBUG_KILL_IN_SAVE=N@R (see CheckpointWriter): parsed at the first save.
struct KillInSave {
  int64_t at = 0;  // the crash point to die at, from 1; 0: none
  int rank = -1;
  std::string error;  // a malformed value, reported by every save
};

const KillInSave& KillSpec() {
  static const KillInSave spec = [] {
    KillInSave k;
    const char* v = std::getenv("DSC_DEBUG_KILL_IN_SAVE");
    if (v == nullptr || *v == '\0') return k;
    long long at = 0;
    int rank = 0;
    char extra = 0;
    if (std::sscanf(v, "%lld@%d%c", &at, &rank, &extra) != 2 || at < 1 || rank < 0) {
      k.error = StrCat("DSC_DEBUG_KILL_IN_SAVE=\"", v, "\" must be N@R: rank R dies at its N-th crash point (N >= 1)");
    } else {
      k.at = at;
      k.rank = rank;
    }
    return k;
  }();
  return spec;
}

std::atomic<int64_t> crash_points_passed{0};  // by this process, across saves

// A piece's entry in its file must match the manifest: dtype, and count elements.
Status CheckPieceEntry(const SafetensorsFile& f, const CheckpointTensor& t, const CheckpointPiece& p) {
  const SafetensorsEntry* e = f.Find(p.key);
  if (e == nullptr) return DataLoss(f.path(), ": no tensor \"", p.key, "\" (a piece of \"", t.name, "\")");
  if (e->dtype != t.dtype || e->numel != p.count)
    return DataLoss(f.path(), ": tensor \"", p.key, "\" is ", *SafetensorsDTypeName(e->dtype), " ",
                    DimsToString(e->shape), ", but the manifest expects ", *SafetensorsDTypeName(t.dtype), " with ",
                    p.count, " elements (a piece of \"", t.name, "\")");
  return Status::OK();
}

}  // namespace

const char* TensorKindName(TensorKind kind) {
  switch (kind) {
    case TensorKind::kParameter: return "parameter";
    case TensorKind::kMaster: return "master";
    case TensorKind::kOptimizer: return "optimizer";
    case TensorKind::kGradient: return "gradient";
    case TensorKind::kBuffer: return "buffer";
    case TensorKind::kRankCopy: return "rank_copy";
  }
  return "?";
}

std::string RankCopyName(const std::string& name, int rank) { return StrCat(name, "@rank", rank); }

StatusOr<TensorKind> TensorKindFromName(const std::string& name) {
  for (TensorKind k : {TensorKind::kParameter, TensorKind::kMaster, TensorKind::kOptimizer, TensorKind::kGradient,
                       TensorKind::kBuffer, TensorKind::kRankCopy})
    if (name == TensorKindName(k)) return k;
  return InvalidArgument("unknown tensor kind \"", name, "\"");
}

std::string StepTag(int64_t step) { return StrCat("global_step", step); }

const CheckpointTensor* CheckpointManifest::Find(const std::string& name) const {
  for (const CheckpointTensor& t : tensors)
    if (t.name == name) return &t;
  return nullptr;
}

// ---------------------------------------------------------------------------------------------
// Manifest

std::string SerializeManifest(const CheckpointManifest& m) {
  ojson j;
  j["format"] = kFormat;
  j["version"] = m.version;
  j["tag"] = m.tag;
  j["step"] = m.meta.step;
  j["plan_hash"] = m.meta.plan_hash;
  j["source_model"] = m.meta.source_model;
  j["world_size"] = m.world_size;
  j["config"] = m.meta.config;
  j["trainer_state"] = m.meta.trainer_state;
  ojson files = ojson::object();
  for (const auto& [name, info] : m.files) files[name] = {{"bytes", info.bytes}, {"header_crc32c", Crc32cHex(info.header_crc32c)}};
  j["files"] = std::move(files);
  if (!m.sources.empty()) {
    ojson sources = ojson::object();
    for (const auto& [id, src] : m.sources) {
      std::string crcs;
      for (uint32_t c : src.block_crcs) crcs += Crc32cHex(c);
      sources[id] = {{"path", src.path}, {"bytes", src.bytes}, {"block_bytes", src.block_bytes}, {"block_crc32c", crcs}};
    }
    j["sources"] = std::move(sources);
  }
  ojson tensors = ojson::array();
  for (const CheckpointTensor& t : m.tensors) {
    ojson tj = TensorHeadJson(t.name, t.kind, t.dtype, t.shape);
    ojson pieces = ojson::array();
    for (const CheckpointPiece& p : t.pieces) {
      if (p.source.empty())
        pieces.push_back({{"file", p.file}, {"key", p.key}, {"start", p.start}, {"count", p.count}});
      else
        pieces.push_back({{"source", p.source}, {"offset", p.offset}, {"start", p.start}, {"count", p.count}});
    }
    tj["pieces"] = std::move(pieces);
    tensors.push_back(std::move(tj));
  }
  j["tensors"] = std::move(tensors);
  const std::string body = j.dump(1);  // "{\n ..."
  std::string out = std::string(kCrcPrefix) + "00000000\"," + body.substr(1) + "\n";
  const std::string crc = Crc32cHex(Crc32c(out.data(), out.size()));
  out.replace(kCrcPrefixLen, 8, crc);
  return out;
}

StatusOr<CheckpointManifest> ParseManifest(const std::string& bytes, const std::string& path) {
  if (bytes.size() < kCrcPrefixLen + 10 || bytes.compare(0, kCrcPrefixLen, kCrcPrefix) != 0 ||
      bytes.compare(kCrcPrefixLen + 8, 2, "\",") != 0)
    return DataLoss(path, ": not a dscompile checkpoint manifest (it must start with ", kCrcPrefix, "XXXXXXXX\",)");
  std::string zeroed = bytes;
  zeroed.replace(kCrcPrefixLen, 8, "00000000");
  const std::string stored = bytes.substr(kCrcPrefixLen, 8);
  const std::string actual = Crc32cHex(Crc32c(zeroed.data(), zeroed.size()));
  if (stored != actual)
    return DataLoss(path, ": checksum mismatch (crc32c ", actual, ", the file says ", stored,
                    "): the manifest is corrupted");
  const nlohmann::json j = nlohmann::json::parse(bytes, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) return DataLoss(path, ": not valid JSON");
  ASSIGN_OR_RETURN(std::string format, GetString(j, "format", path));
  if (format != kFormat) return DataLoss(path, ": format \"", format, "\" is not ", kFormat);
  CheckpointManifest m;
  ASSIGN_OR_RETURN(int64_t version, GetInt(j, "version", path));
  if (version > CheckpointManifest::kVersion || version < 1)
    return Unimplemented(path, ": checkpoint format version ", version, " (this dscompile reads up to ",
                         CheckpointManifest::kVersion, ")");
  m.version = static_cast<int>(version);
  ASSIGN_OR_RETURN(m.tag, GetString(j, "tag", path));
  ASSIGN_OR_RETURN(m.meta.step, GetInt(j, "step", path));
  ASSIGN_OR_RETURN(m.meta.plan_hash, GetString(j, "plan_hash", path));
  ASSIGN_OR_RETURN(m.meta.source_model, GetString(j, "source_model", path));
  ASSIGN_OR_RETURN(int64_t ws, GetInt(j, "world_size", path));
  m.world_size = static_cast<int>(ws);
  if (!j.contains("config") || !j.contains("trainer_state")) return DataLoss(path, ": config or trainer_state missing");
  m.meta.config = j["config"];
  m.meta.trainer_state = j["trainer_state"];
  if (!j.contains("files") || !j["files"].is_object()) return DataLoss(path, ": \"files\" must be an object");
  for (const auto& [name, info] : j["files"].items()) {
    const std::string w = StrCat(path, ": files[\"", name, "\"]");
    if (!IsPlainFileName(name)) return DataLoss(w, ": not a plain file name");
    CheckpointFileInfo fi;
    ASSIGN_OR_RETURN(fi.bytes, GetInt(info, "bytes", w));
    ASSIGN_OR_RETURN(std::string crc, GetString(info, "header_crc32c", w));
    if (crc.size() != 8 || crc.find_first_not_of("0123456789abcdef") != std::string::npos)
      return DataLoss(w, ": bad header_crc32c \"", crc, "\"");
    fi.header_crc32c = static_cast<uint32_t>(std::stoul(crc, nullptr, 16));
    m.files[name] = fi;
  }
  if (j.contains("sources")) {
    if (!j["sources"].is_object()) return DataLoss(path, ": \"sources\" must be an object");
    for (const auto& [id, info] : j["sources"].items()) {
      const std::string w = StrCat(path, ": sources[\"", id, "\"]");
      CheckpointSource src;
      ASSIGN_OR_RETURN(src.path, GetString(info, "path", w));
      ASSIGN_OR_RETURN(src.bytes, GetInt(info, "bytes", w));
      ASSIGN_OR_RETURN(src.block_bytes, GetInt(info, "block_bytes", w));
      ASSIGN_OR_RETURN(std::string crcs, GetString(info, "block_crc32c", w));
      if (!fs::path(src.path).is_absolute()) return DataLoss(w, ": path \"", src.path, "\" is not absolute");
      if (src.bytes < 0 || src.block_bytes <= 0) return DataLoss(w, ": bad bytes or block_bytes");
      const int64_t blocks = src.bytes / src.block_bytes + (src.bytes % src.block_bytes != 0);
      if (crcs.size() % 8 != 0 || static_cast<int64_t>(crcs.size() / 8) != blocks ||
          crcs.find_first_not_of("0123456789abcdef") != std::string::npos)
        return DataLoss(w, ": block_crc32c must be ", blocks, " crc32c's of 8 hex digits");
      for (int64_t b = 0; b < blocks; ++b)
        src.block_crcs.push_back(static_cast<uint32_t>(std::stoul(crcs.substr(static_cast<size_t>(8 * b), 8), nullptr, 16)));
      m.sources[id] = std::move(src);
    }
  }
  if (!j.contains("tensors") || !j["tensors"].is_array()) return DataLoss(path, ": \"tensors\" must be an array");
  std::set<std::string> names;
  for (const auto& tj : j["tensors"]) {
    CheckpointTensor t;
    RETURN_IF_ERROR(ParseTensorHead(tj, &t, path));
    const std::string w = StrCat(path, ": tensor \"", t.name, "\"");
    if (!names.insert(t.name).second) return DataLoss(w, " is listed twice");
    if (!tj.contains("pieces") || !tj["pieces"].is_array()) return DataLoss(w, ": \"pieces\" must be an array");
    for (const auto& pj : tj["pieces"]) {
      CheckpointPiece p;
      ASSIGN_OR_RETURN(p.start, GetInt(pj, "start", w));
      ASSIGN_OR_RETURN(p.count, GetInt(pj, "count", w));
      if (pj.contains("source")) {
        ASSIGN_OR_RETURN(p.source, GetString(pj, "source", w));
        ASSIGN_OR_RETURN(p.offset, GetInt(pj, "offset", w));
        auto src = m.sources.find(p.source);
        if (src == m.sources.end()) return DataLoss(w, ": piece source \"", p.source, "\" is not in \"sources\"");
        int64_t nbytes = 0, end = 0;
        if (p.offset < 0 || p.count < 0 || !CheckedMul(p.count, static_cast<int64_t>(DTypeSize(t.dtype)), &nbytes) ||
            !CheckedAdd(p.offset, nbytes, &end) || end > src->second.bytes)
          return DataLoss(w, ": piece bytes at offset ", p.offset, " lie outside source \"", p.source, "\" (",
                          src->second.bytes, " bytes)");
      } else {
        ASSIGN_OR_RETURN(p.file, GetString(pj, "file", w));
        ASSIGN_OR_RETURN(p.key, GetString(pj, "key", w));
        if (!m.files.count(p.file)) return DataLoss(w, ": piece file \"", p.file, "\" is not in \"files\"");
      }
      t.pieces.push_back(std::move(p));
    }
    RETURN_IF_ERROR(CheckTiling(t, path));
    m.tensors.push_back(std::move(t));
  }
  return m;
}

// ---------------------------------------------------------------------------------------------
// Writer

CheckpointWriter::CheckpointWriter(std::string dir, std::string tag, int rank, int world_size)
    : dir_(std::move(dir)), tag_(std::move(tag)), rank_(rank), world_size_(world_size) {
  if (KillSpec().rank == rank_) kill_at_ = KillSpec().at;
}

void CheckpointWriter::CrashPoint(const char* name) const {
  if (kill_at_ == 0) return;
  const int64_t n = ++crash_points_passed;
  if (n != kill_at_) return;
  std::fprintf(stderr, "DSC_DEBUG_KILL_IN_SAVE: rank %d killed at crash point %lld (%s) of saving %s\n", rank_,
               static_cast<long long>(n), name, tag_.c_str());
  std::fflush(stderr);
  std::raise(SIGKILL);
}

DurableWriteProbe CheckpointWriter::CrashProbe(const char* half, const char* synced) const {
  if (kill_at_ == 0) return nullptr;
  return [this, half, synced](DurableWriteStep step) {
    CrashPoint(step == DurableWriteStep::kHalfWritten ? half : synced);
  };
}

std::string CheckpointWriter::tmp_dir() const { return Join(dir_, kTmpPrefix + tag_); }
std::string CheckpointWriter::final_dir() const { return Join(dir_, tag_); }

Status CheckpointWriter::AddTensor(const std::string& name, TensorKind kind, DType dtype,
                                   const std::vector<int64_t>& shape, const void* data) {
  ASSIGN_OR_RETURN(int64_t numel, NumElements(shape));
  return AddShard(name, kind, dtype, shape, 0, numel, data);
}

Status CheckpointWriter::AddShard(const std::string& name, TensorKind kind, DType dtype,
                                  const std::vector<int64_t>& shape, int64_t start, int64_t count,
                                  const void* data) {
  return AddPiece({name, kind, dtype, shape, start, count, data});
}

Status CheckpointWriter::AddPiece(Piece piece) {
  const std::string w = StrCat("checkpoint ", tag_, " rank ", rank_, ": tensor \"", piece.name, "\"");
  if (piece.name.empty() || piece.name == "__metadata__") return InvalidArgument(w, ": bad name");
  RETURN_IF_ERROR(SafetensorsDTypeName(piece.dtype).status().WithContext(w));
  for (int64_t d : piece.shape)
    if (d < 0) return InvalidArgument(w, ": negative dim in ", DimsToString(piece.shape));
  ASSIGN_OR_RETURN(int64_t numel, NumElements(piece.shape));
  const int64_t start = piece.start, count = piece.count;
  if (start < 0 || count < 0 || start > numel || count > numel - start)
    return InvalidArgument(w, ": range [", start, ", +", count, ") is outside its ", numel, " elements");
  for (const Piece& p : pieces_)
    if (p.name == piece.name) return InvalidArgument(w, ": added twice by this rank");
  if (count == 0 && numel > 0) return Status::OK();
  if (count > 0 && piece.data == nullptr && !piece.region) return InvalidArgument(w, ": no data");
  pieces_.push_back(std::move(piece));
  return Status::OK();
}

Status CheckpointWriter::AddFileRegion(const std::string& name, TensorKind kind, DType dtype,
                                      const std::vector<int64_t>& shape, const FileRegion& region) {
  const std::string w = StrCat("checkpoint ", tag_, " rank ", rank_, ": tensor \"", name, "\"");
  if (rank_ != 0) return InvalidArgument(w, ": only rank 0 adds file regions");
  if (!fs::path(region.path).is_absolute() || region.offset < 0)
    return InvalidArgument(w, ": file region ", region.path, " at ", region.offset, " is not an absolute path and offset");
  ASSIGN_OR_RETURN(int64_t numel, NumElements(shape));
  return AddPiece({name, kind, dtype, shape, 0, numel, nullptr, region});
}

Status CheckpointWriter::WriteRankFile() const {
  SafetensorsWriter st;
  st.set_block_bytes(block_bytes_);
  ojson pieces = ojson::array();
  for (const Piece& p : pieces_) {
    if (p.region) continue;  // in the manifest only (Publish)
    const bool whole = p.start == 0 && p.count == *NumElements(p.shape);
    RETURN_IF_ERROR(st.Add(p.name, p.dtype, whole ? p.shape : std::vector<int64_t>{p.count}, p.data));
    ojson pj = TensorHeadJson(p.name, p.kind, p.dtype, p.shape);
    pj["key"] = p.name;
    pj["start"] = p.start;
    pj["count"] = p.count;
    pieces.push_back(std::move(pj));
  }
  st.SetMetadata("format", "pt");  // what Hugging Face tools expect
  st.SetMetadata("dsc.tag", tag_);
  st.SetMetadata("dsc.rank", std::to_string(rank_));
  st.SetMetadata("dsc.world_size", std::to_string(world_size_));
  st.SetMetadata("dsc.pieces", pieces.dump());
  return st.Write(Join(tmp_dir(), RankFileName(rank_)), CrashProbe("rank-half", "rank-synced"));
}

// Rank 0's file-region pieces into the manifest, with one source per file: its size and block
// checksums, read one block at a time (a model's weights are not held for it).
Status CheckpointWriter::AddSources(CheckpointManifest* m, std::map<std::string, size_t>* index) const {
  std::map<std::string, std::string> id_of;  // path -> source id
  for (const Piece& p : pieces_) {
    if (!p.region) continue;
    const std::string& path = p.region->path;
    auto [it, fresh] = id_of.emplace(path, StrCat("source", id_of.size()));
    if (fresh) {
      const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
      if (fd < 0) return ErrnoStatus("opening the tensors' source", path, errno);
      CheckpointSource src{path, 0, block_bytes_, {}};
      struct stat sb;
      StatusOr<std::vector<uint32_t>> crcs = ::fstat(fd, &sb) != 0 ? ErrnoStatus("reading the size of", path, errno)
                                                                  : ChecksumBlocks(fd, path, 0, sb.st_size, block_bytes_);
      ::close(fd);
      if (!crcs.ok()) return crcs.status();
      src.bytes = static_cast<int64_t>(sb.st_size);
      src.block_crcs = std::move(*crcs);
      m->sources[it->second] = std::move(src);
    }
    const int64_t nbytes = p.count * static_cast<int64_t>(DTypeSize(p.dtype));
    if (p.region->offset + nbytes > m->sources[it->second].bytes)
      return FailedPrecondition("checkpoint ", tag_, ": tensor \"", p.name, "\" lies beyond the end of ", path);
    if (!index->emplace(p.name, m->tensors.size()).second)
      return FailedPrecondition("checkpoint ", tag_, ": tensor \"", p.name, "\" is both in a rank file and in ", path);
    CheckpointTensor t;
    t.name = p.name;
    t.kind = p.kind;
    t.dtype = p.dtype;
    t.shape = p.shape;
    t.numel = p.count;
    t.pieces.push_back({"", "", 0, p.count, it->second, p.region->offset});
    m->tensors.push_back(std::move(t));
  }
  return Status::OK();
}

Status CheckpointWriter::Publish(const CheckpointMeta& meta) const {
  const std::string tmp = tmp_dir();
  CheckpointManifest m;
  m.tag = tag_;
  m.world_size = world_size_;
  m.meta = meta;
  std::map<std::string, size_t> index;  // name -> position in m.tensors
  for (int r = 0; r < world_size_; ++r) {
    const std::string file = RankFileName(r);
    ASSIGN_OR_RETURN(SafetensorsFile f, SafetensorsFile::Open(Join(tmp, file)));
    m.files[file] = {f.file_bytes(), Crc32c(f.raw_header().data(), f.raw_header().size())};
    auto it = f.metadata().find("dsc.pieces");
    if (it == f.metadata().end()) return DataLoss(f.path(), ": no dsc.pieces in __metadata__");
    const nlohmann::json pieces = nlohmann::json::parse(it->second, nullptr, false);
    if (pieces.is_discarded() || !pieces.is_array()) return DataLoss(f.path(), ": dsc.pieces is not a JSON array");
    for (const auto& pj : pieces) {
      CheckpointTensor head;
      RETURN_IF_ERROR(ParseTensorHead(pj, &head, f.path()));
      CheckpointPiece p{file, "", 0, 0};
      ASSIGN_OR_RETURN(p.key, GetString(pj, "key", f.path()));
      ASSIGN_OR_RETURN(p.start, GetInt(pj, "start", f.path()));
      ASSIGN_OR_RETURN(p.count, GetInt(pj, "count", f.path()));
      auto [at, inserted] = index.emplace(head.name, m.tensors.size());
      if (inserted) {
        m.tensors.push_back(head);
      } else {
        const CheckpointTensor& t = m.tensors[at->second];
        if (t.kind != head.kind || t.dtype != head.dtype || t.shape != head.shape)
          return FailedPrecondition("checkpoint ", tag_, ": tensor \"", head.name, "\" is ", TensorKindName(head.kind),
                                    " ", *SafetensorsDTypeName(head.dtype), " ", DimsToString(head.shape), " in ",
                                    file, " but ", TensorKindName(t.kind), " ", *SafetensorsDTypeName(t.dtype), " ",
                                    DimsToString(t.shape), " in ", t.pieces.front().file);
      }
      CheckpointTensor& t = m.tensors[at->second];
      RETURN_IF_ERROR(CheckPieceEntry(f, t, p));
      t.pieces.push_back(std::move(p));
    }
  }
  RETURN_IF_ERROR(AddSources(&m, &index));
  for (CheckpointTensor& t : m.tensors) {
    Status st = CheckTiling(t, StrCat("checkpoint ", tag_));
    if (!st.ok()) return Status(StatusCode::kFailedPrecondition, st.message() + " (the ranks' shards do not add up)");
  }

  // Manifest, then the folder into place, then `latest`.
  RETURN_IF_ERROR(
      WriteFileDurably(Join(tmp, kManifestName), SerializeManifest(m), CrashProbe("manifest-half", "manifest-synced")));
  CrashPoint("manifest-done");
  const std::string final_path = final_dir();
  struct stat sb;
  if (::lstat(final_path.c_str(), &sb) == 0) {
    // Replacing a checkpoint of the same tag: swap atomically, so TAG is complete at every instant.
    if (::renameat2(AT_FDCWD, tmp.c_str(), AT_FDCWD, final_path.c_str(), RENAME_EXCHANGE) != 0)
      return ErrnoStatus(StrCat("swapping ", tmp, " with the existing"), final_path, errno);
    CrashPoint("renamed");
    std::error_code ec;
    fs::remove_all(tmp, ec);  // the old checkpoint, now under .tmp-TAG (ignored if left behind)
  } else if (::rename(tmp.c_str(), final_path.c_str()) != 0) {
    return ErrnoStatus(StrCat("renaming ", tmp, " to"), final_path, errno);
  } else {
    CrashPoint("renamed");
  }
  RETURN_IF_ERROR(FsyncDir(dir_));
  RETURN_IF_ERROR(WriteFileDurably(Join(dir_, "latest"), tag_, CrashProbe("latest-half", "latest-synced")));
  CrashPoint("latest-moved");
  return Status::OK();
}

Status CheckpointWriter::Commit(const CheckpointMeta& meta, const AgreeFn& agree) {
  const std::string what = StrCat("saving checkpoint ", final_dir(), " (rank ", rank_, ")");
  const bool tag_ok = ValidateTag(tag_).ok();
  // Combines this rank's result with the ranks' agreement (a local error wins); on failure rank 0
  // removes the temporary folder: nothing complete lives there.
  auto phase = [&](Status local) -> Status {
    Status all = agree(local.ok());
    Status st = !local.ok() ? local.WithContext(what) : !all.ok() ? all.WithContext(what) : Status::OK();
    if (!st.ok() && rank_ == 0 && tag_ok) {
      std::error_code ec;
      fs::remove_all(tmp_dir(), ec);
    }
    return st;
  };
  // (1) A fresh temporary folder.
  Status local = ValidateTag(tag_);
  if (local.ok() && (rank_ < 0 || rank_ >= world_size_))
    local = InvalidArgument("rank ", rank_, " is not in a world of ", world_size_);
  if (local.ok() && rank_ == 0) {
    std::error_code ec;
    fs::create_directories(dir_, ec);
    if (ec) local = ErrnoStatus("creating folder", dir_, ec.value());
    if (local.ok()) {
      fs::remove_all(tmp_dir(), ec);
      if (ec) local = ErrnoStatus("removing the stale", tmp_dir(), ec.value());
    }
    if (local.ok()) local = MakeDir(tmp_dir());
  }
  if (local.ok() && !KillSpec().error.empty()) local = InvalidArgument(KillSpec().error);
  RETURN_IF_ERROR(phase(local));
  CrashPoint("tmp-created");
  // (2) Every rank's file.
  Status written = WriteRankFile();
  if (written.ok()) CrashPoint("rank-done");
  RETURN_IF_ERROR(phase(written));
  // (3) Rank 0 publishes.
  return phase(rank_ == 0 ? Publish(meta) : Status::OK());
}

// ---------------------------------------------------------------------------------------------
// Reader

struct Checkpoint::State {
  std::string dir;
  CheckpointManifest manifest;
  std::map<std::string, size_t> by_name;
  std::mutex mu;
  std::map<std::string, std::unique_ptr<SafetensorsFile>> files;  // opened and checked lazily
  std::map<std::string, int> source_fds;                          // by source id, opened lazily

  ~State() {
    for (const auto& [id, fd] : source_fds) ::close(fd);
  }

  // The open file of source `id`, whose size must still be the recorded one.
  StatusOr<int> Source(const std::string& id) {
    std::lock_guard<std::mutex> lock(mu);
    if (auto it = source_fds.find(id); it != source_fds.end()) return it->second;
    const CheckpointSource& src = manifest.sources.at(id);
    const int fd = ::open(src.path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return SourceMissing(src, errno);
    struct stat sb;
    if (::fstat(fd, &sb) != 0) {
      const int err = errno;
      ::close(fd);
      return SourceMissing(src, err);
    }
    if (sb.st_size != src.bytes) {
      ::close(fd);
      return SourceChanged(src, sb.st_size);
    }
    source_fds[id] = fd;
    return fd;
  }

  Status SourceMissing(const CheckpointSource& src, int err) const {
    return FailedPrecondition(dir, ": tensors of this checkpoint are the bytes of ", src.path, ", which cannot be opened (",
                              std::strerror(err), "): the initial values refer to the model dscompile read; keep it "
                              "where it was, or compile the plan again");
  }
  Status SourceChanged(const CheckpointSource& src, int64_t bytes) const {
    return FailedPrecondition(dir, ": tensors of this checkpoint are the bytes of ", src.path, ", which has changed (",
                              bytes, " bytes, ", src.bytes, " when the checkpoint was written): compile the plan again");
  }

  StatusOr<const SafetensorsFile*> File(const std::string& name) {
    std::lock_guard<std::mutex> lock(mu);
    auto it = files.find(name);
    if (it != files.end()) return it->second.get();
    ASSIGN_OR_RETURN(SafetensorsFile f, SafetensorsFile::Open(Join(dir, name)));
    const CheckpointFileInfo& info = manifest.files.at(name);
    if (f.file_bytes() != info.bytes)
      return DataLoss(f.path(), ": ", f.file_bytes(), " bytes, the manifest says ", info.bytes, " (truncated?)");
    const uint32_t crc = Crc32c(f.raw_header().data(), f.raw_header().size());
    if (crc != info.header_crc32c)
      return DataLoss(f.path(), ": header checksum mismatch (crc32c ", Crc32cHex(crc), ", the manifest says ",
                      Crc32cHex(info.header_crc32c), "): the file is corrupted");
    for (const CheckpointTensor& t : manifest.tensors)
      for (const CheckpointPiece& p : t.pieces)
        if (p.file == name) RETURN_IF_ERROR(CheckPieceEntry(f, t, p));
    auto owned = std::make_unique<SafetensorsFile>(std::move(f));
    const SafetensorsFile* ptr = owned.get();
    files.emplace(name, std::move(owned));
    return ptr;
  }
};

Checkpoint::Checkpoint(std::unique_ptr<State> s) : s_(std::move(s)) {}
Checkpoint::Checkpoint(Checkpoint&&) noexcept = default;
Checkpoint& Checkpoint::operator=(Checkpoint&&) noexcept = default;
Checkpoint::~Checkpoint() = default;

const std::string& Checkpoint::dir() const { return s_->dir; }
const CheckpointManifest& Checkpoint::manifest() const { return s_->manifest; }

StatusOr<Checkpoint> Checkpoint::Open(const std::string& dir) {
  const std::string base = BaseName(dir);
  if (base.rfind(kTmpPrefix, 0) == 0)
    return FailedPrecondition(dir, " is an unfinished save (a ", kTmpPrefix, "* folder) and is never loaded");
  auto s = std::make_unique<State>();
  s->dir = dir;
  const std::string mpath = Join(dir, kManifestName);
  ASSIGN_OR_RETURN(std::string bytes, ReadWholeFile(mpath));
  ASSIGN_OR_RETURN(s->manifest, ParseManifest(bytes, mpath));
  for (const auto& [name, info] : s->manifest.files) {
    const std::string path = Join(dir, name);
    struct stat sb;
    if (::stat(path.c_str(), &sb) != 0) return ErrnoStatus("checkpoint file", path, errno);
    if (sb.st_size != info.bytes)
      return DataLoss(path, ": ", sb.st_size, " bytes, the manifest says ", info.bytes, " (truncated?)");
  }
  for (const auto& [id, src] : s->manifest.sources) {
    struct stat sb;
    if (::stat(src.path.c_str(), &sb) != 0) return s->SourceMissing(src, errno);
    if (sb.st_size != src.bytes) return s->SourceChanged(src, sb.st_size);
  }
  for (size_t i = 0; i < s->manifest.tensors.size(); ++i) s->by_name[s->manifest.tensors[i].name] = i;
  return Checkpoint(std::move(s));
}

Status Checkpoint::ReadRange(const std::string& name, int64_t start, int64_t count, void* dst) const {
  auto it = s_->by_name.find(name);
  if (it == s_->by_name.end()) return NotFound("checkpoint ", s_->dir, " has no tensor \"", name, "\"");
  const CheckpointTensor& t = s_->manifest.tensors[it->second];
  if (start < 0 || count < 0 || start > t.numel || count > t.numel - start)
    return OutOfRange("checkpoint ", s_->dir, ": tensor \"", name, "\": range [", start, ", +", count,
                      ") is outside its ", t.numel, " elements");
  const int64_t es = static_cast<int64_t>(DTypeSize(t.dtype));
  const int64_t end = start + count;
  auto* out = static_cast<uint8_t*>(dst);
  // The first piece that ends after `start`.
  auto p = std::upper_bound(t.pieces.begin(), t.pieces.end(), start,
                            [](int64_t v, const CheckpointPiece& q) { return v < q.start + q.count; });
  for (; p != t.pieces.end() && p->start < end; ++p) {
    const int64_t lo = std::max(start, p->start), hi = std::min(end, p->start + p->count);
    if (hi <= lo) continue;
    if (!p->source.empty()) {
      ASSIGN_OR_RETURN(const int fd, s_->Source(p->source));
      const CheckpointSource& src = s_->manifest.sources.at(p->source);
      RETURN_IF_ERROR(ReadCheckedBlocks(fd, src.path, src.Region(), p->offset + (lo - p->start) * es, (hi - lo) * es,
                                        out + (lo - start) * es, StrCat("tensor \"", name, "\"")));
      continue;
    }
    ASSIGN_OR_RETURN(const SafetensorsFile* f, s_->File(p->file));
    RETURN_IF_ERROR(f->ReadBytes(*f->Find(p->key), (lo - p->start) * es, (hi - lo) * es, out + (lo - start) * es));
  }
  return Status::OK();
}

StatusOr<Tensor> Checkpoint::ReadTensor(const std::string& name) const {
  auto it = s_->by_name.find(name);
  if (it == s_->by_name.end()) return NotFound("checkpoint ", s_->dir, " has no tensor \"", name, "\"");
  const CheckpointTensor& t = s_->manifest.tensors[it->second];
  Tensor out(t.dtype, t.shape);
  if (t.numel > 0) RETURN_IF_ERROR(ReadRange(name, 0, t.numel, out.raw()));
  return out;
}

Status Checkpoint::VerifyAll() const {
  for (const auto& [name, info] : s_->manifest.files) {
    ASSIGN_OR_RETURN(const SafetensorsFile* f, s_->File(name));
    RETURN_IF_ERROR(f->VerifyData());
  }
  for (const auto& [id, src] : s_->manifest.sources) {
    ASSIGN_OR_RETURN(const int fd, s_->Source(id));
    RETURN_IF_ERROR(VerifyCheckedBlocks(fd, src.path, src.Region(), "verifying a source of the checkpoint"));
  }
  return Status::OK();
}

// ---------------------------------------------------------------------------------------------
// Resolution

namespace {
// The step of a complete checkpoint folder (manifest present and intact), or an error.
StatusOr<int64_t> CompleteStep(const std::string& dir) {
  const std::string mpath = Join(dir, kManifestName);
  ASSIGN_OR_RETURN(std::string bytes, ReadWholeFile(mpath));
  ASSIGN_OR_RETURN(CheckpointManifest m, ParseManifest(bytes, mpath));
  return m.meta.step;
}
}  // namespace

StatusOr<std::string> ResolveCheckpoint(const std::string& path, std::string* note) {
  const std::string base = BaseName(path);
  if (base.rfind(kTmpPrefix, 0) == 0)
    return FailedPrecondition(path, " is an unfinished save (a ", kTmpPrefix, "* folder) and is never loaded");
  std::error_code ec;
  if (fs::exists(Join(path, kManifestName), ec)) return path;
  if (!fs::is_directory(path, ec)) return NotFound("no checkpoint folder ", path);

  std::string why;
  const std::string latest_path = Join(path, "latest");
  if (fs::exists(latest_path, ec)) {
    auto latest = ReadWholeFile(latest_path);
    if (latest.ok()) {
      std::string tag = *latest;
      while (!tag.empty() && std::isspace(static_cast<unsigned char>(tag.back()))) tag.pop_back();
      if (ValidateTag(tag).ok()) {
        auto step = CompleteStep(Join(path, tag));
        if (step.ok()) return Join(path, tag);
        why = StrCat(latest_path, " names \"", tag, "\", which is not a complete checkpoint: ", step.status().message());
      } else {
        why = StrCat(latest_path, " holds no valid tag");
      }
    } else {
      why = latest.status().message();
    }
  } else {
    why = StrCat("there is no ", latest_path);
  }
  // The complete checkpoint with the highest step.
  std::string best;
  int64_t best_step = -1;
  for (const auto& entry : fs::directory_iterator(path, ec)) {
    const std::string name = entry.path().filename().string();
    if (name.empty() || name[0] == '.' || !entry.is_directory(ec)) continue;
    auto step = CompleteStep(entry.path().string());
    if (step.ok() && (*step > best_step || (*step == best_step && name > fs::path(best).filename().string()))) {
      best_step = *step;
      best = entry.path().string();
    }
  }
  if (ec) return ErrnoStatus("listing", path, ec.value());
  if (best.empty()) return NotFound("no complete checkpoint in ", path, " (", why, ")");
  if (note != nullptr) *note = StrCat(why, "; using ", best, ", the complete checkpoint with the highest step");
  return best;
}

}  // namespace dsc
