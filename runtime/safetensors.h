// safetensors files (the format PyTorch and Hugging Face load), CRC32C, and durable file writes.
//
// A safetensors file is an 8-byte little-endian header length N, N bytes of JSON header
// {name: {"dtype": "F32", "shape": [2, 3], "data_offsets": [begin, end]}, "__metadata__": {...}}
// (padded with spaces to a multiple of 8), then the data section: every tensor's raw
// little-endian bytes, contiguous, in data_offsets order, ending at the end of the file.
//
// Our writer adds block checksums of the data section to __metadata__ ("dsc.crc32c.block_bytes"
// and "dsc.crc32c.blocks", 8 hex digits per block), so that reading any byte range verifies only
// the blocks it touches. Files from other writers (no checksum) load too.
//
//   SafetensorsWriter w;
//   w.Add("w", DType::kFloat32, {2, 3}, data);          // data must live until Write
//   RETURN_IF_ERROR(w.Write("/tmp/model.safetensors"));   // write-temp, fsync, rename
//   ASSIGN_OR_RETURN(SafetensorsFile f, SafetensorsFile::Open("/tmp/model.safetensors"));
//   ASSIGN_OR_RETURN(Tensor t, f.ReadTensor("w"));      // checksums verified
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "ir/tensor.h"

namespace dsc {

// CRC32C (Castagnoli), hardware-accelerated where the CPU has SSE4.2. Chain calls by passing the
// previous result as `crc`.
uint32_t Crc32c(const void* data, size_t n, uint32_t crc = 0);
std::string Crc32cHex(uint32_t crc);  // 8 lowercase hex digits
// The table-driven version, whatever the CPU (tests compare it with Crc32c).
uint32_t Crc32cPortable(const void* data, size_t n, uint32_t crc = 0);

// The safetensors dtype names: F32 F16 BF16 F64 I64 I32 I16 I8 U8 BOOL.
StatusOr<std::string> SafetensorsDTypeName(DType dtype);
StatusOr<DType> DTypeFromSafetensorsName(const std::string& name);

// Durable files: every error names the path and the errno's text.
// Crash tests (DSC_DEBUG_KILL_IN_SAVE in checkpoint_format.h) stop a durable write between its
// steps: a probe runs once half the bytes are in path.tmp (not synced) and again once path.tmp is
// complete and synced but not yet renamed. Production callers pass none.
enum class DurableWriteStep { kHalfWritten, kTempSynced };
using DurableWriteProbe = std::function<void(DurableWriteStep)>;
// Writes `bytes` to path.tmp, fsyncs it, renames it to `path` and fsyncs the parent folder.
Status WriteFileDurably(const std::string& path, const std::string& bytes, const DurableWriteProbe& probe = nullptr);
// fsync of a folder (makes the creation/rename of its entries durable).
Status FsyncDir(const std::string& dir);
// The whole file (errors name it).
StatusOr<std::string> ReadWholeFile(const std::string& path);

// A byte region of a file checksummed in blocks: `bytes` bytes from file offset `start`, block k
// covering [k * block_bytes, (k + 1) * block_bytes) of it with crc32c (*crcs)[k]; block_bytes 0:
// no checksums.
struct CheckedRegion {
  int64_t start = 0;
  int64_t bytes = 0;
  int64_t block_bytes = 0;
  const std::vector<uint32_t>* crcs = nullptr;
};
// Reads region bytes [begin, begin + n) from `fd` into dst, verifying every block they touch (a
// partly read block is read whole into a scratch buffer). Errors name `path` and `what`.
Status ReadCheckedBlocks(int fd, const std::string& path, const CheckedRegion& region, int64_t begin, int64_t n,
                         void* dst, const std::string& what);
// Reads the whole region and checks every block.
Status VerifyCheckedBlocks(int fd, const std::string& path, const CheckedRegion& region, const std::string& what);
// The crc32c of each block of `bytes` bytes from file offset `start`, read one block at a time.
StatusOr<std::vector<uint32_t>> ChecksumBlocks(int fd, const std::string& path, int64_t start, int64_t bytes,
                                               int64_t block_bytes);

struct SafetensorsEntry {
  std::string name;
  DType dtype = DType::kUndefined;
  std::vector<int64_t> shape;
  int64_t numel = 0;
  int64_t begin = 0;  // byte offsets in the data section, [begin, end)
  int64_t end = 0;
};

class SafetensorsWriter {
 public:
  static constexpr int64_t kDefaultBlockBytes = 1 << 20;

  // Adds a tensor whose numel(shape) * DTypeSize(dtype) bytes are at `data`; they must stay valid
  // until Write. Names must be unique and not "__metadata__".
  Status Add(const std::string& name, DType dtype, const std::vector<int64_t>& shape, const void* data);
  void SetMetadata(const std::string& key, const std::string& value) { metadata_[key] = value; }
  void set_block_bytes(int64_t b) { block_bytes_ = b; }

  // The file's bytes up to the data section: length prefix and padded JSON header (computes the
  // block checksums, so call it once the tensors are added).
  StatusOr<std::string> Header() const;
  // Writes path.tmp (header, data), fsyncs it, renames it to `path`, fsyncs the folder.
  Status Write(const std::string& path, const DurableWriteProbe& probe = nullptr) const;

 private:
  struct Item {
    SafetensorsEntry entry;
    const void* data;
  };
  std::vector<Item> items_;
  std::map<std::string, std::string> metadata_;
  int64_t block_bytes_ = kDefaultBlockBytes;
};

// A safetensors file opened for reading: the header is parsed and validated on Open (offsets in
// range, contiguous, no overlap, sizes = numel * dtype size, file size exact); data is read on
// demand with pread and checked against the block checksums it covers. Errors name the file and
// the tensor. Movable, not copyable; reads are safe from several threads.
class SafetensorsFile {
 public:
  static constexpr int64_t kMaxHeaderBytes = 100 << 20;  // as the reference implementation

  static StatusOr<SafetensorsFile> Open(const std::string& path);
  SafetensorsFile(SafetensorsFile&&) noexcept;
  SafetensorsFile& operator=(SafetensorsFile&&) noexcept;
  ~SafetensorsFile();

  const std::string& path() const { return path_; }
  const std::vector<SafetensorsEntry>& entries() const { return entries_; }  // by data offset
  const std::map<std::string, std::string>& metadata() const { return metadata_; }
  const SafetensorsEntry* Find(const std::string& name) const;
  // The bytes before the data section (length prefix + JSON), as written.
  const std::string& raw_header() const { return raw_header_; }
  int64_t file_bytes() const { return file_bytes_; }
  bool has_checksums() const { return block_bytes_ > 0; }

  // `nbytes` bytes of `entry` starting at byte `offset` within it, checksums verified.
  Status ReadBytes(const SafetensorsEntry& entry, int64_t offset, int64_t nbytes, void* dst) const;
  StatusOr<Tensor> ReadTensor(const std::string& name) const;
  // Reads the whole data section and checks every block.
  Status VerifyData() const;

 private:
  SafetensorsFile() = default;
  // Reads data-section bytes [begin, begin + n) into dst, verifying the blocks they touch;
  // `what` names the tensor in errors.
  Status ReadData(int64_t begin, int64_t n, void* dst, const std::string& what) const;

  std::string path_;
  int fd_ = -1;
  std::string raw_header_;
  int64_t data_start_ = 0;
  int64_t file_bytes_ = 0;
  std::vector<SafetensorsEntry> entries_;
  std::map<std::string, size_t> by_name_;
  std::map<std::string, std::string> metadata_;
  int64_t block_bytes_ = 0;  // 0: no checksums
  std::vector<uint32_t> block_crcs_;
};

}  // namespace dsc
