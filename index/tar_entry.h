// TarEntry: one member of a layer's tar stream after all extension headers
// (PAX, GNU long name/link, sparse) have been folded in. Produced by
// TarReader, consumed by the layer index and the merge. Value type.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace lazyroot {

enum class EntryType : uint8_t {
  kRegular = 0,  // '0', '\0', '7' (contiguous), GNU sparse 'S' and PAX sparse
  kHardlink,     // '1': link_target names an earlier entry
  kSymlink,      // '2'
  kCharDevice,   // '3'
  kBlockDevice,  // '4'
  kDirectory,    // '5' (or '\0' with a trailing '/')
  kFifo,         // '6'
};

// One run of real data in a sparse file: `length` bytes at `logical_offset`
// of the file, stored contiguously in the archive in map order.
struct SparseExtent {
  uint64_t logical_offset = 0;
  uint64_t length = 0;
};

struct TarEntry {
  std::string path;         // as in the archive (PAX/GNU long name applied), not normalised
  std::string link_target;  // symlink target or hardlink name, verbatim
  EntryType type = EntryType::kRegular;
  uint32_t mode = 0;  // permission bits incl. setuid/setgid/sticky (mode & 07777)
  uint32_t uid = 0, gid = 0;
  std::string uname, gname;
  int64_t mtime_sec = 0;
  uint32_t mtime_nsec = 0;
  uint32_t dev_major = 0, dev_minor = 0;
  uint64_t size = 0;         // logical file size (GNU.sparse.realsize for sparse files)
  uint64_t header_offset = 0;  // offset in the uncompressed stream of the first header of this entry
  uint64_t data_offset = 0;  // offset in the uncompressed stream of the first data byte
  uint64_t stored_size = 0;  // data bytes stored in the archive (== size unless sparse)
  std::vector<SparseExtent> sparse;  // empty unless the file is sparse
  std::vector<std::pair<std::string, std::string>> xattrs;  // name -> raw value, sorted by name
};

}  // namespace lazyroot
