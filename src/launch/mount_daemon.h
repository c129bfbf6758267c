// Serving a mount from a daemon process: what `lazyroot mount` does and what
// the library's lazyroot_mount_image() does for a launcher, so neither
// copies the other. The caller's process keeps its own signal handlers and
// malloc settings: RunMount (which installs both) runs in the daemon alone.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "fs/mount.h"
#include "index/status.h"
#include "src/store/store.h"

namespace lazyroot {

// What the daemon serves, made by the caller's `prepare` (in the daemon).
struct DaemonMount {
  std::shared_ptr<const ImageTree> tree;
  std::shared_ptr<const ImageContent> content;
  MountOptions options;
  std::vector<FileLock> held;  // kept for the daemon's life (the image's in-use marker)
};

struct DaemonOptions {
  // Close every descriptor the caller had open before `prepare` runs: a
  // launcher's sockets and files must not live on in the daemon. prepare
  // then opens the store and the image itself.
  bool close_inherited_fds = false;
};

// Forks the daemon (twice, so it is never the caller's child: no zombie, no
// SIGCHLD), which runs `prepare` and then serves the mount, and returns once
// the kernel mount exists, or with prepare's error (its code and message,
// prefixed with `what`) or the mount's. The daemon detaches (setsid, stdio
// to /dev/null), logs read errors to syslog and exits when the file system
// is unmounted. REQUIRES: no other thread of the caller holds a lock the
// daemon's code could need (the rule for fork without exec; glibc's malloc
// is safe).
Status StartMountDaemon(const std::function<Result<DaemonMount>()>& prepare, const DaemonOptions& options,
                        const std::string& what);

}  // namespace lazyroot
