#include "src/mount_daemon.h"

#include <fcntl.h>
#include <sys/wait.h>
#include <syslog.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <string_view>

namespace lazyroot {
namespace {

void WriteAll(int fd, std::string_view bytes) {
  while (!bytes.empty()) {
    ssize_t n = write(fd, bytes.data(), bytes.size());
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return;
    bytes.remove_prefix(static_cast<size_t>(n));
  }
}

void RedirectToDevNull(int fd) {
  int null_fd = open("/dev/null", O_RDWR | O_CLOEXEC);
  if (null_fd < 0) return;
  dup2(null_fd, fd);
  close(null_fd);
}

// The daemon side: runs the session and reports readiness (byte '\1') or the
// error message through ready_fd. Never returns.
[[noreturn]] void RunDaemon(const OpenedImage& image, MountOptions options, int ready_fd) {
  setsid();
  if (chdir("/") != 0) { /* the mountpoint is absolute; staying put only pins a directory */
  }
  RedirectToDevNull(STDIN_FILENO);
  RedirectToDevNull(STDOUT_FILENO);
  openlog("lazyroot", LOG_PID, LOG_DAEMON);
  options.log = [](const std::string& line) { syslog(LOG_ERR, "%s", line.c_str()); };
  bool ready = false;
  Status st = RunMount(image.tree, image.content, options, [&] {
    ready = true;
    WriteAll(ready_fd, "\1");
    close(ready_fd);
    RedirectToDevNull(STDERR_FILENO);
  });
  if (!ready) {
    WriteAll(ready_fd, st.ok() ? std::string("the mount ended before it was ready") : st.message());
    close(ready_fd);
  } else if (!st.ok()) {
    syslog(LOG_ERR, "%s", st.message().c_str());
  }
  _exit(st.ok() ? 0 : 1);
}

}  // namespace

Status StartMountDaemon(const OpenedImage& image, const MountOptions& options, const std::string& what) {
  int fds[2];
  if (pipe2(fds, O_CLOEXEC) != 0) return Status::FromErrno(what + ": pipe", errno);
  std::fflush(nullptr);
  const pid_t pid = fork();
  if (pid < 0) {
    const int err = errno;
    close(fds[0]);
    close(fds[1]);
    return Status::FromErrno(what + ": fork", err);
  }
  if (pid == 0) {
    // The intermediate child: fork the daemon and leave at once, so the
    // daemon is reparented and never becomes the caller's zombie.
    close(fds[0]);
    const pid_t daemon = fork();
    if (daemon == 0) RunDaemon(image, options, fds[1]);
    if (daemon < 0) WriteAll(fds[1], "cannot fork the mount daemon");
    _exit(daemon < 0 ? 1 : 0);
  }
  close(fds[1]);
  while (waitpid(pid, nullptr, 0) < 0 && errno == EINTR) {
  }
  std::string answer;
  char buf[512];
  for (;;) {
    ssize_t n = read(fds[0], buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    answer.append(buf, static_cast<size_t>(n));
    if (answer[0] == '\1') break;
  }
  close(fds[0]);
  if (!answer.empty() && answer[0] == '\1') return Status::Ok();
  if (answer.empty()) answer = "the mount daemon exited before the mount was ready";
  return Status::IoError(what + ": " + answer);
}

}  // namespace lazyroot
