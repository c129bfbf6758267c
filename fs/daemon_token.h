// DaemonToken: while a mount's daemon lives it holds an abstract unix socket
// named after the mount's device number ("major:minor", unique while the
// file system is mounted), so `lazyroot umount` can return only once the
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

namespace lazyroot {

class DaemonToken {
 public:
  DaemonToken() = default;
  ~DaemonToken();
  DaemonToken(const DaemonToken&) = delete;
  DaemonToken& operator=(const DaemonToken&) = delete;

  // Takes the name for `device`; false (and holds nothing) if it cannot.
  bool Bind(const std::string& device);
  bool held() const { return fd_ >= 0; }

 private:
  int fd_ = -1;
};

// Whether a process holds the token of `device`.
bool DaemonTokenHeld(const std::string& device);

// Waits until no process holds the token of `device`, at most `timeout`;
// true if it is free (or never was held).
bool WaitForDaemonExit(const std::string& device, std::chrono::milliseconds timeout);

}  // namespace lazyroot
