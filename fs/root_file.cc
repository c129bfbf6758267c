#include "fs/root_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>

namespace lazyroot {

Status WriteRootFile(const std::string& root, std::string_view name_in, std::string_view data) {
  const std::string name(name_in);
  const std::string shown = root + "/" + name;
  if (name.empty() || name == "." || name == ".." || name.find('/') != std::string::npos) {
    return Status::InvalidArgument("not a file name at the top of a root: " + shown);
  }
  int dir = ::open(root.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (dir < 0) return Status::FromErrno("open " + root, errno);
  static std::atomic<unsigned> counter{0};
  const std::string tmp =
      "." + name + ".lazyroot-tmp." + std::to_string(::getpid()) + "." + std::to_string(counter.fetch_add(1));
  int fd = ::openat(dir, tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
  if (fd < 0) {
    Status st = Status::FromErrno("create " + root + "/" + tmp, errno);
    ::close(dir);
    return st;
  }
  Status st = Status::Ok();
  for (size_t done = 0; done < data.size() && st.ok();) {
    ssize_t n = ::write(fd, data.data() + done, data.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0)
      st = Status::FromErrno("write " + shown, n < 0 ? errno : EIO);
    else
      done += static_cast<size_t>(n);
  }
  // The umask must not narrow it: launchers read it as any user.
  if (st.ok() && ::fchmod(fd, 0644) != 0) st = Status::FromErrno("chmod " + shown, errno);
  if (st.ok() && ::fsync(fd) != 0) st = Status::FromErrno("fsync " + shown, errno);
  if (::close(fd) != 0 && st.ok()) st = Status::FromErrno("close " + shown, errno);
  if (st.ok() && ::renameat(dir, tmp.c_str(), dir, name.c_str()) != 0) {
    st = Status::FromErrno("cannot write " + shown + " (replacing what the image has there)", errno);
  }
  if (!st.ok()) ::unlinkat(dir, tmp.c_str(), 0);
  ::close(dir);
  return st;
}

}  // namespace lazyroot
