#include "src/common/file_io.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>

namespace lazyroot {

namespace {

Result<std::string> ReadWhole(int dir_fd, const std::string& name, const std::string& path, uint64_t cap, int flags,
                              UnfitFileCodes codes) {
  // O_NONBLOCK: a FIFO put where a file belongs must not hang the open
  // (store records, indexes and trees; config and auth files).
  int fd = ::openat(dir_fd, name.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC | flags);
  if (fd < 0) {
    int err = errno;
    if (err == ENOENT || err == ENOTDIR) return Status::NotFound(path + " does not exist");
    if (err == ELOOP && (flags & O_NOFOLLOW) != 0) {
      return Status::Error(codes.not_regular, path + ": a symlink, not a regular file");
    }
    return Status::FromErrno("open " + path, err);
  }
  struct stat st {};
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    ::close(fd);
    return Status::Error(codes.not_regular, path + ": not a regular file");
  }
  // Sized by fstat and read in place, one read for a file that does not
  // change meanwhile: appending 64 KiB pieces grew the string by doubling,
  // copying a 7 MB layer index about twice over (what a mount waited for).
  // The cap still bounds the memory, whatever the file turns out to hold.
  std::string out;
  size_t have = 0;
  out.resize(static_cast<size_t>(std::min<uint64_t>(static_cast<uint64_t>(st.st_size), cap)) + 1);
  for (;;) {
    if (have == out.size()) {
      // Grown since fstat (or at the cap): go on in 64 KiB steps.
      if (out.size() > cap) {
        ::close(fd);
        return Status::Error(codes.too_large, path + ": larger than " + std::to_string(cap) + " bytes");
      }
      out.resize(static_cast<size_t>(std::min<uint64_t>(out.size() + (64 << 10), cap + 1)));
    }
    ssize_t n = ::read(fd, out.data() + have, out.size() - have);
    if (n < 0) {
      if (errno == EINTR) continue;
      int err = errno;
      ::close(fd);
      return Status::FromErrno("read " + path, err);
    }
    if (n == 0) break;
    have += static_cast<size_t>(n);
  }
  ::close(fd);
  if (have > cap) return Status::Error(codes.too_large, path + ": larger than " + std::to_string(cap) + " bytes");
  out.resize(have);
  return out;
}

}  // namespace

Result<std::string> ReadWholeFile(const std::string& path, uint64_t cap, UnfitFileCodes codes) {
  return ReadWhole(AT_FDCWD, path, path, cap, 0, codes);
}

Result<std::string> ReadWholeFileAt(int dir_fd, const std::string& name, const std::string& path, uint64_t cap,
                                    UnfitFileCodes codes) {
  return ReadWhole(dir_fd, name, path, cap, O_NOFOLLOW, codes);
}

Status FsyncDir(const std::string& dir) {
  int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return Status::FromErrno("open " + dir, errno);
  int rc = ::fsync(fd);
  int err = errno;
  ::close(fd);
  if (rc != 0) return Status::FromErrno("fsync " + dir, err);
  return Status::Ok();
}

std::string UniqueTempSuffix() {
  static std::atomic<uint64_t> counter{0};
  return ".tmp." + std::to_string(::getpid()) + "." + std::to_string(::gettid()) + "." +
         std::to_string(counter.fetch_add(1, std::memory_order_relaxed));
}

Status WriteFileAtomic(const std::string& path, std::string_view bytes, mode_t mode, DirSync dir_sync) {
  // Unique among live threads; one left by a dead process whose pid and tid
  // came round again is stale, hence O_TRUNC rather than O_EXCL.
  const std::string tmp = path + UniqueTempSuffix();
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, mode);
  if (fd < 0) return Status::FromErrno("create " + tmp, errno);
  size_t done = 0;
  while (done < bytes.size()) {
    ssize_t n = ::write(fd, bytes.data() + done, bytes.size() - done);
    if (n < 0) {
      if (errno == EINTR) continue;
      int err = errno;
      ::close(fd);
      ::unlink(tmp.c_str());
      return Status::FromErrno("write " + tmp, err);
    }
    done += static_cast<size_t>(n);
  }
  if (::fsync(fd) != 0) {
    int err = errno;
    ::close(fd);
    ::unlink(tmp.c_str());
    return Status::FromErrno("fsync " + tmp, err);
  }
  ::close(fd);
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    int err = errno;
    ::unlink(tmp.c_str());
    return Status::FromErrno("rename " + tmp, err);
  }
  if (dir_sync == DirSync::kCaller) return Status::Ok();
  return FsyncDir(path.substr(0, path.rfind('/')));
}

}  // namespace lazyroot
