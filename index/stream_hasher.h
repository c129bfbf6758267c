// StreamHasher: the two SHA-256 streams over a layer's uncompressed stream
// (its DiffID, and each regular file's digest: one interleaved pass over a
// file's data, Sha256Pair, since tar puts file data at 512-byte offsets and
// so in step with the DiffID's blocks), run on a second thread once
// the stream is long enough to pay for one. With SHA-NI both passes together
// cost more than ISA-L's inflate of the same bytes, so on one thread they
// were most of a layer's indexing time; beside the inflate + tar parse they
// overlap with it.
//
// The producer (the indexer's thread) calls AddFile for each regular entry
// the tar parser sees, then Update with the output chunk that holds the
// entries' headers; the hasher sees them in that order. Chunks are copied
// into a bounded queue (at most kMaxQueued chunks in flight: memory does not
// grow with the layer). Short streams are hashed inline. Not thread-safe:
// one producer.
#pragma once

#include <cstdint>
#include <deque>
#include <span>
#include <string>
#include <vector>

#include "index/layer_index.h"
#include "index/serial_worker.h"
#include "index/sha256_pair.h"

namespace lazyroot {

class StreamHasher {
 public:
  // A regular file's data range in the uncompressed stream.
  struct File {
    uint64_t start = 0, end = 0;  // [data_offset, data_offset + stored_size)
    std::string prefix;           // SparseContentPrefix for a sparse file, else empty
  };

  // threshold: stream bytes hashed inline before the second thread starts.
  explicit StreamHasher(uint64_t threshold = kDefaultThreshold);
  ~StreamHasher() = default;  // an unfinished stream is abandoned
  StreamHasher(const StreamHasher&) = delete;
  StreamHasher& operator=(const StreamHasher&) = delete;

  // Files must come in stream order, each before the chunk its data starts in.
  void AddFile(File f);
  // The next chunk of the stream.
  void Update(std::span<const uint8_t> chunk);

  struct Digests {
    std::string diff_id;                     // "sha256:<hex>"
    std::vector<FileDigest> file_digests;    // ascending by data_offset
    bool all_files_complete = true;          // false: the stream ended inside a file's data
  };
  // Waits for the hasher, then returns the digests. Call once. Rethrows
  // what the thread's hashing threw (std::bad_alloc), as inline hashing would.
  Digests Finish();

  static constexpr uint64_t kDefaultThreshold = 4 << 20;
  static constexpr size_t kMaxQueued = 8;

 private:
  struct Chunk {
    std::vector<File> files;  // added before this chunk
    std::vector<uint8_t> bytes;
  };
  // The hashing itself (inline, or on the thread).
  void Hash(std::vector<File>& files, std::span<const uint8_t> bytes);

  std::vector<File> new_files_;  // producer side: not yet handed over

  // Owned by whoever hashes (the producer until the thread starts, then the thread until joined).
  static constexpr int kDiffLane = 0, kFileLane = 1;
  Sha256Pair hash_;  // lane 0: the DiffID; lane 1: the current file
  std::deque<File> files_;
  bool file_started_ = false;   // files_.front()'s hash has begun
  uint64_t file_next_ = 0;       // its next stream byte to hash
  uint64_t out_pos_ = 0;
  std::vector<FileDigest> file_digests_;

  RecyclePool<Chunk> chunks_;
  SerialWorker worker_;  // declared last: its tasks use the rest
};

}  // namespace lazyroot
