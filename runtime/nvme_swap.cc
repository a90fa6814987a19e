// The swap space of NVMe-offloaded optimizer states: one io_uring file per rank.
#include "runtime/nvme_swap.h"

#include <fcntl.h>
#include <linux/magic.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>

namespace dsc {
namespace {

// Each state's range starts on a page at least (and on the direct-I/O alignment when larger).
constexpr uint64_t kSlotAlignment = 4096;
// user_data of the sync_file_range and fadvise requests linked after a buffered write: nothing
// waits for them.
constexpr uint64_t kAuxRequest = 0;

std::string Errno(int err) { return std::strerror(err); }

uint64_t RoundUp(uint64_t x, uint64_t align) { return (x + align - 1) / align * align; }

}  // namespace

void NvmeSwapFile::FreeBuffer::operator()(char* p) const { std::free(p); }

SwapIoOptions SwapIoOptionsFrom(const AioConfig& aio) {
  SwapIoOptions o;
  o.block_size = aio.block_size;
  o.queue_depth = aio.queue_depth;
  o.thread_count = aio.intra_op_parallelism;
  o.single_submit = aio.single_submit;
  o.overlap_events = aio.overlap_events;
  return o;
}

class NvmeSwapFile::Handle : public CommHandle {
 public:
  Handle(NvmeSwapFile* f, std::unique_ptr<Transfer> t) : f_(f), t_(std::move(t)) {}
  ~Handle() override {
    if (t_ && !t_->finished()) (void)f_->WaitFor(t_.get());
    if (t_) f_->Forget(t_.get());
  }
  Status Wait() override { return f_->WaitFor(t_.get()); }
  Status Progress() override {
    RETURN_IF_ERROR(f_->Submit());  // first: it fails once a submission has (nothing to reap then)
    RETURN_IF_ERROR(f_->Reap(false));
    return f_->Submit();
  }

 private:
  NvmeSwapFile* f_;
  std::unique_ptr<Transfer> t_;
};

StatusOr<std::unique_ptr<NvmeSwapFile>> NvmeSwapFile::Create(const std::string& dir, int rank,
                                                             const std::vector<SwapSlot>& slots, const SwapIoOptions& io,
                                                             const std::string& key) {
  if (io.block_size < 1 || io.block_size > (int64_t{1} << 30))
    return InvalidArgument("aio.block_size: ", io.block_size, " bytes; NVMe offload needs 1 to 2^30");
  if (io.queue_depth < 1 || io.queue_depth > 4096)
    return InvalidArgument("aio.queue_depth: ", io.queue_depth, "; NVMe offload needs 1 to 4096");
  if (io.thread_count < 1) return InvalidArgument("aio.thread_count: ", io.thread_count, "; NVMe offload needs at least 1");
  std::unique_ptr<NvmeSwapFile> f(new NvmeSwapFile());
  f->io_ = io;
  f->description_ = StrCat("the NVMe swap file of rank ", rank, " under ", dir);
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) return FailedPrecondition(key, ": cannot create ", dir, ": ", ec.message());
  RETURN_IF_ERROR(f->OpenFile(dir, rank, key));
  const uint64_t slot_alignment = std::max(kSlotAlignment, f->align_);
  for (const SwapSlot& s : slots) {
    if (!f->slots_.emplace(s.name, std::pair{f->file_bytes_, s.bytes}).second)
      return Internal("state '", s.name, "' is swapped twice");
    f->file_bytes_ += RoundUp(s.bytes, slot_alignment);
  }
  // Zeros until written: the optimizer states' initial value.
  if (::ftruncate(f->fd_, static_cast<off_t>(f->file_bytes_)) != 0)
    return FailedPrecondition(f->description_, ": cannot size it to ", f->file_bytes_, " bytes: ", Errno(errno));
  // A buffered write takes three entries (the write, sync_file_range, fadvise).
  const unsigned entries = static_cast<unsigned>(std::min<int64_t>(3 * io.queue_depth, 32768));
  if (int r = io_uring_queue_init(entries, &f->ring_, 0); r < 0)
    return FailedPrecondition(f->description_, ": io_uring_queue_init: ", Errno(-r),
                              " (NVMe offload needs io_uring; a container's seccomp profile may forbid it)");
  f->ring_ok_ = true;
  unsigned workers[2] = {static_cast<unsigned>(io.thread_count), static_cast<unsigned>(io.thread_count)};
  if (int r = io_uring_register_iowq_max_workers(&f->ring_, workers); r < 0)
    return FailedPrecondition(f->description_, ": cannot limit io_uring to aio.thread_count = ", io.thread_count,
                              " workers: ", Errno(-r));
  return f;
}

Status NvmeSwapFile::OpenFile(const std::string& dir, int rank, const std::string& key) {
  // Unnamed where the file system allows it, else named and unlinked at once: gone with the
  // process either way. A named file that O_DIRECT refused may exist: removed again.
  const std::string path = StrCat(dir, "/dscompile-swap-rank", rank, "-pid", ::getpid(), ".swap");
  auto open_file = [&](int direct) {
    int fd = ::open(dir.c_str(), O_TMPFILE | O_RDWR | O_CLOEXEC | direct, 0600);
    if (fd >= 0) return fd;
    fd = ::open(path.c_str(), O_CREAT | O_EXCL | O_RDWR | O_CLOEXEC | direct, 0600);
    const int err = errno;
    ::unlink(path.c_str());
    errno = err;
    return fd;
  };
  std::string why_not;  // empty: O_DIRECT
  struct statfs fs {};
  if (::statfs(dir.c_str(), &fs) == 0 && (fs.f_type == TMPFS_MAGIC || fs.f_type == RAMFS_MAGIC))
    why_not = "the folder is on tmpfs, whose files are memory (Linux >= 6.6 opens them with O_DIRECT but still caches them)";
  if (why_not.empty()) {
    fd_ = open_file(O_DIRECT);
    if (fd_ < 0 && errno == EINVAL) why_not = "the file system refuses O_DIRECT (open: Invalid argument)";
  }
  if (fd_ < 0) fd_ = open_file(0);
  if (fd_ < 0) return FailedPrecondition(key, ": cannot create a file in ", dir, ": ", Errno(errno));
  if (why_not.empty()) {
    // The alignment direct I/O needs here; a kernel that cannot tell (before Linux 6.1, or a file
    // system that does not say) gets a page, which every logical block size up to 4096 divides.
    struct statx sx {};
    if (::statx(fd_, "", AT_EMPTY_PATH, STATX_DIOALIGN, &sx) == 0 && (sx.stx_mask & STATX_DIOALIGN)) {
      if (sx.stx_dio_mem_align == 0 || sx.stx_dio_offset_align == 0)
        why_not = "the file system reports no direct I/O for the file (statx)";
      else
        align_ = std::max<uint64_t>(sx.stx_dio_mem_align, sx.stx_dio_offset_align);
    }
    if (!why_not.empty() && ::fcntl(fd_, F_SETFL, ::fcntl(fd_, F_GETFL) & ~O_DIRECT) != 0)
      return FailedPrecondition(description_, ": cannot turn O_DIRECT off: ", Errno(errno));
  }
  direct_ = why_not.empty();
  if (!direct_)
    direct_io_note_ = StrCat(description_, " (", key, ") uses buffered I/O, not O_DIRECT: ", why_not,
                             "; the swapped states pass through the page cache");
  return Status::OK();
}

NvmeSwapFile::~NvmeSwapFile() {
  // Every handle waited for its transfer; what may remain are the writes' linked sync/fadvise.
  while (ring_ok_ && failed_.ok() && in_flight_ > 0)
    if (!Reap(true).ok()) break;
  if (ring_ok_) io_uring_queue_exit(&ring_);
  if (fd_ >= 0) ::close(fd_);
}

StatusOr<std::unique_ptr<CommHandle>> NvmeSwapFile::StartRead(const std::string& name, void* dst, size_t bytes) {
  return Start(false, name, static_cast<char*>(dst), bytes);
}

StatusOr<std::unique_ptr<CommHandle>> NvmeSwapFile::StartWrite(const std::string& name, const void* src, size_t bytes) {
  // io_uring's write reads from the buffer; it is not written.
  return Start(true, name, const_cast<char*>(static_cast<const char*>(src)), bytes);
}

StatusOr<std::unique_ptr<CommHandle>> NvmeSwapFile::Start(bool write, const std::string& name, char* buf, size_t bytes) {
  auto it = slots_.find(name);
  if (it == slots_.end()) return Internal(description_, " holds no state '", name, "'");
  if (bytes > it->second.second)
    return Internal(description_, ": ", bytes, " bytes of state '", name, "' asked for, it has ", it->second.second);
  auto t = std::make_unique<Transfer>();
  t->write = write;
  t->name = name;
  const uint64_t slot = it->second.first, state_bytes = it->second.second;
  // Direct I/O: requests of whole aligned blocks, in place when the buffer is aligned; the rest
  // (a partial last block, or all of an unaligned buffer) through a bounce buffer.
  const uint64_t block = direct_ ? RoundUp(static_cast<uint64_t>(io_.block_size), align_) : io_.block_size;
  const bool in_place = !direct_ || reinterpret_cast<uintptr_t>(buf) % align_ == 0;
  for (uint64_t done = 0; done < bytes; done += block) {
    const uint64_t len = std::min<uint64_t>(block, bytes - done);
    const uint64_t whole = !direct_ ? len : in_place ? len / align_ * align_ : 0;
    if (whole > 0) {
      Request& r = t->requests.emplace_back();
      r.t = t.get();
      r.buf = buf + done;
      r.offset = slot + done;
      r.len = static_cast<uint32_t>(whole);
    }
    if (whole < len) {
      Request& r = t->requests.emplace_back();
      r.t = t.get();
      r.offset = slot + done + whole;
      r.user = buf + done + whole;
      r.user_len = static_cast<uint32_t>(len - whole);
      r.len = static_cast<uint32_t>(RoundUp(r.user_len, align_));
      r.bounced = true;
      r.keep_tail = write && r.user_len < r.len && done + len < state_bytes;
    }
  }
  (write ? bytes_written_ : bytes_read_) += bytes;
  if (!t->requests.empty()) pending_.push_back(t.get());
  auto handle = std::make_unique<Handle>(this, std::move(t));
  RETURN_IF_ERROR(Submit());
  return std::unique_ptr<CommHandle>(std::move(handle));
}

Status NvmeSwapFile::Bounce(Request* r) {
  char* p = static_cast<char*>(std::aligned_alloc(align_, r->len));
  if (!p) return OutOfRange(description_, ": out of host memory for a ", r->len, "-byte bounce buffer of state '", r->t->name, "'");
  r->bounce.reset(p);
  r->buf = p;
  if (!r->t->write) return Status::OK();
  if (r->keep_tail) {
    // The block the write ends in keeps the state's bytes after it.
    const uint64_t last = r->len - align_;
    const ssize_t n = ::pread(fd_, p + last, align_, static_cast<off_t>(r->offset + last));
    if (n != static_cast<ssize_t>(align_))
      return DataLoss(description_, ": reading the last block of a partial write of state '", r->t->name, "' (at offset ",
                      r->offset + last, "): ", n < 0 ? Errno(errno) : "short read");
  } else {
    std::memset(p + r->user_len, 0, r->len - r->user_len);  // the slot's padding
  }
  std::memcpy(p, r->user, r->user_len);
  return Status::OK();
}

Status NvmeSwapFile::Submit() {
  RETURN_IF_ERROR(failed_);
  // Without overlap_events a new batch waits until the last one has completed.
  if (!io_.overlap_events && in_flight_ > 0) return Status::OK();
  int queued = 0;
  auto queue = [&](Request* r) -> bool {
    const bool write = r->t->write, linked = write && !direct_;
    if (io_uring_sq_space_left(&ring_) < (linked ? 3u : 1u)) return false;
    io_uring_sqe* sqe = io_uring_get_sqe(&ring_);
    if (write && direct_) {
      io_uring_prep_write(sqe, fd_, r->buf, r->len, r->offset);
      io_uring_sqe_set_data64(sqe, reinterpret_cast<uint64_t>(r));
    } else if (write) {
      io_uring_prep_write(sqe, fd_, r->buf, r->len, r->offset);
      sqe->flags |= IOSQE_IO_LINK;
      io_uring_sqe_set_data64(sqe, reinterpret_cast<uint64_t>(r));
      // Push the range to the device, then drop it from the page cache: the states leave memory.
      io_uring_sqe* sync = io_uring_get_sqe(&ring_);
      io_uring_prep_sync_file_range(sync, fd_, r->len, r->offset,
                                    SYNC_FILE_RANGE_WAIT_BEFORE | SYNC_FILE_RANGE_WRITE | SYNC_FILE_RANGE_WAIT_AFTER);
      sync->flags |= IOSQE_IO_LINK;
      io_uring_sqe_set_data64(sync, kAuxRequest);
      io_uring_sqe* drop = io_uring_get_sqe(&ring_);
      io_uring_prep_fadvise(drop, fd_, r->offset, r->len, POSIX_FADV_DONTNEED);
      io_uring_sqe_set_data64(drop, kAuxRequest);
      in_flight_ += 2;
    } else {
      io_uring_prep_read(sqe, fd_, r->buf, r->len, r->offset);
      io_uring_sqe_set_data64(sqe, reinterpret_cast<uint64_t>(r));
    }
    ++r->t->in_flight;
    ++in_flight_;
    ++queued;
    if (io_.single_submit) {
      if (int err = io_uring_submit(&ring_); err < 0) failed_ = DataLoss(description_, ": io_uring_submit: ", Errno(-err));
    }
    return true;
  };
  // queue_depth bounds the data requests in flight (a write's sync and fadvise ride along).
  while (!retry_.empty() && data_in_flight_ < io_.queue_depth) {
    if (!queue(retry_.front())) break;
    ++data_in_flight_;
    --retry_.front()->t->retrying;
    retry_.pop_front();
  }
  while (!pending_.empty() && data_in_flight_ < io_.queue_depth) {
    Transfer* t = pending_.front();
    Request* r = &t->requests[t->next];
    if (r->bounced && !r->bounce) {
      if (Status b = Bounce(r); !b.ok()) {
        // Not submitted: the transfer fails with it once its requests in flight are done.
        if (t->error.ok()) t->error = b;
        if (++t->next == t->requests.size()) pending_.pop_front();
        continue;
      }
    }
    if (!queue(r)) break;
    ++data_in_flight_;
    if (++t->next == t->requests.size()) pending_.pop_front();
  }
  if (queued > 0 && !io_.single_submit) {
    if (int err = io_uring_submit(&ring_); err < 0) failed_ = DataLoss(description_, ": io_uring_submit: ", Errno(-err));
  }
  return failed_;
}

Status NvmeSwapFile::Reap(bool wait_one) {
  io_uring_cqe* cqe = nullptr;
  if (wait_one) {
    int r = io_uring_wait_cqe(&ring_, &cqe);
    if (r < 0 && r != -EINTR) return DataLoss(description_, ": io_uring_wait_cqe: ", Errno(-r));
  }
  while (io_uring_peek_cqe(&ring_, &cqe) == 0 && cqe) {
    const uint64_t data = io_uring_cqe_get_data64(cqe);
    const int res = cqe->res;
    io_uring_cqe_seen(&ring_, cqe);
    --in_flight_;
    if (data == kAuxRequest) {
      // A failed sync/fadvise leaves the data in the page cache, where it is still correct.
      continue;
    }
    Request* r = reinterpret_cast<Request*>(data);
    Transfer* t = r->t;
    --t->in_flight;
    --data_in_flight_;
    if (res >= 0 && static_cast<uint32_t>(res) == r->len) {
      // Done: a bounced read hands its bytes over; the bounce buffer goes.
      if (r->bounced && !t->write) std::memcpy(r->user, r->bounce.get(), r->user_len);
      r->bounce.reset();
    } else if (res < 0) {
      if (t->error.ok())
        t->error = DataLoss(description_, ": ", t->write ? "writing" : "reading", " state '", t->name, "' (",
                            r->len, " bytes at offset ", r->offset, "): ", Errno(-res));
    } else if (static_cast<uint32_t>(res) < r->len) {
      if (res == 0) {
        if (t->error.ok())
          t->error = DataLoss(description_, ": ", t->write ? "writing" : "reading", " state '", t->name,
                              "' stopped at offset ", r->offset, " (the file is shorter than its layout)");
        continue;
      }
      // A short transfer: the rest goes again, first.
      r->buf += res;
      r->offset += static_cast<uint64_t>(res);
      r->len -= static_cast<uint32_t>(res);
      ++t->retrying;
      retry_.push_back(r);
    }
  }
  return Status::OK();
}

Status NvmeSwapFile::WaitFor(Transfer* t) {
  while (!t->finished()) {
    // After a failed submission the queued requests may never complete: fail instead of waiting.
    RETURN_IF_ERROR(Submit());
    if (in_flight_ == 0) return Internal(description_, ": the transfer of state '", t->name, "' cannot be submitted");
    RETURN_IF_ERROR(Reap(true));
  }
  return t->error;
}

void NvmeSwapFile::Forget(Transfer* t) {
  pending_.erase(std::remove(pending_.begin(), pending_.end(), t), pending_.end());
  retry_.erase(std::remove_if(retry_.begin(), retry_.end(), [t](Request* r) { return r->t == t; }), retry_.end());
}

Status NvmeSwapFile::Read(const std::string& name, void* dst, size_t bytes) {
  ASSIGN_OR_RETURN(std::unique_ptr<CommHandle> h, StartRead(name, dst, bytes));
  return h->Wait();
}

Status NvmeSwapFile::Write(const std::string& name, const void* src, size_t bytes) {
  ASSIGN_OR_RETURN(std::unique_ptr<CommHandle> h, StartWrite(name, src, bytes));
  return h->Wait();
}

}  // namespace dsc
