#include "index/fine_points.h"

#include <zlib.h>

#include <algorithm>
#include <cstring>
#include <new>

#include "index/isal_midblock.h"

namespace lazyroot {
namespace {

// Points waiting for their probe at once. A pass places at most one per
// block boundary; with tiny spans (tests, fuzzers) more than this would pile
// up windows, so the oldest is settled without a probe (whole window, or no
// fine point): that depends on the points' positions only.
constexpr size_t kMaxWaiting = 8;
// What a point adds to the serialised table besides its stored window.
constexpr uint64_t kPointBytes = 28;

}  // namespace

void FineRanges::Add(uint64_t start, uint64_t end) {
  if (end <= start) return;
  ranges_.emplace_back(start, end);
}

bool FineRanges::Contains(uint64_t offset) {
  while (!ranges_.empty() && ranges_.front().second <= offset) ranges_.pop_front();
  return !ranges_.empty() && ranges_.front().first <= offset;
}

PointPlacer::PointPlacer(const std::string& name, FineRanges* ranges, CheckpointTable* table)
    : name_(name), ranges_(ranges), table_(table) {
  table_->fine_policy = ranges_ != nullptr ? ranges_->policy : 0;
  if (ranges_ != nullptr) {
    auto* s = new z_stream{};
    if (inflateInit2(s, -15) != Z_OK) {
      delete s;
      throw std::bad_alloc();
    }
    zstream_ = s;
    scratch_.resize(kMaxWindowBytes);
  }
}

PointPlacer::~PointPlacer() {
  if (zstream_ != nullptr) {
    auto* s = static_cast<z_stream*>(zstream_);
    inflateEnd(s);
    delete s;
  }
  FreeMidBlockState(mid_state_);
}

bool PointPlacer::mid_block_enabled() const {
  return ranges_ != nullptr && ranges_->policy >= kFinePolicyV2 && MidBlockSupported();
}

void PointPlacer::Output(std::span<const uint8_t> bytes, uint64_t at) {
  for (Waiting& w : waiting_) {
    if (!w.p.mid_block || w.truth.size() >= kMaxWindowBytes) continue;
    const uint64_t want = w.p.out_offset + w.truth.size();
    if (want < at || want >= at + bytes.size()) continue;  // a gap never happens: output comes in order
    const size_t from = static_cast<size_t>(want - at);
    const size_t n = std::min<size_t>(bytes.size() - from, kMaxWindowBytes - w.truth.size());
    w.truth.insert(w.truth.end(), bytes.begin() + static_cast<ptrdiff_t>(from),
                   bytes.begin() + static_cast<ptrdiff_t>(from + n));
  }
}

bool PointPlacer::WantFine(uint64_t out) {
  if (ranges_->Contains(out)) {
    next_check_ = out + kFineSpacing;  // pushed on again by the point itself
    return true;
  }
  next_check_ = out + kFineIdleStep;
  return false;
}

void PointPlacer::Add(Checkpoint p, std::span<const uint8_t> window, uint8_t prev_byte, bool prev_known,
                      std::span<const uint8_t> header) {
  if (has_points() && last_out() == p.out_offset) {
    // An empty member (or empty blocks) between: the earlier point serves
    // this offset, unless it is a fine point that a probe may drop.
    if (p.fine || waiting_.empty() || !waiting_.back().p.fine) return;
    waiting_.pop_back();
  }
  if (ranges_ == nullptr) {
    p.window_size = static_cast<uint32_t>(window.size());
    p.window = CompressWindow(window);
    table_->points.push_back(std::move(p));
    return;
  }
  next_check_ = std::max(next_check_, p.out_offset + kFineSpacing);
  // A waiting point whose probe input (kMaxProbeInput) ends before this one
  // has all of it: probed now, so kept_ spans at most twice that.
  while (!waiting_.empty() && waiting_.front().p.in_offset + kMaxProbeInput <= p.in_offset) ResolveFront();
  if (waiting_.size() >= kMaxWaiting) {
    // Settled now, without a probe (see kMaxWaiting).
    Waiting& w = waiting_.front();
    if (!w.p.fine) {
      w.p.window_size = static_cast<uint32_t>(w.window.size());
      w.p.window = CompressWindow(w.window);
      table_->points.push_back(std::move(w.p));
    }
    waiting_.pop_front();
  }
  if (waiting_.empty()) {
    kept_.clear();
    kept_at_ = p.in_offset;
  }
  Waiting w;
  w.p = std::move(p);
  w.window.assign(window.begin(), window.end());
  w.prev_byte = prev_byte;
  w.prev_known = prev_known;
  w.header.assign(header.begin(), header.end());
  waiting_.push_back(std::move(w));
}

void PointPlacer::Input(std::span<const uint8_t> bytes, uint64_t at) {
  if (waiting_.empty()) return;
  const uint64_t end = kept_at_ + kept_.size();
  const uint64_t limit = waiting_.back().p.in_offset + kMaxProbeInput;
  if (at > end) {
    // Bytes were missed: keep from here; points before have no probe.
    kept_.clear();
    kept_at_ = at;
  } else if (at + bytes.size() <= end) {
    return;
  } else {
    bytes = bytes.subspan(static_cast<size_t>(end - at));
    at = end;
  }
  if (at >= limit) return;
  const size_t take = static_cast<size_t>(std::min<uint64_t>(bytes.size(), limit - at));
  kept_.insert(kept_.end(), bytes.begin(), bytes.begin() + static_cast<ptrdiff_t>(take));
}

bool PointPlacer::Decodes(const Waiting& w, size_t history) {
  if (w.p.in_offset < kept_at_ || w.p.in_offset > kept_at_ + kept_.size()) return false;
  if (w.p.bits != 0 && !w.prev_known) return false;
  auto* s = static_cast<z_stream*>(zstream_);
  if (inflateReset2(s, -15) != Z_OK) return false;
  if (w.p.bits != 0 && inflatePrime(s, w.p.bits, w.prev_byte >> (8 - w.p.bits)) != Z_OK) return false;
  if (history != 0 &&
      inflateSetDictionary(s, w.window.data() + w.window.size() - history, static_cast<uInt>(history)) != Z_OK) {
    return false;
  }
  const size_t from = static_cast<size_t>(w.p.in_offset - kept_at_);
  const size_t avail = std::min<size_t>(kept_.size() - from, kMaxProbeInput);
  s->next_in = kept_.data() + from;
  s->avail_in = static_cast<uInt>(avail);
  s->next_out = scratch_.data();
  s->avail_out = static_cast<uInt>(scratch_.size());
  for (;;) {
    const uInt in_before = s->avail_in, out_before = s->avail_out;
    const int ret = inflate(s, Z_NO_FLUSH);
    if (ret == Z_STREAM_END || s->avail_out == 0) return true;
    if (ret != Z_OK && ret != Z_BUF_ERROR) return false;  // e.g. a match reaching past the history
    if (s->avail_in == in_before && s->avail_out == out_before) return false;  // input kept runs out
  }
}

int64_t PointPlacer::TrimmedWindow(const Waiting& w) {
  for (uint32_t h : kTrimSteps) {
    if (h >= w.window.size()) return -1;  // no smaller than the whole window
    if (Decodes(w, h)) return h;
  }
  return -1;
}

int64_t PointPlacer::MidBlockWindow(const Waiting& w) {
  if (w.p.in_offset < kept_at_ || w.p.in_offset > kept_at_ + kept_.size()) return -1;
  if ((w.p.bits != 0 && !w.prev_known) || w.truth.empty()) return -1;
  if (mid_state_ == nullptr) mid_state_ = NewMidBlockState();
  const size_t from = static_cast<size_t>(w.p.in_offset - kept_at_);
  const std::span<const uint8_t> input(kept_.data() + from, std::min<size_t>(kept_.size() - from, kMaxProbeInput));
  auto resumes = [&](size_t history) {
    return MidBlockResumes(mid_state_, w.header, static_cast<unsigned>(w.p.header_bit % 8),
                           std::span<const uint8_t>(w.window).last(history), input, w.p.bits, w.prev_byte, w.truth,
                           &mid_out_);
  };
  // Only with a cut window, as a block-boundary fine point: one that needs
  // its whole window costs what a 2 MiB span's does (binaries: ~6-8 KB
  // stored; `usr`'s index went from 1.87 to 2.89 % with them). A cut that
  // resumes to exactly the pass's 32 KiB is the point's check as well.
  for (uint32_t h : kTrimSteps) {
    if (h >= w.window.size()) break;
    if (resumes(h)) return h;
  }
  return -1;
}

void PointPlacer::Resolve(uint64_t out, bool all) {
  while (!waiting_.empty() && (all || out >= waiting_.front().p.out_offset + kMaxWindowBytes)) ResolveFront();
}

void PointPlacer::ResolveFront() {
  Waiting& w = waiting_.front();
  Checkpoint& p = w.p;
  bool keep = true;
  // A fine point the budget has no room for even without a window is
  // dropped below whatever its probe finds: not probed (up to three 32 KiB
  // decodes). A stream of tiny blocks inside a large file offers a candidate
  // every kFineSpacing, and most are over budget.
  if (p.mid_block) {
    ResolveMidBlock(w);
    PopFront();
    return;
  }
  if (p.fine && fine_bytes_ + kPointBytes > p.in_offset / kFineBudgetDivisor + kFineBudgetSlack) keep = false;
  if (keep && !w.window.empty()) {
    const int64_t h = TrimmedWindow(w);
    if (h < 0 && p.fine) {
      keep = false;  // a fine point with the whole window costs what a 2 MiB span's does
    } else {
      const size_t n = h < 0 ? w.window.size() : static_cast<size_t>(h);
      p.window_size = static_cast<uint32_t>(n);
      p.window = CompressWindow(std::span<const uint8_t>(w.window).last(n));
    }
  }
  if (keep && stored_blocks_enabled() && !w.window.empty()) p.stored_blocks = StoredBlocksAt(w);
  if (keep && p.fine) {
    // Thinning: fine points stay within their share of the compressed bytes before them.
    const uint64_t cost =
        kPointBytes + p.window.size() + (p.stored_blocks.empty() ? 0 : 2 + 2 * p.stored_blocks.size());
    keep = fine_bytes_ + cost <= p.in_offset / kFineBudgetDivisor + kFineBudgetSlack;
    if (keep) fine_bytes_ += cost;
  }
  if (keep) table_->points.push_back(std::move(p));
  PopFront();
}

std::vector<uint16_t> PointPlacer::StoredBlocksAt(const Waiting& w) const {
  // A point with a raw window is at a block boundary (a member start has
  // none): its block's 3 header bits start at the point's bit offset, the
  // first `bits` of them in the byte before in_offset.
  std::vector<uint16_t> blocks;
  const Checkpoint& p = w.p;
  if ((p.bits != 0 && !w.prev_known) || p.in_offset < kept_at_) return blocks;
  // Only headers every chunking has kept by now: the pass has decoded at
  // least 32 KiB after the point (or to the end of the stream), so it has
  // read the header of every block that starts less than 32 KiB of output
  // after it. The kept input's end is checked too, for safety.
  const uint64_t end = kept_at_ + kept_.size();
  auto byte_at = [&](uint64_t off) { return kept_[static_cast<size_t>(off - kept_at_)]; };
  auto len_at = [&](uint64_t data, uint16_t* len) {  // LEN and NLEN are the 4 bytes before data
    const uint16_t l = static_cast<uint16_t>(byte_at(data - 4) | byte_at(data - 3) << 8);
    const uint16_t nl = static_cast<uint16_t>(byte_at(data - 2) | byte_at(data - 1) << 8);
    *len = l;
    return static_cast<uint16_t>(~nl) == l;  // 0: an empty block, a flush marker (kept: the run goes on)
  };
  uint64_t data = p.stored_data_offset();
  if (data > end) return blocks;
  uint32_t header = p.bits != 0 ? static_cast<uint32_t>(w.prev_byte >> (8 - p.bits)) : 0;
  if (p.bits < 3) header |= uint32_t{byte_at(p.in_offset)} << p.bits;
  uint16_t len = 0;
  if (((header >> 1) & 3) != 0 || !len_at(data, &len)) return blocks;  // BTYPE 00: stored
  uint64_t covered = 0;
  for (;;) {
    blocks.push_back(len);
    covered += len;
    // The member's last block, the cap, a next block 32 KiB or more on (the
    // next point's: points are about that far apart), or beyond the input.
    const uint64_t next = data + len;
    if ((header & 1) != 0 || blocks.size() >= kMaxStoredBlocks || covered >= kMaxWindowBytes || next + 5 > end) break;
    header = byte_at(next);  // byte-aligned after stored data: 3 bits, 5 of padding
    if (((header >> 1) & 3) != 0 || !len_at(next + 5, &len)) break;
    data = next + 5;
  }
  // A run ends on data: a flush marker at its end (or a run of nothing but
  // markers) is no use to a reader.
  while (!blocks.empty() && blocks.back() == 0) blocks.pop_back();
  return blocks;
}

void PointPlacer::ResolveMidBlock(Waiting& w) {
  Checkpoint& p = w.p;
  const uint64_t budget =
      (ranges_->policy >= kFinePolicyV3 ? ranges_->blob_size : p.in_offset) / kMidBudgetDivisor + kFineBudgetSlack;
  const uint64_t fixed = kPointBytes + 8;  // + its header offset
  if (mid_bytes_ + fixed > budget) return;  // not probed: no room even without a window
  const int64_t h = MidBlockWindow(w);
  if (h < 0) return;
  const size_t n = static_cast<size_t>(h);
  p.window_size = static_cast<uint32_t>(n);
  p.window = CompressWindow(std::span<const uint8_t>(w.window).last(n));
  const uint64_t cost = fixed + p.window.size();
  if (mid_bytes_ + cost > budget) return;
  mid_bytes_ += cost;
  table_->points.push_back(std::move(p));
}

void PointPlacer::PopFront() {
  waiting_.pop_front();
  if (waiting_.empty()) {
    kept_.clear();
  } else if (waiting_.front().p.in_offset > kept_at_) {
    const uint64_t drop = std::min<uint64_t>(waiting_.front().p.in_offset - kept_at_, kept_.size());
    kept_.erase(kept_.begin(), kept_.begin() + static_cast<ptrdiff_t>(drop));
    kept_at_ += drop;
  }
}

}  // namespace lazyroot
