#include "src/image/tar_archive.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <vector>

#include "index/tar_reader.h"

namespace lazyroot {
namespace {

// A member name as an error shows it: quoted, control bytes as '?', cut at
// 128 bytes so a hostile name cannot flood the message.
std::string Quote(std::string_view name) {
  std::string out = "\"";
  for (char c : name.substr(0, 128)) out += (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) ? '?' : c;
  if (name.size() > 128) out += "…";
  return out + "\"";
}

uint64_t Padded(uint64_t n) { return (n + 511) / 512 * 512; }

// Joins a symlink target to the directory of the link; false when the
// result climbs above the archive's root or the target is absolute.
bool ResolveLinkTarget(std::string_view link_name, std::string_view target, std::string* out) {
  if (target.starts_with("/")) return false;
  std::vector<std::string_view> parts;
  size_t slash = link_name.rfind('/');
  std::string_view dir = slash == std::string_view::npos ? std::string_view() : link_name.substr(0, slash);
  auto push = [&parts](std::string_view path) {
    while (!path.empty()) {
      size_t s = path.find('/');
      std::string_view c = path.substr(0, s);
      path = s == std::string_view::npos ? std::string_view() : path.substr(s + 1);
      if (c.empty() || c == ".") continue;
      if (c == "..") {
        if (parts.empty()) return false;
        parts.pop_back();
        continue;
      }
      parts.push_back(c);
    }
    return true;
  };
  if (!push(dir) || !push(target) || parts.empty()) return false;
  out->clear();
  for (std::string_view p : parts) {
    if (!out->empty()) *out += '/';
    out->append(p);
  }
  return true;
}

}  // namespace

Result<std::string> CleanMemberName(std::string_view name) {
  if (name.starts_with("/")) return Status::InvalidArgument("absolute member name");
  std::string out;
  while (!name.empty()) {
    size_t s = name.find('/');
    std::string_view c = name.substr(0, s);
    name = s == std::string_view::npos ? std::string_view() : name.substr(s + 1);
    if (c.empty() || c == ".") continue;
    if (c == "..") return Status::InvalidArgument("member name climbs out of the archive with \"..\"");
    if (!out.empty()) out += '/';
    out.append(c);
  }
  if (out.empty()) return Status::InvalidArgument("empty member name");
  return out;
}

TarArchive::~TarArchive() {
  if (fd_ >= 0) ::close(fd_);
}

std::string TarArchive::Name(std::string_view member) const { return what_ + ": member " + Quote(member); }

Result<std::unique_ptr<TarArchive>> TarArchive::Open(const std::string& path, const std::string& what) {
  // O_NONBLOCK: a FIFO named as the archive is refused below, not waited on.
  int fd = ::open(path.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) {
    int err = errno;
    if (err == ENOENT) return Status::NotFound(what + ": no such file");
    return Status::FromErrno(what + ": open", err);
  }
  std::unique_ptr<TarArchive> archive(new TarArchive(fd, what));
  struct stat st;
  if (::fstat(fd, &st) != 0) return Status::FromErrno(what + ": stat", errno);
  if (!S_ISREG(st.st_mode)) return Status::InvalidArgument(what + ": not a regular file (want a tar archive)");
  LAZYROOT_RETURN_IF_ERROR(archive->ReadHeaders(static_cast<uint64_t>(st.st_size)));
  return archive;
}

// Feeds the parser the header blocks alone: after an entry is emitted its
// data is passed over with zeros (the parser only counts data bytes), so
// opening a multi-gigabyte archive reads a few blocks per member.
Status TarArchive::ReadHeaders(uint64_t file_size) {
  static const std::vector<uint8_t> kZeros(1 << 16, 0);
  uint64_t pending_skip = 0;
  Status entry_error;
  TarReader::Limits limits;
  limits.budget.layer_entries = kMaxArchiveMembers;
  TarReader reader(
      what_,
      [&](const TarEntry& e) -> Status {
        if (!e.sparse.empty())
          return Status::Unsupported(Name(e.path) + ": sparse members are not expected in an image archive");
        pending_skip = Padded(e.stored_size);
        if (e.data_offset + e.stored_size > file_size) {
          return Status::Corruption(Name(e.path) + ": its " + std::to_string(e.stored_size) +
                                    " bytes run past the end of the archive (" + std::to_string(file_size) + " bytes)");
        }
        if (e.type == EntryType::kDirectory) return Status::Ok();
        auto clean = CleanMemberName(e.path);
        if (!clean.ok()) return Status::Corruption(Name(e.path) + ": " + clean.status().message());
        Entry entry;
        switch (e.type) {
          case EntryType::kRegular:
            entry.member = {e.data_offset, e.stored_size};
            break;
          case EntryType::kSymlink:
            entry.kind = Entry::Kind::kSymlink;
            entry.escapes = !ResolveLinkTarget(*clean, e.link_target, &entry.target);
            break;
          case EntryType::kHardlink: {
            entry.kind = Entry::Kind::kHardlink;
            auto t = CleanMemberName(e.link_target);
            if (!t.ok()) {
              entry.escapes = true;
            } else {
              entry.target = std::move(*t);
            }
            break;
          }
          default:
            return Status::Ok();  // devices and fifos: nothing an image archive names
        }
        if (!entries_.emplace(*clean, std::move(entry)).second) {
          return Status::Corruption(Name(*clean) + ": appears twice in the archive");
        }
        return Status::Ok();
      },
      limits);
  std::vector<uint8_t> block(512);
  uint64_t pos = 0;
  while (pos < file_size && !reader.end_of_archive()) {
    ssize_t n = ::pread(fd_, block.data(), block.size(), static_cast<off_t>(pos));
    if (n < 0) {
      if (errno == EINTR) continue;
      return Status::FromErrno(what_ + ": read", errno);
    }
    if (n == 0) break;
    pending_skip = 0;
    Status st = reader.Feed(std::span<const uint8_t>(block.data(), static_cast<size_t>(n)));
    if (!st.ok()) return st;
    pos += static_cast<uint64_t>(n);
    while (pending_skip > 0) {
      size_t k = static_cast<size_t>(std::min<uint64_t>(pending_skip, kZeros.size()));
      LAZYROOT_RETURN_IF_ERROR(reader.Feed(std::span<const uint8_t>(kZeros.data(), k)));
      pending_skip -= k;
      pos += k;
    }
  }
  if (!reader.end_of_archive()) {
    // Data padding past the end of a short file is what Finish reports.
    LAZYROOT_RETURN_IF_ERROR(reader.Finish());
  }
  if (entries_.empty()) return Status::Corruption(what_ + ": not a tar archive, or an empty one");
  return Status::Ok();
}

Result<TarArchive::Member> TarArchive::Find(std::string_view name) const {
  auto clean = CleanMemberName(name);
  if (!clean.ok()) return Status::Corruption(Name(name) + ": " + clean.status().message());
  const std::string first = *clean;
  std::string current = std::move(*clean);
  for (int hop = 0; hop <= kMaxArchiveLinkHops; ++hop) {
    auto it = entries_.find(current);
    if (it == entries_.end()) {
      if (current == first) return Status::NotFound(Name(name) + ": not in the archive");
      return Status::NotFound(Name(name) + ": its link target " + Quote(current) + " is not in the archive");
    }
    const Entry& e = it->second;
    if (e.kind == Entry::Kind::kFile) return e.member;
    if (e.escapes) return Status::Corruption(Name(name) + ": a link pointing outside the archive");
    current = e.target;
  }
  return Status::Corruption(Name(name) + ": more than " + std::to_string(kMaxArchiveLinkHops) +
                            " links to follow (a loop?)");
}

Result<std::string> TarArchive::ReadAt(const Member& m, uint64_t offset, uint64_t n) const {
  if (offset >= m.size) return std::string();
  n = std::min(n, m.size - offset);
  std::string out(static_cast<size_t>(n), '\0');
  uint64_t done = 0;
  while (done < n) {
    ssize_t r = ::pread(fd_, out.data() + done, static_cast<size_t>(n - done),
                        static_cast<off_t>(m.data_offset + offset + done));
    if (r < 0) {
      if (errno == EINTR) continue;
      return Status::FromErrno(what_ + ": read", errno);
    }
    if (r == 0) return Status::Corruption(what_ + ": the archive shrank while being read");
    done += static_cast<uint64_t>(r);
  }
  return out;
}

Result<std::string> TarArchive::Read(std::string_view name, uint64_t cap) const {
  LAZYROOT_ASSIGN_OR_RETURN(Member m, Find(name));
  if (m.size > cap) {
    return Status::Corruption(Name(name) + ": " + std::to_string(m.size) + " bytes, more than the " +
                              std::to_string(cap) + " allowed");
  }
  return ReadAt(m, 0, m.size);
}

Status TarArchive::Stream(const Member& m, uint64_t offset, const std::function<Status(std::span<const uint8_t>)>& sink,
                          std::string_view name) const {
  std::vector<uint8_t> buf(1 << 20);
  while (offset < m.size) {
    size_t want = static_cast<size_t>(std::min<uint64_t>(buf.size(), m.size - offset));
    ssize_t r = ::pread(fd_, buf.data(), want, static_cast<off_t>(m.data_offset + offset));
    if (r < 0) {
      if (errno == EINTR) continue;
      return Status::FromErrno(Name(name) + ": read", errno);
    }
    if (r == 0) return Status::Corruption(Name(name) + ": the archive shrank while being read");
    offset += static_cast<uint64_t>(r);
    LAZYROOT_RETURN_IF_ERROR(sink(std::span<const uint8_t>(buf.data(), static_cast<size_t>(r))));
  }
  return Status::Ok();
}

}  // namespace lazyroot
