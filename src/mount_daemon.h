// Serving a mount from a daemon process: what `lazyroot mount` does and what
// the library's lazyroot_mount_image() does for a launcher, so neither
// copies the other. The caller's process keeps its own signal handlers and
// malloc settings: RunMount (which installs both) runs in the daemon alone.
#pragma once

#include <string>

#include "fs/mount.h"
#include "index/status.h"
#include "src/image_rootfs.h"

namespace lazyroot {

// Forks the daemon that serves `image` at options.mountpoint and returns
// once the kernel mount exists, or with the error the daemon reported
// (IoError naming `what`). The daemon is forked twice, so it is never the
// caller's child (no zombie, no SIGCHLD); it holds whatever descriptors the
// caller had open without O_CLOEXEC (the store's in-use marker: gc keeps the
// image while it is mounted), detaches from the terminal (setsid, stdio to
// /dev/null), logs read errors to syslog, and exits when the file system is
// unmounted. REQUIRES: no other thread of the caller holds a lock the
// daemon's code could need (the usual rule for fork without exec; glibc's
// malloc is safe).
Status StartMountDaemon(const OpenedImage& image, const MountOptions& options, const std::string& what);

}  // namespace lazyroot
