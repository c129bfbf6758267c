// Helpers shared by the libFuzzer targets of tests/fuzz: a crash-on-failure
// check (libFuzzer reports a trap as a crash and saves the input), checksum
// fix-ups so that mutated store files get past their CRC and reach the
// parsers, and a deterministic way to derive parameters (chunk sizes, spans,
// read offsets) from the input itself. Header-only; not part of any library.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <span>
#include <string_view>

#include <sanitizer/allocator_interface.h>

#include "index/status.h"

// Every UBSan report stops the run (libFuzzer then keeps the input), except
// the RapidJSON 1.1 ones listed in ubsan.supp, which are not ours to fix.
#ifdef LAZYROOT_UBSAN_SUPP
extern "C" const char* __ubsan_default_options() {
  return "halt_on_error=1:print_stacktrace=1:suppressions=" LAZYROOT_UBSAN_SUPP;
}
#endif

namespace lazyroot::fuzz {

// An invariant of the code under test was broken: report what and crash so
// that libFuzzer keeps the input.
#define FUZZ_CHECK(cond)                                                                \
  do {                                                                                  \
    if (!(cond)) {                                                                      \
      std::fprintf(stderr, "FUZZ_CHECK failed: %s at %s:%d\n", #cond, __FILE__, __LINE__); \
      __builtin_trap();                                                                 \
    }                                                                                   \
  } while (0)

// A status from hostile input may be any error, but it must carry a message.
inline void CheckError(const Status& s) { FUZZ_CHECK(s.ok() || !s.message().empty()); }

// A small PRNG seeded from the input (splitmix64), so every derived
// parameter is a pure function of the bytes and a crash replays exactly.
class Rng {
 public:
  explicit Rng(std::span<const uint8_t> data) {
    uint64_t h = 0xcbf29ce484222325ull;  // FNV-1a
    for (uint8_t b : data) h = (h ^ b) * 0x100000001b3ull;
    state_ = h;
  }
  uint64_t Next() {
    uint64_t z = (state_ += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
  }
  // Uniform-ish in [lo, hi].
  uint64_t Range(uint64_t lo, uint64_t hi) { return lo + Next() % (hi - lo + 1); }

 private:
  uint64_t state_;
};

// Chunk sizes for feeding a stream parser: mostly small and odd, sometimes
// one byte, sometimes large, so that every header boundary is crossed.
inline size_t NextChunk(Rng& rng) {
  switch (rng.Next() % 4) {
    case 0: return 1;
    case 1: return static_cast<size_t>(rng.Range(1, 600));
    case 2: return static_cast<size_t>(rng.Range(1, 8192));
    default: return static_cast<size_t>(rng.Range(1, 1 << 16));
  }
}

inline uint32_t GetLe32(const uint8_t* p) {
  return uint32_t{p[0]} | uint32_t{p[1]} << 8 | uint32_t{p[2]} << 16 | uint32_t{p[3]} << 24;
}
inline uint64_t GetLe64(const uint8_t* p) { return uint64_t{GetLe32(p)} | uint64_t{GetLe32(p + 4)} << 32; }
inline void PutLe32(uint8_t* p, uint32_t v) {
  for (int i = 0; i < 4; ++i) p[i] = static_cast<uint8_t>(v >> (8 * i));
}
inline void PutLe64(uint8_t* p, uint64_t v) {
  for (int i = 0; i < 8; ++i) p[i] = static_cast<uint8_t>(v >> (8 * i));
}

// CRC-32C (Castagnoli), one table: the image tree file's checksum.
inline uint32_t Crc32c(uint32_t crc, const uint8_t* p, size_t n) {
  static const auto table = [] {
    std::array<uint32_t, 256> t{};
    for (uint32_t i = 0; i < 256; ++i) {
      uint32_t c = i;
      for (int k = 0; k < 8; ++k) c = (c >> 1) ^ (0x82F63B78u & (0u - (c & 1)));
      t[i] = c;
    }
    return t;
  }();
  crc = ~crc;
  while (n-- > 0) crc = (crc >> 8) ^ table[(crc ^ *p++) & 0xff];
  return ~crc;
}

// The largest single allocation made while a scope is open (ASan's malloc
// hooks; the harnesses are single-threaded). A reader of a store file must
// never allocate more than the file can hold; counts and lengths read from
// it are untrusted (issue 13). Usage:
//   AllocationWatch watch; Parse(...); FUZZ_CHECK(watch.largest() <= bound);
class AllocationWatch {
 public:
  AllocationWatch() {
    static const bool installed = __sanitizer_install_malloc_and_free_hooks(&OnMalloc, &OnFree) != 0;
    (void)installed;
    Largest() = 0;
    Active() = true;
  }
  ~AllocationWatch() { Active() = false; }
  AllocationWatch(const AllocationWatch&) = delete;
  AllocationWatch& operator=(const AllocationWatch&) = delete;
  size_t largest() const { return Largest(); }

 private:
  static size_t& Largest() {
    static size_t v = 0;
    return v;
  }
  static bool& Active() {
    static bool v = false;
    return v;
  }
  static void OnMalloc(const volatile void*, size_t size) {
    if (Active() && size > Largest()) Largest() = size;
  }
  static void OnFree(const volatile void*) {}
};

// Splits `data` at every occurrence of `sep` (used to carry several layers or
// several documents in one input).
template <typename Fn>
void ForEachPart(std::string_view data, std::string_view sep, size_t max_parts, Fn fn) {
  size_t parts = 0;
  while (parts + 1 < max_parts) {
    size_t at = data.find(sep);
    if (at == std::string_view::npos) break;
    fn(data.substr(0, at));
    data.remove_prefix(at + sep.size());
    ++parts;
  }
  fn(data);
}

}  // namespace lazyroot::fuzz
