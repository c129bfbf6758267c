#include "fs/daemon_token.h"

#include <fcntl.h>
#include <linux/stat.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <thread>

namespace lazyroot {
namespace {

// An abstract address (leading NUL): no file to clean up after a crash; the
// kernel frees the name when the last descriptor closes, at the latest when
// the daemon exits however it exits.
socklen_t TokenAddress(const std::string& device, sockaddr_un* addr) {
  std::memset(addr, 0, sizeof *addr);
  addr->sun_family = AF_UNIX;
  const std::string name = "lazyroot-mount-" + device;
  const size_t n = std::min(name.size(), sizeof addr->sun_path - 1);
  std::memcpy(addr->sun_path + 1, name.data(), n);
  return static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + 1 + n);
}

// Binds the token's name on a fresh socket: the descriptor, or -1 with errno.
int BindToken(const std::string& device) {
  const int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  sockaddr_un addr;
  const socklen_t len = TokenAddress(device, &addr);
  if (::bind(fd, reinterpret_cast<const sockaddr*>(&addr), len) != 0) {
    const int err = errno;
    ::close(fd);
    errno = err;
    return -1;
  }
  return fd;
}

// Linux 6.8's unique mount ID; Debian 12's headers predate it.
constexpr unsigned kStatxMntIdUnique = 0x4000U;

}  // namespace

std::string MountTokenName(const std::string& resolved_dir, const std::string& device) {
  // AT_STATX_DONT_SYNC: FUSE answers from the attributes it has, sending no
  // request to a daemon that is not serving yet (at mount) or is gone.
  struct statx sx {};
  if (!resolved_dir.empty() &&
      ::syscall(SYS_statx, AT_FDCWD, resolved_dir.c_str(), AT_STATX_DONT_SYNC | AT_SYMLINK_NOFOLLOW | AT_NO_AUTOMOUNT,
                kStatxMntIdUnique, &sx) == 0 &&
      (sx.stx_mask & kStatxMntIdUnique) != 0) {
    return "u" + std::to_string(sx.stx_mnt_id);
  }
  return device;
}

DaemonToken::~DaemonToken() {
  for (int fd : fds_) ::close(fd);
}

bool DaemonToken::Bind(const std::string& name) {
  if (name.empty()) return false;
  const int fd = BindToken(name);
  if (fd < 0) return false;
  fds_.push_back(fd);
  return true;
}

bool DaemonTokenHeld(const std::string& device) {
  if (device.empty()) return false;
  const int fd = BindToken(device);
  if (fd >= 0) {
    ::close(fd);  // free: we held it for an instant only
    return false;
  }
  return errno == EADDRINUSE;
}

bool WaitForDaemonExit(const std::string& device, std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  auto pause = std::chrono::milliseconds(1);
  while (DaemonTokenHeld(device)) {
    if (std::chrono::steady_clock::now() >= deadline) return false;
    std::this_thread::sleep_for(pause);
    pause = std::min(pause * 2, std::chrono::milliseconds(50));
  }
  return true;
}

}  // namespace lazyroot
