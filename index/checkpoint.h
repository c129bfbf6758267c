// CheckpointTable: the random-access points into one compressed layer blob.
// A Checkpoint says "decoding may restart at compressed byte in_offset (minus
// `bits` bits), producing uncompressed byte out_offset, given this window".
// Built once by a StreamDecoder (layer_decoder.h), then immutable: share it as
// std::shared_ptr<const CheckpointTable> between any number of reader threads.
//
// Serialised form (little-endian, all integers fixed width):
//   "LZCKPT\0\1"  magic (8 bytes; the last byte is the format version)
//   u8  compression (0 none, 1 gzip, 2 zstd)
//   u8  made_by (0 zlib's Z_BLOCK stops, 1 ISA-L's fixed-slice pass; gzip only)
//   u8  fine_policy (0 none: every table before fine points; 1 kFinePolicyV1,
//       2 kFinePolicyV2, 3 kFinePolicyV3, fine_points.h; gzip only)
//   u8[5] zero
//   u64 compressed_size   u64 uncompressed_size   u64 point count
//   per point: u64 in_offset, u64 out_offset, u8 bits, u8 flags (bit 0: fine,
//              bit 1: mid-block, policy 2 or later; bit 2: a stored block
//              starts here, policy 3 or later), u8[2] zero,
//              u32 window_size (raw bytes, <= 32768), u32 stored size, stored
//              bytes (the window zlib-compressed; empty when window_size == 0);
//              a mid-block point then: u64 header_bit (its block's header);
//              a stored-block point then: u16 count (1..kMaxStoredBlocks),
//              count x u16 LEN (0..65535, the last not 0), the stored
//              blocks from it on
//   u32 crc32 of every byte before it
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "index/compression.h"
#include "index/status.h"

namespace lazyroot {

// Which inflate implementation a decoder uses. ISA-L (when built with it)
// decodes ~2.5x faster than zlib, which is what a random read and the pull cost.
// In a CheckpointTable it records which pass placed the points: both are valid
// for every reader, but only the same pass rebuilds the same table (fsck).
enum class InflateEngine : uint8_t { kZlib = 0, kIsal = 1 };

// The largest deflate window (32 KiB); gzip checkpoints carry at most this much.
inline constexpr uint32_t kMaxWindowBytes = 32768;
// The most stored blocks one point records (Checkpoint::stored_blocks).
inline constexpr uint32_t kMaxStoredBlocks = 64;

// CheckpointTable::fine_policy: 0 the tables made before fine points (whole
// windows, no fine points); kFinePolicyV1 fine points in large files and
// windows cut to what the 32 KiB after a point need (fine_points.h).
inline constexpr uint8_t kFinePolicyV1 = 1;
// kFinePolicyV2: as 1, plus mid-block points (isal_midblock.h) inside long
// Huffman-coded blocks, placed by ISA-L's pass.
inline constexpr uint8_t kFinePolicyV2 = 2;
// kFinePolicyV3: as 2, plus the lengths of the stored deflate blocks that
// follow a block-boundary point (Checkpoint::stored_blocks): a random read
// inside them reads the blob's bytes, with no decoder and no window.
inline constexpr uint8_t kFinePolicyV3 = 3;
inline constexpr uint8_t kMaxFinePolicy = kFinePolicyV3;
// What the pull and a rebuild of an index without a sound stored one use.
inline constexpr uint8_t kDefaultFinePolicy = kFinePolicyV3;

struct Checkpoint {
  uint64_t in_offset = 0;   // first whole compressed byte to feed after priming
  uint64_t out_offset = 0;  // uncompressed offset produced from that point
  uint8_t bits = 0;         // gzip: bits of the byte at in_offset-1 still unread (0..7); else 0
  uint32_t window_size = 0;  // raw size of the window (0: none needed, e.g. a member/frame start)
  std::string window;        // the window, zlib-compressed (see CompressWindow)
  // An access point inside a large file (fine_points.h), not a unit boundary:
  // readers cut the stream into units at the other points and restart at a
  // fine one only for a random read. Its window, if any, may be only the
  // last window_size < 32 KiB bytes before it: all the history the 32 KiB
  // after it reach back to.
  bool fine = false;
  // A fine point inside a Huffman-coded block (policy 2): resumed by ISA-L
  // only (isal_midblock.h), from the block's header at absolute bit offset
  // header_bit (< the point's bit offset). Readers without ISA-L prime at an
  // earlier point instead.
  bool mid_block = false;
  uint64_t header_bit = 0;
  // Policy 3: the stored (uncompressed) deflate blocks that follow this
  // point (a block boundary), in order, each one's LEN (0..65535: 0 is a
  // flush marker, never the last); empty if none is known. The first one's data starts at stored_data_offset(), each
  // next one's 5 bytes after the end of the one before (its 3 header bits
  // padded to a byte, LEN and NLEN): output [out_offset, out_offset +
  // StoredBytes()) is those blob bytes as they are.
  std::vector<uint16_t> stored_blocks = {};

  // The point's absolute bit offset in the compressed stream.
  uint64_t bit_offset() const { return in_offset * 8 - bits; }
  // Where a stored block's data starts: after its 3 header bits, the padding
  // to a byte boundary, and its LEN and NLEN.
  uint64_t stored_data_offset() const { return (bit_offset() + 3 + 7) / 8 + 4; }
  // The output bytes the stored blocks cover.
  uint64_t StoredBytes() const;
  // For an output offset inside the stored blocks (out_offset <= out <
  // out_offset + StoredBytes()): where its byte is in the blob, and how many
  // bytes of its block follow it there (itself included).
  void StoredAt(uint64_t out, uint64_t* blob_offset, uint64_t* left) const;

  bool operator==(const Checkpoint&) const = default;
};

struct CheckpointTable {
  Compression compression = Compression::kNone;
  InflateEngine made_by = InflateEngine::kZlib;  // gzip: the pass that placed the points
  // gzip: how fine points were placed (0: none, the tables before them; 1:
  // kFinePolicyV1). A rebuild (fsck) must use the same policy to compare.
  uint8_t fine_policy = 0;
  uint64_t compressed_size = 0;
  uint64_t uncompressed_size = 0;
  std::vector<Checkpoint> points;  // strictly increasing out_offset; points[0].out_offset == 0 if any

  // The index of the last point with out_offset <= offset; points must be non-empty.
  size_t FindPoint(uint64_t offset) const;

  std::string Serialize() const;
  // Validates everything a reader relies on (magic, version, sizes, ordering,
  // window bounds, crc32). Returns kCorruption naming `name` and the byte
  // offset in the table on any failure; never reads past `bytes`.
  // crc_covered_by_caller: the caller checks a stronger digest over these
  // same bytes (the layer index file's SHA-256) before it trusts the table,
  // so the crc32 pass (3 ms for a large layer's 6 MB of windows) is skipped;
  // every other check is made.
  static Result<CheckpointTable> Parse(std::span<const uint8_t> bytes, const std::string& name,
                                       bool crc_covered_by_caller = false);

  bool operator==(const CheckpointTable&) const = default;
};

// A decoder that can (re)start at any Checkpoint of one table and then produce
// the uncompressed stream in order. RandomReader (layer_decoder.h) builds warm,
// random access on top of it. Not thread-safe: one per reader.
class PointDecoder {
 public:
  virtual ~PointDecoder() = default;
  // Positions the decoder at p.out_offset. Returns the ByteSource's error or
  // kCorruption (bad stored window).
  virtual Status Prime(const Checkpoint& p) = 0;
  // Whether Prime takes mid-block points (ISA-L); callers that get false
  // prime at an earlier point (PrimePoint).
  virtual bool PrimesMidBlock() const { return false; }
  // Produces exactly out.size() next bytes. REQUIRES: they lie within the
  // table's uncompressed_size. Returns kCorruption naming the compressed
  // offset if the blob does not decode or ends early.
  virtual Status Decode(std::span<uint8_t> out) = 0;
  // Discards the next n bytes (REQUIRES as Decode). The default decodes them.
  virtual Status Skip(uint64_t n);
  // After a Prime: about out_bytes will be decoded from the point before the
  // caller stops (a random read's skip plus its length). A decoder may size
  // its first read of the blob to what that needs: on a cold page cache each
  // read is a disk read. The default ignores it.
  virtual void ExpectOutput(uint64_t out_bytes) { (void)out_bytes; }
  // Heap bytes this decoder holds now (state, window, buffers), for callers
  // that bound how many they keep (a zstd context grows to the frame's window).
  virtual uint64_t memory_bytes() const { return 0; }
  // The most memory_bytes() can grow to, whatever the blob holds (a zstd
  // context: its frame's window, <= 2^kZstdWindowLogMax). Lets a caller
  // reserve a decoder's memory before it decodes.
  virtual uint64_t max_memory_bytes() const { return memory_bytes(); }
  // From the next Prime on, a frame whose window is over window_bytes (0:
  // the pull's limit, 2^kZstdWindowLogMax, the default) fails with
  // kLimitExceeded before its window is allocated. Returns the most
  // memory_bytes() can grow to until the next call (a decoder mid-frame
  // keeps its frame's window). Decoders without large windows (gzip) ignore
  // it and return max_memory_bytes().
  virtual uint64_t LimitWindow(uint64_t window_bytes) {
    (void)window_bytes;
    return max_memory_bytes();
  }
};

// The point a decoder primes at for `offset`: table.FindPoint's, or the last
// one before it that is not mid-block if the decoder cannot take those.
size_t PrimePoint(const CheckpointTable& table, uint64_t offset, bool mid_block_ok);

// zlib-compresses a window for storage in a Checkpoint.
std::string CompressWindow(std::span<const uint8_t> raw);
// Inflates a stored window into out (resized to point.window_size). Returns
// kCorruption naming `name` and the checkpoint if it does not decode to exactly
// window_size bytes.
Status ExpandWindow(const Checkpoint& point, const std::string& name, std::vector<uint8_t>* out);

}  // namespace lazyroot
