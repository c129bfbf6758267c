// TarArchive: the members of an uncompressed tar file (an oci-archive: or a
// docker-archive:), found by name without extracting anything. The headers
// are read once with the layer parser (index/tar_reader.h); member data is
// then read in place with pread, so only the archive file itself is ever
// opened. The archive is hostile: member names are cleaned lexically and a
// name that is absolute or climbs with ".." is refused, as is a second member
// of one name, a member whose data runs past the end of the file, and a
// symlink or hardlink that leads outside the archive or in circles. Links are
// followed inside the archive (docker save writes "<id>/layer.tar ->
// ../<other>/layer.tar" for a repeated layer). Thread-safe once opened.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <string_view>

#include "index/status.h"

namespace lazyroot {

// Members one archive may hold: an image of 1,000 layers in docker's
// legacy layout takes ~4 per layer.
inline constexpr uint64_t kMaxArchiveMembers = uint64_t{1} << 16;
// Symlinks followed to reach one member.
inline constexpr int kMaxArchiveLinkHops = 16;

// "a/./b//c" -> "a/b/c", "./x" -> "x". InvalidArgument for an absolute name,
// a ".." component or an empty result.
Result<std::string> CleanMemberName(std::string_view name);

class TarArchive {
 public:
  struct Member {
    uint64_t data_offset = 0;  // in the archive file
    uint64_t size = 0;
  };

  // Opens path (a regular file) and reads every header. `what` starts every
  // error: "docker-archive:/tmp/x.tar".
  static Result<std::unique_ptr<TarArchive>> Open(const std::string& path, const std::string& what);
  ~TarArchive();
  TarArchive(const TarArchive&) = delete;
  TarArchive& operator=(const TarArchive&) = delete;

  const std::string& what() const { return what_; }
  // The regular file name denotes (links followed). NotFound naming the
  // member when there is none; Corruption for a link that escapes or loops.
  Result<Member> Find(std::string_view name) const;
  // A whole member of at most cap bytes (Corruption naming it when larger).
  Result<std::string> Read(std::string_view name, uint64_t cap) const;
  // Up to n bytes at offset of a member (fewer at its end).
  Result<std::string> ReadAt(const Member& m, uint64_t offset, uint64_t n) const;
  // Streams a member's bytes from offset through sink in chunks.
  Status Stream(const Member& m, uint64_t offset, const std::function<Status(std::span<const uint8_t>)>& sink,
                std::string_view name) const;

 private:
  struct Entry {
    enum class Kind { kFile, kSymlink, kHardlink } kind = Kind::kFile;
    Member member;
    std::string target;    // links: cleaned archive path of the target (symlinks: resolved against their directory)
    bool escapes = false;  // a symlink whose target leaves the archive
  };
  TarArchive(int fd, std::string what) : fd_(fd), what_(std::move(what)) {}
  Status ReadHeaders(uint64_t file_size);
  std::string Name(std::string_view member) const;  // "<what>: member \"x\""

  int fd_;
  std::string what_;
  std::map<std::string, Entry, std::less<>> entries_;
};

}  // namespace lazyroot
