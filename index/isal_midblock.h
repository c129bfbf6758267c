// Access points inside Huffman-coded deflate blocks ("mid-block" points, fine
// point policy 2, fine_points.h). zlib cannot restart inside a block; ISA-L
// can: a fresh state decodes the block's header again (from its bit offset,
// the input cut right after the header so that it cannot run into the next
// block), its decode-ahead buffer gets the history back, and the input moves
// to the point's bit offset. Measured first by tests/bench/isal_midblock_probe.
// Readers built without ISA-L prime at the last point before a mid-block one.
// Pure functions; thread-safe.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "index/status.h"

namespace lazyroot {

// A dynamic block's header is at most 3 + 14 + 19*3 + 316*(7+7) bits (< 600
// bytes); readers read at most this many bytes from its first byte.
inline constexpr uint32_t kMaxDeflateHeaderBytes = 640;

struct DeflateHeader {
  bool bfinal = false;
  uint8_t type = 0;          // 1 fixed, 2 dynamic (stored blocks are refused)
  uint64_t symbols_bit = 0;  // bit offset (in `bytes`) of the block's first symbol
  uint8_t eob_bits = 0;      // length of the end-of-block code
};

// Walks the coded block header at bit `bit` of `bytes`. False if the bytes end
// first, the block is stored or the header is invalid (RFC 1951 3.2.7).
bool WalkDeflateHeader(std::span<const uint8_t> bytes, uint64_t bit, DeflateHeader* h);

// Whether a reader can re-decode this header without running into the next
// block: the input it gets ends at the byte holding the header's last bit,
// so it may decode the bits after it; crossing the block needs an
// end-of-block code and a 3-bit header in them.
inline bool HeaderCutSafe(const DeflateHeader& h, uint64_t header_bit) {
  const uint64_t end = h.symbols_bit + header_bit % 8;  // bit offset from the header's first byte
  return (end + 7) / 8 * 8 - end < uint64_t{h.eob_bits} + 3;
}

// True if built with ISA-L (mid-block points can be resumed).
bool MidBlockSupported();

// Positions `state` (an inflate_state*, ISA-L) inside the coded block whose
// header starts at bit header_bits of `header_bytes` (header_bits < 8; the
// bytes from the header's first byte on, at most kMaxDeflateHeaderBytes) with
// `window` (<= 32 KiB) as history, ready for input at the point's bit: the
// caller then sets next_in/avail_in/read_in/read_in_length. kCorruption naming
// `what` if the header does not decode to a coded block there.
Status ResumeMidBlock(void* state, std::span<const uint8_t> header_bytes, unsigned header_bits,
                      std::span<const uint8_t> window, const std::string& what);

// The pass's check of a mid-block point (fine_points.cc): an ISA-L state
// (NewMidBlockState; nullptr without ISA-L) resumed as a reader would, from
// `header` and `window`, fed `input` (from the point's in_offset; `bits` bits
// of prev_byte first), must produce exactly `truth`. out: scratch.
void* NewMidBlockState();
void FreeMidBlockState(void* state);
bool MidBlockResumes(void* state, std::span<const uint8_t> header, unsigned header_bits,
                     std::span<const uint8_t> window, std::span<const uint8_t> input, unsigned bits,
                     uint8_t prev_byte, std::span<const uint8_t> truth, std::vector<uint8_t>* out);

}  // namespace lazyroot
