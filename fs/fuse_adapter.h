// The FUSE edge: serves an ImageFs through libfuse's low-level API. The only
// code that sees libfuse or errno; every request handler calls one ImageFs
// operation and replies exactly once. All per-mount state is one object passed
// to libfuse as userdata — no globals, so tests could run two sessions.
#pragma once

#include <functional>

#include "fs/daemon_token.h"
#include "fs/mount.h"
#include "fs/image_fs.h"
#include "index/status.h"

namespace lazyroot {

// Mounts fs at options.mountpoint, calls on_ready after the kernel mount
// exists, serves until unmount or a termination signal, then unmounts.
// Returns IoError naming the mountpoint if the session cannot be created or
// mounted, or if the loop fails. fs must outlive the call.
// token (may be null) takes the mount's name once mounted (fs/daemon_token.h);
// the caller keeps it until everything the session started has finished.
Status ServeFuse(ImageFs& fs, const MountOptions& options, const std::function<void()>& on_ready,
                 DaemonToken* token = nullptr);

}  // namespace lazyroot
