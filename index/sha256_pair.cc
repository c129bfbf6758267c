#include "index/sha256_pair.h"

#include <algorithm>
#include <cstring>

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#include <immintrin.h>
#define LAZYROOT_SHA_NI 1
#endif

namespace lazyroot {
namespace {

constexpr uint32_t kInit[8] = {0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
                               0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19};

#ifdef LAZYROOT_SHA_NI
alignas(16) constexpr uint32_t kRound[64] = {
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
    0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
    0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
    0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2};

#define LAZYROOT_NI_TARGET __attribute__((target("sha,sse4.1,ssse3")))

// SHA-NI keeps the state as (A,B,E,F) and (C,D,G,H).
struct NiState {
  __m128i abef, cdgh;
};

LAZYROOT_NI_TARGET NiState LoadState(const uint32_t* h) {
  __m128i t = _mm_shuffle_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(h)), 0xB1);      // CDAB
  __m128i s = _mm_shuffle_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(h + 4)), 0x1B);  // EFGH
  return NiState{_mm_alignr_epi8(t, s, 8), _mm_blend_epi16(s, t, 0xF0)};
}

LAZYROOT_NI_TARGET void StoreState(const NiState& st, uint32_t* h) {
  __m128i t = _mm_shuffle_epi32(st.abef, 0x1B);  // FEBA
  __m128i s = _mm_shuffle_epi32(st.cdgh, 0xB1);  // DCHG
  _mm_storeu_si128(reinterpret_cast<__m128i*>(h), _mm_blend_epi16(t, s, 0xF0));    // DCBA
  _mm_storeu_si128(reinterpret_cast<__m128i*>(h + 4), _mm_alignr_epi8(s, t, 8));  // HGFE
}

// Compresses n 64-byte blocks at p into each of the kLanes states: the
// message schedule is computed once, and the lanes' rounds interleave, so one
// lane's sha256rnds2 runs while the other's waits on its result.
template <int kLanes>
LAZYROOT_NI_TARGET void NiBlocks(uint32_t* const* states, const uint8_t* p, size_t n) {
  const __m128i kByteSwap = _mm_set_epi64x(0x0c0d0e0f08090a0bULL, 0x0405060700010203ULL);
  NiState st[kLanes];
  for (int j = 0; j < kLanes; ++j) st[j] = LoadState(states[j]);
  for (; n > 0; --n, p += 64) {
    NiState saved[kLanes];
    for (int j = 0; j < kLanes; ++j) saved[j] = st[j];
    __m128i w[4];
#pragma GCC unroll 16
    for (int g = 0; g < 16; ++g) {  // four rounds per step
      __m128i m;
      if (g < 4) {
        m = _mm_shuffle_epi8(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p + 16 * g)), kByteSwap);
      } else {
        __m128i t = _mm_sha256msg1_epu32(w[g & 3], w[(g + 1) & 3]);
        t = _mm_add_epi32(t, _mm_alignr_epi8(w[(g + 3) & 3], w[(g + 2) & 3], 4));
        m = _mm_sha256msg2_epu32(t, w[(g + 3) & 3]);
      }
      w[g & 3] = m;
      const __m128i k = _mm_add_epi32(m, _mm_load_si128(reinterpret_cast<const __m128i*>(&kRound[4 * g])));
      const __m128i k_hi = _mm_shuffle_epi32(k, 0x0E);
      for (int j = 0; j < kLanes; ++j) st[j].cdgh = _mm_sha256rnds2_epu32(st[j].cdgh, st[j].abef, k);
      for (int j = 0; j < kLanes; ++j) st[j].abef = _mm_sha256rnds2_epu32(st[j].abef, st[j].cdgh, k_hi);
    }
    for (int j = 0; j < kLanes; ++j) {
      st[j].abef = _mm_add_epi32(st[j].abef, saved[j].abef);
      st[j].cdgh = _mm_add_epi32(st[j].cdgh, saved[j].cdgh);
    }
  }
  for (int j = 0; j < kLanes; ++j) StoreState(st[j], states[j]);
}

bool DetectShaNi() {
  unsigned a = 0, b = 0, c = 0, d = 0;
  if (__get_cpuid(1, &a, &b, &c, &d) == 0) return false;
  const bool ssse3 = (c & bit_SSSE3) != 0, sse41 = (c & bit_SSE4_1) != 0;
  if (__get_cpuid_count(7, 0, &a, &b, &c, &d) == 0) return false;
  return ssse3 && sse41 && (b & bit_SHA) != 0;
}
#endif

}  // namespace

bool Sha256Pair::CpuHasShaNi() {
#ifdef LAZYROOT_SHA_NI
  static const bool has = DetectShaNi();
  return has;
#else
  return false;
#endif
}

Sha256Pair::Sha256Pair(Engine engine) : ni_(engine == Engine::kAuto && CpuHasShaNi()) {
  Reset(lanes_[0]);
  Reset(lanes_[1]);
}

void Sha256Pair::Reset(Lane& l) {
  std::memcpy(l.h, kInit, sizeof(kInit));
  l.buffered = 0;
  l.total = 0;
}

void Sha256Pair::LaneUpdate(Lane& l, const uint8_t* p, size_t n) {
#ifdef LAZYROOT_SHA_NI
  uint32_t* state[1] = {l.h};
  l.total += n;
  if (l.buffered > 0) {
    const size_t take = std::min<size_t>(n, 64 - l.buffered);
    std::memcpy(l.buf + l.buffered, p, take);
    l.buffered += static_cast<uint32_t>(take);
    p += take;
    n -= take;
    if (l.buffered < 64) return;
    NiBlocks<1>(state, l.buf, 1);
    l.buffered = 0;
  }
  if (n >= 64) NiBlocks<1>(state, p, n / 64);
  p += n / 64 * 64;
  n %= 64;
  std::memcpy(l.buf, p, n);
  l.buffered = static_cast<uint32_t>(n);
#else
  (void)l, (void)p, (void)n;
#endif
}

void Sha256Pair::Update(int lane, std::span<const uint8_t> bytes) {
  if (!ni_) {
    evp_[lane].Update(bytes);
    return;
  }
  LaneUpdate(lanes_[lane], bytes.data(), bytes.size());
}

void Sha256Pair::UpdateBoth(std::span<const uint8_t> bytes) {
  Lane& a = lanes_[0];
  Lane& b = lanes_[1];
  if (!ni_ || a.buffered != b.buffered) {  // out of step: lane by lane
    Update(0, bytes);
    Update(1, bytes);
    return;
  }
#ifdef LAZYROOT_SHA_NI
  const uint8_t* p = bytes.data();
  size_t n = bytes.size();
  if (a.buffered > 0) {  // same phase: complete both partial blocks first
    const size_t take = std::min<size_t>(n, 64 - a.buffered);
    LaneUpdate(a, p, take);
    LaneUpdate(b, p, take);
    p += take;
    n -= take;
    if (a.buffered > 0) return;  // n was used up
  }
  if (n >= 64) {
    uint32_t* states[2] = {a.h, b.h};
    NiBlocks<2>(states, p, n / 64);
    a.total += n / 64 * 64;
    b.total += n / 64 * 64;
    p += n / 64 * 64;
    n %= 64;
  }
  LaneUpdate(a, p, n);
  LaneUpdate(b, p, n);
#endif
}

std::array<uint8_t, 32> Sha256Pair::Finish(int lane) {
  std::array<uint8_t, 32> out{};
  if (!ni_) {
    out = evp_[lane].Finish();
    evp_[lane].Reset();
    return out;
  }
  Lane& l = lanes_[lane];
  const uint64_t bits = l.total * 8;
  uint8_t pad[72] = {0x80};
  // Pads to 56 mod 64, then the bit length, big-endian.
  const size_t pad_len = (l.buffered < 56 ? 56 : 120) - l.buffered;
  for (int i = 0; i < 8; ++i) pad[pad_len + i] = static_cast<uint8_t>(bits >> (56 - 8 * i));
  LaneUpdate(l, pad, pad_len + 8);
  for (int i = 0; i < 8; ++i) {
    out[4 * i] = static_cast<uint8_t>(l.h[i] >> 24);
    out[4 * i + 1] = static_cast<uint8_t>(l.h[i] >> 16);
    out[4 * i + 2] = static_cast<uint8_t>(l.h[i] >> 8);
    out[4 * i + 3] = static_cast<uint8_t>(l.h[i]);
  }
  Reset(l);
  return out;
}

}  // namespace lazyroot
