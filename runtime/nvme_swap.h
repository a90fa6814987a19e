// The swap space of NVMe-offloaded optimizer states (offload_optimizer.device "nvme"): one file per
// rank under nvme_path, read and written asynchronously through io_uring, as the aio section says.
//
//   ASSIGN_OR_RETURN(auto file, NvmeSwapFile::Create(dir, rank, {{"w::exp_avg", 4096}}, SwapIoOptionsFrom(cfg.aio)));
//   ASSIGN_OR_RETURN(auto h, file->StartRead("w::exp_avg", buf, 4096));   // the swap kernels do this
//   RETURN_IF_ERROR(h->Wait());
//
// Direct I/O, as DeepSpeed's aio opens its swap files (O_DIRECT): the swapped states bypass the
// page cache, so an offloaded state really leaves memory. The file is opened with O_DIRECT where
// its file system allows it, with the alignment statx reports (STATX_DIOALIGN; 4096 when the
// kernel cannot tell, a multiple of every logical block size up to a page): each state's range
// starts on that alignment (at least 4096 bytes) and is padded to it, requests are block_size
// rounded up to it, and a buffer on that alignment (the memory plan puts every SwapIn output on a
// page, ir/swap_ops.h) is read and written in place; what is not aligned -- a buffer elsewhere
// (checkpoints, initial values), the last partial block of a state -- goes through an aligned
// bounce buffer of the request's size, allocated while the request is in flight (a partial write
// reads the block it ends in first, so the state's later bytes stay as they were). Where O_DIRECT
// is refused (EINVAL at open; a file system that reports no direct I/O; tmpfs, whose files are
// memory anyway, and which Linux >= 6.6 lets open with O_DIRECT while still caching), the I/O is
// buffered and direct_io_note() says why: each write is then pushed to the device and dropped
// from the page cache (sync_file_range + POSIX_FADV_DONTNEED, linked after the write). DeepSpeed
// fails there instead; dscompile runs, and dsrun says so once per rank and folder on stderr.
// Why io_uring (Debian's liburing) rather than Linux AIO: it runs the buffered fallback
// asynchronously too (in its kernel workers), where Linux AIO would block. The file is created
// unnamed (O_TMPFILE; where the filesystem lacks it, named and unlinked at once), so it never
// outlives the run, crashes included; it starts as zeros (every optimizer state is
// zero-initialised) and a resume writes the checkpoint's states into it.
// Each transfer is split into block_size requests; at most queue_depth are in flight; the kernel
// runs them on at most thread_count workers; single_submit submits each request on its own
// instead of in batches; without overlap_events a batch is submitted only once the previous one
// has completed. Two transfers of the same state must not be in flight at once.
#pragma once

#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <liburing.h>

#include "frontend/config/other_sections.h"  // AioConfig
#include "kernels/common/swap_space.h"

namespace dsc {

struct SwapIoOptions {
  int64_t block_size = 1048576;
  int64_t queue_depth = 8;
  int64_t thread_count = 1;
  bool single_submit = false;
  bool overlap_events = true;
};
SwapIoOptions SwapIoOptionsFrom(const AioConfig& aio);

struct SwapSlot {
  std::string name;
  uint64_t bytes = 0;
};

class NvmeSwapFile : public SwapSpace {
 public:
  // `key` is the config key that named `dir`, for the errors.
  static StatusOr<std::unique_ptr<NvmeSwapFile>> Create(const std::string& dir, int rank,
                                                        const std::vector<SwapSlot>& slots, const SwapIoOptions& io,
                                                        const std::string& key = "nvme_path");
  ~NvmeSwapFile() override;
  NvmeSwapFile(const NvmeSwapFile&) = delete;
  NvmeSwapFile& operator=(const NvmeSwapFile&) = delete;

  StatusOr<std::unique_ptr<CommHandle>> StartRead(const std::string& name, void* dst, size_t bytes) override;
  StatusOr<std::unique_ptr<CommHandle>> StartWrite(const std::string& name, const void* src, size_t bytes) override;
  // Start and wait (initialisation, checkpoints).
  Status Read(const std::string& name, void* dst, size_t bytes);
  Status Write(const std::string& name, const void* src, size_t bytes);

  bool Has(const std::string& name) const { return slots_.count(name) > 0; }
  uint64_t file_bytes() const { return file_bytes_; }
  // True when the file is open with O_DIRECT; else direct_io_note() says why not (for stderr).
  bool direct_io() const { return direct_; }
  const std::string& direct_io_note() const { return direct_io_note_; }
  uint64_t alignment() const { return align_; }  // of offsets, lengths and in-place buffers (direct I/O)
  const std::string& description() const { return description_; }  // for messages: dir and rank
  uint64_t bytes_read() const { return bytes_read_; }
  uint64_t bytes_written() const { return bytes_written_; }

 private:
  struct Transfer;
  struct FreeBuffer {
    void operator()(char* p) const;
  };
  struct Request {
    Transfer* t = nullptr;
    char* buf = nullptr;  // what the kernel reads or writes: user, or bounce while in flight
    uint64_t offset = 0;
    uint32_t len = 0;     // left to transfer
    // Direct I/O of a buffer off the alignment, or of a length that is not a multiple of it: the
    // request moves `len` (aligned) bytes through `bounce`, `user_len` of which are the caller's
    // at `user`. keep_tail: the rest of the last block holds state bytes a write must keep.
    char* user = nullptr;
    uint32_t user_len = 0;
    bool bounced = false, keep_tail = false;
    std::unique_ptr<char, FreeBuffer> bounce;
  };
  struct Transfer {
    bool write = false;
    std::string name;
    std::vector<Request> requests;
    size_t next = 0;       // requests[next..] not yet submitted
    int in_flight = 0;     // requests submitted and not completed
    int retrying = 0;      // short ones whose rest waits in retry_
    Status error = Status::OK();
    bool finished() const { return next == requests.size() && in_flight == 0 && retrying == 0; }
  };
  class Handle;

  NvmeSwapFile() = default;
  StatusOr<std::unique_ptr<CommHandle>> Start(bool write, const std::string& name, char* buf, size_t bytes);
  Status OpenFile(const std::string& dir, int rank, const std::string& key);  // fd_, direct_, align_
  Status Bounce(Request* r);      // gives a bounced request its buffer (a write: filled) before it is queued
  Status Submit();                // queues what queue_depth and overlap_events allow
  Status Reap(bool wait_one);     // takes completions (waiting for one when asked)
  Status WaitFor(Transfer* t);    // until t finished; then its error
  void Forget(Transfer* t);       // a transfer's handle is gone (after it finished)

  int fd_ = -1;
  bool direct_ = false;
  std::string direct_io_note_;
  uint64_t align_ = 4096;           // direct I/O: offsets, lengths and in-place buffers
  io_uring ring_{};
  bool ring_ok_ = false;
  SwapIoOptions io_;
  std::map<std::string, std::pair<uint64_t, uint64_t>> slots_;  // name -> (offset, bytes); offset aligned
  uint64_t file_bytes_ = 0;
  std::string description_;
  std::deque<Request*> retry_;      // short transfers' remainders, submitted first
  std::deque<Transfer*> pending_;   // transfers with requests not yet submitted, in start order
  int in_flight_ = 0;               // requests submitted and not completed (sync/fadvise ones too)
  int64_t data_in_flight_ = 0;      // reads and writes among them
  uint64_t bytes_read_ = 0, bytes_written_ = 0;
  Status failed_ = Status::OK();    // a failed io_uring_submit: every later transfer fails with it
};

}  // namespace dsc
