// The pull's gzip pass on ISA-L's isal_inflate (~2.3x zlib's speed), with
// checkpoints at deflate block boundaries like the zlib StreamDecoder's. Used
// through NewGzipStreamDecoder (gzip_index.h); internal to index/.
//
// ISA-L has no Z_BLOCK. The "bfinal poke": once a checkpoint is due and an
// isal_inflate call returns inside a block (block_state CODED or TYPE0, bfinal
// 0), set bfinal = 1 and crc_flag = ISAL_GZIP_NO_HDR; ISA-L reads bfinal at the
// block's end-of-block code, so the next calls stop exactly there with
// block_state FINISH, all output returned. The bit position of the next block
// header is (absolute next_in) * 8 - read_in_length. To go on: bfinal = 0,
// block_state = NEW_HDR, crc_flag = ISAL_GZIP (the CRC-32 kept running), and
// isal_inflate_set_dict with the member's last <= 32 KiB (ISA-L skips saving
// its history at an input end: without it the next match is an invalid
// lookback). With crc_flag left at ISAL_GZIP the fake end would read the next
// block as a trailer.
//
// This relies on an undocumented behaviour of a public field (measured on
// libisal 2.30; ISA-L 2.32.1 zeroes read_in at every FINISH, which loses the
// sub-byte bit count). So: tests/unit/index_gzip_isal_test.cc pins every
// checkpoint against zlib's block boundaries on multi-member, stored, fixed,
// Huffman-only, sync/full-flush, level 0/1/9 and pigz streams, and at run time
// IsalCheckpointsWork() checks the mechanism once on a small stream (resumed
// with zlib's inflatePrime) before the pull uses it; if it fails the pull
// falls back to zlib.
//
// ISA-L decodes up to ~64 KiB ahead into its own buffer, so a checkpoint may
// land a block or more (past that decode-ahead) later than zlib's; spans grow
// by as much. Where exactly would depend on where each isal_inflate call
// returns, so calls are placed by absolute stream offsets only (fixed input
// slices, fixed output room): the table is a function of the blob, however
// it was fed, and the table records that ISA-L made it (made_by), so fsck
// rebuilds an index with the pass that made it and compares byte for byte.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "index/fine_points.h"
#include "index/layer_decoder.h"

namespace lazyroot {

// nullptr when built without ISA-L. fine: as NewGzipStreamDecoder's.
std::unique_ptr<StreamDecoder> NewIsalGzipStreamDecoder(std::string name, uint64_t span_bytes,
                                                        FineRanges* fine = nullptr);

// True if built with ISA-L and the bfinal poke stops at block boundaries that
// resume byte-for-byte with zlib on this machine's libisal (checked once).
bool IsalCheckpointsWork();

}  // namespace lazyroot
