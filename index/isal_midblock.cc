#include "index/isal_midblock.h"

#include <algorithm>
#include <bit>
#include <cstring>
#include <string>

#ifdef LAZYROOT_HAVE_ISAL
#include <isa-l/igzip_lib.h>
#endif

namespace lazyroot {
namespace {

// deflate's LSB-first bits; ok turns false once past the bytes. The pass
// walks a header at every block boundary inside a large file: bits are
// taken from a 64-bit load where 8 bytes remain, one by one near the end.
struct Bits {
  std::span<const uint8_t> b;
  uint64_t pos;
  bool ok = true;
  // Whether the 57 bits from pos can be read at once (Load).
  bool Fast() const { return pos / 8 + 8 <= b.size(); }
  // REQUIRES: Fast(). The bits from pos on, the first in bit 0.
  uint64_t Load() const {
    uint64_t v;
    std::memcpy(&v, b.data() + pos / 8, 8);
    if constexpr (std::endian::native == std::endian::big) v = __builtin_bswap64(v);
    return v >> (pos % 8);
  }
  uint32_t Get(int n) {
    if (Fast()) {
      const uint32_t v = static_cast<uint32_t>(Load() & ((uint64_t{1} << n) - 1));
      pos += static_cast<uint64_t>(n);
      return v;
    }
    uint32_t v = 0;
    for (int i = 0; i < n; ++i, ++pos) {
      if (pos / 8 >= b.size()) {
        ok = false;
        return 0;
      }
      v |= ((b[pos / 8] >> (pos % 8)) & 1u) << i;
    }
    return v;
  }
};

// Canonical Huffman decoding (RFC 1951 3.2.2), puff-style: counts per length
// and symbols in code order.
struct Huffman {
  uint16_t count[16] = {};
  uint16_t symbol[320] = {};
  // False for an over-subscribed code (incomplete codes are allowed here:
  // ISA-L or the pass refuse what deflate does not allow).
  bool Build(const uint8_t* len, int n) {
    for (int i = 0; i < n; ++i) ++count[len[i]];
    count[0] = 0;
    int left = 1;
    for (int l = 1; l < 16; ++l) {
      left = (left << 1) - count[l];
      if (left < 0) return false;
    }
    uint16_t offs[16] = {};
    for (int l = 1; l < 15; ++l) offs[l + 1] = static_cast<uint16_t>(offs[l] + count[l]);
    for (int i = 0; i < n; ++i)
      if (len[i] != 0) symbol[offs[len[i]]++] = static_cast<uint16_t>(i);
    return true;
  }
  int Decode(Bits* b) const {
    int code = 0, first = 0, index = 0;
    if (b->Fast()) {  // the same walk on bits loaded at once (a code is <= 15 bits)
      const uint64_t v = b->Load();
      for (int l = 1; l < 16; ++l) {
        code |= static_cast<int>((v >> (l - 1)) & 1u);
        const int c = count[l];
        if (code - c < first) {
          b->pos += static_cast<uint64_t>(l);
          return symbol[index + (code - first)];
        }
        index += c;
        first = (first + c) << 1;
        code <<= 1;
      }
      b->pos += 15;
      return -1;
    }
    for (int l = 1; l < 16; ++l) {
      code |= static_cast<int>(b->Get(1));
      if (!b->ok) return -1;
      const int c = count[l];
      if (code - c < first) return symbol[index + (code - first)];
      index += c;
      first = (first + c) << 1;
      code <<= 1;
    }
    return -1;
  }
};

}  // namespace

bool WalkDeflateHeader(std::span<const uint8_t> bytes, uint64_t bit, DeflateHeader* h) {
  Bits b{bytes, bit};
  h->bfinal = b.Get(1) != 0;
  h->type = static_cast<uint8_t>(b.Get(2));
  if (!b.ok) return false;
  if (h->type == 1) {
    h->symbols_bit = b.pos;
    h->eob_bits = 7;
    return true;
  }
  if (h->type != 2) return false;
  const uint32_t hlit = b.Get(5) + 257, hdist = b.Get(5) + 1, hclen = b.Get(4) + 4;
  if (!b.ok || hlit > 286 || hdist > 30) return false;
  static constexpr int kOrder[19] = {16, 17, 18, 0, 8, 7, 9, 6, 10, 5, 11, 4, 12, 3, 13, 2, 14, 1, 15};
  uint8_t cl[19] = {};
  for (uint32_t i = 0; i < hclen; ++i) cl[kOrder[i]] = static_cast<uint8_t>(b.Get(3));
  Huffman clh;
  if (!b.ok || !clh.Build(cl, 19)) return false;
  uint8_t len[316] = {};
  for (uint32_t n = 0; n < hlit + hdist;) {
    const int sym = clh.Decode(&b);
    if (sym < 0) return false;
    if (sym < 16) {
      len[n++] = static_cast<uint8_t>(sym);
      continue;
    }
    uint8_t v = 0;
    uint32_t rep = 0;
    if (sym == 16) {
      if (n == 0) return false;
      v = len[n - 1];
      rep = 3 + b.Get(2);
    } else {
      rep = sym == 17 ? 3 + b.Get(3) : 11 + b.Get(7);
    }
    if (!b.ok || n + rep > hlit + hdist) return false;
    while (rep-- > 0) len[n++] = v;
  }
  if (len[256] == 0) return false;  // no end-of-block code
  h->symbols_bit = b.pos;
  h->eob_bits = len[256];
  return true;
}

#ifdef LAZYROOT_HAVE_ISAL

bool MidBlockSupported() { return true; }

Status ResumeMidBlock(void* state, std::span<const uint8_t> header_bytes, unsigned header_bits,
                      std::span<const uint8_t> window, const std::string& what) {
  auto* s = static_cast<inflate_state*>(state);
  auto bad = [&what](const std::string& why) { return Status::Corruption(what + ": " + why); };
  if (header_bits > 7 || window.size() > ISAL_DEF_HIST_SIZE) return bad("bad mid-block resume arguments");
  header_bytes = header_bytes.first(std::min<size_t>(header_bytes.size(), kMaxDeflateHeaderBytes));
  DeflateHeader h;
  if (!WalkDeflateHeader(header_bytes, header_bits, &h)) return bad("no Huffman-coded block header there");
  if (!HeaderCutSafe(h, header_bits)) return bad("block header cannot be cut from its symbols");
  isal_inflate_reset(s);
  s->crc_flag = ISAL_DEFLATE;
  if (!window.empty() &&
      isal_inflate_set_dict(s, const_cast<uint8_t*>(window.data()), static_cast<uint32_t>(window.size())) != COMP_OK) {
    return bad("window rejected");
  }
  // Input: the header's bytes up to the one holding its last bit.
  const size_t end = static_cast<size_t>((h.symbols_bit + 7) / 8);
  s->next_in = const_cast<uint8_t*>(header_bytes.data());
  s->avail_in = static_cast<uint32_t>(end);
  s->read_in = 0;
  s->read_in_length = 0;
  if (header_bits != 0) {
    s->read_in = header_bytes[0] >> header_bits;
    s->read_in_length = static_cast<int32_t>(8 - header_bits);
    ++s->next_in;
    --s->avail_in;
  }
  // The few symbols the cut byte may still hold are decoded into ISA-L's own
  // buffer (history + look-ahead, never more than it holds).
  uint8_t sink[64];
  s->next_out = sink;
  s->avail_out = 0;
  const int ret = isal_inflate(s);
  if (ret != ISAL_DECOMP_OK || s->block_state != ISAL_BLOCK_CODED || s->tmp_in_size != 0) {
    return bad("block header does not decode to a coded block");
  }
  // Those symbols moved the history: put it back. From here the state is the
  // one the pass had at the point, given the right input position.
  // An empty window (a point whose next 32 KiB reach back to nothing) may
  // have no storage at all: memcpy must not be handed its null pointer.
  if (!window.empty()) std::memcpy(s->tmp_out_buffer, window.data(), window.size());
  s->tmp_out_valid = s->tmp_out_processed = static_cast<int32_t>(window.size());
  s->total_out = 0;
  s->copy_overflow_length = s->copy_overflow_distance = 0;
  s->write_overflow_lits = s->write_overflow_len = 0;
  s->bfinal = h.bfinal ? 1 : 0;
  s->next_in = nullptr;
  s->avail_in = 0;
  s->read_in = 0;
  s->read_in_length = 0;
  return Status::Ok();
}

void* NewMidBlockState() { return new inflate_state{}; }
void FreeMidBlockState(void* state) { delete static_cast<inflate_state*>(state); }

bool MidBlockResumes(void* state, std::span<const uint8_t> header, unsigned header_bits,
                     std::span<const uint8_t> window, std::span<const uint8_t> input, unsigned bits,
                     uint8_t prev_byte, std::span<const uint8_t> truth, std::vector<uint8_t>* out) {
  auto* s = static_cast<inflate_state*>(state);
  if (s == nullptr || bits > 7 || !ResumeMidBlock(s, header, header_bits, window, "probe").ok()) return false;
  s->next_in = const_cast<uint8_t*>(input.data());
  s->avail_in = static_cast<uint32_t>(input.size());
  if (bits != 0) {
    s->read_in = prev_byte >> (8 - bits);
    s->read_in_length = static_cast<int32_t>(bits);
  }
  out->resize(truth.size());
  s->next_out = out->data();
  s->avail_out = static_cast<uint32_t>(out->size());
  while (s->avail_out > 0) {
    const uint32_t in_before = s->avail_in, out_before = s->avail_out;
    if (isal_inflate(s) != ISAL_DECOMP_OK) return false;  // e.g. a match reaching past the history
    if (s->block_state == ISAL_BLOCK_FINISH) break;
    if (s->avail_in == in_before && s->avail_out == out_before) return false;
  }
  return s->avail_out == 0 && std::memcmp(out->data(), truth.data(), truth.size()) == 0;
}

#else

bool MidBlockSupported() { return false; }
void* NewMidBlockState() { return nullptr; }
void FreeMidBlockState(void*) {}
bool MidBlockResumes(void*, std::span<const uint8_t>, unsigned, std::span<const uint8_t>, std::span<const uint8_t>,
                     unsigned, uint8_t, std::span<const uint8_t>, std::vector<uint8_t>*) {
  return false;
}
Status ResumeMidBlock(void*, std::span<const uint8_t>, unsigned, std::span<const uint8_t>, const std::string& what) {
  return Status::Unsupported(what + ": built without ISA-L: cannot resume inside a deflate block");
}

#endif

}  // namespace lazyroot
