// isal_midblock_probe FILE.gz [STEP_KIB] [SAMPLES]: can ISA-L resume inside
// a deflate block, and what would that save a random read? The probe that
// led to fine point policy 2 (index/isal_midblock.h, #18 item 2), kept to
// measure the mechanism on any gzip file: access points at block boundaries
// only can be ~0.7 MiB of output apart in compressible files (the `large`
// bench image's text).
//
// 1. zlib (Z_BLOCK) lists every block's header bit offset: the oracle.
// 2. ISA-L inflates with output room ending every STEP_KIB (default 128);
//    at each stop inside a Huffman-coded block it notes the input bit
//    position and the output offset that bit position stands for (what was
//    returned + what ISA-L decoded ahead into its own buffer).
// 3. SAMPLES of those points are resumed the way a reader would: a fresh
//    state with the 32 KiB before the point as dictionary, the block's
//    header decoded again (its end found by our own header walk; the input
//    stops a few bytes past it), then the bit position moved to the point,
//    the history restored (the header call's stray symbols shift it) and
//    64 KiB decoded and compared with zlib's output.
// Prints the exact-resume count and the cost per resume. Measured
// 2026-12-07 on this machine: 300/300 exact on gzip -6 text, 500/500 on a
// /usr/lib tar (gzip -6; zlib Z_FIXED; level 9 with sync and full flushes);
// 4-12 us per header re-decode; 64 KiB of the bench's text decode in
// 15-26 us, of /usr/lib in ~150 us.
#include <isa-l/igzip_lib.h>
#include <zlib.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iterator>
#include <memory>
#include <vector>

namespace {

constexpr uint32_t kWindow = 32768;

// Reads deflate's LSB-first bits; false once past the input.
struct BitReader {
  const uint8_t* data;
  uint64_t pos, limit;
  bool ok = true;
  uint32_t Get(int n) {
    uint32_t v = 0;
    for (int i = 0; i < n; ++i, ++pos) {
      if (pos >= limit) {
        ok = false;
        return 0;
      }
      v |= ((data[pos >> 3] >> (pos & 7)) & 1u) << i;
    }
    return v;
  }
};

// The bit offset where the symbols of the block whose header starts at
// `header` begin; 0 for a stored block or a malformed header.
uint64_t SymbolsStart(const uint8_t* d, uint64_t nbits, uint64_t header) {
  BitReader b{d, header, nbits};
  b.Get(1);
  const uint32_t type = b.Get(2);
  if (type == 1) return b.ok ? b.pos : 0;
  if (type != 2) return 0;
  const uint32_t hlit = b.Get(5) + 257, hdist = b.Get(5) + 1, hclen = b.Get(4) + 4;
  static const int kOrder[19] = {16, 17, 18, 0, 8, 7, 9, 6, 10, 5, 11, 4, 12, 3, 13, 2, 14, 1, 15};
  int len[19] = {0};
  for (uint32_t i = 0; i < hclen; ++i) len[kOrder[i]] = static_cast<int>(b.Get(3));
  int count[8] = {0}, next[8] = {0}, code[19] = {0};
  for (int l : len) ++count[l];
  count[0] = 0;
  for (int l = 1, c = 0; l < 8; ++l) next[l] = c = (c + count[l - 1]) << 1;
  for (int i = 0; i < 19; ++i)
    if (len[i]) code[i] = next[len[i]]++;
  for (uint32_t n = 0; n < hlit + hdist && b.ok;) {
    int c = 0, sym = -1;
    for (int l = 1; l <= 7 && sym < 0 && b.ok; ++l) {
      c = (c << 1) | static_cast<int>(b.Get(1));
      for (int i = 0; i < 19; ++i)
        if (len[i] == l && code[i] == c) sym = i;
    }
    if (sym < 0) return 0;
    n += sym < 16 ? 1 : sym == 16 ? 3 + b.Get(2) : sym == 17 ? 3 + b.Get(3) : 11 + b.Get(7);
  }
  return b.ok ? b.pos : 0;
}

// Points the state's input at bit `bit` of `base`, `size` bytes in all.
void SeekBits(inflate_state* s, const uint8_t* base, uint64_t bit, uint64_t size) {
  s->next_in = const_cast<uint8_t*>(base) + bit / 8;
  s->avail_in = static_cast<uint32_t>(size - bit / 8);
  s->read_in = 0;
  s->read_in_length = 0;
  if (bit % 8) {
    s->read_in = s->next_in[0] >> (bit % 8);
    s->read_in_length = static_cast<int32_t>(8 - bit % 8);
    ++s->next_in;
    --s->avail_in;
  }
}

double Micros(std::chrono::steady_clock::time_point a, std::chrono::steady_clock::time_point b) {
  return std::chrono::duration<double, std::micro>(b - a).count();
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: %s FILE.gz [STEP_KIB] [SAMPLES]  (gzip -n: no name in the header)\n", argv[0]);
    return 2;
  }
  std::ifstream f(argv[1], std::ios::binary);
  const std::vector<uint8_t> gz((std::istreambuf_iterator<char>(f)), {});
  const uint64_t step = (argc > 2 ? std::strtoull(argv[2], nullptr, 10) : 128) << 10;
  const int samples = argc > 3 ? std::atoi(argv[3]) : 200;
  if (gz.size() < 18 || gz[0] != 0x1f || gz[1] != 0x8b || gz[3] != 0 || step == 0 || step > (1u << 30)) {
    std::fprintf(stderr, "%s: want a gzip file without optional header fields (gzip -n) and 0 < STEP_KIB <= 1 GiB\n",
                 argv[1]);
    return 2;
  }
  const uint8_t* d = gz.data() + 10;
  const uint64_t dn = gz.size() - 18;

  // 1. zlib: the blocks' header bit offsets, and the whole output.
  std::vector<uint64_t> headers{0};
  std::vector<uint8_t> out;
  {
    z_stream z{};
    inflateInit2(&z, -15);
    z.next_in = const_cast<uint8_t*>(d);
    z.avail_in = static_cast<uInt>(dn);
    std::vector<uint8_t> buf(1 << 20);
    for (;;) {
      z.next_out = buf.data();
      z.avail_out = static_cast<uInt>(buf.size());
      const int r = inflate(&z, Z_BLOCK);
      out.insert(out.end(), buf.data(), z.next_out);
      if (r == Z_STREAM_END) break;
      if (r != Z_OK && r != Z_BUF_ERROR) {
        std::fprintf(stderr, "zlib: %d\n", r);
        return 1;
      }
      if ((z.data_type & 128) && !(z.data_type & 64)) {
        const uint64_t bit = static_cast<uint64_t>(z.next_in - d) * 8 - (z.data_type & 7);
        if (bit != headers.back()) headers.push_back(bit);
      }
    }
    inflateEnd(&z);
  }
  std::printf("%zu bytes of output in %zu blocks (%.0f KiB per block)\n", out.size(), headers.size(),
              static_cast<double>(out.size()) / 1024.0 / static_cast<double>(headers.size()));

  // 2. ISA-L: stops inside coded blocks.
  struct Point {
    uint64_t bit, out;
  };
  std::vector<Point> points;
  {
    auto s = std::make_unique<inflate_state>();
    isal_inflate_init(s.get());
    s->crc_flag = ISAL_DEFLATE;
    s->next_in = const_cast<uint8_t*>(d);
    s->avail_in = static_cast<uint32_t>(dn);
    std::vector<uint8_t> o(out.size() + 64);
    uint64_t got = 0;
    while (got < out.size()) {
      s->next_out = o.data() + got;
      s->avail_out = static_cast<uint32_t>(std::min<uint64_t>(step - got % step, out.size() - got));
      const int r = isal_inflate(s.get());
      if (r != ISAL_DECOMP_OK) {
        std::fprintf(stderr, "isal_inflate: %d\n", r);
        return 1;
      }
      got = static_cast<uint64_t>(s->next_out - o.data());
      if (s->block_state == ISAL_BLOCK_CODED) {
        const uint64_t bit = static_cast<uint64_t>(s->next_in - d) * 8 - static_cast<uint64_t>(s->read_in_length);
        const uint64_t at = got + static_cast<uint64_t>(s->tmp_out_valid - s->tmp_out_processed);
        if (at >= kWindow) points.push_back({bit, at});
      }
      if (s->block_state == ISAL_BLOCK_FINISH) break;
    }
    if (got != out.size() || std::memcmp(o.data(), out.data(), out.size()) != 0) {
      std::fprintf(stderr, "ISA-L's output differs from zlib's\n");
      return 1;
    }
  }
  std::printf("%zu stops inside coded blocks (every %llu KiB of output)\n", points.size(),
              static_cast<unsigned long long>(step >> 10));

  // 3. Resume at samples.
  int exact = 0, wrong = 0, tried = 0;
  double header_us = 0, decode_us = 0;
  constexpr size_t kDecode = 65536;
  std::vector<uint8_t> res(kDecode + 64), scratch(1 << 16);
  for (int k = 0; k < samples && !points.empty(); ++k) {
    const Point& p = points[static_cast<uint64_t>(k) * points.size() / static_cast<uint64_t>(samples)];
    const uint64_t header = *(std::upper_bound(headers.begin(), headers.end(), p.bit) - 1);
    const uint64_t symbols = SymbolsStart(d, dn * 8, header);
    if (symbols == 0 || p.bit < symbols + 128) continue;  // stored, or too close to the header to matter
    ++tried;
    const bool bfinal = (d[header / 8] >> (header % 8)) & 1;
    const uint8_t* history = out.data() + p.out - kWindow;
    const auto t0 = std::chrono::steady_clock::now();
    auto s = std::make_unique<inflate_state>();
    isal_inflate_init(s.get());
    s->crc_flag = ISAL_DEFLATE;
    isal_inflate_set_dict(s.get(), const_cast<uint8_t*>(history), kWindow);
    SeekBits(s.get(), d, header, std::min<uint64_t>((symbols + 7) / 8 + 8, dn));
    s->next_out = scratch.data();
    s->avail_out = static_cast<uint32_t>(scratch.size());
    if (isal_inflate(s.get()) != ISAL_DECOMP_OK || s->block_state != ISAL_BLOCK_CODED) {
      ++wrong;
      continue;
    }
    std::memcpy(s->tmp_out_buffer, history, kWindow);
    s->tmp_out_valid = s->tmp_out_processed = kWindow;
    s->total_out = 0;
    s->bfinal = bfinal;
    SeekBits(s.get(), d, p.bit, dn);
    const auto t1 = std::chrono::steady_clock::now();
    const size_t want = static_cast<size_t>(std::min<uint64_t>(kDecode, out.size() - p.out));
    s->next_out = res.data();
    s->avail_out = static_cast<uint32_t>(want);
    const int r = isal_inflate(s.get());
    const auto t2 = std::chrono::steady_clock::now();
    const size_t n = static_cast<size_t>(s->next_out - res.data());
    if (r == ISAL_DECOMP_OK && n == want && std::memcmp(res.data(), out.data() + p.out, want) == 0) {
      ++exact;
    } else if (++wrong <= 3) {
      std::fprintf(stderr, "resume at output %llu (bit %llu): wrong bytes\n", static_cast<unsigned long long>(p.out),
                   static_cast<unsigned long long>(p.bit));
    }
    header_us += Micros(t0, t1);
    decode_us += Micros(t1, t2);
  }
  std::printf("resumed %d exactly, %d wrong, of %d tried; per resume: dictionary + header %.1f us, %zu KiB %.1f us\n",
              exact, wrong, tried, header_us / std::max(1, tried), kDecode >> 10, decode_us / std::max(1, tried));
  return wrong == 0 ? 0 : 1;
}
