// StreamCache: every read of a mount goes through one of these. It serves
// ranges of the layers' uncompressed streams from decoded "units" held in a
// DecodedSpanLru, and owns all the decoders of the mount:
//
//   units   — a compressed layer's stream is cut at its checkpoints, so a unit
//             is one span between two checkpoints (~2 MiB of tar) and decodes
//             on its own: a cold decoder primes at the unit's start and stops
//             at its end, no byte is inflated twice, and units decode in
//             parallel. A span longer than max_unit_bytes (a single-frame zstd
//             layer has one span) is cut into unit_bytes blocks decoded in
//             order by a warm decoder.
//   decoders — pooled and shared by all readers: a miss takes the idle
//             decoder of its layer already positioned at the unit (the one
//             that just decoded the unit before it) and returns it afterwards.
//             Reading many small files in tar order is then one sequential
//             decode per layer, whichever files or handles the reads come from.
//             Idle decoders are bounded per layer (a count) and over all
//             layers (their bytes: state, window, buffers; a zstd decoder
//             holds up to its frame's window, <= 2^29 bytes), least recently
//             used freed first, so an image of many layers costs no more.
//             One decoder larger than the whole bound may stay idle besides
//             (the latest): freeing it would make the next unit of its layer
//             decode the frame from the start again.
//
//   decoder budget — every decoder, idle or in use, is charged against one
//             budget (decoder_bytes): an idle one its memory_bytes(), one in
//             use what it may grow to during its Read (its memory now plus
//             the bytes it will decode, at most its max_memory_bytes(): a
//             window fills only as it is decoded). A Read that would go over
//             frees idle decoders (least recently used first), then waits,
//             first come first served, until decoders in use are returned;
//             read-ahead never waits, it skips the unit. A decoder larger than
//             the whole budget runs when it is the only one charged, so every
//             read makes progress; no thread holds a charge while it waits
//             (a waiter frees its decoder first), so there is no deadlock.
//
// Memory, then: the span cache's capacity_bytes, plus decoder_bytes (or one
// decoder up to max_memory_bytes, ~512 MiB for a zstd frame with the largest
// window the pull accepts, alone), plus per thread inside Read (FUSE workers
// and read-ahead workers) one unit being decoded and one evicted unit still
// being copied out (<= max_unit_bytes each), and with unit copies one more
// unit being caught up to or re-encoded (<= max_unit_bytes plus its copy).
//   unit copies — a unit inside a long span (a single-frame zstd layer) that
//             no decoder stands at is read from its copy (UnitCopies) when one
//             exists; else a decoder catches up to it from where it stands or
//             from the span's start, leaving copies of the whole units it
//             passes and of this one. A sequential pass (a decoder already at
//             the unit, read-ahead) neither loads nor makes copies: decoding
//             on costs about what loading a copy does.
//   single flight — concurrent misses on one unit decode it once; the others
//             wait for it.
//   read-ahead — a reader moving through a layer's units in order (the access
//             after a unit is the next unit) gets the next units decoded by
//             background workers while it consumes this one: with 2 cores,
//             decoding overlaps with the FUSE round trips and with itself.
//
// Uncompressed layers bypass all of it: reads are preads of the blob and the
// page cache is their cache.
//
// Thread safety: every public method may be called from any thread at once.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <list>
#include <map>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <thread>
#include <vector>

#include "fs/decoded_span_lru.h"
#include "index/image_content.h"
#include "index/status.h"

namespace lazyroot {

// Re-encoded copies of the units inside long spans (a single-frame zstd
// layer: one span, cut into unit_bytes blocks), kept across mounts, so that
// a cold read there decodes one unit instead of the layer from its start
// (index/unit_copy.h). src/store keeps them as files; thread-safe.
class UnitCopies {
 public:
  virtual ~UnitCopies() = default;
  // Fills out (the whole unit: out.size() is its length) from a valid copy of
  // layer's unit at start; false if there is none (a copy that does not
  // validate is dropped and counts as none).
  virtual bool Load(uint32_t layer, uint64_t start, std::span<uint8_t> out) = 0;
  // Whether a copy of the unit [start, start + length) exists (not validated).
  virtual bool Has(uint32_t layer, uint64_t start, uint64_t length) = 0;
  // Keeps a copy of the unit; best effort (a failed write or a full budget
  // only means the unit is decoded again next time).
  virtual void Save(uint32_t layer, uint64_t start, std::span<const uint8_t> bytes) = 0;
};

struct StreamCacheOptions {
  // Decoded bytes held (DecodedSpanLru bound). 0 caches nothing: reads decode
  // straight into the caller's buffer (pooled warm decoders, no read-ahead).
  uint64_t capacity_bytes = 256ull << 20;
  uint64_t max_unit_bytes = 8ull << 20;    // spans up to this long are one unit
  uint64_t unit_bytes = 2ull << 20;        // block size inside longer spans
  unsigned prefetch_workers = 2;           // background decoding threads; 0: no read-ahead
  unsigned prefetch_units = 3;             // units decoded ahead of a sequential reader
  unsigned idle_decoders_per_layer = 4;    // warm decoders kept per layer between reads
  // Bytes of idle decoders kept over all layers (RandomReader::memory_bytes).
  // A decoder larger than this on its own (a zstd frame with a bigger window)
  // is kept outside it, one at most: the most recently returned.
  uint64_t idle_decoder_bytes = 64ull << 20;
  // Bytes of all decoders, idle and in use (see "decoder budget" above).
  uint64_t decoder_bytes = 128ull << 20;
  // The zstd window a decoder is charged for at first (so a cold read deep
  // in a single-frame layer is not charged the pull's 512 MiB limit); a layer
  // with a frame over it is charged the pull's limit from then on. 0: that.
  uint64_t window_limit_bytes = 32ull << 20;
  uint64_t random_chunk_bytes = 256 << 10;  // a random read decodes its unit up to here, rounded up
  // Units inside long spans are read from here when a copy exists, and a
  // decoder passing through them (a cold read catching up from the span's
  // start, or a read of the unit) leaves copies of the whole units it
  // decoded. Null: none.
  std::shared_ptr<UnitCopies> unit_copies;
};

struct StreamCacheStats {
  DecodedSpanLruStats cache;
  uint64_t decoded_units = 0;    // units decoded (foreground + read-ahead)
  uint64_t prefetched_units = 0;  // of which by read-ahead workers
  uint64_t waited = 0;           // misses that waited for another thread's decode
  uint64_t reprimes = 0;         // decoder restarts from a checkpoint, over all decoders
  uint64_t decoded_bytes = 0;    // uncompressed bytes produced by decoders (skips excluded)
  uint64_t idle_decoders = 0;         // decoders kept idle now, over all layers
  uint64_t idle_decoder_bytes = 0;    // their memory now (within the bound)
  uint64_t large_idle_decoder_bytes = 0;  // the one idle decoder over the bound on its own, if any
  uint64_t peak_idle_decoder_bytes = 0;  // the most it has been
  uint64_t freed_decoders = 0;        // idle decoders freed to stay within the bounds
  uint64_t live_decoders = 0;         // decoders that exist now (idle + in use)
  uint64_t peak_live_decoders = 0;
  uint64_t decoder_bytes = 0;         // charged now against decoder_bytes: idle + in use
  uint64_t peak_decoder_bytes = 0;
  uint64_t peak_shared_decoder_bytes = 0;  // the most charged while two or more decoders held charges (<= budget)
  uint64_t alone_grants = 0;          // reads let over the budget as the only decoder charged
  uint64_t memory_waits = 0;          // reads that waited for decoder memory
  uint64_t memory_skips = 0;          // read-ahead units skipped for want of decoder memory
  uint64_t window_retries = 0;        // reads tried again with the pull's window limit (a large zstd window)
  uint64_t copy_loads = 0;            // units read from a unit copy instead of decoded
  uint64_t stored_reads = 0;          // random reads served from a stored deflate block's bytes, not decoded
  uint64_t copy_saves = 0;            // units handed to UnitCopies::Save
};

class StreamCache {
 public:
  StreamCache(std::shared_ptr<const ImageContent> content, StreamCacheOptions options);
  ~StreamCache();  // stops and joins the read-ahead workers
  StreamCache(const StreamCache&) = delete;
  StreamCache& operator=(const StreamCache&) = delete;

  // Reads [offset, offset + out.size()) of layer's uncompressed stream; *n is
  // short only at the end of the stream. Returns the decoder's or blob's
  // error (kCorruption / kIoError naming the layer and compressed offset).
  // REQUIRES: layer < content->layer_count().
  Status Read(uint32_t layer, uint64_t offset, std::span<uint8_t> out, size_t* n);

  StreamCacheStats stats() const;

  // Loads the layers the content opened lazily (ImageContent::Load) on a
  // thread of their own, in order: what a mount calls once it is ready, so
  // that first reads rarely wait for a table and the start does not either.
  // Once; no-op when every layer is loaded.
  void StartWarmUp();

  // A unit of a layer's stream: [start, end).
  struct Unit {
    uint64_t start = 0, end = 0;
    bool at_checkpoint = false;  // start is a checkpoint: a cold decoder starts here for free
  };
  // The unit holding stream offset `offset` of a compressed layer.
  // REQUIRES: offset < the layer's uncompressed size; the layer was loaded
  // when the cache was made, or has been read since.
  Unit UnitAt(uint32_t layer, uint64_t offset) const;

 private:
  struct Flight;        // one unit being decoded; waiters block on it
  struct LayerState;    // per layer: recent read and unit ends
  struct IdleDecoder;   // a pooled decoder with its layer and size
  struct Lease;         // a decoder taken from the pool and the bytes charged for it
  struct DecoderGuard;  // frees a taken decoder that was not returned
  using Key = std::pair<uint32_t, uint64_t>;  // (layer, unit start)

  // Loads the layer (ImageContent::Load) and sets up its state, once; every
  // use of a layer's table comes after it. Thread-safe.
  Status PrepareLayer(uint32_t layer);

  // At least the first `need` bytes of the unit (a prefix of it, or all):
  // from the cache, by waiting for a decode in flight, or by decoding up to
  // `decode_to` bytes (>= need). prefetch: a read-ahead job (never waits;
  // gives up on a block that only a cold decoder could reach; returns null).
  Result<std::shared_ptr<const Span>> GetUnit(uint32_t layer, const Unit& unit, uint64_t decode_to, uint64_t need,
                                              bool prefetch);
  // Decodes the unit up to decode_to bytes, continuing a cached prefix.
  // Reads out.size() stream bytes at offset from the stored blocks after
  // point p (REQUIRES: all of them inside those blocks) out of the layer's
  // verified blob, as they are.
  Status ReadStored(uint32_t layer, const Checkpoint& p, uint64_t offset, std::span<uint8_t> out);
  Status Decode(uint32_t layer, const Unit& unit, uint64_t decode_to, bool prefetch,
                std::shared_ptr<const Span>* out, bool* skipped);
  Lease TakeDecoder(uint32_t layer, uint64_t start, bool need_warm);
  // With unit copies: moves the lease's decoder up to `from` (from where it
  // stands, or its span's start), copying the whole units it passes that
  // have no copy. *stop: read-ahead found no decoder memory.
  Status CatchUp(uint32_t layer, Lease& lease, uint64_t from, bool prefetch, bool* stop);
  // Charges the lease for decoding [from, out end) of the layer (see Charge)
  // and reads it. A zstd frame over the window limit charged for makes the
  // layer's decoders get the pull's limit from then on, and the read is
  // charged and tried again. wait == false: *skipped when there is no room.
  // *reprimes: the decoders' restarts.
  Status ChargedRead(uint32_t layer, Lease& lease, uint64_t from, std::span<uint8_t> out, size_t* n, bool wait,
                     bool* skipped, uint64_t* reprimes);
  // Charges the lease for decoding [from, to) of its layer. May free idle
  // decoders. If that does not make room: wait == false returns false (the
  // lease is unchanged); wait == true pools the lease's decoder, waits its
  // turn and then takes the best pooled decoder again (charged for it).
  // Returns true when charged.
  bool Charge(uint32_t layer, Lease& lease, uint64_t from, uint64_t to, bool wait);
  // Pools the decoder as idle, then frees the least recently returned idle
  // decoders until the per-layer count, the idle_decoder_bytes bound and the
  // decoder_bytes budget hold.
  void ReturnDecoder(uint32_t layer, Lease lease);
  // ReturnDecoder's work. REQUIRES: idle_mu_ held; decoders it frees go to *freed.
  void ReturnLocked(uint32_t layer, Lease lease, std::vector<std::unique_ptr<RandomReader>>* freed);
  // Frees a taken decoder instead of pooling it (it failed: its state is unknown).
  void DropDecoder(Lease lease);
  // REQUIRES: idle_mu_ held. Frees idle decoders (into *freed) until charging
  // `more` fits the budget; true if it fits then.
  bool MakeRoom(uint64_t more, std::vector<std::unique_ptr<RandomReader>>* freed);
  void FreeIdle(std::list<IdleDecoder>::iterator it, std::vector<std::unique_ptr<RandomReader>>* freed);
  void NoteCharges();  // REQUIRES: idle_mu_ held; updates the peaks
  // Notes a foreground read of [offset, end) in `unit`; true if it continues
  // a sequential run. in_fine: offset lies between fine points (a large
  // file's data), where only a read starting just after a recent one is
  // sequential. *near: a recent read ended within 2 MiB of offset (either
  // side), so this may be a sequential reader's request out of order.
  bool NoteAccess(uint32_t layer, const Unit& unit, uint64_t offset, uint64_t end, bool in_fine, bool* near);
  void ScheduleReadAhead(uint32_t layer, const Unit& unit);
  void WorkerLoop();

  const std::shared_ptr<const ImageContent> content_;
  const StreamCacheOptions options_;
  DecodedSpanLru cache_;
  std::vector<std::unique_ptr<LayerState>> layers_;

  // The idle decoders of all layers, least recently returned first. Guards
  // the counts and the decoder counters of StreamCacheStats too.
  mutable std::mutex idle_mu_;
  std::list<IdleDecoder> idle_;
  std::vector<unsigned> idle_per_layer_;
  StreamCacheStats decoder_counters_;
  uint64_t in_use_bytes_ = 0;  // charged to decoders in use (decoder_counters_.decoder_bytes has idle too)
  unsigned in_use_charged_ = 0;  // decoders in use with a charge
  uint64_t next_ticket_ = 0, serving_ticket_ = 0;  // waiters for decoder memory, in order
  uint64_t returns_ = 0;  // decoders in use returned or freed so far: room may have come
  std::condition_variable memory_cv_;  // waits under idle_mu_

  mutable std::mutex mu_;  // guards flights_, jobs_, stop_, counters
  std::condition_variable work_cv_;
  std::map<Key, std::shared_ptr<Flight>> flights_;
  std::deque<std::pair<uint32_t, Unit>> jobs_;
  bool stop_ = false;
  StreamCacheStats counters_;
  std::vector<std::thread> workers_;
  std::thread warmer_;  // StartWarmUp's
  // Set by the destructor: a layer load under way (an index built again in
  // memory from a large blob) gives up rather than hold up the unmount.
  std::atomic<bool> cancel_loads_{false};
};

// A RandomReader view of one layer through a StreamCache (for ReadFileData).
class StreamCacheReader final : public RandomReader {
 public:
  StreamCacheReader(StreamCache* cache, uint32_t layer) : cache_(cache), layer_(layer) {}
  Status Read(uint64_t offset, std::span<uint8_t> out, size_t* n) override {
    return cache_->Read(layer_, offset, out, n);
  }
  uint64_t reprimes() const override { return 0; }

 private:
  StreamCache* cache_;
  uint32_t layer_;
};

}  // namespace lazyroot
