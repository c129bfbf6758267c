// Mounting an opened image read-only through FUSE, and unmounting it. The
// public entry of fs/ for `lazyroot mount` / `lazyroot umount`; whether the
// session runs in a daemon is the caller's business (RunMount blocks).
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "fs/image_fs.h"
#include "index/image_content.h"
#include "index/image_tree.h"
#include "index/status.h"

namespace lazyroot {

struct MountOptions {
  std::string mountpoint;               // an existing directory
  std::string source = "lazyroot";      // what mount(8) and findmnt show as the source: the image
  bool allow_other = false;             // implies default_permissions (the kernel checks modes)
  bool suid = false;                    // default nosuid
  bool dev = false;                     // default nodev
  bool debug = false;                   // libfuse's request trace on stderr
  uint64_t cache_bytes = 256ull << 20;  // the span cache bound
  unsigned threads = 8;                 // FUSE worker threads at most
  // The kernel's read-ahead for this mount, KiB (its default is 128). Larger
  // reads mean fewer round trips: reading a large file went from 0.73 s to
  // 0.47 s at 1024. Set through /sys/class/bdi, so only root can; 0 leaves it.
  unsigned read_ahead_kib = 1024;
  // Debug views only (see ImageFsOptions): the user.lazyroot.layer value
  // per layer index, and the view's own directories. Empty: a normal mount.
  std::vector<std::string> layer_xattr_values;
  uint32_t synthetic_nodes = 0;
  // Files of our own at the root, hiding the image's entries of those names
  // (see ImageFsOptions::root_files): mount --krun-config.
  std::vector<RootFile> root_files;
  // Copies of decoded units inside long spans (single-frame zstd layers),
  // kept across mounts (StreamCacheOptions::unit_copies); null: none.
  std::shared_ptr<UnitCopies> unit_copies;
  // One line per runtime error (read failures). Called from worker threads.
  std::function<void(const std::string&)> log;
  // Called once the session has ended, while the image is still open (its
  // workers may still run) and `lazyroot umount` still waits: a test hook.
  std::function<void()> on_served;
};

// Mounts tree+content at options.mountpoint (the tree may name fewer layers
// than content holds: a view of the first N, or of one) (ro, fsname and subtype
// "lazyroot"), calls on_ready once the kernel mount exists, then serves
// requests on a multi-threaded loop until the file system is unmounted or
// SIGINT/SIGTERM/SIGHUP arrives; unmounts on the way out. Returns IoError if
// the session cannot be set up or mounted (on_ready is then never called).
Status RunMount(std::shared_ptr<const ImageTree> tree, std::shared_ptr<const ImageContent> content,
                const MountOptions& options, const std::function<void()>& on_ready);

// Detaches the lazyroot mount at dir: umount2(2) as root, else
// `fusermount3 -u`. Anything else mounted there is left alone:
// kInvalidArgument "DIR is not a lazyroot mount (it is tmpfs from tmpfs)",
// or "DIR is not a mount point" (looked up in /proc/self/mountinfo).
// lazy: detach now even while files are open (MNT_DETACH / fusermount3 -z);
// the daemon exits once the last one is closed. Otherwise returns once the
// daemon has finished (fs/daemon_token.h), or after kDaemonExitWait with the
// mount gone and the daemon still finishing. Returns IoError naming dir
// (and the tool's exit status) on failure; a busy mount says so.
// daemon_finished (may be null): false when the wait ran out (the mount is
// gone, but the daemon, or whoever holds its token's name, is still there).
Status Unmount(const std::string& dir, bool lazy = false, bool* daemon_finished = nullptr);
inline constexpr std::chrono::seconds kDaemonExitWait{10};

}  // namespace lazyroot
