// LayerIndex: everything lazyroot knows about one layer blob after the pull's
// single pass — its tar entries with their offsets in the uncompressed
// stream, and the checkpoints for random access into the compressed blob.
// The on-disk form is described byte by byte in index/FORMAT.md ("Layer
// index file"): versioned, self-checking (a SHA-256 per section, the
// header's covering the others, so a reader reads and checks only the
// sections it uses), bound to its
// blob digest, and carrying the digest of every chunk of the blob
// (ChunkDigests) so reads can be verified against what the pull verified.
// Value type; Serialize/Parse are pure and thread-safe.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "index/checkpoint.h"
#include "index/chunk_digests.h"
#include "index/compression.h"
#include "index/serial_worker.h"
#include "index/status.h"
#include "index/tar_entry.h"

namespace lazyroot {

// The SHA-256 of one regular file's content, keyed by where its data starts
// in the layer's uncompressed stream (index/FORMAT.md "File digest section"):
// sha256sum of the file for a non-sparse file; for a sparse one, of its map
// and stored bytes (SparseContentPrefix), so it compares equal only to
// another sparse file with the same map and data.
struct FileDigest {
  uint64_t data_offset = 0;  // the TarEntry's data_offset
  Digest32 digest{};
};

// What a sparse file's digest hashes in front of its stored data bytes:
// "lazyroot sparse\n", then the logical size and the extent count, then each
// extent's logical offset and length, all u64 little-endian.
std::string SparseContentPrefix(uint64_t size, const std::vector<SparseExtent>& sparse);

// The digest recorded for data_offset in `digests` (ascending), or null.
const FileDigest* FindFileDigest(std::span<const FileDigest> digests, uint64_t data_offset);

// Reads `length` bytes at `offset` of a layer index file (a pread, or a
// slice of the file in memory); the bytes stay valid as long as the reader.
// A read that cannot be had in full is an error (a short span is refused
// too). Only ranges inside the file its header was checked against are asked.
using LayerIndexRangeReader = std::function<Result<std::span<const uint8_t>>(uint64_t offset, uint64_t length)>;

// Recomputes every checksum of a layer index file in place, from the section
// offsets its header gives (clamped to the file): what the writer does last,
// and what tests and fuzzers use so that their edits reach the parsers. A
// file shorter than a header is left as it is.
void ResealLayerIndexFile(std::span<uint8_t> file);

struct LayerIndex {
  std::string blob_digest;  // "sha256:<hex>" of the compressed blob
  std::string diff_id;      // "sha256:<hex>" of the uncompressed stream
  uint64_t blob_size = 0;
  uint64_t uncompressed_size = 0;
  std::vector<TarEntry> entries;  // tar order
  CheckpointTable checkpoints;
  ChunkDigests chunks;  // of the compressed blob, recorded as it streamed in
  // Ascending by data_offset, each the data_offset of a regular entry. The
  // indexer records one for every regular entry (zero-length ones too).
  std::vector<FileDigest> file_digests;

  std::string Serialize() const;
  // Validates magic, version, every section's SHA-256, every length and offset, and that the
  // file belongs to expected_blob_digest (when non-empty). Errors are
  // kCorruption naming `name` (e.g. the file path); never reads out of bounds.
  static Result<LayerIndex> Parse(std::span<const uint8_t> bytes, const std::string& name,
                                  const std::string& expected_blob_digest);
  // Parse without keeping the entries: the same checks, but the entry
  // section is inflated a chunk at a time and each decoded entry is handed
  // to fn (which may move from it) and dropped, so memory stays at about one
  // chunk whatever the entry count. *header (may be null) receives all but
  // the entries (digests, sizes, checkpoints) before the first fn call. The
  // header, checksum and checkpoints are checked before any entry; an error
  // in the entry section can still come after fn has seen the entries before
  // it. An error from fn ends the walk and is returned as is.
  static Status ForEachEntry(std::span<const uint8_t> bytes, const std::string& name,
                             const std::string& expected_blob_digest, LayerIndex* header,
                             const std::function<Status(TarEntry&)>& fn);
  // What a mount reads of the file: the header (its SHA-256, ownership, every
  // section bound against file_size) and the checkpoint and chunk digest
  // sections (one range, their SHA-256), through `read`; not the entries, not
  // the file digests, so a damaged file digest section does not fail it. Only
  // the checkpoint table (and the chunk digests) is decoded. *diff_id receives
  // the layer's DiffID and *chunks the chunk digests (each may be null).
  static Result<CheckpointTable> ReadCheckpoints(uint64_t file_size, const LayerIndexRangeReader& read,
                                                 const std::string& name, const std::string& expected_blob_digest,
                                                 std::string* diff_id, ChunkDigests* chunks = nullptr);
  // The header alone, checked as ReadCheckpoints checks it (its SHA-256,
  // ownership, every section bound against file_size): blob_digest,
  // diff_id, blob_size and uncompressed_size are set, nothing else. What a
  // mount that loads a layer's checkpoints at its first read checks first.
  static Result<LayerIndex> ReadSummary(uint64_t file_size, const LayerIndexRangeReader& read,
                                        const std::string& name, const std::string& expected_blob_digest);
  // The header's length: what MountRange needs.
  static constexpr size_t kHeaderBytes = 304;
  // The byte range [first, second) past the header that ReadCheckpoints
  // reads of a file of file_size bytes whose first bytes are `header`,
  // checked as ReadCheckpoints checks the header (its SHA-256, the bounds).
  // For a prefetch of what a mount will read; nullopt for anything else (an
  // older version, garbage): its reader will say what is wrong.
  static std::optional<std::pair<uint64_t, uint64_t>> MountRange(std::span<const uint8_t> header, uint64_t file_size);
  // ReadCheckpoints of a file in memory.
  static Result<CheckpointTable> ParseCheckpoints(std::span<const uint8_t> bytes, const std::string& name,
                                                  const std::string& expected_blob_digest, std::string* diff_id,
                                                  ChunkDigests* chunks = nullptr);
  // What `diff` reads: the header as ReadCheckpoints does, then the file
  // digest section alone (its SHA-256), checking that its data offsets ascend
  // within the stream. *diff_id (may be null) receives the layer's DiffID.
  // The entries are not decoded, so that each digest names a regular entry
  // is checked by Parse and ForEachEntry only (a digest of no entry is never
  // looked up).
  static Result<std::vector<FileDigest>> ReadFileDigests(uint64_t file_size, const LayerIndexRangeReader& read,
                                                         const std::string& name,
                                                         const std::string& expected_blob_digest, std::string* diff_id);
  // ReadFileDigests of a file in memory.
  static Result<std::vector<FileDigest>> ParseFileDigests(std::span<const uint8_t> bytes, const std::string& name,
                                                          const std::string& expected_blob_digest,
                                                          std::string* diff_id);
};

// LayerIndexWriter: the file LayerIndex::Serialize writes, built while the
// entries stream in. Each record is deflated as it is added, so an index
// being built costs about its compressed size in memory, instead of a
// TarEntry per entry (~250 bytes plus its strings) and two more copies of the
// records at Serialize time. One per layer; not thread-safe.
class LayerIndexWriter {
 public:
  LayerIndexWriter();
  ~LayerIndexWriter();
  LayerIndexWriter(const LayerIndexWriter&) = delete;
  LayerIndexWriter& operator=(const LayerIndexWriter&) = delete;

  // Appends e's record. kLimitExceeded once the records pass 4 GiB (the
  // format's 32-bit length; far beyond any budget).
  Status Add(const TarEntry& e);
  uint64_t count() const { return count_; }
  // The whole file, with the digests, sizes, checkpoints, chunks and file
  // digests of `header` (its `entries` are ignored). Call once.
  Result<std::string> Finish(const LayerIndex& header);

 private:
  struct Deflater;
  Status Deflate(const std::string& records, bool finish);

  // The adding side (the caller's thread):
  std::string pending_;  // records not yet handed to deflate
  uint64_t raw_ = 0, count_ = 0;
  // The deflating side: the worker's between batches, the caller's after Wait.
  std::unique_ptr<Deflater> z_;
  std::string file_;  // header space, then the deflated records
  Status deflated_;   // the first deflate error
  // Full batches are deflated here, off the pull's inflating thread (zlib
  // was 13 % of a 100k-file pull's CPU, all on that thread). Declared last:
  // destroyed first, before what its tasks touch.
  std::unique_ptr<SerialWorker> worker_;
};

}  // namespace lazyroot
