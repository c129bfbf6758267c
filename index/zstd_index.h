// zstd random access at frame granularity. Use it through layer_decoder.h.
//
// Streaming (the pull): ZSTD_DStream with ZSTD_d_windowLogMax = 29 (Go's
// klauspost/zstd accepts 512 MiB windows; libzstd's default of 2^27 would
// refuse `--long=31`-style layers: correctness.md row 68, also the memory cap).
// Skippable frames (zstd:chunked metadata) are skipped by libzstd. Every frame
// start needs no window, so a checkpoint is just (compressed offset,
// uncompressed offset), recorded at the first frame start once span_bytes of
// output have passed since the last one.
//
// Cost: a single-frame layer — the common case — has exactly one checkpoint
// (offset 0), so a random read decodes from the start of the blob up to the
// offset (~1 GB/s, i.e. ~1 ms per MB before the offset). Sequential reads
// stay warm and are cheap. A mount keeps re-encoded copies of the 2 MiB
// units it decodes on such a pass (index/unit_copy.h, fs/stream_cache.h),
// so that a later cold read there decodes one unit.
//
// After the last frame any byte that is not a valid frame is an error; a blob
// ending inside a frame is an error. Not thread-safe (both objects).
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "index/byte_source.h"
#include "index/checkpoint.h"
#include "index/layer_decoder.h"

namespace lazyroot {

// log2 of the largest zstd window accepted (512 MiB), both streaming and reading.
inline constexpr int kZstdWindowLogMax = 29;

std::unique_ptr<StreamDecoder> NewZstdStreamDecoder(std::string name, uint64_t span_bytes);

// table->compression must be kZstd; table and blob must outlive the decoder.
std::unique_ptr<PointDecoder> NewZstdPointDecoder(const CheckpointTable* table, const ByteSource* blob,
                                                  std::string name);

}  // namespace lazyroot
