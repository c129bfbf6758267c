// Sha256Pair: two SHA-256 streams ("lanes") that mostly hash the same bytes:
// a layer's DiffID and its files' digests, a blob's digest and its chunks'
// digests. With SHA-NI one stream is bound by the latency of sha256rnds2, not
// its throughput, so where both lanes take the same 64-byte blocks (same
// bytes, same position within a block) one interleaved pass hashes both for
// less than two passes: ~1.47x one stream's cost on bytes in cache, where
// the two reach sha256rnds2's throughput (~2.3 GB/s of digests per core; more
// lanes gain nothing), ~1.16x on bytes from memory (tests/bench/
// bench_sha256_lanes). Bytes
// only one lane takes, or the lanes out of step (a sparse file's digest
// prefix), are hashed lane by lane. Without SHA-NI each lane is an OpenSSL
// context (its AVX2 code beats a portable one). One object per pair of
// streams; not thread-safe.
#pragma once

#include <array>
#include <cstdint>
#include <span>

#include "index/sha256.h"

namespace lazyroot {

class Sha256Pair {
 public:
  enum class Engine {
    kAuto,     // SHA-NI when the CPU has it, else OpenSSL
    kOpenSsl,  // OpenSSL for both lanes (the fallback; tests compare the two)
  };
  explicit Sha256Pair(Engine engine = Engine::kAuto);

  // Bytes for one lane (0 or 1).
  void Update(int lane, std::span<const uint8_t> bytes);
  // The same bytes for both lanes.
  void UpdateBoth(std::span<const uint8_t> bytes);
  // The lane's digest; the lane then starts a new, empty stream.
  std::array<uint8_t, 32> Finish(int lane);

  // True when this object hashes with SHA-NI.
  bool UsesShaNi() const { return ni_; }
  // True when this CPU can run the SHA-NI path.
  static bool CpuHasShaNi();

 private:
  struct Lane {
    uint32_t h[8];
    uint8_t buf[64];
    uint32_t buffered = 0;  // bytes in buf
    uint64_t total = 0;     // bytes hashed in all
  };
  void Reset(Lane& l);
  void LaneUpdate(Lane& l, const uint8_t* p, size_t n);

  bool ni_ = false;
  Lane lanes_[2];
  Sha256 evp_[2];  // the OpenSSL engine's lanes
};

}  // namespace lazyroot
