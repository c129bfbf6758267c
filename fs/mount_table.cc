#include "fs/mount_table.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <vector>

namespace lazyroot {
namespace {

// mountinfo escapes space, tab, newline and backslash in paths as \ooo
// (octal), e.g. "\040" for a space (proc(5)).
std::string Unescape(std::string_view field) {
  std::string out;
  out.reserve(field.size());
  for (size_t i = 0; i < field.size(); ++i) {
    if (field[i] == '\\' && i + 3 < field.size() && field[i + 1] >= '0' && field[i + 1] <= '3' &&
        field[i + 2] >= '0' && field[i + 2] <= '7' && field[i + 3] >= '0' && field[i + 3] <= '7') {
      out.push_back(static_cast<char>((field[i + 1] - '0') * 64 + (field[i + 2] - '0') * 8 + (field[i + 3] - '0')));
      i += 3;
    } else {
      out.push_back(field[i]);
    }
  }
  return out;
}

std::vector<std::string_view> SplitSpaces(std::string_view line) {
  std::vector<std::string_view> fields;
  size_t pos = 0;
  while (pos < line.size()) {
    const size_t end = std::min(line.find(' ', pos), line.size());
    if (end > pos) fields.push_back(line.substr(pos, end - pos));
    pos = end + 1;
  }
  return fields;
}

}  // namespace

std::optional<MountEntry> FindMountIn(std::string_view mountinfo, std::string_view mount_point) {
  // "36 35 98:0 /root /mnt rw,noatime master:1 - ext3 /dev/root rw": the
  // mount point is field 5; after the optional fields, "-", fstype, source.
  std::optional<MountEntry> found;
  size_t pos = 0;
  while (pos < mountinfo.size()) {
    const size_t end = std::min(mountinfo.find('\n', pos), mountinfo.size());
    const std::vector<std::string_view> f = SplitSpaces(mountinfo.substr(pos, end - pos));
    pos = end + 1;
    if (f.size() < 5 || Unescape(f[4]) != mount_point) continue;
    size_t sep = 6;
    while (sep < f.size() && f[sep] != "-") ++sep;
    if (sep + 2 >= f.size()) continue;
    found = MountEntry{Unescape(f[4]), Unescape(f[sep + 1]), Unescape(f[sep + 2]), std::string(f[2])};
  }
  return found;
}

Result<std::optional<MountEntry>> FindMount(const std::string& mount_point) {
  const int fd = ::open("/proc/self/mountinfo", O_RDONLY | O_CLOEXEC);
  if (fd < 0) return Status::FromErrno("open /proc/self/mountinfo", errno);
  std::string text;
  char buf[65536];
  for (;;) {
    const ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      const int err = errno;
      ::close(fd);
      return Status::FromErrno("read /proc/self/mountinfo", err);
    }
    if (n == 0) break;
    text.append(buf, static_cast<size_t>(n));
  }
  ::close(fd);
  return FindMountIn(text, mount_point);
}

}  // namespace lazyroot
