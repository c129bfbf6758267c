// TarReader: a push-mode streaming parser of one uncompressed tar stream
// (ustar, old GNU, GNU long names, PAX incl. xattrs, GNU sparse old/0.0/0.1/
// 1.0). Bytes arrive in chunks of any size from a decompressor; entries come
// out through a callback as soon as their headers are complete. Entry data is
// skipped by counting, never copied. One object per stream; not thread-safe.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <span>
#include <string>

#include "index/limits.h"
#include "index/pax_records.h"
#include "index/status.h"
#include "index/tar_entry.h"
#include "index/tar_header.h"
#include "index/tar_sparse.h"

namespace lazyroot {

// Choices this parser makes where tar readers disagree (see
// shared/reference/correctness.md §1.5-1.6):
//  - Unknown typeflags (GNU 'D' dumpdir, 'M', 'N', 'V', vendor letters) stop
//    parsing with kUnsupported: silently dropping a member would change the
//    tree, and containerd and umoci refuse them too.
//  - PAX global headers ('g') are skipped: no entry, records not applied.
//  - GNU long name/link override a PAX path/linkpath (Go's order); a
//    GNU.sparse.name overrides both.
//  - Header-only types (1-6) get size == stored_size == 0 whatever the size
//    field says; no data is skipped for them.
//  - Sparse maps drop zero-length runs and must account for every stored byte.
//  - An extension header ('x', 'L', 'K') not followed by an entry, a zero
//    block followed by a non-zero one, and EOF inside a header or inside data
//    or its padding are kCorruption.
class TarReader {
 public:
  struct Limits {
    size_t max_pax_bytes = 1 << 20;         // all 'x' data in front of one entry
    size_t max_long_name = 1 << 20;         // one 'L' or 'K' data area
    size_t max_sparse_extents = 1 << 16;    // runs in one sparse map
    size_t max_sparse_map_bytes = 1 << 20;  // a PAX 1.0 map in the data area
    // The kernel limits (paths, components, link targets, xattrs) always
    // apply; of the budgets, layer_entries and layer_metadata apply here.
    ::lazyroot::Limits budget;
  };
  // Receives each entry; a non-OK return stops parsing and is returned as is.
  using EntryFn = std::function<Status(const TarEntry&)>;

  // `name` starts every error: "layer sha256:ab12…: tar header at offset 1536: bad checksum".
  // (Two constructors instead of `Limits limits = {}`: a nested struct with
  // member initialisers cannot be a default argument inside its own class.)
  TarReader(std::string name, EntryFn on_entry);
  TarReader(std::string name, EntryFn on_entry, Limits limits);

  // Consumes the next bytes of the stream, in any chunking (even one byte at
  // a time), calling on_entry for each entry in archive order once its
  // header(s) are complete, before its data has streamed past. Returns
  // kCorruption for malformed input, kUnsupported for an unknown typeflag or
  // sparse version, kLimitExceeded for an entry over a kernel limit or a
  // layer over its budget (naming the entry's offset and path and the limit),
  // or the callback's error. Errors are sticky.
  Status Feed(std::span<const uint8_t> bytes);

  // End of stream. OK if the archive ended cleanly: two zero blocks, one zero
  // block then EOF, or EOF at a header boundary (row 63). kCorruption naming
  // the offset if it is truncated mid-header, mid-data or after an extension
  // header.
  Status Finish();

  uint64_t offset() const { return offset_; }  // bytes consumed so far
  // What the entries emitted so far count against the layer budgets.
  uint64_t entries() const { return entries_; }
  uint64_t metadata_bytes() const { return metadata_bytes_; }
  // True once the zero-block terminator was seen; later bytes are trailing
  // data, accepted and ignored (row 64).
  bool end_of_archive() const { return state_ == State::kTrailing; }

 private:
  enum class State : uint8_t {
    kHeader,              // expecting a header block (or a zero block)
    kExtensionData,       // collecting the data of an 'x', 'L' or 'K' header into ext_data_
    kGnuSparseExtension,  // expecting an old-GNU sparse extension block
    kSparseMap,           // expecting a block of a PAX 1.0 sparse map
    kTrailing,            // after the end-of-archive marker
  };

  Status Run(std::span<const uint8_t> bytes);
  Status ProcessBlock(const uint8_t* block);
  Status ParseHeader(const uint8_t* block);
  Status StartExtension(const tar::TarHeader& h);
  Status FinishExtension();
  // Fills entry_ from a file header plus the pending extension records.
  Status BuildEntry(const tar::TarHeader& h);
  Status StartPaxSparse(uint64_t stored_size);
  Status ContinueGnuSparse(const uint8_t* block);
  Status ContinueSparseMap(const uint8_t* block);
  // Calls on_entry and arranges for the entry's data and padding to be skipped.
  Status EmitEntry();
  // The kernel limits on entry_'s names and the layer budgets.
  Status CheckEntry();
  void ResetPending();
  Status Fail(Status s);  // adds "<name>: tar header at offset N" and makes it sticky
  // Adds "<name>: tar entry at offset N (path)" (the entry's first header) and makes it sticky.
  Status FailEntry(Status s, std::string_view path);

  std::string name_;
  EntryFn on_entry_;
  Limits limits_;

  State state_ = State::kHeader;
  uint64_t offset_ = 0;
  Status status_;
  bool finished_ = false;

  alignas(8) uint8_t block_[tar::kBlockSize];
  size_t block_fill_ = 0;
  uint64_t skip_ = 0;  // data or padding bytes to pass over before the next state applies

  bool saw_zero_block_ = false;
  uint64_t header_offset_ = 0;  // the header being parsed; names errors

  // Extension headers collected for the next entry.
  bool pending_ = false;
  uint64_t entry_start_ = 0;  // offset of the first header of the pending entry
  char ext_kind_ = 0;
  uint64_t ext_remaining_ = 0;
  uint64_t ext_padding_ = 0;
  uint64_t pax_bytes_ = 0;
  std::string ext_data_;
  tar::PaxRecords pax_;
  Status limit_error_;  // a PAX record over a kernel limit, reported with the entry's header
  std::optional<std::string> long_name_, long_link_;

  // The entry being completed; reused so its strings keep their capacity.
  TarEntry entry_;
  uint64_t sparse_map_bytes_ = 0;
  tar::SparseMap1x0Parser sparse_map_;
  uint64_t sparse_real_size_ = 0;

  uint64_t entries_ = 0, metadata_bytes_ = 0;  // emitted so far
};

}  // namespace lazyroot
