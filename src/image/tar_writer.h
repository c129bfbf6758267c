// TarWriter: writes an uncompressed ustar archive to a file descriptor, for
// `lazyroot save` to oci-archive: and docker-archive:. Members are regular
// files and directories owned by 0:0 with mtime 0 (as skopeo writes them),
// so saving one image twice gives the same bytes. Names are at most 100
// bytes (ours are "blobs/sha256/<64 hex>"); sizes of 8 GiB and more use the
// base-256 size field GNU tar and Go read. Not thread-safe.
#pragma once

#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <string_view>

#include "index/status.h"

namespace lazyroot {

class TarWriter {
 public:
  // fd stays the caller's; `what` names the output in errors.
  TarWriter(int fd, std::string what) : fd_(fd), what_(std::move(what)) {}

  Status AddDirectory(std::string_view name);  // name ends with '/'
  Status AddFile(std::string_view name, std::string_view bytes);
  // A file of `size` bytes whose content fill() writes through the given
  // sink; fewer or more bytes than size is an error.
  Status AddStreamed(std::string_view name, uint64_t size,
                     const std::function<Status(const std::function<Status(std::span<const uint8_t>)>&)>& fill);
  // The two zero blocks that end the archive.
  Status Finish();

 private:
  Status Header(std::string_view name, char type, uint32_t mode, uint64_t size);
  Status Write(const void* data, size_t n);
  int fd_;
  std::string what_;
};

}  // namespace lazyroot
