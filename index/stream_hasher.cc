#include "index/stream_hasher.h"

#include <algorithm>
#include <utility>

namespace lazyroot {

StreamHasher::StreamHasher(uint64_t threshold)
    : chunks_(kMaxQueued), worker_(kMaxQueued, SerialWorker::StartRule{threshold, nullptr}) {}

void StreamHasher::AddFile(File f) { new_files_.push_back(std::move(f)); }

void StreamHasher::Update(std::span<const uint8_t> chunk) {
  if (!worker_.Offload(chunk.size())) {
    Hash(new_files_, chunk);
    return;
  }
  Chunk c = chunks_.Take();
  c.files.swap(new_files_);
  new_files_.clear();
  c.bytes.assign(chunk.begin(), chunk.end());
  worker_.Post([this, c = std::move(c)]() mutable {
    Hash(c.files, c.bytes);
    chunks_.Give(std::move(c));  // Hash left its files empty
  });
}

void StreamHasher::Hash(std::vector<File>& added, std::span<const uint8_t> bytes) {
  for (File& f : added) files_.push_back(std::move(f));
  added.clear();
  const uint64_t end = out_pos_ + bytes.size();
  auto piece = [&](uint64_t lo, uint64_t hi) {
    return bytes.subspan(static_cast<size_t>(lo - out_pos_), static_cast<size_t>(hi - lo));
  };
  uint64_t diff_next = out_pos_;  // the DiffID lane has taken the bytes before this
  while (!files_.empty()) {
    File& f = files_.front();
    if (!file_started_) {
      if (!f.prefix.empty()) hash_.Update(kFileLane, std::span<const uint8_t>(
                                                          reinterpret_cast<const uint8_t*>(f.prefix.data()), f.prefix.size()));
      file_next_ = f.start;
      file_started_ = true;
    }
    const uint64_t lo = std::max(file_next_, out_pos_), hi = std::min(f.end, end);
    if (lo < hi) {
      if (lo < diff_next) {  // never from the tar reader (its files do not overlap); kept correct anyway
        hash_.Update(kFileLane, piece(lo, hi));
      } else {
        if (diff_next < lo) hash_.Update(kDiffLane, piece(diff_next, lo));
        hash_.UpdateBoth(piece(lo, hi));
        diff_next = hi;
      }
      file_next_ = hi;
    }
    if (file_next_ < f.end) break;  // continues in the next chunk
    file_digests_.push_back(FileDigest{f.start, hash_.Finish(kFileLane)});
    files_.pop_front();
    file_started_ = false;
  }
  if (diff_next < end) hash_.Update(kDiffLane, piece(diff_next, end));
  out_pos_ = end;
}

StreamHasher::Digests StreamHasher::Finish() {
  worker_.Join();  // rethrows what the hashing threw there
  // Files announced after the last chunk (empty files at the end of the stream).
  Hash(new_files_, {});
  Digests d;
  d.diff_id = "sha256:" + ToHex(hash_.Finish(kDiffLane));
  d.all_files_complete = files_.empty();
  d.file_digests = std::move(file_digests_);
  return d;
}

}  // namespace lazyroot
