// Test aid, preloaded into dsrun (LD_PRELOAD): open() and open64() refuse O_DIRECT with EINVAL,
// as a file system without direct I/O does, so the NVMe swap files' buffered fallback runs on any disk.
#undef _FORTIFY_SOURCE  // fortified headers define open() inline, which this file replaces
#include <dlfcn.h>
#include <fcntl.h>

#include <cerrno>
#include <cstdarg>

namespace {

using OpenFn = int (*)(const char*, int, ...);

int Forward(const char* symbol, const char* path, int flags, mode_t mode) {
  if (flags & O_DIRECT) {
    errno = EINVAL;
    return -1;
  }
  auto next = reinterpret_cast<OpenFn>(dlsym(RTLD_NEXT, symbol));
  if (!next) {
    errno = ENOSYS;
    return -1;
  }
  return next(path, flags, mode);
}

// The mode argument exists only when the flags create a file.
mode_t ModeOf(int flags, va_list ap) {
  return (flags & O_CREAT) || (flags & O_TMPFILE) == O_TMPFILE ? static_cast<mode_t>(va_arg(ap, int)) : 0;
}

}  // namespace

extern "C" int open(const char* path, int flags, ...) {
  va_list ap;
  va_start(ap, flags);
  const mode_t mode = ModeOf(flags, ap);
  va_end(ap);
  return Forward("open", path, flags, mode);
}

extern "C" int open64(const char* path, int flags, ...) {
  va_list ap;
  va_start(ap, flags);
  const mode_t mode = ModeOf(flags, ap);
  va_end(ap);
  return Forward("open64", path, flags, mode);
}
