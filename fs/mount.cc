#include "fs/mount.h"

#include <spawn.h>
#include <sys/mount.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>

#include "fs/fuse_adapter.h"
#include "fs/mount_ops.h"

extern char** environ;

namespace lazyroot {

Status RunMount(std::shared_ptr<const ImageTree> tree, std::shared_ptr<const ImageContent> content,
                const MountOptions& options, const std::function<void()>& on_ready) {
  if (tree->layer_count() != content->layer_count()) {
    return Status::InvalidArgument("mount " + options.mountpoint + ": tree has " +
                                   std::to_string(tree->layer_count()) + " layers, content " +
                                   std::to_string(content->layer_count()));
  }
  ImageFsOptions fs_options;
  fs_options.cache_bytes = options.cache_bytes;
  fs_options.log = options.log;
  ImageFs fs(std::move(tree), std::move(content), std::move(fs_options));
  return ServeFuse(fs, options, on_ready);
}

Status Unmount(const std::string& dir) {
  if (geteuid() == 0) {
    if (umount2(dir.c_str(), 0) == 0) return Status::Ok();
    const int err = errno;
    return Status::FromErrno("umount " + dir, err);
  }
  const char* argv[] = {"fusermount3", "-u", "--", dir.c_str(), nullptr};
  pid_t pid = 0;
  const int err = posix_spawnp(&pid, "fusermount3", nullptr, nullptr, const_cast<char**>(argv), environ);
  if (err != 0) return Status::FromErrno("umount " + dir + ": cannot run fusermount3", err);
  int status = 0;
  while (waitpid(pid, &status, 0) < 0) {
    if (errno != EINTR) return Status::FromErrno("umount " + dir + ": waiting for fusermount3", errno);
  }
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    return Status::IoError("umount " + dir + ": fusermount3 -u failed (status " + std::to_string(status) + ")");
  }
  return Status::Ok();
}

}  // namespace lazyroot
