// Safe output files: temporary file, rename, regular files only.
#include "ir/file_write.h"

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>

#include <fcntl.h>
#include <unistd.h>

namespace dsc {
namespace {

// What a non-regular file is, for the refusal to replace it.
const char* FileKind(std::filesystem::file_type t) {
  switch (t) {
    case std::filesystem::file_type::directory: return "a directory";
    case std::filesystem::file_type::symlink: return "a symbolic link";
    case std::filesystem::file_type::block: return "a block device";
    case std::filesystem::file_type::character: return "a character device";
    case std::filesystem::file_type::fifo: return "a FIFO";
    case std::filesystem::file_type::socket: return "a socket";
    default: return "not a regular file";
  }
}

Status WriteAll(int fd, const std::string& bytes) {
  const char* p = bytes.data();
  size_t left = bytes.size();
  while (left > 0) {
    const ssize_t n = ::write(fd, p, left);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return InvalidArgument(std::strerror(n < 0 ? errno : EIO));
    p += n;
    left -= static_cast<size_t>(n);
  }
  return Status::OK();
}

}  // namespace

// The rename would replace a device node, FIFO or symlink (`-o /dev/null` turning the device into
// a plan file), so only a regular file or nothing may be at `path`. The temporary file is created
// exclusively (never through a link someone left at its name) and removed on every error.
Status WritePiecesAtomically(const std::string& path, const std::vector<const std::string*>& pieces) {
  std::error_code ec;
  const std::filesystem::file_status st = std::filesystem::symlink_status(path, ec);
  if (ec && ec != std::errc::no_such_file_or_directory)
    return InvalidArgument("cannot write ", path, ": ", ec.message());
  if (!ec && std::filesystem::exists(st) && !std::filesystem::is_regular_file(st))
    return InvalidArgument("cannot write ", path, ": it is ", FileKind(st.type()),
                           "; refusing to replace anything but a regular file");
  std::string tmp;
  int fd = -1;
  for (int attempt = 0; fd < 0 && attempt < 100; ++attempt) {
    tmp = StrCat(path, ".tmp", ::getpid(), attempt ? StrCat(".", attempt) : "");
    fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
    if (fd < 0 && errno != EEXIST) return InvalidArgument("cannot write ", path, ": ", std::strerror(errno));
  }
  if (fd < 0) return InvalidArgument("cannot write ", path, ": cannot create a temporary file next to it");
  Status written = Status::OK();
  for (const std::string* p : pieces)
    if (written.ok()) written = WriteAll(fd, *p);
  // close() reports what a network or full file system deferred.
  if (::close(fd) != 0 && written.ok()) written = InvalidArgument(std::strerror(errno));
  if (written.ok() && std::rename(tmp.c_str(), path.c_str()) != 0) written = InvalidArgument(std::strerror(errno));
  if (!written.ok()) {
    ::unlink(tmp.c_str());
    return InvalidArgument("cannot write ", path, ": ", written.message());
  }
  return Status::OK();
}

Status WriteFileAtomically(const std::string& path, const std::string& bytes) {
  return WritePiecesAtomically(path, {&bytes});
}

}  // namespace dsc
