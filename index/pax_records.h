// PaxRecords: what the PAX extended headers ('x') in front of one tar entry
// say about it, parsed from POSIX "%d %s=%s\n" records, including the xattr
// encodings of star (SCHILY.xattr.*) and bsdtar (LIBARCHIVE.xattr.*) and the
// GNU sparse 0.0 / 0.1 / 1.0 records. Unknown keywords are ignored (POSIX).
// Value type; one per reader, not thread-safe.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "index/status.h"
#include "index/tar_entry.h"

namespace lazyroot::tar {

// A PAX timestamp: seconds since the epoch and nanoseconds in [0, 1e9).
struct PaxTime {
  int64_t sec = 0;
  uint32_t nsec = 0;
  bool operator==(const PaxTime&) const = default;
};

struct PaxRecords {
  // An empty record value deletes the keyword (POSIX), i.e. resets it here.
  std::optional<std::string> path, linkpath, uname, gname;
  std::optional<uint64_t> size;
  std::optional<uint32_t> uid, gid;
  std::optional<PaxTime> mtime;
  std::map<std::string, std::string> xattrs;  // name -> raw value; an empty value is kept
  uint64_t xattr_bytes = 0;                   // names + values in `xattrs` (kept under the kernel's limit)

  // GNU sparse. 0.0 and 0.1 carry the map here; 1.0 puts it in the data area.
  std::optional<std::string> sparse_name;       // GNU.sparse.name (0.1, 1.0)
  std::optional<uint64_t> sparse_real_size;     // GNU.sparse.realsize (1.0) or GNU.sparse.size (0.x)
  std::optional<uint64_t> sparse_major, sparse_minor;
  std::optional<uint64_t> sparse_numblocks;     // GNU.sparse.numblocks (0.x), checked against the map
  bool has_sparse_map = false;                  // GNU.sparse.map or offset/numbytes pairs were seen
  std::vector<SparseExtent> sparse_map;         // as listed, zero-length runs included

  bool empty() const;
  void Clear();
};

// Parses the data of one 'x' header and merges its records into *out; a later
// record overrides an earlier one. Returns Corruption on a malformed record
// (length, missing '=' or newline, NUL in a key or in path/linkpath/uname/
// gname/GNU.sparse.name, a bad number or time, a bad LIBARCHIVE encoding) or
// when a sparse map lists more than max_sparse_extents runs. Returns
// LimitExceeded, before copying the value, for what Linux cannot hold
// (index/limits.h): an xattr name over 255 bytes or value over 64 KiB, an
// entry's xattrs over 64 KiB together, a path or linkpath over 4096 bytes.
Status ParsePaxRecords(std::string_view data, size_t max_sparse_extents, PaxRecords* out);

// Parses "[-]sec[.fraction]"; the fraction is truncated to nanoseconds and a
// negative time keeps its fraction negative ("-1.5" is sec -2, nsec 5e8).
Result<PaxTime> ParsePaxTime(std::string_view s);

}  // namespace lazyroot::tar
