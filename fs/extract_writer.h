// The disk side of extraction: file operations anchored at one directory fd
// that never follow a symlink found on disk. Paths handed in are relative to
// that root and resolved by the kernel with openat2(RESOLVE_BENEATH |
// RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS) (or, where openat2 is missing,
// one O_NOFOLLOW | O_DIRECTORY openat per component), so whatever sits in the
// tree — an absolute symlink, "..", a directory swapped for a symlink by
// someone racing us — nothing is created or changed outside the root
// (CVE-2014-6407, CVE-2018-15664 class). Errors name the path. Free functions
// over fds: thread-safe.
#pragma once

#include <sys/types.h>

#include <string>
#include <string_view>

#include "index/status.h"

namespace lazyroot {

// An owned file descriptor; closes on destruction. Move-only.
class Fd {
 public:
  Fd() = default;
  explicit Fd(int fd) : fd_(fd) {}
  ~Fd();
  Fd(Fd&& o) noexcept : fd_(o.fd_) { o.fd_ = -1; }
  Fd& operator=(Fd&& o) noexcept;
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  int get() const { return fd_; }
  bool valid() const { return fd_ >= 0; }
  void reset();

 private:
  int fd_ = -1;
};

// Opens `rel` ("" or "." is the root itself; no leading "/") beneath root_fd
// with `flags` (O_CLOEXEC and O_NOFOLLOW are added). Fails with IoError
// naming `rel` if any component is a symlink, if it would leave the root, or
// if the open fails (e.g. ENOTDIR, ELOOP, ENAMETOOLONG past PATH_MAX).
Result<Fd> OpenBeneath(int root_fd, std::string_view rel, int flags, mode_t mode = 0);

// Sets one extended attribute on the entry `name` of directory dir_fd
// without following it if it is a symlink (lsetxattr through
// /proc/self/fd/<dir_fd>/<name>: the directory is pinned by its fd, only the
// last component is looked up, and it is not followed). Returns the errno of
// the failure (0 on success) so callers can classify EPERM/ENOTSUP.
int SetXattrAt(int dir_fd, const std::string& name, const std::string& xattr, std::string_view value);

// A target directory for ExtractTree and CopyRootfs: `dir_in` without
// trailing slashes, which must not exist (its parent is checked when the
// temp dir is made) or be an empty directory, not a symlink to one.
// InvalidArgument naming it otherwise ("/", ".", "..", not empty, not a
// directory).
Result<std::string> CheckTargetDir(const std::string& dir_in, const char* command);

// Removes `path` and everything below it without following symlinks and with
// a constant number of open fds whatever the depth (it walks down by
// O_NOFOLLOW opens and back up through ".."; directories are made u+rwx on
// the way so a tree extracted rootless with 0555 directories can go).
// OK if `path` does not exist. Meant for directories lazyroot created itself.
// It never enters a mount (a bind mount into a cached rootfs, /dev or /proc
// mounted there for a chroot): such a directory, or `path` itself being one,
// is IoError naming it, and nothing below it is touched.
Status RemoveTree(const std::string& path);

// Whether the entry `name` of dir_fd (not followed if a symlink) is the root
// of a mount: STATX_ATTR_MOUNT_ROOT, or on kernels before 5.8 a device other
// than parent_dev. False when it cannot be stat'ed.
bool IsMountRoot(int dir_fd, const char* name, dev_t parent_dev);

}  // namespace lazyroot
