// Windows a gzip checkpoint does not need. A checkpoint's window (the 32 KiB
// of output before it) is what most of a layer index weighs, but a deflate
// stream only needs it if a match in the next 32 KiB of output reaches back
// past the checkpoint. Incompressible data (stored blocks: compressed files,
// random bytes) and a stream after a full flush never do. Such a checkpoint
// can drop its window (window_size 0) and stays exact: once 32 KiB of output
// have been produced the decoder's state no longer depends on the window,
// and a match that did reach back would fail to decode ("invalid distance
// too far back") instead of yielding other bytes. This is what lets a table
// carry finer access points inside large incompressible files at almost no
// cost (a point is then ~32 bytes instead of a ~10-32 KiB window).
// Pure functions; thread-safe.
#pragma once

#include <cstddef>

#include "index/byte_source.h"
#include "index/checkpoint.h"
#include "index/status.h"

namespace lazyroot {

// True if table.points[i] needs its window: decoding the 32 KiB after it (or
// up to the end of the stream) without the window fails. False for a point
// that already has none. blob: the bytes the table was built from (a blob
// that fails to decode there says "needed", which keeps the window). Returns
// the blob's error when priming cannot read it. REQUIRES: i < points.size(),
// table.compression == kGzip.
Result<bool> CheckpointNeedsWindow(const CheckpointTable& table, size_t i, const ByteSource& blob,
                                   const std::string& name);

// p without its window (window_size 0).
Checkpoint WithoutWindow(const Checkpoint& p);

}  // namespace lazyroot
