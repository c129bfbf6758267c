// See rootfs_copy.h. One pass over the tree's directories in node order
// (breadth-first: a parent before its children), creating each child in the
// copy relative to directory fds opened beneath the two roots; regular files
// get their data at once (so a second name can be linked right away), and
// directories get their metadata last, deepest first, so their mtimes are
// not moved by what is created inside them. Metadata order per entry is
// extract's: data, chown, xattrs, chmod, times.
#include "fs/rootfs_copy.h"

#include <fcntl.h>
#include <linux/fs.h>
#include <linux/magic.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <vector>

#include "fs/extract_writer.h"
#include "fs/xattr_policy.h"
#include "index/exception_status.h"

namespace lazyroot {

namespace {

std::string FileSystemNameOf(const struct statfs& fs) {
  switch (static_cast<unsigned long>(fs.f_type)) {
    case EXT4_SUPER_MAGIC: return "ext4";  // ext2/ext3 share the magic
    case TMPFS_MAGIC: return "tmpfs";
    case XFS_SUPER_MAGIC: return "xfs";
    case BTRFS_SUPER_MAGIC: return "btrfs";
    case OVERLAYFS_SUPER_MAGIC: return "overlay";
    case NFS_SUPER_MAGIC: return "nfs";
    case 0x65735546: return "fuse";
    case 0x2fc12fc1: return "zfs";
    case 0xf2f52010: return "f2fs";
  }
  char buf[32];
  std::snprintf(buf, sizeof buf, "0x%lx", static_cast<unsigned long>(fs.f_type));
  return buf;
}

std::string FileSystemNameAt(int fd) {
  struct statfs fs {};
  if (::fstatfs(fd, &fs) != 0) return "unknown";
  return FileSystemNameOf(fs);
}

}  // namespace

std::string FileSystemName(const std::string& path) {
  struct statfs fs {};
  if (::statfs(path.c_str(), &fs) != 0) return "unknown";
  return FileSystemNameOf(fs);
}

namespace {

constexpr size_t kCopyChunk = 64u << 20;  // one copy_file_range call at most (interrupt checks between)
constexpr NodeId kNoDir = UINT32_MAX;

struct Location {
  NodeId dir = kNoDir;
  std::string name;
};

class Copier {
 public:
  Copier(const ImageTree& tree, const CopyOptions& options, int src_root, int dst_root, std::string from,
         std::string to)
      : tree_(tree), options_(options), src_root_(src_root), dst_root_(dst_root), from_(std::move(from)),
        to_(std::move(to)), root_(::geteuid() == 0) {}

  Status Run() {
    const uint32_t count = tree_.node_count();
    if (count == 0 || !tree_.IsDir(ImageTree::kRoot)) return Status::Corruption(tree_.name() + ": root is not a directory");
    dir_path_.resize(count);
    first_.resize(count);
    buf_.resize(1 << 20);
    for (NodeId d = 0; d < count; ++d) {
      if (!tree_.IsDir(d)) continue;
      LAZYROOT_RETURN_IF_ERROR(CheckInterrupt());
      if (d != ImageTree::kRoot && first_[d].dir == kNoDir) continue;  // not reached: nothing to copy below it
      LAZYROOT_ASSIGN_OR_RETURN(Fd src, OpenBeneath(src_root_, dir_path_[d], O_RDONLY | O_DIRECTORY));
      LAZYROOT_ASSIGN_OR_RETURN(Fd dst, OpenBeneath(dst_root_, dir_path_[d], O_RDONLY | O_DIRECTORY));
      ++report_.dirs;
      for (uint32_t i = 0, n = tree_.ChildCount(d); i < n; ++i) {
        LAZYROOT_RETURN_IF_ERROR(CopyChild(d, src.get(), dst.get(), tree_.ChildAt(d, i)));
      }
    }
    // Directory metadata, deepest first, the root last.
    for (NodeId d = count; d-- > 0;) {
      if (!tree_.IsDir(d) || (d != ImageTree::kRoot && first_[d].dir == kNoDir)) continue;
      LAZYROOT_RETURN_IF_ERROR(CheckInterrupt());
      LAZYROOT_ASSIGN_OR_RETURN(Fd src, OpenBeneath(src_root_, dir_path_[d], O_RDONLY | O_DIRECTORY));
      LAZYROOT_ASSIGN_OR_RETURN(Fd dst, OpenBeneath(dst_root_, dir_path_[d], O_RDONLY | O_DIRECTORY));
      struct stat st {};
      if (::fstat(src.get(), &st) != 0) return Status::FromErrno("stat " + Show(dir_path_[d]), errno);
      LAZYROOT_RETURN_IF_ERROR(ApplyMeta(src.get(), dst.get(), -1, -1, "", st, dir_path_[d]));
    }
    return Status::Ok();
  }

  CopyReport report() const { return report_; }

 private:
  Status CheckInterrupt() const {
    const int sig = options_.interrupted ? options_.interrupted->load(std::memory_order_relaxed) : 0;
    if (sig == 0) return Status::Ok();
    // A signal number (the CLI's) is named; any other value is a caller's cancel.
    const char* name = sig > 0 ? ::sigabbrev_np(sig) : nullptr;
    if (name == nullptr) return Status::Aborted("cancelled");
    return Status::Aborted(std::string("interrupted by SIG") + name);
  }

  std::string Show(const std::string& rel) const { return from_ + "/" + rel; }

  std::string Join(NodeId dir, std::string_view name) const {
    std::string p = dir_path_[dir];
    if (!p.empty()) p += '/';
    p += name;
    return p;
  }

  // Xattrs of the source entry onto the copy: through fds when given, else
  // by name beneath the directory fds, never following a symlink.
  Status CopyXattrs(int src_fd, int dst_fd, int src_dir, int dst_dir, const std::string& name,
                    const std::string& rel) {
    const std::string src_path = "/proc/self/fd/" + std::to_string(src_dir) + "/" + name;
    const std::string dst_path = "/proc/self/fd/" + std::to_string(dst_dir) + "/" + name;
    std::string names(4096, '\0');
    ssize_t len;
    for (;;) {
      len = src_fd >= 0 ? ::flistxattr(src_fd, names.data(), names.size())
                        : ::llistxattr(src_path.c_str(), names.data(), names.size());
      if (len >= 0 || errno != ERANGE || names.size() >= (1u << 20)) break;
      names.resize(names.size() * 4);
    }
    if (len < 0) {
      if (errno == ENOTSUP) return Status::Ok();
      return Status::FromErrno("list xattrs of " + Show(rel), errno);
    }
    std::string value(4096, '\0');
    for (size_t pos = 0; pos < static_cast<size_t>(len);) {
      const std::string key(names.data() + pos);
      pos += key.size() + 1;
      if (key.empty() || !RootfsKeepsXattr(key)) continue;
      ssize_t v;
      for (;;) {
        v = src_fd >= 0 ? ::fgetxattr(src_fd, key.c_str(), value.data(), value.size())
                        : ::lgetxattr(src_path.c_str(), key.c_str(), value.data(), value.size());
        if (v >= 0 || errno != ERANGE || value.size() >= (1u << 20)) break;
        value.resize(value.size() * 4);
      }
      if (v < 0) return Status::FromErrno("read xattr " + key + " of " + Show(rel), errno);
      int rc = dst_fd >= 0 ? ::fsetxattr(dst_fd, key.c_str(), value.data(), static_cast<size_t>(v), 0)
                           : ::lsetxattr(dst_path.c_str(), key.c_str(), value.data(), static_cast<size_t>(v), 0);
      if (rc != 0) return Status::FromErrno(to_ + "/" + rel + ": set xattr " + key, errno);
    }
    return Status::Ok();
  }

  // Owner, xattrs, mode and times of `st` onto the copy: through dst_fd when
  // >= 0 (src_fd then is the source), else entry `name` of the dir fds.
  Status ApplyMeta(int src_fd, int dst_fd, int src_dir, int dst_dir, const std::string& name, const struct stat& st,
                   const std::string& rel) {
    const std::string path = to_ + "/" + rel;
    const bool link = S_ISLNK(st.st_mode);
    if (root_) {
      int rc = dst_fd >= 0 ? ::fchown(dst_fd, st.st_uid, st.st_gid)
                           : ::fchownat(dst_dir, name.c_str(), st.st_uid, st.st_gid, AT_SYMLINK_NOFOLLOW);
      if (rc != 0) return Status::FromErrno(path + ": chown", errno);
    }
    // Linux keeps no user.* xattrs on symlinks; trusted.*/security.* on them are rare enough to skip.
    if (!link) LAZYROOT_RETURN_IF_ERROR(CopyXattrs(src_fd, dst_fd, src_dir, dst_dir, name, rel));
    if (!link) {
      int rc = dst_fd >= 0 ? ::fchmod(dst_fd, st.st_mode & 07777)
                           : ::fchmodat(dst_dir, name.c_str(), st.st_mode & 07777, 0);
      if (rc != 0) return Status::FromErrno(path + ": chmod", errno);
    }
    struct timespec ts[2] = {st.st_atim, st.st_mtim};
    int rc = dst_fd >= 0 ? ::futimens(dst_fd, ts) : ::utimensat(dst_dir, name.c_str(), ts, AT_SYMLINK_NOFOLLOW);
    if (rc != 0) return Status::FromErrno(path + ": set times", errno);
    return Status::Ok();
  }

  Status CopyChild(NodeId d, int src_dir, int dst_dir, const DirEntry& e) {
    const std::string name(e.name);
    const std::string rel = Join(d, e.name);
    const Node n = tree_.GetNode(e.node);
    if (first_[e.node].dir != kNoDir) {
      if (n.IsDir()) return Status::Corruption(tree_.name() + ": directory /" + rel + " has a second name");
      const Location& first = first_[e.node];
      LAZYROOT_ASSIGN_OR_RETURN(Fd fdir, OpenBeneath(dst_root_, dir_path_[first.dir], O_RDONLY | O_DIRECTORY));
      if (::linkat(fdir.get(), first.name.c_str(), dst_dir, name.c_str(), 0) != 0) {
        return Status::FromErrno("link " + to_ + "/" + rel + " to " + Join(first.dir, first.name), errno);
      }
      ++report_.hardlinks;
      return Status::Ok();
    }
    first_[e.node] = {d, name};
    struct stat st {};
    if (::fstatat(src_dir, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) {
      return Status::FromErrno("stat " + Show(rel), errno);
    }
    if (n.IsDir() != S_ISDIR(st.st_mode) || (n.type == NodeType::kSymlink) != S_ISLNK(st.st_mode)) {
      return Status::IoError(Show(rel) + ": changed while being copied (its type is not the image's)");
    }
    switch (st.st_mode & S_IFMT) {
      case S_IFDIR:
        if (::mkdirat(dst_dir, name.c_str(), 0700) != 0) return Status::FromErrno("mkdir " + to_ + "/" + rel, errno);
        dir_path_[e.node] = rel;
        return Status::Ok();
      case S_IFLNK: {
        std::string target(static_cast<size_t>(std::max<off_t>(st.st_size, 0)) + 1, '\0');
        ssize_t got = ::readlinkat(src_dir, name.c_str(), target.data(), target.size());
        if (got < 0) return Status::FromErrno("readlink " + Show(rel), errno);
        target.resize(static_cast<size_t>(got));
        if (::symlinkat(target.c_str(), dst_dir, name.c_str()) != 0) {
          return Status::FromErrno("symlink " + to_ + "/" + rel, errno);
        }
        ++report_.symlinks;
        return ApplyMeta(-1, -1, src_dir, dst_dir, name, st, rel);
      }
      case S_IFREG: return CopyFile(src_dir, dst_dir, name, st, rel);
      case S_IFCHR:
      case S_IFBLK:
      case S_IFIFO:
        if (::mknodat(dst_dir, name.c_str(), (st.st_mode & S_IFMT) | 0600, st.st_rdev) != 0) {
          return Status::FromErrno("mknod " + to_ + "/" + rel, errno);
        }
        ++report_.others;
        return ApplyMeta(-1, -1, src_dir, dst_dir, name, st, rel);
    }
    return Status::IoError(Show(rel) + ": a socket or unknown file type, not written by extract");
  }

  Status CopyFile(int src_dir, int dst_dir, const std::string& name, const struct stat& st, const std::string& rel) {
    ++report_.files;
    const std::string path = to_ + "/" + rel;
    Fd src(::openat(src_dir, name.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC));
    if (!src.valid()) return Status::FromErrno("open " + Show(rel), errno);
    Fd dst(::openat(dst_dir, name.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600));
    if (!dst.valid()) return Status::FromErrno("create " + path, errno);
    if (options_.reflink) {
      if (st.st_size > 0 && ::ioctl(dst.get(), FICLONE, src.get()) != 0) {
        const int err = errno;
        if (err == EXDEV) {
          return Status::Unsupported("--reflink: " + to_ + " (" + FileSystemNameAt(dst_root_) + ") and " + from_ +
                                     " (" + FileSystemNameAt(src_root_) +
                                     ") are on different file systems; a reflink copy needs both on one");
        }
        if (err == EOPNOTSUPP || err == EINVAL || err == ENOTTY || err == ENOSYS) {
          return Status::Unsupported("--reflink: the " + FileSystemNameAt(dst_root_) + " file system of " + to_ +
                                     " cannot share extents (FICLONE on " + path + ": " + std::strerror(err) +
                                     "); copy without --reflink, or use xfs (reflink=1) or btrfs");
        }
        return Status::FromErrno("clone " + Show(rel) + " to " + path, err);
      }
      report_.bytes += static_cast<uint64_t>(st.st_blocks) * 512;
    } else {
      LAZYROOT_RETURN_IF_ERROR(CopyData(src.get(), dst.get(), static_cast<uint64_t>(st.st_size), rel));
    }
    return ApplyMeta(src.get(), dst.get(), -1, -1, "", st, rel);
  }

  // The data runs of src (SEEK_DATA/SEEK_HOLE) by copy_file_range, falling
  // back to read/write where the kernel or file systems refuse; holes stay
  // holes (the file is truncated to its size last).
  Status CopyData(int src, int dst, uint64_t size, const std::string& rel) {
    uint64_t off = 0;
    while (off < size) {
      LAZYROOT_RETURN_IF_ERROR(CheckInterrupt());
      off_t data = ::lseek(src, static_cast<off_t>(off), SEEK_DATA);
      if (data < 0) {
        if (errno == ENXIO) break;  // only a hole is left
        if (errno != EINVAL) return Status::FromErrno("seek " + Show(rel), errno);
        data = static_cast<off_t>(off);  // no SEEK_DATA: copy it all
      }
      off_t hole = ::lseek(src, data, SEEK_HOLE);
      if (hole < 0) hole = static_cast<off_t>(size);
      uint64_t end = std::min<uint64_t>(static_cast<uint64_t>(hole), size);
      LAZYROOT_RETURN_IF_ERROR(CopyRange(src, dst, static_cast<uint64_t>(data), end, rel));
      off = end;
    }
    if (::ftruncate(dst, static_cast<off_t>(size)) != 0) return Status::FromErrno("truncate " + to_ + "/" + rel, errno);
    return Status::Ok();
  }

  Status CopyRange(int src, int dst, uint64_t from, uint64_t to, const std::string& rel) {
    while (from < to) {
      LAZYROOT_RETURN_IF_ERROR(CheckInterrupt());
      const size_t want = static_cast<size_t>(std::min<uint64_t>(to - from, kCopyChunk));
      if (!no_copy_range_) {
        loff_t in = static_cast<loff_t>(from), out = static_cast<loff_t>(from);
        ssize_t n = ::copy_file_range(src, &in, dst, &out, want, 0);
        if (n > 0) {
          from += static_cast<uint64_t>(n);
          report_.bytes += static_cast<uint64_t>(n);
          continue;
        }
        if (n == 0) return Status::IoError(Show(rel) + ": ends before its size (changed while being copied?)");
        if (errno == EINTR) continue;
        if (errno != EXDEV && errno != EINVAL && errno != ENOSYS && errno != EOPNOTSUPP) {
          return Status::FromErrno("copy " + Show(rel) + " to " + to_ + "/" + rel, errno);
        }
        no_copy_range_ = true;
      }
      const size_t len = std::min(want, buf_.size());
      ssize_t r = ::pread(src, buf_.data(), len, static_cast<off_t>(from));
      if (r < 0 && errno == EINTR) continue;
      if (r < 0) return Status::FromErrno("read " + Show(rel), errno);
      if (r == 0) return Status::IoError(Show(rel) + ": ends before its size (changed while being copied?)");
      for (ssize_t done = 0; done < r;) {
        ssize_t w = ::pwrite(dst, buf_.data() + done, static_cast<size_t>(r - done), static_cast<off_t>(from) + done);
        if (w < 0 && errno == EINTR) continue;
        if (w < 0) return Status::FromErrno("write " + to_ + "/" + rel, errno);
        done += w;
      }
      from += static_cast<uint64_t>(r);
      report_.bytes += static_cast<uint64_t>(r);
    }
    return Status::Ok();
  }

  const ImageTree& tree_;
  const CopyOptions& options_;
  const int src_root_, dst_root_;
  const std::string from_, to_;
  const bool root_;
  bool no_copy_range_ = false;
  std::vector<std::string> dir_path_;
  std::vector<Location> first_;
  std::vector<uint8_t> buf_;
  CopyReport report_;
};

}  // namespace

Result<CopyReport> CopyRootfs(const ImageTree& tree, const std::string& from, const std::string& to_in,
                              const CopyOptions& options) {
  LAZYROOT_ASSIGN_OR_RETURN(std::string to, CheckTargetDir(to_in, "extract --copy"));
  Fd src(::open(from.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
  if (!src.valid()) return Status::FromErrno("open " + from, errno);
  std::string tmpl = to + ".lazyroot-tmp-XXXXXX";
  if (::mkdtemp(tmpl.data()) == nullptr) return Status::FromErrno("create a temp dir beside " + to, errno);
  const std::string tmp = tmpl;
  Status result;
  CopyReport report;
  {
    Fd dst(::open(tmp.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
    if (!dst.valid()) {
      result = Status::FromErrno("open " + tmp, errno);
    } else {
      try {
        Copier copier(tree, options, src.get(), dst.get(), from, to);
        result = copier.Run();
        report = copier.report();
      } catch (...) {
        result = CurrentExceptionStatus("copy " + from + " to " + to);
      }
    }
  }
  if (result.ok() && ::rename(tmp.c_str(), to.c_str()) != 0) {
    result = Status::FromErrno("rename " + tmp + " to " + to, errno);
  }
  if (!result.ok()) {
    (void)RemoveTree(tmp);
    return result;
  }
  return report;
}

}  // namespace lazyroot
