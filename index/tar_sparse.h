// Sparse-file maps of GNU tar: the old-GNU 'S' entries stored in header and
// extension blocks, the PAX 1.0 map stored as decimal lines at the start of
// the data area (parsed incrementally, never buffered whole: CVE-2025-58183),
// and the check every map must pass before it reaches a TarEntry.
// Pure functions and a small value-type parser; not thread-safe per object.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "index/status.h"
#include "index/tar_entry.h"

namespace lazyroot::tar {

// Appends the runs of `count` old-GNU (offset[12], numbytes[12]) pairs at
// `entries`, stopping at the first pair whose offset field starts with NUL.
// Corruption on a bad number or when *out would exceed max_extents runs.
Status AppendOldGnuSparseEntries(const uint8_t* entries, size_t count, size_t max_extents,
                                 std::vector<SparseExtent>* out);

// Incremental parser of the GNU sparse 1.0 map: "N\n" then N pairs of
// "offset\nlength\n". Feed it the data area block by block until done().
class SparseMap1x0Parser {
 public:
  explicit SparseMap1x0Parser(size_t max_extents = 0) : max_extents_(max_extents) {}
  // Consumes one 512-byte block. Bytes after the last number of the map are
  // padding. Corruption on a non-digit, an empty or overlong number, or more
  // than max_extents runs.
  Status ConsumeBlock(const uint8_t* block);
  bool done() const { return done_; }
  // The runs parsed; valid once done().
  std::vector<SparseExtent>& extents() { return extents_; }

 private:
  Status EndToken();

  size_t max_extents_;
  bool done_ = false;
  bool have_count_ = false;
  uint64_t count_ = 0;
  uint64_t token_ = 0;
  size_t token_digits_ = 0;
  bool have_offset_ = false;
  uint64_t pending_offset_ = 0;
  std::vector<SparseExtent> extents_;
};

// Checks that the runs are in order, do not overlap, end within real_size and
// hold exactly stored_size bytes (the data in the archive), then drops
// zero-length runs (GNU tar ends every map with one at real_size).
// Corruption naming the first violated rule otherwise.
Status NormalizeSparseExtents(std::vector<SparseExtent>* extents, uint64_t real_size, uint64_t stored_size);

}  // namespace lazyroot::tar
