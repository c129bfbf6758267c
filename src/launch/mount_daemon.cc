#include "src/launch/mount_daemon.h"

#include <fcntl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <syslog.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <string_view>

#include "src/store/test_pause.h"

namespace lazyroot {
namespace {

// The readiness protocol on the pipe: '\1' = mounted; '\2', the ErrorCode as
// a decimal, ':' and the message = failed.
constexpr char kReady = '\1';
constexpr char kFailed = '\2';

void WriteAll(int fd, std::string_view bytes) {
  while (!bytes.empty()) {
    ssize_t n = write(fd, bytes.data(), bytes.size());
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return;
    bytes.remove_prefix(static_cast<size_t>(n));
  }
}

void ReportFailure(int fd, const Status& st) {
  WriteAll(fd, std::string(1, kFailed) + std::to_string(static_cast<int>(st.code())) + ":" + st.message());
}

void RedirectToDevNull(int fd) {
  int null_fd = open("/dev/null", O_RDWR | O_CLOEXEC);
  if (null_fd < 0) return;
  dup2(null_fd, fd);
  close(null_fd);
}

// The daemon side: prepares, runs the session and reports readiness or the
// error through ready_fd. Never returns.
[[noreturn]] void RunDaemon(const std::function<Result<DaemonMount>()>& prepare, const DaemonOptions& daemon_options,
                            int ready_fd) {
  setsid();
  if (chdir("/") != 0) { /* the mountpoint is absolute; staying put only pins a directory */
  }
  RedirectToDevNull(STDIN_FILENO);
  RedirectToDevNull(STDOUT_FILENO);
  if (daemon_options.close_inherited_fds) {
    // Keep stdio and the pipe (moved to 3); everything else is the caller's.
    if (ready_fd != 3) {
      if (dup2(ready_fd, 3) < 0) _exit(1);
      ready_fd = 3;
    }
    if (syscall(SYS_close_range, 4u, ~0u, 0u) != 0) {
      for (int fd = 4; fd < 65536; ++fd) close(fd);
    }
  }
  Result<DaemonMount> prepared = Status::Ok();
  try {
    prepared = prepare();
  } catch (...) {
    prepared = Status::Error(ErrorCode::kIoError, "the mount daemon could not prepare the image");
  }
  if (!prepared.ok()) {
    ReportFailure(ready_fd, prepared.status());
    _exit(1);
  }
  DaemonMount& m = *prepared;
  openlog("lazyroot", LOG_PID, LOG_DAEMON);
  m.options.log = [](const std::string& line) { syslog(LOG_ERR, "%s", line.c_str()); };
  m.options.on_served = [] { TestPause("mount-served"); };  // the session is over; umount still waits for us
  bool ready = false;
  Status st = RunMount(m.tree, m.content, m.options, [&] {
    ready = true;
    WriteAll(ready_fd, std::string(1, kReady));
    close(ready_fd);
    RedirectToDevNull(STDERR_FILENO);
  });
  if (!ready) {
    ReportFailure(ready_fd, st.ok() ? Status::IoError("the mount ended before it was ready") : st);
    close(ready_fd);
  } else if (!st.ok()) {
    syslog(LOG_ERR, "%s", st.message().c_str());
  }
  _exit(st.ok() ? 0 : 1);
}

}  // namespace

Status StartMountDaemon(const std::function<Result<DaemonMount>()>& prepare, const DaemonOptions& options,
                        const std::string& what) {
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
    if (daemon == 0) RunDaemon(prepare, options, fds[1]);
    if (daemon < 0) ReportFailure(fds[1], Status::FromErrno("cannot fork the mount daemon", errno));
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
    if (answer[0] == kReady) break;
  }
  close(fds[0]);
  if (!answer.empty() && answer[0] == kReady) return Status::Ok();
  if (answer.size() > 1 && answer[0] == kFailed) {
    size_t colon = answer.find(':');
    int code = colon == std::string::npos ? 0 : std::atoi(answer.substr(1, colon - 1).c_str());
    if (code <= 0 || code > static_cast<int>(ErrorCode::kLimitExceeded)) code = static_cast<int>(ErrorCode::kIoError);
    std::string message = colon == std::string::npos ? answer.substr(1) : answer.substr(colon + 1);
    return Status::Error(static_cast<ErrorCode>(code), what + ": " + message);
  }
  return Status::IoError(what + ": the mount daemon exited before the mount was ready");
}

}  // namespace lazyroot
