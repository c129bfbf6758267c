#include "fs/mount.h"

#include <malloc.h>
#include <spawn.h>
#include <sys/mount.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstdlib>
#include <optional>
#include <thread>
#include <vector>

#include "fs/daemon_token.h"
#include "fs/fuse_adapter.h"
#include "fs/image_fs.h"
#include "fs/mount_table.h"

extern char** environ;

namespace lazyroot {

Status RunMount(std::shared_ptr<const ImageTree> tree, std::shared_ptr<const ImageContent> content,
                const MountOptions& options, const std::function<void()>& on_ready) {
  if (tree->layer_count() > content->layer_count()) {
    return Status::InvalidArgument("mount " + options.mountpoint + ": tree has " + std::to_string(tree->layer_count()) +
                                   " layers, content " + std::to_string(content->layer_count()));
  }
  // Decoded units (~2 MiB) are allocated and freed all the time; above
  // glibc's mmap threshold each one would be a fresh mmap with page faults and
  // zeroing. Keep them on the heap, where freed units are reused; the cache
  // bound keeps the heap bounded.
  mallopt(M_MMAP_THRESHOLD, 64 << 20);
  mallopt(M_TRIM_THRESHOLD, 256 << 20);
  ImageFsOptions fs_options;
  fs_options.streams.capacity_bytes = options.cache_bytes;
  // Read-ahead decodes on every core: inflate is what reads wait for.
  fs_options.streams.prefetch_workers = std::clamp(std::thread::hardware_concurrency(), 1u, 4u);
  fs_options.streams.unit_copies = options.unit_copies;
  fs_options.log = options.log;
  fs_options.layer_xattr_values = options.layer_xattr_values;
  fs_options.synthetic_nodes = options.synthetic_nodes;
  fs_options.root_files = options.root_files;
  // Declared before fs, so released after it: after its workers are joined.
  DaemonToken token;
  ImageFs fs(std::move(tree), std::move(content), std::move(fs_options));
  // The layers' tables load once the mount is ready, not before.
  Status served = ServeFuse(
      fs, options,
      [&] {
        if (on_ready) on_ready();
        fs.StartWarmUp();
      },
      &token);
  if (options.on_served) options.on_served();
  return served;
}

namespace {

// dir as the mount table spells it. A mount whose daemon died answers every
// stat with ENOTCONN, realpath included; its parent still resolves, and
// unmounting such a mount is what umount is most often for.
Result<std::string> ResolveMountPoint(const std::string& dir) {
  char resolved[PATH_MAX];
  if (::realpath(dir.c_str(), resolved) != nullptr) return std::string(resolved);
  const int err = errno;
  std::string path = dir;
  while (path.size() > 1 && path.back() == '/') path.pop_back();
  const size_t slash = path.rfind('/');
  const std::string base = slash == std::string::npos ? path : path.substr(slash + 1);
  const std::string parent = slash == std::string::npos ? "." : slash == 0 ? "/" : path.substr(0, slash);
  if (err != ENOTCONN || base == "." || base == ".." || ::realpath(parent.c_str(), resolved) == nullptr) {
    return Status::FromErrno("umount " + dir, err);
  }
  const std::string p(resolved);
  return p == "/" ? "/" + base : p + "/" + base;
}

}  // namespace

Status Unmount(const std::string& dir, bool lazy, bool* daemon_finished) {
  if (daemon_finished) *daemon_finished = true;
  LAZYROOT_ASSIGN_OR_RETURN(const std::string path, ResolveMountPoint(dir));
  LAZYROOT_ASSIGN_OR_RETURN(const std::optional<MountEntry> mounted, FindMount(path));
  if (!mounted) return Status::InvalidArgument(dir + " is not a mount point");
  if (mounted->fstype != kLazyrootFsType) {
    return Status::InvalidArgument(dir + " is not a lazyroot mount (it is " + mounted->fstype + " from " +
                                   mounted->source + ")");
  }
  // Named while the mount is in place (after it, path is the directory below).
  const std::string token = MountTokenName(path, mounted->device);
  if (geteuid() == 0) {
    // The resolved path, not following a symlink someone may have put there since.
    if (umount2(path.c_str(), (lazy ? MNT_DETACH : 0) | UMOUNT_NOFOLLOW) == 0) {
      if (!lazy && !WaitForDaemonExit(token, kDaemonExitWait) && daemon_finished) *daemon_finished = false;
      return Status::Ok();
    }
    const int err = errno;
    if (err == EBUSY) {
      return Status::IoError("umount " + dir +
                             ": in use (a process has a file open or its working directory "
                             "there); close it, or pass --lazy to detach now");
    }
    return Status::FromErrno("umount " + dir, err);
  }
  std::vector<const char*> argv = {"fusermount3", "-u"};
  if (lazy) argv.push_back("-z");
  for (const char* a : {"--", path.c_str()}) argv.push_back(a);
  argv.push_back(nullptr);
  pid_t pid = 0;
  const int err = posix_spawnp(&pid, "fusermount3", nullptr, nullptr, const_cast<char**>(argv.data()), environ);
  if (err != 0) return Status::FromErrno("umount " + dir + ": cannot run fusermount3", err);
  int status = 0;
  while (waitpid(pid, &status, 0) < 0) {
    if (errno != EINTR) return Status::FromErrno("umount " + dir + ": waiting for fusermount3", errno);
  }
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    return Status::IoError("umount " + dir + ": fusermount3 -u failed (status " + std::to_string(status) +
                           "; if it is in use, close it or pass --lazy)");
  }
  if (!lazy && !WaitForDaemonExit(token, kDaemonExitWait) && daemon_finished) *daemon_finished = false;
  return Status::Ok();
}

}  // namespace lazyroot
