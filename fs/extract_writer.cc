#include "fs/extract_writer.h"

#include <dirent.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/syscall.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <string>
#include <vector>

namespace lazyroot {

Fd::~Fd() { reset(); }

Fd& Fd::operator=(Fd&& o) noexcept {
  if (this != &o) {
    reset();
    fd_ = o.fd_;
    o.fd_ = -1;
  }
  return *this;
}

void Fd::reset() {
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
}

namespace {

// openat2 exists since Linux 5.6; remember once that it does not.
std::atomic<bool> g_no_openat2{false};

// One openat per component, each O_NOFOLLOW; intermediate ones O_DIRECTORY.
Result<Fd> OpenByComponents(int root_fd, std::string_view rel, int flags, mode_t mode) {
  Fd cur(::fcntl(root_fd, F_DUPFD_CLOEXEC, 0));
  if (!cur.valid()) return Status::FromErrno("dup root directory fd", errno);
  size_t pos = 0;
  while (true) {
    size_t slash = rel.find('/', pos);
    std::string comp(rel.substr(pos, slash == std::string_view::npos ? std::string_view::npos : slash - pos));
    bool last = slash == std::string_view::npos;
    if (comp == "..") return Status::IoError("open " + std::string(rel) + ": \"..\" component refused");
    if (comp.empty() || comp == ".") {
      if (last) {
        // Reopen the directory we are at with the caller's flags.
        int fd = ::openat(cur.get(), ".", flags | O_CLOEXEC | O_NOFOLLOW, mode);
        if (fd < 0) return Status::FromErrno("open " + std::string(rel), errno);
        return Fd(fd);
      }
      pos = slash + 1;
      continue;
    }
    int f = last ? (flags | O_CLOEXEC | O_NOFOLLOW) : (O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    int fd = ::openat(cur.get(), comp.c_str(), f, mode);
    if (fd < 0) return Status::FromErrno("open " + std::string(rel), errno);
    if (last) return Fd(fd);
    cur = Fd(fd);
    pos = slash + 1;
  }
}

}  // namespace

Result<Fd> OpenBeneath(int root_fd, std::string_view rel, int flags, mode_t mode) {
  std::string path = rel.empty() ? std::string(".") : std::string(rel);
  if (!g_no_openat2.load(std::memory_order_relaxed)) {
    struct open_how how {};
    how.flags = static_cast<uint64_t>(flags | O_CLOEXEC | O_NOFOLLOW);
    how.mode = (flags & O_CREAT) ? mode : 0;
    how.resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS;
    long fd = ::syscall(SYS_openat2, root_fd, path.c_str(), &how, sizeof how);
    if (fd >= 0) return Fd(static_cast<int>(fd));
    int err = errno;
    if (err != ENOSYS) return Status::FromErrno("open " + path + " beneath the extraction root", err);
    g_no_openat2.store(true, std::memory_order_relaxed);
  }
  return OpenByComponents(root_fd, path, flags, mode);
}

int SetXattrAt(int dir_fd, const std::string& name, const std::string& xattr, std::string_view value) {
  std::string path = "/proc/self/fd/" + std::to_string(dir_fd) + "/" + name;
  if (::lsetxattr(path.c_str(), xattr.c_str(), value.data(), value.size(), 0) == 0) return 0;
  return errno;
}

namespace {

bool IsEmptyDir(const std::string& dir, Status* st) {
  int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0) {
    *st = Status::FromErrno("open " + dir, errno);
    return false;
  }
  DIR* d = ::fdopendir(fd);  // owns fd from here
  if (d == nullptr) {
    *st = Status::FromErrno("opendir " + dir, errno);
    ::close(fd);
    return false;
  }
  bool empty = true;
  while (struct dirent* e = ::readdir(d)) {
    std::string_view n = e->d_name;
    if (n != "." && n != "..") {
      empty = false;
      break;
    }
  }
  ::closedir(d);
  return empty;
}

}  // namespace

Result<std::string> CheckTargetDir(const std::string& dir_in, const char* command) {
  const std::string cmd = command;
  std::string dir = dir_in;
  while (dir.size() > 1 && dir.back() == '/') dir.pop_back();
  if (dir.empty() || dir == "/" || dir == "." || dir == "..") {
    return Status::InvalidArgument(cmd + ": \"" + dir_in + "\" cannot be the target directory");
  }
  struct stat st {};
  if (::lstat(dir.c_str(), &st) == 0) {
    if (!S_ISDIR(st.st_mode)) return Status::InvalidArgument(cmd + ": " + dir + " exists and is not a directory");
    Status open_st;
    bool empty = IsEmptyDir(dir, &open_st);
    if (!open_st.ok()) return open_st;
    if (!empty) return Status::InvalidArgument(cmd + ": " + dir + " is not empty");
  } else if (errno != ENOENT) {
    return Status::FromErrno(cmd + ": " + dir, errno);
  }
  return dir;
}

bool IsMountRoot(int dir_fd, const char* name, dev_t parent_dev) {
  struct statx stx {};
  if (::statx(dir_fd, name, AT_SYMLINK_NOFOLLOW | AT_NO_AUTOMOUNT, STATX_TYPE, &stx) == 0) {
    if ((stx.stx_attributes_mask & STATX_ATTR_MOUNT_ROOT) != 0) {
      return (stx.stx_attributes & STATX_ATTR_MOUNT_ROOT) != 0;
    }
    // Before Linux 5.8: a mount of another file system at least.
    return makedev(stx.stx_dev_major, stx.stx_dev_minor) != parent_dev;
  }
  return false;  // gone, or not ours to stat: the open that follows says so
}

namespace {

Status MountedThere(const std::string& path) {
  return Status::IoError("remove " + path +
                         ": a file system is mounted there (a bind mount into the tree?); nothing below it is "
                         "removed: unmount it and try again");
}

}  // namespace

Status RemoveTree(const std::string& path) {
  struct stat st {};
  if (::lstat(path.c_str(), &st) != 0) {
    if (errno == ENOENT) return Status::Ok();
    return Status::FromErrno("remove " + path + ": lstat", errno);
  }
  if (!S_ISDIR(st.st_mode)) {
    if (::unlink(path.c_str()) != 0 && errno != ENOENT) return Status::FromErrno("remove " + path, errno);
    return Status::Ok();
  }
  // Never into another mount: what is mounted there (/dev, /proc, a host
  // directory bound into a cached rootfs) is not ours to delete or chmod.
  struct stat up {};
  const dev_t parent_dev = ::stat((path + "/..").c_str(), &up) == 0 ? up.st_dev : st.st_dev;
  if (IsMountRoot(AT_FDCWD, path.c_str(), parent_dev)) return MountedThere(path);
  Fd cur(::open(path.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
  if (!cur.valid()) return Status::FromErrno("remove " + path + ": open", errno);
  // Names from `path` down to the directory `cur` holds; no fds are kept for
  // the levels above, so depth costs memory, not descriptors.
  std::vector<std::string> stack;
  auto where = [&] {
    std::string p = path;
    for (const auto& s : stack) p += "/" + s;
    return p;
  };
  while (true) {
    (void)::fchmod(cur.get(), 0700);  // best effort: we own what we remove
    int dup_fd = ::fcntl(cur.get(), F_DUPFD_CLOEXEC, 0);
    if (dup_fd < 0) return Status::FromErrno("remove " + where() + ": dup", errno);
    DIR* d = ::fdopendir(dup_fd);
    if (d == nullptr) {
      int err = errno;
      ::close(dup_fd);
      return Status::FromErrno("remove " + where() + ": opendir", err);
    }
    ::rewinddir(d);
    std::string subdir;
    Status failed;
    while (true) {
      errno = 0;
      struct dirent* e = ::readdir(d);
      if (e == nullptr) {
        if (errno != 0) failed = Status::FromErrno("remove " + where() + ": readdir", errno);
        break;
      }
      std::string_view n = e->d_name;
      if (n == "." || n == "..") continue;
      bool is_dir = e->d_type == DT_DIR;
      if (e->d_type == DT_UNKNOWN) {
        struct stat cst {};
        if (::fstatat(cur.get(), e->d_name, &cst, AT_SYMLINK_NOFOLLOW) == 0) is_dir = S_ISDIR(cst.st_mode);
      }
      if (is_dir) {
        if (subdir.empty()) subdir = e->d_name;
        continue;
      }
      if (::unlinkat(cur.get(), e->d_name, 0) != 0 && errno != ENOENT) {
        failed = Status::FromErrno("remove " + where() + "/" + std::string(n), errno);
        break;
      }
    }
    ::closedir(d);
    if (!failed.ok()) return failed;
    if (!subdir.empty()) {
      if (IsMountRoot(cur.get(), subdir.c_str(), st.st_dev)) return MountedThere(where() + "/" + subdir);
      // A 0000 or 0555 directory of a rootless extraction: open it up first.
      (void)::fchmodat(cur.get(), subdir.c_str(), 0700, AT_SYMLINK_NOFOLLOW);
      Fd child(::openat(cur.get(), subdir.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
      if (!child.valid()) return Status::FromErrno("remove " + where() + "/" + subdir + ": open", errno);
      stack.push_back(std::move(subdir));
      cur = std::move(child);
      continue;
    }
    if (stack.empty()) break;
    Fd parent(::openat(cur.get(), "..", O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
    if (!parent.valid()) return Status::FromErrno("remove " + where() + ": open ..", errno);
    if (::unlinkat(parent.get(), stack.back().c_str(), AT_REMOVEDIR) != 0 && errno != ENOENT) {
      return Status::FromErrno("remove " + where(), errno);
    }
    stack.pop_back();
    cur = std::move(parent);
  }
  cur.reset();
  if (::rmdir(path.c_str()) != 0 && errno != ENOENT) return Status::FromErrno("remove " + path, errno);
  return Status::Ok();
}

}  // namespace lazyroot
