// Fine access points inside large files, and windows cut to what the next
// 32 KiB need: how the pull's gzip passes (gzip_index.cc, gzip_isal_stream.cc)
// place and store their checkpoints under fine point policy 1.
//
// Why: a checkpoint every 2 MiB makes a cold random read inflate ~1 MiB on
// average. Inside the data of a large regular file (>= kFineMinFileBytes, the
// ranges LayerIndexer learns from the tar parser) the passes also stop at the
// first deflate block boundary kFineSpacing after the last point, a "fine"
// point. Readers cut units at the other points only (sequential reads stay
// 2 MiB units) and prime at a fine point for a random read.
//
// What it costs: a point's window (<= 32 KiB of history) is what an index
// weighs. Every point's window is probed once its next 32 KiB are decoded:
// with no history, then with only the last kTrimSteps bytes of it, each a
// zlib decode of those 32 KiB (a match that reaches further back fails to
// decode, "invalid distance too far back", never gives other bytes; see
// checkpoint_window.h). The first that decodes is the window stored
// (window_size < 32 KiB: only the last bytes before the point); none: a
// coarse point keeps its whole window, a fine point is dropped. Stored
// blocks (compressed or random data) need no window, a fine point there is
// 32 bytes; text usually needs one. Fine points are kept while their bytes
// stay within kFineBudgetDivisor of the compressed bytes before them (plus
// kFineBudgetSlack), in stream order: the thinning is a function of the blob.
//
// Policy 3 (kFinePolicyV3) also records, at every block-boundary point
// followed by stored blocks (incompressible data: media, archives, model
// weights), their lengths: a random read inside them is a read of the blob
// (Checkpoint::stored_blocks).
//
// Policy 2 (kFinePolicyV2) adds mid-block points where ISA-L's pass stops
// inside a long coded block (kMidSpacing, kMidBudgetDivisor below;
// isal_midblock.h; FORMAT.md): each is checked by resuming it as a reader
// would against the 32 KiB the pass produced after it (Output), and gets
// the smallest trimmed window that gives those bytes.
//
// Deterministic: every decision depends on the blob's bytes and offsets alone,
// never on how they were chunked: checks happen at output offsets the pass
// reaches the same way for any chunking, the tar parser has seen all output
// before a check (the pass flushes first), and a probe decodes bytes the pass
// has already consumed (input kept from the point on, at most kMaxProbeInput).
// Not thread-safe; one per stream decoder.
#pragma once

#include <cstdint>
#include <deque>
#include <span>
#include <string>
#include <vector>

#include "index/checkpoint.h"

namespace lazyroot {

inline constexpr uint64_t kFineSpacing = 32 << 10;         // output from the last point to the next fine check
inline constexpr uint64_t kFineIdleStep = 256 << 10;       // the next check after a check outside a large file
inline constexpr uint64_t kFineMinFileBytes = 1 << 20;     // files with at least this much data get fine points
inline constexpr uint64_t kFineBudgetDivisor = 200;        // fine points' bytes <= compressed bytes before / 200 (0.5 %)
inline constexpr uint64_t kFineBudgetSlack = 16 << 10;     // ... + this
inline constexpr uint64_t kMaxProbeInput = 160 << 10;      // compressed bytes a probe may read (32 KiB stored + headers)
inline constexpr uint32_t kTrimSteps[] = {0, 1024, 8192};  // history sizes tried, smallest first
// Policy 2: mid-block points (isal_midblock.h) where a long coded block
// leaves no boundary: one where the ISA-L pass stops inside a block at least
// kMidSpacing of output after the last point, kept while mid-block points'
// bytes stay within the compressed bytes before them / kMidBudgetDivisor +
// kFineBudgetSlack (their own budget: the block-boundary fine points keep
// theirs).
inline constexpr uint64_t kMidSpacing = 64 << 10;
inline constexpr uint64_t kMidBudgetDivisor = 80;  // 1.25 %

// The output ranges that get fine points: the data of large regular files,
// added in stream order as the tar parser announces them (before their data
// is decoded). Queries come in increasing order; ranges behind them are
// dropped, so it holds only the few files around the decoder's position.
class FineRanges {
 public:
  // The table's fine_policy: kFinePolicyV1, or kFinePolicyV2 (mid-block
  // points too, where the pass can place them).
  uint8_t policy = kFinePolicyV1;
  // Policy 3: the blob's size. Mid-block points share a budget out of the
  // whole blob (kMidBudgetDivisor of it), not of the bytes before them, so
  // that a compressible file early in a layer is not starved of them.
  uint64_t blob_size = 0;

  void Add(uint64_t start, uint64_t end);
  // Whether offset lies in a range. REQUIRES: offset >= every earlier query.
  bool Contains(uint64_t offset);

 private:
  std::deque<std::pair<uint64_t, uint64_t>> ranges_;
};

// Places the points of one gzip pass into its table (see the top). With
// ranges == nullptr (policy 0, how tables were made before) points go
// straight into the table with their whole windows, as they always did.
class PointPlacer {
 public:
  PointPlacer(const std::string& name, FineRanges* ranges, CheckpointTable* table);
  ~PointPlacer();
  PointPlacer(const PointPlacer&) = delete;
  PointPlacer& operator=(const PointPlacer&) = delete;

  bool fine_enabled() const { return ranges_ != nullptr; }
  // Policy 2 and built with ISA-L: the ISA-L pass places mid-block points.
  bool mid_block_enabled() const;
  // Policy 3: stored blocks are recorded (Checkpoint::stored_blocks).
  bool stored_blocks_enabled() const { return ranges_ != nullptr && ranges_->policy >= kFinePolicyV3; }
  // Whether a fine check is due at output offset `out`.
  bool CheckDue(uint64_t out) const { return ranges_ != nullptr && out >= next_check_; }
  uint64_t next_check() const { return next_check_; }
  // At a check (CheckDue(out)), with all output before out handed to the
  // tar parser: whether a fine point goes at the next block boundary.
  bool WantFine(uint64_t out);
  // Whether out lies in a fine range (ISA-L's pass stops at the end of the
  // block it was in at the check). REQUIRES as WantFine.
  bool InRange(uint64_t out) { return ranges_->Contains(out); }

  // A point at a block boundary (window: the raw history before it) or a
  // member start (no window). prev_byte: the compressed byte at
  // p.in_offset - 1 (used when p.bits != 0); prev_known false if the pass
  // cannot give it (the window is then kept whole, a fine point dropped).
  // A point at the offset of the last one is ignored (empty members).
  // A mid-block point (p.mid_block) also gives its block header's bytes
  // (from the byte holding p.header_bit to the one holding its last bit).
  void Add(Checkpoint p, std::span<const uint8_t> window, uint8_t prev_byte, bool prev_known,
           std::span<const uint8_t> header = {});
  // Output bytes at absolute offset `at`, in order: the 32 KiB after each
  // waiting mid-block point are kept to check its resume against.
  void Output(std::span<const uint8_t> bytes, uint64_t at);
  // Compressed bytes the pass holds, at absolute offset `at`: kept from the
  // oldest point waiting for its probe on. Overlaps are fine; a gap after
  // what is kept ends the keeping (those points keep their whole windows).
  void Input(std::span<const uint8_t> bytes, uint64_t at);
  // The pass has decoded up to output offset `out`: points whose next 32
  // KiB are decoded are probed and go into the table.
  void Advance(uint64_t out) {
    if (!waiting_.empty() && out >= waiting_.front().p.out_offset + kMaxWindowBytes) Resolve(out, false);
  }
  // End of the stream: every point goes into the table.
  void Finish() { Resolve(0, true); }
  // The output offset of the last point placed (waiting or in the table).
  bool has_points() const { return !waiting_.empty() || !table_->points.empty(); }
  uint64_t last_out() const { return waiting_.empty() ? table_->points.back().out_offset : waiting_.back().p.out_offset; }

 private:
  struct Waiting {
    Checkpoint p;
    std::vector<uint8_t> window;
    uint8_t prev_byte = 0;
    bool prev_known = false;
    std::vector<uint8_t> header;  // mid-block: its block header's bytes
    std::vector<uint8_t> truth;   // mid-block: the output after it (up to 32 KiB)
  };
  void Resolve(uint64_t out, bool all);
  void ResolveFront();  // REQUIRES: a waiting point
  void ResolveMidBlock(Waiting& w);
  void PopFront();
  // Policy 3: the lengths of the stored blocks from w's point (a block
  // boundary) on, read from the input kept (at most kMaxProbeInput after the
  // point); empty if none is known.
  std::vector<uint16_t> StoredBlocksAt(const Waiting& w) const;
  // The stored window for w: the smallest kTrimSteps suffix that decodes
  // its next 32 KiB; -1 if none does (or its input was not kept whole).
  int64_t TrimmedWindow(const Waiting& w);
  bool Decodes(const Waiting& w, size_t history);
  // Mid-block: the smallest kTrimSteps suffix with which ISA-L resumes to
  // w.truth; -1 if none does (or not even the whole window).
  int64_t MidBlockWindow(const Waiting& w);

  std::string name_;
  FineRanges* ranges_;
  CheckpointTable* table_;
  std::deque<Waiting> waiting_;
  std::vector<uint8_t> kept_;  // compressed bytes from kept_at_ on
  uint64_t kept_at_ = 0;
  uint64_t next_check_ = 0;
  uint64_t fine_bytes_ = 0;    // serialised bytes of the fine points kept so far
  uint64_t mid_bytes_ = 0;     // ... of the mid-block points
  void* mid_state_ = nullptr;  // ISA-L inflate_state for mid-block probes
  std::vector<uint8_t> mid_out_;
  std::vector<uint8_t> scratch_;
  void* zstream_ = nullptr;    // z_stream, reused by every probe
};

}  // namespace lazyroot
