// Checkpoints on disk: a folder of per-rank safetensors files plus a manifest, laid out
// independently of world size and ZeRO stage, written with an atomic commit protocol.
//
//   DIR/latest                        the newest committed tag, e.g. "global_step15"
//   DIR/global_step15/manifest.json   format version, tag, step, plan hash, resolved config,
//                                     trainer state, the files (size, header crc32c), and per
//                                     tensor: name, kind, dtype, full shape, and its pieces
//                                     [{file, key, start, count}] (flat element ranges of the
//                                     full tensor, padding excluded, tiling [0, numel))
//   DIR/global_step15/rank-R.safetensors   what rank R held; its __metadata__ "dsc.pieces"
//                                     repeats R's part of the manifest (files describe themselves)
//   DIR/.tmp-TAG/                     a save in progress or one that failed; never loaded
//
// Sources (manifest version 2): a tensor's piece may instead lie in a file outside the folder, at
// a byte offset ("source" and "offset" instead of "file" and "key"). dscompile's step-0
// checkpoint refers so to the ONNX model's weights (memory-mapped, never copied); the manifest
// records the file's absolute path, size and block checksums. Saves by dsrun never use sources.
//
// Integrity: the manifest carries a crc32c of its own bytes; it holds each file's size and the
// crc32c of its header; each file holds crc32c's of its data blocks. So any changed byte is found.
//
// Saving (every rank, collectively):
//   CheckpointWriter w(dir, StepTag(step), rank, world_size);
//   RETURN_IF_ERROR(w.AddTensor("w", TensorKind::kParameter, DType::kFloat32, {4, 4}, w_data));
//   RETURN_IF_ERROR(w.AddShard("adam.m/w", TensorKind::kOptimizer, DType::kFloat32, {4, 4},
//                              /*start=*/rank * 8, /*count=*/8, m_shard));
//   RETURN_IF_ERROR(w.Commit(meta, agree));   // agree: an all-reduce of "this rank succeeded"
// Loading (any world size, any stage):
//   ASSIGN_OR_RETURN(std::string path, ResolveCheckpoint(dir));   // DIR or DIR/TAG
//   ASSIGN_OR_RETURN(Checkpoint ckpt, Checkpoint::Open(path));
//   RETURN_IF_ERROR(ckpt.ReadRange("adam.m/w", my_start, my_count, dst));
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "ir/tensor.h"
#include "runtime/safetensors.h"

namespace dsc {

// kRankCopy: rank R's own copy of a replicated buffer that every rank updates from its own
// micro-batches (BatchNorm statistics), saved as "NAME@rankR" for R > 0 next to rank 0's NAME
// (kind buffer, the one exports use), so a resume on the same ranks continues each rank's values.
enum class TensorKind { kParameter, kMaster, kOptimizer, kGradient, kBuffer, kRankCopy };
// parameter master optimizer gradient buffer rank_copy
const char* TensorKindName(TensorKind kind);
StatusOr<TensorKind> TensorKindFromName(const std::string& name);

// The name of rank `rank`'s copy of buffer `name` (TensorKind::kRankCopy): "NAME@rankR".
std::string RankCopyName(const std::string& name, int rank);

// DeepSpeed's folder name for a step: "global_step15".
std::string StepTag(int64_t step);

struct CheckpointPiece {
  std::string file;  // a file name inside the checkpoint folder
  std::string key;   // the tensor's name inside that file
  int64_t start = 0;  // flat element range [start, start + count) of the full tensor
  int64_t count = 0;
  std::string source = {};  // instead of file and key: the id of a CheckpointSource
  int64_t offset = 0;       // in a source: the byte offset of the piece's first element
};

struct CheckpointTensor {
  std::string name;
  TensorKind kind = TensorKind::kParameter;
  DType dtype = DType::kUndefined;
  std::vector<int64_t> shape;  // the full tensor's
  int64_t numel = 0;
  std::vector<CheckpointPiece> pieces;  // by start, tiling [0, numel) exactly
};

// A file outside the checkpoint folder that holds some of its tensors' bytes (see "Sources").
struct CheckpointSource {
  std::string path;  // absolute
  int64_t bytes = 0;
  int64_t block_bytes = 0;
  std::vector<uint32_t> block_crcs;  // crc32c of each block of the whole file

  CheckedRegion Region() const { return {0, bytes, block_bytes, &block_crcs}; }  // the whole file
};

struct CheckpointFileInfo {
  int64_t bytes = 0;
  uint32_t header_crc32c = 0;  // of the bytes before the data section
};

// What the trainer records with a save; rank 0's copy goes into the manifest.
struct CheckpointMeta {
  int64_t step = 0;
  std::string plan_hash;
  std::string source_model;  // the ONNX model the plan was compiled from (what exports write into)
  nlohmann::json config = nlohmann::json::object();         // the resolved DeepSpeed config
  nlohmann::json trainer_state = nlohmann::json::object();  // loss scaler, LR schedule, counters,
                                                            // data-loader position, RNG, ...
};

struct CheckpointManifest {
  static constexpr int kVersion = 2;  // 2: sources
  int version = kVersion;
  std::string tag;
  int world_size = 1;  // of the run that saved it (informational: loading does not depend on it)
  CheckpointMeta meta;
  std::map<std::string, CheckpointFileInfo> files;
  std::map<std::string, CheckpointSource> sources;  // by id
  std::vector<CheckpointTensor> tensors;

  const CheckpointTensor* Find(const std::string& name) const;
};

// manifest.json's bytes: JSON whose first member is "manifest_crc32c", the crc32c of the file's
// bytes with those 8 hex digits read as "00000000".
std::string SerializeManifest(const CheckpointManifest& m);
// Checks the checksum and the structure (pieces tile every tensor, files listed); errors name `path`.
StatusOr<CheckpointManifest> ParseManifest(const std::string& bytes, const std::string& path);

// Returns OK when every rank passed ok_here = true, else an error (e.g. naming the failed rank).
// Each rank must call it the same number of times; it acts as a barrier. For MPI: an all-reduce
// (MIN) of ok_here. Commit calls it three times.
using AgreeFn = std::function<Status(bool ok_here)>;

// One rank's part of a save. Tensor data is referenced, not copied: it must stay valid and
// unchanged until Commit returns.
//
// Crash testing: DSC_DEBUG_KILL_IN_SAVE=N@R (read once per process) makes rank R raise SIGKILL at
// the N-th crash point it passes, counting from 1 across every save of the process: rank 0 passes
// 11 points per save, other ranks 4, so N=11+8 kills rank 0 at "renamed" of its 2nd save. It first
// prints "DSC_DEBUG_KILL_IN_SAVE: rank R killed at crash point N (NAME) of saving TAG" on stderr.
// The points, in order, and what a crash there leaves on disk:
//   tmp-created      every rank  .tmp-TAG exists (the ranks agreed); no rank file yet
//   rank-half        every rank  .tmp-TAG/rank-R.safetensors.tmp holds the first half of its bytes
//   rank-synced      every rank  rank-R.safetensors.tmp complete and fsynced, not renamed
//   rank-done        every rank  .tmp-TAG/rank-R.safetensors in place
//   manifest-half    rank 0      .tmp-TAG/manifest.json.tmp holds the first half of its bytes
//   manifest-synced  rank 0      manifest.json.tmp complete and fsynced, not renamed
//   manifest-done    rank 0      .tmp-TAG/manifest.json in place: complete, but not published
//   renamed          rank 0      DIR/TAG complete (a TAG it replaced may remain as .tmp-TAG);
//                                `latest` still names the previous tag
//   latest-half      rank 0      DIR/latest.tmp holds the first half of the new tag
//   latest-synced    rank 0      latest.tmp complete and fsynced, not renamed
//   latest-moved     rank 0      `latest` names TAG; the ranks have not yet agreed the save is over
// Without the variable a crash point costs one branch on a cached int.
class CheckpointWriter {
 public:
  CheckpointWriter(std::string dir, std::string tag, int rank, int world_size);

  // A whole tensor (a replicated tensor must be added by one rank only, e.g. rank 0).
  Status AddTensor(const std::string& name, TensorKind kind, DType dtype, const std::vector<int64_t>& shape,
                   const void* data);
  // Elements [start, start + count) of the flattened full tensor of `shape` (a ZeRO shard,
  // padding excluded). At most one range per tensor and rank; an empty range adds nothing.
  Status AddShard(const std::string& name, TensorKind kind, DType dtype, const std::vector<int64_t>& shape,
                  int64_t start, int64_t count, const void* data);
  // A whole tensor whose bytes are the file bytes at `region` (Tensor::source): the manifest refers
  // to the file instead of a copy (rank 0 only; the file must not change until it is read).
  Status AddFileRegion(const std::string& name, TensorKind kind, DType dtype, const std::vector<int64_t>& shape,
                       const FileRegion& region);
  void set_block_bytes(int64_t b) { block_bytes_ = b; }  // checksum block (tests use small ones)

  // Collective. (1) rank 0 clears a stale DIR/.tmp-TAG and creates it; agree. (2) Each rank writes
  // and fsyncs .tmp-TAG/rank-R.safetensors; agree. (3) Rank 0 builds the manifest from the rank
  // files' headers (checking every tensor is fully covered), writes and fsyncs it, renames .tmp-TAG
  // to TAG (atomically swapping out an existing TAG), fsyncs DIR, then moves `latest` by
  // write-temp, fsync, rename, fsync DIR; agree. Every rank returns the same success or failure;
  // on failure `latest` and every complete checkpoint are untouched, and errors name the path and
  // errno. `meta` matters on rank 0 only.
  Status Commit(const CheckpointMeta& meta, const AgreeFn& agree);

  std::string tmp_dir() const;  // DIR/.tmp-TAG
  std::string final_dir() const;  // DIR/TAG

 private:
  struct Piece {
    std::string name;
    TensorKind kind;
    DType dtype;
    std::vector<int64_t> shape;
    int64_t start, count;
    const void* data;
    std::optional<FileRegion> region = std::nullopt;  // AddFileRegion's
  };
  Status AddPiece(Piece piece);  // checks and keeps one piece (AddShard's and AddFileRegion's)
  Status WriteRankFile() const;
  Status Publish(const CheckpointMeta& meta) const;  // rank 0, step (3)
  Status AddSources(CheckpointManifest* m, std::map<std::string, size_t>* index) const;
  void CrashPoint(const char* name) const;           // DSC_DEBUG_KILL_IN_SAVE
  DurableWriteProbe CrashProbe(const char* half, const char* synced) const;  // null when off

  std::string dir_, tag_;
  int rank_, world_size_;
  int64_t kill_at_ = 0;  // the crash point this rank dies at (DSC_DEBUG_KILL_IN_SAVE), 0: none
  std::vector<Piece> pieces_;
  int64_t block_bytes_ = SafetensorsWriter::kDefaultBlockBytes;
};

// A committed checkpoint opened for reading. Open reads and checks the manifest and checks every
// file's presence and size; a file's header is read and checked (crc against the manifest,
// pieces against its entries) the first time it is needed; reads verify the data blocks they
// touch. Thread-safe reads.
class Checkpoint {
 public:
  static StatusOr<Checkpoint> Open(const std::string& dir);
  Checkpoint(Checkpoint&&) noexcept;
  Checkpoint& operator=(Checkpoint&&) noexcept;
  ~Checkpoint();

  const std::string& dir() const;
  const CheckpointManifest& manifest() const;

  // Flat elements [start, start + count) of the full tensor `name`, in its dtype, into dst
  // (count * DTypeSize bytes), whatever pieces it was saved in; reads only what is asked.
  Status ReadRange(const std::string& name, int64_t start, int64_t count, void* dst) const;
  StatusOr<Tensor> ReadTensor(const std::string& name) const;  // the whole tensor, full shape
  // Reads every file and source completely and checks every checksum.
  Status VerifyAll() const;

 private:
  struct State;
  explicit Checkpoint(std::unique_ptr<State> s);
  std::unique_ptr<State> s_;
};

// The checkpoint folder to load for `path`: DIR/TAG itself when it holds a manifest, else in DIR
// the tag `latest` names when that checkpoint's manifest is complete and intact, else the
// complete checkpoint with the highest step (then *note, if given, says why `latest` was not
// used). A `.tmp-*` folder is never returned. Errors name the path.
StatusOr<std::string> ResolveCheckpoint(const std::string& path, std::string* note = nullptr);

}  // namespace dsc
