// What the kernel has mounted where, as /proc/self/mountinfo says: `lazyroot
// umount` looks a directory up here and unmounts only its own mounts
// (fstype kLazyrootFsType). Read-only; no state, thread-safe.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "index/status.h"

namespace lazyroot {

// The fstype of every lazyroot mount: FUSE's "fuse." + the subtype our
// mount options set (fs/fuse_adapter.cc).
inline constexpr std::string_view kLazyrootFsType = "fuse.lazyroot";

struct MountEntry {
  std::string mount_point;  // as mounted, unescaped
  std::string fstype;       // "fuse.lazyroot", "tmpfs", …
  std::string source;       // the image reference for ours, "tmpfs", "/dev/sda1", …
  std::string device;       // "major:minor" of the mounted file system, e.g. "0:52"
};

// The entry of mountinfo text whose mount point is mount_point (a resolved,
// absolute path); of several stacked there, the last one, which is the one
// visible. nullopt when none is, or a line is malformed at that point.
std::optional<MountEntry> FindMountIn(std::string_view mountinfo, std::string_view mount_point);

// FindMountIn over /proc/self/mountinfo; IoError when it cannot be read.
Result<std::optional<MountEntry>> FindMount(const std::string& mount_point);

}  // namespace lazyroot
