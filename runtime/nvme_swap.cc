// The swap space of NVMe-offloaded optimizer states: one io_uring file per rank.
#include "runtime/nvme_swap.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>

namespace dsc {
namespace {

constexpr uint64_t kSlotAlignment = 4096;
// user_data of the sync_file_range and fadvise requests linked after a write: nothing waits for them.
constexpr uint64_t kAuxRequest = 0;

std::string Errno(int err) { return std::strerror(err); }

}  // namespace

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
  f->fd_ = ::open(dir.c_str(), O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
  if (f->fd_ < 0) {
    // No O_TMPFILE on this filesystem: a named file, unlinked at once, gone with the process too.
    const std::string path = StrCat(dir, "/dscompile-swap-rank", rank, "-pid", ::getpid(), ".swap");
    f->fd_ = ::open(path.c_str(), O_CREAT | O_EXCL | O_RDWR | O_CLOEXEC, 0600);
    if (f->fd_ < 0) return FailedPrecondition(key, ": cannot create a file in ", dir, ": ", Errno(errno));
    ::unlink(path.c_str());
  }
  for (const SwapSlot& s : slots) {
    if (!f->slots_.emplace(s.name, std::pair{f->file_bytes_, s.bytes}).second)
      return Internal("state '", s.name, "' is swapped twice");
    f->file_bytes_ += (s.bytes + kSlotAlignment - 1) / kSlotAlignment * kSlotAlignment;
  }
  // Zeros until written: the optimizer states' initial value.
  if (::ftruncate(f->fd_, static_cast<off_t>(f->file_bytes_)) != 0)
    return FailedPrecondition(f->description_, ": cannot size it to ", f->file_bytes_, " bytes: ", Errno(errno));
  // A write takes three entries (the write, sync_file_range, fadvise).
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
  const uint64_t block = static_cast<uint64_t>(io_.block_size);
  for (uint64_t done = 0; done < bytes; done += block)
    t->requests.push_back(Request{t.get(), buf + done, it->second.first + done,
                                  static_cast<uint32_t>(std::min<uint64_t>(block, bytes - done))});
  (write ? bytes_written_ : bytes_read_) += bytes;
  if (!t->requests.empty()) pending_.push_back(t.get());
  auto handle = std::make_unique<Handle>(this, std::move(t));
  RETURN_IF_ERROR(Submit());
  return std::unique_ptr<CommHandle>(std::move(handle));
}

Status NvmeSwapFile::Submit() {
  RETURN_IF_ERROR(failed_);
  // Without overlap_events a new batch waits until the last one has completed.
  if (!io_.overlap_events && in_flight_ > 0) return Status::OK();
  int queued = 0;
  auto queue = [&](Request* r) -> bool {
    const bool write = r->t->write;
    if (io_uring_sq_space_left(&ring_) < (write ? 3u : 1u)) return false;
    io_uring_sqe* sqe = io_uring_get_sqe(&ring_);
    if (write) {
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
    if (!queue(&t->requests[t->next])) break;
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
    if (res < 0) {
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
