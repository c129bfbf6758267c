#include "index/zstd_index.h"

#include <zstd.h>
#include <zstd_errors.h>

#include <algorithm>
#include <cstring>
#include <vector>

namespace lazyroot {
namespace {

constexpr size_t kOutBufferBytes = 256 << 10;
constexpr size_t kInBufferBytes = 128 << 10;

// A DCtx with our window limit, or nullptr (only on allocation failure).
ZSTD_DCtx* NewDCtx() {
  ZSTD_DCtx* d = ZSTD_createDCtx();
  if (d != nullptr && ZSTD_isError(ZSTD_DCtx_setParameter(d, ZSTD_d_windowLogMax, kZstdWindowLogMax))) {
    ZSTD_freeDCtx(d);
    return nullptr;
  }
  return d;
}

class ZstdStreamDecoder final : public StreamDecoder {
 public:
  ZstdStreamDecoder(std::string name, uint64_t span) : name_(std::move(name)), span_(span), dctx_(NewDCtx()) {
    out_.resize(kOutBufferBytes);
    table_.compression = Compression::kZstd;
  }
  ~ZstdStreamDecoder() override { ZSTD_freeDCtx(dctx_); }
  ZstdStreamDecoder(const ZstdStreamDecoder&) = delete;
  ZstdStreamDecoder& operator=(const ZstdStreamDecoder&) = delete;

  Status Feed(std::span<const uint8_t> in, const OutputFn& on_output) override {
    if (dctx_ == nullptr) return Status::IoError(name_ + ": zstd: cannot create a decompression context");
    if (dead_) return Status::Corruption(name_ + ": zstd decoder used after an error");
    if (finished_) return Status::InvalidArgument(name_ + ": zstd: Feed after Finish");
    Status st = FeedSliced(in, on_output);
    if (!st.ok()) dead_ = true;
    return st;
  }

  Status Finish(const OutputFn& on_output) override {
    if (dead_ || dctx_ == nullptr) return Status::Corruption(name_ + ": zstd decoder used after an error");
    if (!carry_.empty()) {
      Status st = FeedImpl(carry_, on_output);
      carry_.clear();
      if (!st.ok()) {
        dead_ = true;
        return st;
      }
    }
    if (frames_ == 0) return Status::Corruption(name_ + ": zstd: empty stream");
    if (!frame_done_) {
      dead_ = true;
      return Status::Corruption(name_ + ": zstd frame " + std::to_string(frames_) + " truncated at compressed offset " +
                                std::to_string(total_in_) + " (unexpected end of data)");
    }
    table_.compressed_size = total_in_;
    table_.uncompressed_size = total_out_;
    finished_ = true;
    return Status::Ok();
  }

  uint64_t total_in() const override { return total_in_; }
  uint64_t total_out() const override { return total_out_; }
  CheckpointTable TakeCheckpoints() override { return std::move(table_); }

 private:
  // libzstd decides some hostile frames differently when a whole frame is in
  // one call's input (its single-pass shortcut checks more than streaming
  // does), so every call gets input that ends at fixed offsets of the stream
  // (or at its end): the verdict, like the table, is then a function of the
  // blob however it arrived (fsck rebuilds indexes from the whole blob).
  static constexpr uint64_t kSliceBytes = 64 << 10;
  Status FeedSliced(std::span<const uint8_t> data, const OutputFn& on_output) {
    while (!data.empty()) {
      const size_t to_boundary = static_cast<size_t>(kSliceBytes - received_ % kSliceBytes);
      const size_t take = std::min(data.size(), to_boundary);
      if (carry_.empty() && take == to_boundary) {
        LAZYROOT_RETURN_IF_ERROR(FeedImpl(data.first(take), on_output));
      } else {
        carry_.insert(carry_.end(), data.begin(), data.begin() + static_cast<ptrdiff_t>(take));
        if (take == to_boundary) {
          Status st = FeedImpl(carry_, on_output);
          carry_.clear();
          LAZYROOT_RETURN_IF_ERROR(st);
        }
      }
      received_ += take;
      data = data.subspan(take);
    }
    return Status::Ok();
  }

  Status FeedImpl(std::span<const uint8_t> data, const OutputFn& on_output) {
    ZSTD_inBuffer in{data.data(), data.size(), 0};
    const uint64_t base = total_in_;
    for (;;) {
      if (frame_done_) {
        if (in.pos == in.size) break;
        // A new frame (or skippable frame) starts here: a checkpoint needs no window.
        bool due = table_.points.empty() || total_out_ - table_.points.back().out_offset >= span_;
        if (due) {
          Checkpoint p;
          p.in_offset = base + in.pos;
          p.out_offset = total_out_;
          table_.points.push_back(std::move(p));
        }
        frame_done_ = false;
        ++frames_;
        frame_start_ = base + in.pos;
        frame_out_start_ = total_out_;
        header_len_ = 0;
        declared_ = ZSTD_CONTENTSIZE_ERROR;
      }
      PeekDeclaredSize(in, base);
      ZSTD_outBuffer out{out_.data(), out_.size(), 0};
      size_t ret = ZSTD_decompressStream(dctx_, &out, &in);
      total_in_ = base + in.pos;
      if (ZSTD_isError(ret)) {
        return Status::Corruption(name_ + ": zstd frame " + std::to_string(frames_) + " at compressed offset " +
                                  std::to_string(total_in_) + ": " + ZSTD_getErrorName(ret));
      }
      if (out.pos > 0) {
        total_out_ += out.pos;
        LAZYROOT_RETURN_IF_ERROR(on_output(std::span<const uint8_t>(out_.data(), out.pos)));
      }
      if (ret == 0) {
        frame_done_ = true;  // libzstd stops at every frame end with the output flushed
        // libzstd checks a declared content size when it gets the frame in
        // one piece, but not always when streaming (an empty last raw block
        // passes): check it here, so the verdict never depends on the chunking.
        const uint64_t held = total_out_ - frame_out_start_;
        if (declared_ != ZSTD_CONTENTSIZE_ERROR && declared_ != ZSTD_CONTENTSIZE_UNKNOWN && declared_ != held) {
          return Status::Corruption(name_ + ": zstd frame " + std::to_string(frames_) + " at compressed offset " +
                                    std::to_string(frame_start_) + ": declares " + std::to_string(declared_) +
                                    " bytes of content but holds " + std::to_string(held));
        }
        continue;
      }
      if (in.pos == in.size && out.pos < out.size) break;  // needs more input
    }
    return Status::Ok();
  }

  // Collects the current frame's first bytes (they may arrive across Feeds)
  // until its header says the declared content size.
  void PeekDeclaredSize(const ZSTD_inBuffer& in, uint64_t base) {
    if (declared_ != ZSTD_CONTENTSIZE_ERROR || header_len_ == sizeof header_) return;
    const uint64_t from = frame_start_ + header_len_;
    if (from < base || from - base >= in.size) return;
    const size_t off = static_cast<size_t>(from - base);
    const size_t n = std::min(sizeof header_ - header_len_, in.size - off);
    std::memcpy(header_ + header_len_, static_cast<const uint8_t*>(in.src) + off, n);
    header_len_ += n;
    declared_ = ZSTD_getFrameContentSize(header_, header_len_);  // ERROR until the header is whole
  }

  std::string name_;
  uint64_t span_;
  ZSTD_DCtx* dctx_;
  bool dead_ = false;
  bool finished_ = false;
  uint64_t frame_start_ = 0;      // compressed offset of the current frame
  uint64_t frame_out_start_ = 0;  // its first uncompressed byte
  uint8_t header_[18] = {};       // ZSTD_FRAMEHEADERSIZE_MAX: its first bytes
  size_t header_len_ = 0;
  unsigned long long declared_ = ZSTD_CONTENTSIZE_ERROR;  // its content size, once known
  uint64_t received_ = 0;        // compressed bytes handed to Feed, carry_ included
  std::vector<uint8_t> carry_;   // the current slice's bytes so far, when they came in pieces
  bool frame_done_ = true;  // at a frame boundary (true before the first frame)
  uint64_t frames_ = 0;
  uint64_t total_in_ = 0;
  uint64_t total_out_ = 0;
  std::vector<uint8_t> out_;
  CheckpointTable table_;
};

class ZstdPointDecoder final : public PointDecoder {
 public:
  ZstdPointDecoder(const CheckpointTable* table, const ByteSource* blob, std::string name)
      : table_(table), blob_(blob), name_(std::move(name)), dctx_(NewDCtx()) {
    in_.resize(kInBufferBytes);
  }
  ~ZstdPointDecoder() override { ZSTD_freeDCtx(dctx_); }
  // The context's own accounting includes its window buffer, allocated at
  // the frame's window size (up to 2^kZstdWindowLogMax) when the frame does
  // not declare a smaller content size; only the part the decoder wrote to
  // is resident, so a window is counted up to the bytes decoded in a frame.
  uint64_t memory_bytes() const override {
    if (dctx_ == nullptr) return sizeof *this + in_.capacity();
    constexpr uint64_t kContextBytes = 160 << 10;  // the DCtx and its tables, block buffers
    const uint64_t allocated = ZSTD_sizeof_DCtx(dctx_);
    return sizeof *this + in_.capacity() + std::min<uint64_t>(allocated, kContextBytes + touched_);
  }
  // The context plus the largest window a frame may declare and its block
  // buffers (ZSTD_decodingBufferSize_min: window + 2 blocks + slack).
  uint64_t max_memory_bytes() const override {
    constexpr uint64_t kContextBytes = 160 << 10;
    return sizeof *this + in_.capacity() + kContextBytes + (uint64_t{1} << kZstdWindowLogMax) + (384 << 10);
  }
  uint64_t LimitWindow(uint64_t window_bytes) override {
    int log = kZstdWindowLogMax;
    if (window_bytes > 0) {
      log = 10;  // ZSTD_WINDOWLOG_ABSOLUTEMIN
      while (log < kZstdWindowLogMax && (uint64_t{1} << (log + 1)) <= window_bytes) ++log;
    }
    requested_log_ = log;
    // A primed decoder keeps the limit in force until its next Prime (a frame
    // under way keeps its window; the next frame may start without a Prime);
    // an unprimed one primes before it decodes.
    const int bound_log = primed_ ? std::max(requested_log_, applied_log_) : requested_log_;
    constexpr uint64_t kContextBytes = 160 << 10;
    const uint64_t allocated = dctx_ != nullptr ? ZSTD_sizeof_DCtx(dctx_) : 0;
    const uint64_t window = (uint64_t{1} << bound_log) + (384 << 10);
    return std::min(max_memory_bytes(), sizeof *this + in_.capacity() + kContextBytes + std::max(allocated, window));
  }
  ZstdPointDecoder(const ZstdPointDecoder&) = delete;
  ZstdPointDecoder& operator=(const ZstdPointDecoder&) = delete;

  Status Prime(const Checkpoint& p) override {
    if (dctx_ == nullptr) return Status::IoError(name_ + ": zstd: cannot create a decompression context");
    ZSTD_DCtx_reset(dctx_, ZSTD_reset_session_only);
    if (requested_log_ != applied_log_ &&
        !ZSTD_isError(ZSTD_DCtx_setParameter(dctx_, ZSTD_d_windowLogMax, requested_log_))) {
      applied_log_ = requested_log_;
    }
    file_pos_ = p.in_offset;
    inb_ = ZSTD_inBuffer{in_.data(), 0, 0};
    primed_ = true;
    since_prime_ = 0;
    return Status::Ok();
  }

  Status Decode(std::span<uint8_t> out) override {
    if (!primed_) return Status::InvalidArgument(name_ + ": zstd: decode before a successful prime");
    ZSTD_outBuffer o{out.data(), out.size(), 0};
    while (o.pos < o.size) {
      if (inb_.pos == inb_.size && file_pos_ < table_->compressed_size) LAZYROOT_RETURN_IF_ERROR(Refill());
      size_t out_before = o.pos;
      size_t in_before = inb_.pos;
      size_t ret = ZSTD_decompressStream(dctx_, &o, &inb_);
      if (ZSTD_isError(ret)) {
        primed_ = false;
        if (ZSTD_getErrorCode(ret) == ZSTD_error_frameParameter_windowTooLarge && applied_log_ < kZstdWindowLogMax) {
          return Status::LimitExceeded(name_ + ": zstd at compressed offset " + std::to_string(InOffset()) +
                                       ": frame window over this reader's limit of 2^" + std::to_string(applied_log_) +
                                       " bytes (LimitWindow)");
        }
        return Status::Corruption(name_ + ": zstd at compressed offset " + std::to_string(InOffset()) + ": " +
                                  ZSTD_getErrorName(ret));
      }
      if (o.pos == out_before && inb_.pos == in_before) {
        primed_ = false;
        return Status::Corruption(name_ + ": zstd at compressed offset " + std::to_string(InOffset()) +
                                  (inb_.pos == inb_.size ? ": blob ends (unexpected end of data)"
                                                         : ": decoder made no progress"));
      }
    }
    since_prime_ += out.size();
    touched_ = std::max(touched_, since_prime_);
    return Status::Ok();
  }

 private:
  uint64_t InOffset() const { return file_pos_ - (inb_.size - inb_.pos); }

  Status Refill() {
    const size_t want = AlignedReadSize(file_pos_, in_.size(), table_->compressed_size - file_pos_);
    size_t n = 0;
    LAZYROOT_RETURN_IF_ERROR(blob_->ReadAt(file_pos_, std::span<uint8_t>(in_.data(), want), &n));
    if (n == 0) {
      primed_ = false;
      return Status::Corruption(name_ + ": zstd: blob ends at compressed offset " + std::to_string(file_pos_) +
                                " (unexpected end of data)");
    }
    file_pos_ += n;
    inb_ = ZSTD_inBuffer{in_.data(), n, 0};
    return Status::Ok();
  }

  const CheckpointTable* table_;
  const ByteSource* blob_;
  std::string name_;
  ZSTD_DCtx* dctx_;
  bool primed_ = false;
  uint64_t file_pos_ = 0;  // compressed offset just past in_'s valid bytes
  uint64_t since_prime_ = 0;  // bytes decoded since the last Prime
  uint64_t touched_ = 0;      // the most since_prime_ has been: window bytes written
  int requested_log_ = kZstdWindowLogMax;  // LimitWindow's, applied at the next Prime
  int applied_log_ = kZstdWindowLogMax;    // ZSTD_d_windowLogMax in force
  std::vector<uint8_t> in_;
  ZSTD_inBuffer inb_{nullptr, 0, 0};
};

}  // namespace

std::unique_ptr<StreamDecoder> NewZstdStreamDecoder(std::string name, uint64_t span_bytes) {
  return std::make_unique<ZstdStreamDecoder>(std::move(name), span_bytes);
}

std::unique_ptr<PointDecoder> NewZstdPointDecoder(const CheckpointTable* table, const ByteSource* blob,
                                                  std::string name) {
  return std::make_unique<ZstdPointDecoder>(table, blob, std::move(name));
}

}  // namespace lazyroot
