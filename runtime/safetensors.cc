// safetensors reading and writing, CRC32C, durable writes (see safetensors.h).
#include "runtime/safetensors.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <limits>
#include <nlohmann/json.hpp>
#include <thread>
#include <utility>

namespace dsc {
namespace {

// ---- CRC32C: slicing-by-8 tables (reflected polynomial 0x82F63B78), SSE4.2 when present ----

struct Crc32cTables {
  uint32_t t[8][256];
};

constexpr Crc32cTables MakeCrc32cTables() {
  Crc32cTables tables{};
  for (uint32_t i = 0; i < 256; ++i) {
    uint32_t c = i;
    for (int k = 0; k < 8; ++k) c = (c & 1) ? (c >> 1) ^ 0x82F63B78u : c >> 1;
    tables.t[0][i] = c;
  }
  // t[k][i]: the CRC of byte i followed by k zero bytes.
  for (int k = 1; k < 8; ++k)
    for (int i = 0; i < 256; ++i)
      tables.t[k][i] = (tables.t[k - 1][i] >> 8) ^ tables.t[0][tables.t[k - 1][i] & 0xff];
  return tables;
}
constexpr Crc32cTables kCrc32c = MakeCrc32cTables();

// `crc` and the result are in the inverted (internal) form.
uint32_t Crc32cTable(const uint8_t* p, size_t n, uint32_t crc) {
  const auto& t = kCrc32c.t;
  static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "slicing-by-8 assumes a little-endian host");
  for (; n >= 8; p += 8, n -= 8) {
    uint64_t v;
    std::memcpy(&v, p, 8);
    v ^= crc;
    crc = t[7][v & 0xff] ^ t[6][(v >> 8) & 0xff] ^ t[5][(v >> 16) & 0xff] ^ t[4][(v >> 24) & 0xff] ^
          t[3][(v >> 32) & 0xff] ^ t[2][(v >> 40) & 0xff] ^ t[1][(v >> 48) & 0xff] ^ t[0][v >> 56];
  }
  for (; n > 0; ++p, --n) crc = t[0][(crc ^ *p) & 0xff] ^ (crc >> 8);
  return crc;
}

#if defined(__x86_64__)
__attribute__((target("sse4.2"))) uint32_t Crc32cSse42(const uint8_t* p, size_t n, uint32_t crc) {
  uint64_t c = crc;
  for (; n >= 8; p += 8, n -= 8) {
    uint64_t v;
    std::memcpy(&v, p, 8);
    c = __builtin_ia32_crc32di(c, v);
  }
  uint32_t c32 = static_cast<uint32_t>(c);
  for (; n > 0; ++p, --n) c32 = __builtin_ia32_crc32qi(c32, *p);
  return c32;
}
bool HaveSse42() {
  static const bool have = [] {
    __builtin_cpu_init();  // may run before libgcc's constructor when called from a static initializer
    return __builtin_cpu_supports("sse4.2") != 0;
  }();
  return have;
}
#endif

// ---- POSIX helpers: every error names the path and the errno ----

Status ErrnoError(const std::string& what, const std::string& path, int err) {
  const StatusCode code = (err == ENOENT) ? StatusCode::kNotFound : StatusCode::kFailedPrecondition;
  return Status(code, StrCat(what, " ", path, ": ", std::strerror(err), " (errno ", err, ")"));
}

class Fd {
 public:
  explicit Fd(int fd = -1) : fd_(fd) {}
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  ~Fd() {
    if (fd_ >= 0) ::close(fd_);
  }
  int get() const { return fd_; }
  int release() { return std::exchange(fd_, -1); }

 private:
  int fd_;
};

Status WriteAll(int fd, const void* data, size_t n, const std::string& path) {
  const auto* p = static_cast<const uint8_t*>(data);
  while (n > 0) {
    const ssize_t w = ::write(fd, p, std::min<size_t>(n, size_t{1} << 30));
    if (w < 0) {
      if (errno == EINTR) continue;
      return ErrnoError("writing", path, errno);
    }
    p += w;
    n -= static_cast<size_t>(w);
  }
  return Status::OK();
}

Status PreadAll(int fd, void* dst, int64_t n, int64_t offset, const std::string& path) {
  auto* p = static_cast<uint8_t*>(dst);
  while (n > 0) {
    const ssize_t r = ::pread(fd, p, static_cast<size_t>(std::min<int64_t>(n, int64_t{1} << 30)), offset);
    if (r < 0) {
      if (errno == EINTR) continue;
      return ErrnoError("reading", path, errno);
    }
    if (r == 0) return DataLoss(path, ": unexpected end of file at byte ", offset, " (truncated?)");
    p += r;
    n -= r;
    offset += r;
  }
  return Status::OK();
}

std::string ParentDir(const std::string& path) {
  std::string parent = std::filesystem::path(path).parent_path().string();
  return parent.empty() ? "." : parent;
}

// Writes the chunks into path.tmp, fsyncs, renames to path, fsyncs the folder; removes path.tmp on
// failure. The probe (if any) sees the steps in between.
Status WriteDurably(const std::string& path, const std::vector<std::pair<const void*, size_t>>& chunks,
                    const DurableWriteProbe& probe) {
  const std::string tmp = path + ".tmp";
  Fd fd(::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
  if (fd.get() < 0) return ErrnoError("creating", tmp, errno);
  Status st = Status::OK();
  size_t total = 0, done = 0;
  for (const auto& c : chunks) total += c.second;
  bool probed = !probe;
  for (const auto& [data, n] : chunks) {
    const auto* p = static_cast<const uint8_t*>(data);
    const bool probe_here = !probed && done + n >= total / 2;
    const size_t first = probe_here ? total / 2 - done : n;
    st = WriteAll(fd.get(), p, first, tmp);
    if (st.ok() && probe_here) {
      probed = true;
      probe(DurableWriteStep::kHalfWritten);
      st = WriteAll(fd.get(), p + first, n - first, tmp);
    }
    if (!st.ok()) break;
    done += n;
  }
  if (st.ok() && ::fsync(fd.get()) != 0) st = ErrnoError("fsync of", tmp, errno);
  if (st.ok() && ::close(fd.release()) != 0) st = ErrnoError("closing", tmp, errno);
  if (st.ok() && probe) probe(DurableWriteStep::kTempSynced);
  if (st.ok() && ::rename(tmp.c_str(), path.c_str()) != 0) st = ErrnoError(StrCat("renaming ", tmp, " to"), path, errno);
  if (!st.ok()) {
    ::unlink(tmp.c_str());
    return st;
  }
  return FsyncDir(ParentDir(path));
}

StatusOr<int64_t> JsonInt(const nlohmann::json& v, const std::string& what) {
  if (v.is_number_unsigned() && v.get<uint64_t>() <= static_cast<uint64_t>(std::numeric_limits<int64_t>::max()))
    return static_cast<int64_t>(v.get<uint64_t>());
  return DataLoss(what, " must be a non-negative integer, got ", v.dump());
}

}  // namespace

uint32_t Crc32c(const void* data, size_t n, uint32_t crc) {
  const auto* p = static_cast<const uint8_t*>(data);
#if defined(__x86_64__)
  if (HaveSse42()) return ~Crc32cSse42(p, n, ~crc);
#endif
  return ~Crc32cTable(p, n, ~crc);
}

uint32_t Crc32cPortable(const void* data, size_t n, uint32_t crc) {
  return ~Crc32cTable(static_cast<const uint8_t*>(data), n, ~crc);
}

std::string Crc32cHex(uint32_t crc) {
  char buf[9];
  std::snprintf(buf, sizeof buf, "%08x", crc);
  return buf;
}

namespace {
struct StDType {
  const char* name;
  DType dtype;
};
constexpr StDType kStDTypes[] = {{"F32", DType::kFloat32}, {"F16", DType::kFloat16}, {"BF16", DType::kBFloat16},
                                 {"F64", DType::kFloat64}, {"I64", DType::kInt64},   {"I32", DType::kInt32},
                                 {"I16", DType::kInt16},   {"I8", DType::kInt8},     {"U8", DType::kUInt8},
                                 {"BOOL", DType::kBool}};

StatusOr<uint32_t> ParseHex8(const std::string& s, size_t at) {
  uint32_t v = 0;
  for (size_t i = at; i < at + 8; ++i) {
    const char c = s[i];
    int d;
    if (c >= '0' && c <= '9') d = c - '0';
    else if (c >= 'a' && c <= 'f') d = c - 'a' + 10;
    else return DataLoss("bad hex digit '", c, "'");
    v = (v << 4) | static_cast<uint32_t>(d);
  }
  return v;
}
}  // namespace

StatusOr<std::string> SafetensorsDTypeName(DType dtype) {
  for (const auto& d : kStDTypes)
    if (d.dtype == dtype) return std::string(d.name);
  return InvalidArgument("dtype ", DTypeName(dtype), " has no safetensors name");
}

StatusOr<DType> DTypeFromSafetensorsName(const std::string& name) {
  for (const auto& d : kStDTypes)
    if (name == d.name) return d.dtype;
  return DataLoss("unsupported safetensors dtype \"", name, "\"");
}

Status FsyncDir(const std::string& dir) {
  Fd fd(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (fd.get() < 0) return ErrnoError("opening folder", dir, errno);
  if (::fsync(fd.get()) != 0) return ErrnoError("fsync of folder", dir, errno);
  return Status::OK();
}

Status WriteFileDurably(const std::string& path, const std::string& bytes, const DurableWriteProbe& probe) {
  return WriteDurably(path, {{bytes.data(), bytes.size()}}, probe);
}

StatusOr<std::string> ReadWholeFile(const std::string& path) {
  Fd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (fd.get() < 0) return ErrnoError("opening", path, errno);
  struct stat st;
  if (::fstat(fd.get(), &st) != 0) return ErrnoError("stat of", path, errno);
  std::string bytes(static_cast<size_t>(st.st_size), '\0');
  RETURN_IF_ERROR(PreadAll(fd.get(), bytes.data(), st.st_size, 0, path));
  return bytes;
}

// ---------------------------------------------------------------------------------------------
// Writer

Status SafetensorsWriter::Add(const std::string& name, DType dtype, const std::vector<int64_t>& shape,
                              const void* data) {
  if (name.empty() || name == "__metadata__") return InvalidArgument("safetensors: bad tensor name \"", name, "\"");
  for (const Item& it : items_)
    if (it.entry.name == name) return InvalidArgument("safetensors: tensor \"", name, "\" added twice");
  RETURN_IF_ERROR(SafetensorsDTypeName(dtype).status());
  for (int64_t d : shape)
    if (d < 0) return InvalidArgument("safetensors: tensor \"", name, "\" has a negative dim ", DimsToString(shape));
  ASSIGN_OR_RETURN(const int64_t nbytes, NumBytes(shape, dtype));
  SafetensorsEntry e;
  e.name = name;
  e.dtype = dtype;
  e.shape = shape;
  ASSIGN_OR_RETURN(e.numel, NumElements(shape));
  e.begin = items_.empty() ? 0 : items_.back().entry.end;
  e.end = e.begin + nbytes;
  if (nbytes > 0 && data == nullptr) return InvalidArgument("safetensors: tensor \"", name, "\" has no data");
  items_.push_back({std::move(e), data});
  return Status::OK();
}

StatusOr<std::string> SafetensorsWriter::Header() const {
  if (block_bytes_ <= 0) return InvalidArgument("safetensors: block size must be positive");
  // Block checksums over the data section as it will be written (tensor after tensor).
  const int64_t data_bytes = items_.empty() ? 0 : items_.back().entry.end;
  std::string blocks;
  blocks.reserve(static_cast<size_t>((data_bytes + block_bytes_ - 1) / block_bytes_) * 8);
  uint32_t crc = 0;
  int64_t in_block = 0;
  for (const Item& it : items_) {
    const auto* p = static_cast<const uint8_t*>(it.data);
    int64_t left = it.entry.end - it.entry.begin;
    while (left > 0) {
      const int64_t n = std::min(left, block_bytes_ - in_block);
      crc = Crc32c(p, static_cast<size_t>(n), crc);
      p += n;
      left -= n;
      in_block += n;
      if (in_block == block_bytes_) {
        blocks += Crc32cHex(crc);
        crc = 0;
        in_block = 0;
      }
    }
  }
  if (in_block > 0) blocks += Crc32cHex(crc);

  nlohmann::ordered_json header = nlohmann::ordered_json::object();
  nlohmann::ordered_json meta = nlohmann::ordered_json::object();
  for (const auto& [k, v] : metadata_) meta[k] = v;
  meta["dsc.crc32c.block_bytes"] = std::to_string(block_bytes_);
  meta["dsc.crc32c.blocks"] = blocks;
  header["__metadata__"] = std::move(meta);
  for (const Item& it : items_) {
    header[it.entry.name] = {{"dtype", *SafetensorsDTypeName(it.entry.dtype)},
                             {"shape", it.entry.shape},
                             {"data_offsets", {it.entry.begin, it.entry.end}}};
  }
  std::string json = header.dump();
  json.append((8 - json.size() % 8) % 8, ' ');
  std::string out(8, '\0');
  uint64_t n = json.size();
  for (int i = 0; i < 8; ++i) out[static_cast<size_t>(i)] = static_cast<char>((n >> (8 * i)) & 0xff);
  return out + json;
}

Status SafetensorsWriter::Write(const std::string& path, const DurableWriteProbe& probe) const {
  ASSIGN_OR_RETURN(const std::string header, Header());
  std::vector<std::pair<const void*, size_t>> chunks = {{header.data(), header.size()}};
  for (const Item& it : items_) chunks.emplace_back(it.data, static_cast<size_t>(it.entry.end - it.entry.begin));
  return WriteDurably(path, chunks, probe);
}

// ---------------------------------------------------------------------------------------------
// Reader

SafetensorsFile::SafetensorsFile(SafetensorsFile&& o) noexcept { *this = std::move(o); }

SafetensorsFile& SafetensorsFile::operator=(SafetensorsFile&& o) noexcept {
  if (this != &o) {
    if (fd_ >= 0) ::close(fd_);
    path_ = std::move(o.path_);
    fd_ = std::exchange(o.fd_, -1);
    raw_header_ = std::move(o.raw_header_);
    data_start_ = o.data_start_;
    file_bytes_ = o.file_bytes_;
    entries_ = std::move(o.entries_);
    by_name_ = std::move(o.by_name_);
    metadata_ = std::move(o.metadata_);
    block_bytes_ = o.block_bytes_;
    block_crcs_ = std::move(o.block_crcs_);
  }
  return *this;
}

SafetensorsFile::~SafetensorsFile() {
  if (fd_ >= 0) ::close(fd_);
}

StatusOr<SafetensorsFile> SafetensorsFile::Open(const std::string& path) {
  SafetensorsFile f;
  f.path_ = path;
  f.fd_ = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (f.fd_ < 0) return ErrnoError("opening", path, errno);
  struct stat st;
  if (::fstat(f.fd_, &st) != 0) return ErrnoError("stat of", path, errno);
  f.file_bytes_ = st.st_size;
  if (f.file_bytes_ < 8) return DataLoss(path, ": ", f.file_bytes_, " bytes is too short for a safetensors file");
  uint8_t len[8];
  RETURN_IF_ERROR(PreadAll(f.fd_, len, 8, 0, path));
  uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | len[i];
  if (n < 2 || n > static_cast<uint64_t>(kMaxHeaderBytes) || static_cast<int64_t>(n) > f.file_bytes_ - 8)
    return DataLoss(path, ": header length ", n, " is not within the file (", f.file_bytes_, " bytes) and ",
                    kMaxHeaderBytes, " bytes");
  f.data_start_ = 8 + static_cast<int64_t>(n);
  f.raw_header_.resize(static_cast<size_t>(f.data_start_));
  std::memcpy(f.raw_header_.data(), len, 8);
  RETURN_IF_ERROR(PreadAll(f.fd_, f.raw_header_.data() + 8, static_cast<int64_t>(n), 8, path));

  const nlohmann::json header = nlohmann::json::parse(f.raw_header_.begin() + 8, f.raw_header_.end(), nullptr,
                                                      /*allow_exceptions=*/false);
  if (header.is_discarded() || !header.is_object()) return DataLoss(path, ": the header is not a JSON object");
  const int64_t data_bytes = f.file_bytes_ - f.data_start_;
  for (const auto& [name, v] : header.items()) {
    if (name == "__metadata__") {
      if (!v.is_object()) return DataLoss(path, ": __metadata__ is not an object");
      for (const auto& [k, s] : v.items()) {
        if (!s.is_string()) return DataLoss(path, ": __metadata__ \"", k, "\" is not a string");
        f.metadata_[k] = s.get<std::string>();
      }
      continue;
    }
    const std::string what = StrCat(path, ": tensor \"", name, "\"");
    if (!v.is_object() || v.size() != 3 || !v.contains("dtype") || !v.contains("shape") || !v.contains("data_offsets"))
      return DataLoss(what, " must be an object with exactly dtype, shape and data_offsets");
    SafetensorsEntry e;
    e.name = name;
    if (!v["dtype"].is_string()) return DataLoss(what, ": dtype is not a string");
    auto dt = DTypeFromSafetensorsName(v["dtype"].get<std::string>());
    if (!dt.ok()) return dt.status().WithContext(what);
    e.dtype = *dt;
    if (!v["shape"].is_array()) return DataLoss(what, ": shape is not an array");
    for (const auto& d : v["shape"]) {
      ASSIGN_OR_RETURN(int64_t dim, JsonInt(d, what + " shape dim"));
      e.shape.push_back(dim);
    }
    const auto& off = v["data_offsets"];
    if (!off.is_array() || off.size() != 2) return DataLoss(what, ": data_offsets must be [begin, end]");
    ASSIGN_OR_RETURN(e.begin, JsonInt(off[0], what + " data_offsets[0]"));
    ASSIGN_OR_RETURN(e.end, JsonInt(off[1], what + " data_offsets[1]"));
    auto nbytes = NumBytes(e.shape, e.dtype);
    if (!nbytes.ok()) return DataLoss(what, ": shape ", DimsToString(e.shape), " overflows");
    e.numel = *NumElements(e.shape);
    if (e.begin > e.end || e.end > data_bytes)
      return DataLoss(what, ": data_offsets [", e.begin, ", ", e.end, "] are not within the data section (",
                      data_bytes, " bytes)");
    if (e.end - e.begin != *nbytes)
      return DataLoss(what, ": data_offsets [", e.begin, ", ", e.end, "] hold ", e.end - e.begin, " bytes, but ",
                      v["dtype"].get<std::string>(), " ", DimsToString(e.shape), " needs ", *nbytes);
    f.entries_.push_back(std::move(e));
  }
  std::sort(f.entries_.begin(), f.entries_.end(), [](const SafetensorsEntry& a, const SafetensorsEntry& b) {
    return a.begin != b.begin ? a.begin < b.begin : a.end < b.end;
  });
  int64_t at = 0;
  for (size_t i = 0; i < f.entries_.size(); ++i) {
    const SafetensorsEntry& e = f.entries_[i];
    if (e.begin != at)
      return DataLoss(path, ": tensor \"", e.name, "\" starts at data byte ", e.begin, ", expected ", at,
                      " (tensors must be contiguous, without gaps or overlap)");
    at = e.end;
    f.by_name_[e.name] = i;
  }
  if (at != data_bytes)
    return DataLoss(path, ": the tensors end at data byte ", at, " but the data section has ", data_bytes,
                    " bytes (truncated or trailing garbage)");

  auto bb = f.metadata_.find("dsc.crc32c.block_bytes");
  auto blocks = f.metadata_.find("dsc.crc32c.blocks");
  if ((bb == f.metadata_.end()) != (blocks == f.metadata_.end()))
    return DataLoss(path, ": __metadata__ has only one of dsc.crc32c.block_bytes and dsc.crc32c.blocks");
  if (bb != f.metadata_.end()) {
    const std::string& s = bb->second;
    if (s.empty() || s.size() > 12 || s.find_first_not_of("0123456789") != std::string::npos || s[0] == '0')
      return DataLoss(path, ": bad dsc.crc32c.block_bytes \"", s, "\"");
    f.block_bytes_ = std::stoll(s);
    const int64_t nblocks = (data_bytes + f.block_bytes_ - 1) / f.block_bytes_;
    if (static_cast<int64_t>(blocks->second.size()) != nblocks * 8)
      return DataLoss(path, ": dsc.crc32c.blocks has ", blocks->second.size(), " hex digits, expected ", nblocks * 8,
                      " for ", nblocks, " blocks");
    f.block_crcs_.resize(static_cast<size_t>(nblocks));
    for (int64_t b = 0; b < nblocks; ++b) {
      auto crc = ParseHex8(blocks->second, static_cast<size_t>(b) * 8);
      if (!crc.ok()) return crc.status().WithContext(StrCat(path, ": dsc.crc32c.blocks"));
      f.block_crcs_[static_cast<size_t>(b)] = *crc;
    }
  }
  return f;
}

const SafetensorsEntry* SafetensorsFile::Find(const std::string& name) const {
  auto it = by_name_.find(name);
  return it == by_name_.end() ? nullptr : &entries_[it->second];
}

Status ReadCheckedBlocks(int fd, const std::string& path, const CheckedRegion& region, int64_t begin, int64_t n,
                         void* dst, const std::string& what) {
  if (n <= 0) return Status::OK();
  auto* out = static_cast<uint8_t*>(dst);
  const int64_t block = region.block_bytes;
  if (block == 0) return PreadAll(fd, out, n, region.start + begin, path);
  std::vector<uint8_t> scratch;
  for (int64_t b = begin / block; b * block < begin + n; ++b) {
    const int64_t bs = b * block, be = std::min(bs + block, region.bytes);
    const int64_t lo = std::max(bs, begin), hi = std::min(be, begin + n);  // the part asked for
    uint8_t* buf;
    if (lo == bs && hi == be) {
      buf = out + (bs - begin);  // a whole block: read in place
    } else {
      scratch.resize(static_cast<size_t>(block));
      buf = scratch.data();
    }
    RETURN_IF_ERROR(PreadAll(fd, buf, be - bs, region.start + bs, path));
    const uint32_t crc = Crc32c(buf, static_cast<size_t>(be - bs));
    const uint32_t want = (*region.crcs)[static_cast<size_t>(b)];
    if (crc != want)
      return DataLoss(path, ": checksum mismatch in ", region.start == 0 ? "" : "data ", "bytes [", bs, ", ", be,
                      ") (", what, "): crc32c ", Crc32cHex(crc), ", expected ", Crc32cHex(want),
                      " — the file is corrupted");
    if (buf != out + (bs - begin)) std::memcpy(out + (lo - begin), buf + (lo - bs), static_cast<size_t>(hi - lo));
  }
  return Status::OK();
}

Status VerifyCheckedBlocks(int fd, const std::string& path, const CheckedRegion& region, const std::string& what) {
  const int64_t block = region.block_bytes;
  const int64_t chunk = block > 0 ? std::max<int64_t>(block, (8 << 20) / block * block) : (8 << 20);
  std::vector<uint8_t> buf(static_cast<size_t>(std::min(chunk, std::max<int64_t>(region.bytes, 1))));
  for (int64_t at = 0; at < region.bytes; at += chunk)
    RETURN_IF_ERROR(ReadCheckedBlocks(fd, path, region, at, std::min(chunk, region.bytes - at), buf.data(), what));
  return Status::OK();
}

StatusOr<std::vector<uint32_t>> ChecksumBlocks(int fd, const std::string& path, int64_t start, int64_t bytes,
                                               int64_t block_bytes) {
  const int64_t blocks = bytes / block_bytes + (bytes % block_bytes != 0);
  std::vector<uint32_t> crcs(static_cast<size_t>(blocks));
  // A model's weights are gigabytes: each core reads and sums its own run of blocks.
  const int64_t workers = std::clamp<int64_t>(std::thread::hardware_concurrency(), 1, 8);
  const int64_t per = (blocks + workers - 1) / std::max<int64_t>(workers, 1);
  std::vector<Status> status(static_cast<size_t>(workers));
  auto work = [&](int64_t w) {
    std::vector<uint8_t> buf(static_cast<size_t>(std::min(block_bytes, std::max<int64_t>(bytes, 1))));
    for (int64_t b = w * per; b < std::min(blocks, (w + 1) * per); ++b) {
      const int64_t n = std::min(block_bytes, bytes - b * block_bytes);
      Status st = PreadAll(fd, buf.data(), n, start + b * block_bytes, path);
      if (!st.ok()) {
        status[static_cast<size_t>(w)] = st;
        return;
      }
      crcs[static_cast<size_t>(b)] = Crc32c(buf.data(), static_cast<size_t>(n));
    }
  };
  std::vector<std::thread> threads;
  for (int64_t w = 1; w < workers && w * per < blocks; ++w) threads.emplace_back(work, w);
  work(0);
  for (std::thread& t : threads) t.join();
  for (const Status& st : status) RETURN_IF_ERROR(st);
  return crcs;
}

Status SafetensorsFile::ReadData(int64_t begin, int64_t n, void* dst, const std::string& what) const {
  const CheckedRegion region{data_start_, file_bytes_ - data_start_, block_bytes_, &block_crcs_};
  return ReadCheckedBlocks(fd_, path_, region, begin, n, dst, what);
}

Status SafetensorsFile::ReadBytes(const SafetensorsEntry& e, int64_t offset, int64_t nbytes, void* dst) const {
  if (offset < 0 || nbytes < 0 || offset + nbytes > e.end - e.begin)
    return OutOfRange(path_, ": tensor \"", e.name, "\": bytes [", offset, ", ", offset + nbytes, ") are outside its ",
                      e.end - e.begin, " bytes");
  return ReadData(e.begin + offset, nbytes, dst, StrCat("tensor \"", e.name, "\""));
}

StatusOr<Tensor> SafetensorsFile::ReadTensor(const std::string& name) const {
  const SafetensorsEntry* e = Find(name);
  if (e == nullptr) return NotFound(path_, ": no tensor \"", name, "\"");
  Tensor t(e->dtype, e->shape);
  if (e->end > e->begin) RETURN_IF_ERROR(ReadBytes(*e, 0, e->end - e->begin, t.raw()));
  return t;
}

Status SafetensorsFile::VerifyData() const {
  const CheckedRegion region{data_start_, file_bytes_ - data_start_, block_bytes_, &block_crcs_};
  return VerifyCheckedBlocks(fd_, path_, region, "verifying the data section");
}

}  // namespace dsc
