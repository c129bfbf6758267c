#include "index/checkpoint_window.h"

#include <algorithm>
#include <vector>

#include "index/gzip_index.h"

namespace lazyroot {

Result<bool> CheckpointNeedsWindow(const CheckpointTable& table, size_t i, const ByteSource& blob,
                                   const std::string& name) {
  const Checkpoint& p = table.points.at(i);
  if (p.window_size == 0) return false;
  const uint64_t n = std::min<uint64_t>(kMaxWindowBytes, table.uncompressed_size - p.out_offset);
  // zlib with no history fails on the first match that reaches back past the
  // point ("invalid distance too far back"), so a decode that succeeds
  // produced the same bytes the window would have: one decode decides. (Text
  // fails within its first block; stored data is a copy.)
  std::vector<uint8_t> out(static_cast<size_t>(n));
  auto d = NewGzipPointDecoder(&table, &blob, name, InflateEngine::kZlib);
  LAZYROOT_RETURN_IF_ERROR(d->Prime(WithoutWindow(p)));
  return !d->Decode(out).ok();
}

Checkpoint WithoutWindow(const Checkpoint& p) {
  Checkpoint q = p;
  q.window_size = 0;
  q.window.clear();
  return q;
}

}  // namespace lazyroot
