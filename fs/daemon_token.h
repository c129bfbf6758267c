// DaemonToken: while a mount's daemon lives it holds an abstract unix socket
// named after its mount (MountTokenName: the kernel's unique mount ID, or the
// device number on older kernels), so `lazyroot umount` can return only once the
// daemon has finished: the kernel detaches a FUSE mount at once, while the
// daemon may still be answering a last read, writing a unit copy or joining
// its prefetch workers. Without the wait, `umount && fsck` saw half-written
// copies and `umount && gc` raced the daemon's last writes.
//
// Best effort by design: a name someone else holds, or a daemon in another
// network namespace, only costs the wait (bounded) or skips it.
#pragma once

#include <chrono>
#include <string>
#include <vector>

namespace lazyroot {

class DaemonToken {
 public:
  DaemonToken() = default;
  ~DaemonToken();
  DaemonToken(const DaemonToken&) = delete;
  DaemonToken& operator=(const DaemonToken&) = delete;

  // Takes the name `name` as well as any taken before; false (and holds
  // nothing more) if it cannot. A daemon takes both of its mount's names
  // (MountTokenName and the device): a umount that cannot statx the mount
  // (root and a user's mount without allow_other) waits on the device.
  bool Bind(const std::string& name);
  bool held() const { return !fds_.empty(); }

 private:
  std::vector<int> fds_;
};

// The name a mount's token goes by: the kernel's unique mount ID of the
// mount at `resolved_dir` ("u<id>", Linux 6.8+), else `device`. A device
// number is reused as soon as its mount is gone, possibly while the daemon
// of a umount that timed out still holds its token: a new mount on the same
// device then took no token, and its umount returned when the old daemon
// exited. Call it while the mount is in place; it asks the kernel only, never
// the daemon (which may not be serving yet, or be dead). The kernel refuses
// the statx to a user other than the mount's owner without allow_other (even
// root): that user gets `device`, hence the daemon holds both names.
std::string MountTokenName(const std::string& resolved_dir, const std::string& device);

// Whether a process holds the token of `device`.
bool DaemonTokenHeld(const std::string& name);

// Waits until no process holds the token of `device`, at most `timeout`;
// true if it is free (or never was held).
bool WaitForDaemonExit(const std::string& device, std::chrono::milliseconds timeout);

}  // namespace lazyroot
