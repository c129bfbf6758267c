#include "index/gzip_index.h"

#include <zlib.h>
#ifdef LAZYROOT_HAVE_ISAL
#include <isa-l/crc.h>
#include <isa-l/igzip_lib.h>
#endif

#include <algorithm>
#include <cstring>
#include <vector>

#include "index/fine_points.h"
#include "index/gzip_isal_stream.h"
#include "index/isal_midblock.h"

namespace lazyroot {
namespace {

constexpr int kGzipWindowBits = 15 + 16;  // gzip wrapper only: a zlib or raw stream is not a gzip layer
constexpr int kRawWindowBits = -15;
constexpr size_t kOutBufferBytes = 256 << 10;
constexpr size_t kInBufferBytes = 64 << 10;
// After a prime, a reader reads the blob kFirstRefillBytes at a time until
// kInBufferBytes are read, then kInBufferBytes at a time: a random read from
// a fine point needs a few KiB of compressed bytes (stored data: about the
// output), and over a blob verified in chunks smaller than 64 KiB each byte
// read is a byte hashed (the bench's random 4 KiB reads over 16 KiB chunks:
// 94 -> 45 KB of blob per read in random data, 60 -> 29 KB in text; doubling
// from 16 KiB instead: 64 and 39 KB). A sequential unit pays three more
// preads. The ISA-L reader's first read after a prime is sized instead by
// what the caller said it will decode (PointDecoder::ExpectOutput), when it
// did: one disk read on a cold page cache rather than two or three.
constexpr size_t kFirstRefillBytes = 16 << 10;

std::string ZlibMessage(const z_stream& s, int ret) {
  if (s.msg != nullptr) return s.msg;
  return "zlib error " + std::to_string(ret);
}

class GzipStreamDecoder final : public StreamDecoder {
 public:
  GzipStreamDecoder(std::string name, uint64_t span, FineRanges* fine) : name_(std::move(name)), span_(span) {
    out_.resize(kOutBufferBytes);
    hist_.resize(kMaxWindowBytes);
    table_.compression = Compression::kGzip;
    placer_ = std::make_unique<PointPlacer>(name_, fine, &table_);
    if (inflateInit2(&strm_, kGzipWindowBits) != Z_OK) init_failed_ = true;
#ifdef LAZYROOT_HAVE_ISAL
    // zlib's CRC-32 of the output was 6 % of a pull's CPU; ISA-L's is several
    // times faster. zlib then skips its own check (and that of an optional
    // header CRC-16), and CheckTrailer compares CRC-32 and ISIZE instead.
    if (!init_failed_ && inflateValidate(&strm_, 0) == Z_OK) own_check_ = true;
#endif
  }
  ~GzipStreamDecoder() override { inflateEnd(&strm_); }
  GzipStreamDecoder(const GzipStreamDecoder&) = delete;
  GzipStreamDecoder& operator=(const GzipStreamDecoder&) = delete;

  Status Feed(std::span<const uint8_t> in, const OutputFn& on_output) override {
    if (init_failed_) return Status::IoError(name_ + ": gzip: inflateInit2 failed (out of memory)");
    if (dead_) return Status::Corruption(name_ + ": gzip decoder used after an error");
    Status st = FeedImpl(in, on_output);
    if (!st.ok()) dead_ = true;
    return st;
  }

  Status Finish(const OutputFn&) override {
    if (dead_ || init_failed_) return Status::Corruption(name_ + ": gzip decoder used after an error");
    if (members_ == 0) return Status::Corruption(name_ + ": gzip: empty stream");
    if (!member_done_) {
      dead_ = true;
      return Status::Corruption(name_ + ": gzip member " + std::to_string(members_) + " truncated at compressed offset " +
                                std::to_string(total_in_) + " (unexpected end of data)");
    }
    placer_->Finish();
    table_.compressed_size = total_in_;
    table_.uncompressed_size = total_out_;
    finished_ = true;
    return Status::Ok();
  }

  uint64_t total_in() const override { return total_in_; }
  uint64_t total_out() const override { return total_out_; }
  CheckpointTable TakeCheckpoints() override { return std::move(table_); }

 private:
  Status FeedImpl(std::span<const uint8_t> in, const OutputFn& on_output) {
    if (finished_) return Status::InvalidArgument(name_ + ": gzip: Feed after Finish");
    // zlib's avail_in is 32-bit; feed huge spans in slices.
    while (!in.empty()) {
      size_t slice = std::min<size_t>(in.size(), 1u << 30);
      strm_.next_in = const_cast<Bytef*>(in.data());
      strm_.avail_in = static_cast<uInt>(slice);
      placer_->Input(in.first(slice), total_in_);  // kept only while a point waits for its probe
      while (strm_.avail_in > 0) {
        if (member_done_) {
          // More bytes after a member: they must be another member (row 66/67).
          inflateReset(&strm_);
          member_done_ = false;
          in_header_ = true;
          member_crc_ = 0;
          member_size_ = 0;
        }
        if (in_header_ && !header_counted_) {
          ++members_;
          header_counted_ = true;
        }
        strm_.next_out = out_.data() + out_len_;
        strm_.avail_out = static_cast<uInt>(out_.size() - out_len_);
        uInt avail_in_before = strm_.avail_in;
        uInt avail_out_before = strm_.avail_out;
        int ret = inflate(&strm_, Z_BLOCK);
        const size_t consumed = avail_in_before - strm_.avail_in;
        total_in_ += consumed;
        if (consumed > 0) last_byte_ = strm_.next_in[-1];
        size_t produced = avail_out_before - strm_.avail_out;
        total_out_ += produced;
        out_len_ += produced;
        placer_->Advance(total_out_);
        if (own_check_) Track(strm_.next_in - consumed, consumed, out_.data() + out_len_ - produced, produced);
        if (ret == Z_STREAM_END) {
          if (own_check_) LAZYROOT_RETURN_IF_ERROR(CheckTrailer());
          member_done_ = true;
          header_counted_ = false;
        } else if (ret != Z_OK && !(ret == Z_BUF_ERROR && out_len_ == out_.size())) {
          return Status::Corruption(name_ + ": gzip member " + std::to_string(members_) + " at compressed offset " +
                                    std::to_string(total_in_) + ": " +
                                    (ret == Z_NEED_DICT ? std::string("needs a preset dictionary")
                                                        : ZlibMessage(strm_, ret)));
        } else if ((strm_.data_type & 128) != 0 && (strm_.data_type & 64) == 0) {
          LAZYROOT_RETURN_IF_ERROR(AtBlockBoundary(on_output));
        }
        if (out_len_ == out_.size()) LAZYROOT_RETURN_IF_ERROR(Flush(on_output));
      }
      in = in.subspan(slice);
    }
    return Flush(on_output);
  }

  // Own trailer check: the CRC-32 and size of the member's output so far, and
  // the last 8 compressed bytes consumed (at the member's end: its trailer).
  void Track(const uint8_t* in, size_t in_n, const uint8_t* out, size_t out_n) {
#ifdef LAZYROOT_HAVE_ISAL
    if (out_n > 0) member_crc_ = crc32_gzip_refl(member_crc_, out, out_n);
#else
    (void)out;  // never called without ISA-L (own_check_ stays false)
#endif
    member_size_ += out_n;
    if (in_n >= sizeof tail_) {
      std::memcpy(tail_, in + in_n - sizeof tail_, sizeof tail_);
    } else if (in_n > 0) {
      std::memmove(tail_, tail_ + in_n, sizeof tail_ - in_n);
      std::memcpy(tail_ + sizeof tail_ - in_n, in, in_n);
    }
  }

  Status CheckTrailer() const {
    auto le32 = [](const uint8_t* p) {
      return uint32_t{p[0]} | uint32_t{p[1]} << 8 | uint32_t{p[2]} << 16 | uint32_t{p[3]} << 24;
    };
    const std::string where = name_ + ": gzip member " + std::to_string(members_) + " ending at compressed offset " +
                              std::to_string(total_in_) + ": ";
    if (le32(tail_) != member_crc_) return Status::Corruption(where + "incorrect data check (CRC-32)");
    if (le32(tail_ + 4) != static_cast<uint32_t>(member_size_)) {
      return Status::Corruption(where + "incorrect length check (ISIZE)");
    }
    return Status::Ok();
  }

  // zlib just stopped at a deflate block boundary (or right after a member
  // header): a checkpoint when one is due, or a fine point (fine_points.h).
  Status AtBlockBoundary(const OutputFn& on_output) {
    bool member_start = in_header_;
    if (in_header_) {
      in_header_ = false;
      member_out_start_ = total_out_;
    }
    const bool due = !have_coarse_ || total_out_ - coarse_out_ >= span_;
    bool fine = false;
    if (!due) {
      if (member_start || !placer_->CheckDue(total_out_)) return Status::Ok();
      // The tar parser must have seen every byte before this offset.
      LAZYROOT_RETURN_IF_ERROR(Flush(on_output));
      if (!placer_->WantFine(total_out_)) return Status::Ok();
      fine = true;
    }
    Checkpoint p;
    p.in_offset = total_in_;
    p.out_offset = total_out_;
    p.fine = fine;
    window_.clear();
    if (!member_start) {
      p.bits = static_cast<uint8_t>(strm_.data_type & 7);
      CopyWindow(&window_);
    }
    placer_->Add(std::move(p), window_, last_byte_, true);
    placer_->Input(std::span<const uint8_t>(strm_.next_in, strm_.avail_in), total_in_);
    if (!fine) {
      coarse_out_ = total_out_;
      have_coarse_ = true;
    }
    return Status::Ok();
  }

  // The last min(32 KiB, output of this member) bytes: the tail of hist_ followed by out_.
  void CopyWindow(std::vector<uint8_t>* w) const {
    size_t want = static_cast<size_t>(std::min<uint64_t>(kMaxWindowBytes, total_out_ - member_out_start_));
    size_t from_out = std::min(want, out_len_);
    size_t from_hist = want - from_out;
    w->resize(want);
    std::memcpy(w->data(), hist_.data() + hist_len_ - from_hist, from_hist);
    std::memcpy(w->data() + from_hist, out_.data() + out_len_ - from_out, from_out);
  }

  Status Flush(const OutputFn& on_output) {
    if (out_len_ == 0) return Status::Ok();
    LAZYROOT_RETURN_IF_ERROR(on_output(std::span<const uint8_t>(out_.data(), out_len_)));
    if (out_len_ >= hist_.size()) {
      std::memcpy(hist_.data(), out_.data() + out_len_ - hist_.size(), hist_.size());
      hist_len_ = hist_.size();
    } else {
      size_t keep = std::min(hist_len_, hist_.size() - out_len_);
      std::memmove(hist_.data(), hist_.data() + hist_len_ - keep, keep);
      std::memcpy(hist_.data() + keep, out_.data(), out_len_);
      hist_len_ = keep + out_len_;
    }
    out_len_ = 0;
    return Status::Ok();
  }

  std::string name_;
  uint64_t span_;
  z_stream strm_{};
  bool init_failed_ = false;
  bool dead_ = false;
  bool finished_ = false;
  bool in_header_ = true;       // the current member's header is not parsed yet
  bool header_counted_ = false;
  bool member_done_ = false;    // the last member ended with its trailer checked
  bool own_check_ = false;      // CRC-32/ISIZE checked here (ISA-L), not by zlib
  uint32_t member_crc_ = 0;     // CRC-32 of this member's output so far
  uint64_t member_size_ = 0;    // bytes this member produced so far
  uint8_t tail_[8] = {};        // the last 8 compressed bytes consumed
  uint64_t members_ = 0;
  uint64_t total_in_ = 0;
  uint64_t total_out_ = 0;
  uint64_t member_out_start_ = 0;
  std::vector<uint8_t> out_;    // decompressed, not yet handed to on_output
  size_t out_len_ = 0;
  std::vector<uint8_t> hist_;   // the last hist_len_ bytes handed out (window source)
  size_t hist_len_ = 0;
  std::vector<uint8_t> window_;
  uint8_t last_byte_ = 0;       // the last compressed byte consumed (its unread bits start a checkpoint)
  bool have_coarse_ = false;    // a checkpoint other than a fine point was placed
  uint64_t coarse_out_ = 0;     // the last one's output offset: the next is due span_ after it
  CheckpointTable table_;
  std::unique_ptr<PointPlacer> placer_;
};

class GzipPointDecoder final : public PointDecoder {
 public:
  GzipPointDecoder(const CheckpointTable* table, const ByteSource* blob, std::string name)
      : table_(table), blob_(blob), name_(std::move(name)) {
    in_.resize(kInBufferBytes);
    if (inflateInit2(&strm_, kRawWindowBits) != Z_OK) init_failed_ = true;
  }
  ~GzipPointDecoder() override { inflateEnd(&strm_); }
  // zlib's inflate state (~7 KiB) and its 32 KiB window are not exposed: counted as such.
  uint64_t memory_bytes() const override {
    return sizeof *this + (7u << 10) + (32u << 10) + in_.capacity() + window_.capacity();
  }
  uint64_t max_memory_bytes() const override {
    return sizeof *this + (7u << 10) + (32u << 10) + in_.capacity() + std::max<size_t>(window_.capacity(), kMaxWindowBytes);
  }
  GzipPointDecoder(const GzipPointDecoder&) = delete;
  GzipPointDecoder& operator=(const GzipPointDecoder&) = delete;

  Status Prime(const Checkpoint& p) override {
    if (init_failed_) return Status::IoError(name_ + ": gzip: inflateInit2 failed");
    if (p.mid_block) {
      primed_ = false;
      return Status::InvalidArgument(name_ + ": gzip checkpoint at compressed offset " + std::to_string(p.in_offset) +
                                     ": zlib cannot resume inside a deflate block");
    }
    primed_ = false;
    inflateReset2(&strm_, kRawWindowBits);
    strm_.avail_in = 0;
    raw_ = true;
    member_ended_ = false;
    file_pos_ = p.in_offset;
    refilled_ = 0;
    if (p.bits != 0) {
      uint8_t byte = 0;
      size_t n = 0;
      LAZYROOT_RETURN_IF_ERROR(blob_->ReadAt(p.in_offset - 1, std::span<uint8_t>(&byte, 1), &n));
      if (n != 1) return Truncated();
      inflatePrime(&strm_, p.bits, byte >> (8 - p.bits));
    }
    if (p.window_size != 0) {
      LAZYROOT_RETURN_IF_ERROR(ExpandWindow(p, name_, &window_));
      if (inflateSetDictionary(&strm_, window_.data(), static_cast<uInt>(window_.size())) != Z_OK) {
        return Status::Corruption(name_ + ": gzip checkpoint at compressed offset " + std::to_string(p.in_offset) +
                                  ": window rejected");
      }
    }
    primed_ = true;
    return Status::Ok();
  }

  Status Decode(std::span<uint8_t> out) override {
    if (!primed_) return Status::InvalidArgument(name_ + ": gzip: decode before a successful prime");
    strm_.next_out = out.data();
    strm_.avail_out = static_cast<uInt>(out.size());
    while (strm_.avail_out > 0) {
      if (member_ended_) LAZYROOT_RETURN_IF_ERROR(NextMember());
      // inflate may still owe output (a long match) with no input left, so only
      // an inflate that cannot progress means the blob ended early.
      if (strm_.avail_in == 0 && file_pos_ < table_->compressed_size) LAZYROOT_RETURN_IF_ERROR(Refill());
      int ret = inflate(&strm_, Z_NO_FLUSH);
      if (ret == Z_BUF_ERROR && strm_.avail_in == 0) return Truncated();
      if (ret == Z_STREAM_END) {
        // The next member is only started if more output is wanted: the last
        // member's end is the end of the blob.
        SkipTrailer();
        member_ended_ = true;
        continue;
      }
      if (ret != Z_OK) {
        primed_ = false;
        return Status::Corruption(name_ + ": gzip at compressed offset " + std::to_string(InOffset()) + ": " +
                                  (ret == Z_BUF_ERROR ? std::string("unexpected end of data") : ZlibMessage(strm_, ret)));
      }
    }
    return Status::Ok();
  }

 private:
  // Compressed offset of strm_.next_in.
  uint64_t InOffset() const { return file_pos_ - strm_.avail_in; }

  Status Refill() {
    size_t n = 0;
    const size_t want = AlignedReadSize(file_pos_, refilled_ < in_.size() ? kFirstRefillBytes : in_.size(),
                                        table_->compressed_size - file_pos_,
                                        refilled_ < in_.size() ? kSmallReadAlign : 64 << 10);
    refilled_ += want;
    LAZYROOT_RETURN_IF_ERROR(blob_->ReadAt(file_pos_, std::span<uint8_t>(in_.data(), want), &n));
    if (n == 0) return Truncated();
    file_pos_ += n;
    strm_.next_in = in_.data();
    strm_.avail_in = static_cast<uInt>(n);
    return Status::Ok();
  }

  // A member ended. In raw mode its 8-byte trailer is still ahead; skip it (the
  // streaming pass checked it). In gzip mode zlib consumed and checked it.
  void SkipTrailer() {
    if (!raw_) return;
    uint64_t skip = 8;
    uint64_t here = std::min<uint64_t>(skip, strm_.avail_in);
    strm_.next_in += here;
    strm_.avail_in -= static_cast<uInt>(here);
    file_pos_ += skip - here;
    raw_ = false;
  }

  // Starts the next member, read with the gzip wrapper (header and CRC checked).
  Status NextMember() {
    member_ended_ = false;
    if (InOffset() >= table_->compressed_size) {
      primed_ = false;
      return Status::Corruption(name_ + ": gzip: stream ends at compressed offset " + std::to_string(InOffset()) +
                                " before uncompressed size " + std::to_string(table_->uncompressed_size));
    }
    inflateReset2(&strm_, kGzipWindowBits);
    return Status::Ok();
  }

  Status Truncated() {
    primed_ = false;
    return Status::Corruption(name_ + ": gzip: blob ends at compressed offset " + std::to_string(file_pos_) +
                              " (unexpected end of data)");
  }

  const CheckpointTable* table_;
  const ByteSource* blob_;
  std::string name_;
  z_stream strm_{};
  bool init_failed_ = false;
  bool primed_ = false;
  bool raw_ = true;            // inside the member the checkpoint started in
  bool member_ended_ = false;  // Z_STREAM_END seen; the next member is not started yet
  uint64_t file_pos_ = 0;  // compressed offset of the byte after in_'s valid data
  uint64_t refilled_ = 0;  // bytes Refill read since the prime (kFirstRefillBytes above)
  std::vector<uint8_t> in_;
  std::vector<uint8_t> window_;
};

#ifdef LAZYROOT_HAVE_ISAL
std::string IsalMessage(int ret) {
  switch (ret) {
    case ISAL_INVALID_BLOCK: return "invalid deflate block";
    case ISAL_INVALID_SYMBOL: return "invalid deflate symbol";
    case ISAL_INVALID_LOOKBACK: return "invalid distance too far back";
    case ISAL_INVALID_WRAPPER: return "invalid gzip header";
    case ISAL_UNSUPPORTED_METHOD: return "unsupported compression method";
    case ISAL_INCORRECT_CHECKSUM: return "incorrect data check (CRC-32/ISIZE)";
    case ISAL_NEED_DICT: return "needs a preset dictionary";
    default: return "ISA-L error " + std::to_string(ret);
  }
}

// The same contract as GzipPointDecoder with ISA-L's igzip inflate (~2.5x
// zlib). ISA-L has no inflatePrime; its public inflate_state keeps unread
// input bits in read_in/read_in_length (LSB first, as zlib's bit buffer), so
// priming sets those two fields on a freshly reset state. ISA-L reads ahead
// up to 64 bits: at a raw member end the trailer starts read_in_length/8 bytes
// before next_in. Both facts are exercised by the multi-member and bit-offset
// tests against the zlib decoder.
class IsalPointDecoder final : public PointDecoder {
 public:
  IsalPointDecoder(const CheckpointTable* table, const ByteSource* blob, std::string name)
      : table_(table), blob_(blob), name_(std::move(name)), state_(std::make_unique<inflate_state>()) {
    in_.resize(kInBufferBytes);
    isal_inflate_init(state_.get());
  }
  uint64_t memory_bytes() const override {
    return sizeof *this + sizeof(inflate_state) + in_.capacity() + window_.capacity() + scratch_.capacity();
  }
  uint64_t max_memory_bytes() const override {
    return sizeof *this + sizeof(inflate_state) + in_.capacity() + std::max<size_t>(window_.capacity(), kMaxWindowBytes) +
           std::max<size_t>(scratch_.capacity(), 256 << 10);
  }

  Status Prime(const Checkpoint& p) override {
    primed_ = false;
    member_ended_ = false;
    in_header_ = false;
    raw_ = true;
    isal_inflate_reset(state_.get());
    state_->crc_flag = ISAL_DEFLATE;
    file_pos_ = p.in_offset;
    buf_len_ = 0;
    refilled_ = 0;
    expect_in_ = 0;
    prime_in_ = p.in_offset;
    prime_out_ = p.out_offset;
    state_->next_in = in_.data();
    state_->avail_in = 0;
    if (p.mid_block) {
      LAZYROOT_RETURN_IF_ERROR(PrimeMidBlock(p));
    } else if (p.window_size != 0) {
      LAZYROOT_RETURN_IF_ERROR(ExpandWindow(p, name_, &window_));
      if (isal_inflate_set_dict(state_.get(), window_.data(), static_cast<uint32_t>(window_.size())) != COMP_OK) {
        return Status::Corruption(name_ + ": gzip checkpoint at compressed offset " + std::to_string(p.in_offset) +
                                  ": window rejected");
      }
    }
    // The `bits` unread bits of the byte before the point come with the
    // first refill (which then starts a byte early): a read of its own could
    // be a disk read and a chunk verified of its own.
    prime_bits_ = p.bits;
    if (p.bits != 0) --file_pos_;  // in_offset >= 1: Parse checks a point with bits
    primed_ = true;
    return Status::Ok();
  }

  bool PrimesMidBlock() const override { return true; }

  // The compressed bytes out_bytes of output from the primed point take, at
  // the table's ratio between it and the next point (or the blob's end), plus
  // an eighth and 1 KiB (a block header, a denser stretch).
  void ExpectOutput(uint64_t out_bytes) override {
    const std::vector<Checkpoint>& pts = table_->points;
    auto next = std::upper_bound(pts.begin(), pts.end(), prime_out_,
                                 [](uint64_t out, const Checkpoint& c) { return out < c.out_offset; });
    const uint64_t in_end = next == pts.end() ? table_->compressed_size : next->in_offset;
    const uint64_t out_end = next == pts.end() ? table_->uncompressed_size : next->out_offset;
    if (in_end <= prime_in_ || out_end <= prime_out_) return;
    const double ratio = static_cast<double>(in_end - prime_in_) / static_cast<double>(out_end - prime_out_);
    const double need = static_cast<double>(out_bytes) * ratio * 1.125 + 1024;
    expect_in_ = need >= static_cast<double>(in_.size()) ? in_.size() : static_cast<uint64_t>(need);
  }

  Status Decode(std::span<uint8_t> out) override {
    if (!primed_) return Status::InvalidArgument(name_ + ": gzip: decode before a successful prime");
    state_->next_out = out.data();
    state_->avail_out = static_cast<uint32_t>(out.size());
    while (state_->avail_out > 0) {
      if (member_ended_) LAZYROOT_RETURN_IF_ERROR(NextMember());
      if (state_->avail_in == 0 && file_pos_ < table_->compressed_size) LAZYROOT_RETURN_IF_ERROR(Refill());
      if (in_header_) {
        LAZYROOT_RETURN_IF_ERROR(ReadHeader());
        continue;
      }
      uint32_t out_before = state_->avail_out;
      uint32_t in_before = state_->avail_in;
      int ret = isal_inflate(state_.get());
      if (ret != ISAL_DECOMP_OK) {
        primed_ = false;
        return Status::Corruption(name_ + ": gzip at compressed offset " + std::to_string(InOffset()) + ": " +
                                  IsalMessage(ret));
      }
      if (state_->block_state == ISAL_BLOCK_FINISH) {
        member_ended_ = true;
        continue;
      }
      if (state_->avail_out == out_before && state_->avail_in == in_before) {
        if (state_->avail_in == 0) return Truncated(file_pos_);
        primed_ = false;
        return Status::Corruption(name_ + ": gzip at compressed offset " + std::to_string(InOffset()) +
                                  ": inflate made no progress");
      }
    }
    return Status::Ok();
  }

  Status Skip(uint64_t n) override {
    if (n == 0) return Status::Ok();  // the common case: a read at a unit's start
    // A large scratch lets ISA-L decode in place instead of through its 64 KiB staging buffer.
    scratch_.resize(256 << 10);
    while (n > 0) {
      size_t step = static_cast<size_t>(std::min<uint64_t>(n, scratch_.size()));
      LAZYROOT_RETURN_IF_ERROR(Decode(std::span<uint8_t>(scratch_.data(), step)));
      n -= step;
    }
    return Status::Ok();
  }

 private:
  uint64_t InOffset() const { return file_pos_ - state_->avail_in; }

  // A mid-block point: its block's header decoded again (isal_midblock.h).
  // The header offset comes from the table: ResumeMidBlock refuses bytes
  // there that are not a coded block's header.
  Status PrimeMidBlock(const Checkpoint& p) {
    const std::string what = name_ + ": gzip mid-block checkpoint at compressed offset " + std::to_string(p.in_offset) +
                             " (block header at bit " + std::to_string(p.header_bit) + ")";
    const uint64_t first = p.header_bit / 8;
    if (p.header_bit >= p.bit_offset() || first >= table_->compressed_size) {
      return Status::Corruption(what + ": header not before the point");
    }
    hdr_buf_.resize(static_cast<size_t>(std::min<uint64_t>(kMaxDeflateHeaderBytes, table_->compressed_size - first)));
    size_t n = 0;
    LAZYROOT_RETURN_IF_ERROR(blob_->ReadAt(first, hdr_buf_, &n));
    LAZYROOT_RETURN_IF_ERROR(ExpandWindow(p, name_, &window_));
    return ResumeMidBlock(state_.get(), std::span<const uint8_t>(hdr_buf_).first(n),
                          static_cast<unsigned>(p.header_bit % 8), window_, what);
  }

  Status Refill() {
    // The byte holding a primed point's bits (Prime) comes on top of the
    // aligned read from the point: aligned from that byte, a point at a
    // 32 KiB edge read that one byte alone and had nothing to inflate.
    const uint64_t bits_byte = prime_bits_ != 0 ? 1 : 0;
    size_t want = static_cast<size_t>(bits_byte) +
                  AlignedReadSize(file_pos_ + bits_byte, refilled_ < in_.size() ? kFirstRefillBytes : in_.size(),
                                  table_->compressed_size - file_pos_ - bits_byte,
                                  refilled_ < in_.size() ? kSmallReadAlign : 64 << 10);
    if (refilled_ == 0 && expect_in_ != 0) {
      // The first read after a prime: what the caller's decode is expected
      // to need, on to the end of its last 32 KiB chunk (verified whole anyway).
      const uint64_t end = (file_pos_ + expect_in_ + kSmallReadAlign - 1) / kSmallReadAlign * kSmallReadAlign;
      want = static_cast<size_t>(std::min<uint64_t>({end - file_pos_, in_.size(), table_->compressed_size - file_pos_}));
    }
    refilled_ += want;
    size_t n = 0;
    LAZYROOT_RETURN_IF_ERROR(blob_->ReadAt(file_pos_, std::span<uint8_t>(in_.data(), want), &n));
    if (n == 0) return Truncated(file_pos_);
    file_pos_ += n;
    buf_len_ = n;
    state_->next_in = in_.data();
    state_->avail_in = static_cast<uint32_t>(n);
    if (prime_bits_ != 0) {
      // The byte before the point (Prime): its last prime_bits_ bits are unread.
      state_->read_in = in_[0] >> (8 - prime_bits_);
      state_->read_in_length = prime_bits_;
      prime_bits_ = 0;
      ++state_->next_in;
      --state_->avail_in;
    }
    return Status::Ok();
  }

  // Continues at the member after the one that just finished: past the 8-byte
  // trailer in raw mode (read-ahead bits given back first); ISA-L's gzip mode
  // has consumed its trailer, CRC checked.
  Status NextMember() {
    member_ended_ = false;
    uint64_t next = InOffset() - static_cast<uint64_t>(state_->read_in_length / 8) + (raw_ ? 8 : 0);
    raw_ = false;
    if (next >= table_->compressed_size) {
      primed_ = false;
      return Status::Corruption(name_ + ": gzip: stream ends at compressed offset " + std::to_string(next) +
                                " before uncompressed size " + std::to_string(table_->uncompressed_size));
    }
    uint8_t* next_out = state_->next_out;
    uint32_t avail_out = state_->avail_out;
    isal_inflate_reset(state_.get());
    state_->crc_flag = ISAL_GZIP;
    isal_gzip_header_init(&header_);
    in_header_ = true;
    state_->next_out = next_out;
    state_->avail_out = avail_out;
    uint64_t buf_start = file_pos_ - buf_len_;
    if (next >= buf_start && next <= file_pos_) {
      state_->next_in = in_.data() + (next - buf_start);
      state_->avail_in = static_cast<uint32_t>(file_pos_ - next);
    } else {
      file_pos_ = next;
      buf_len_ = 0;
      state_->next_in = in_.data();
      state_->avail_in = 0;
    }
    return Status::Ok();
  }

  // The next member's header, read apart from isal_inflate: isal_inflate
  // parses a header only if it is handed whole (its header state lives for
  // one call; ISA-L issue #224), and one can straddle a refill, or be longer
  // than in_. isal_read_gzip_header keeps its progress in header_.
  Status ReadHeader() {
    const uint32_t in_before = state_->avail_in;
    const int ret = isal_read_gzip_header(state_.get(), &header_);
    if (ret < 0) {
      primed_ = false;
      return Status::Corruption(name_ + ": gzip member header at compressed offset " + std::to_string(InOffset()) +
                                ": " + (ret == ISAL_INCORRECT_CHECKSUM ? std::string("header CRC-16 mismatch") : IsalMessage(ret)));
    }
    if (state_->wrapper_flag != 0) {
      in_header_ = false;  // isal_inflate (ISAL_GZIP) goes on from the first deflate byte
      return Status::Ok();
    }
    if (state_->avail_in == 0 && file_pos_ >= table_->compressed_size) return Truncated(file_pos_);
    if (state_->avail_in != 0 && state_->avail_in == in_before) {
      primed_ = false;
      return Status::Corruption(name_ + ": gzip member header at compressed offset " + std::to_string(InOffset()) +
                                ": no progress");
    }
    return Status::Ok();
  }

  Status Truncated(uint64_t at) {
    primed_ = false;
    return Status::Corruption(name_ + ": gzip: blob ends at compressed offset " + std::to_string(at) +
                              " (unexpected end of data)");
  }

  const CheckpointTable* table_;
  const ByteSource* blob_;
  std::string name_;
  std::unique_ptr<inflate_state> state_;  // ~50 KiB: keep it off the stack
  isal_gzip_header header_{};
  bool in_header_ = false;  // the next member's header is not all read yet
  bool primed_ = false;
  bool raw_ = true;
  bool member_ended_ = false;
  uint64_t file_pos_ = 0;  // compressed offset just past in_'s valid bytes
  size_t buf_len_ = 0;     // valid bytes in in_
  uint64_t refilled_ = 0;  // bytes Refill read since the prime (kFirstRefillBytes above)
  uint64_t expect_in_ = 0;  // compressed bytes the decode from the prime is expected to need (0: unknown)
  uint64_t prime_in_ = 0, prime_out_ = 0;  // the primed point's offsets
  uint8_t prime_bits_ = 0;  // the point's bits, until the first Refill reads the byte holding them
  std::vector<uint8_t> in_;
  std::vector<uint8_t> window_;
  std::vector<uint8_t> scratch_;
  std::vector<uint8_t> hdr_buf_;  // a mid-block point's block header
};
#endif  // LAZYROOT_HAVE_ISAL

}  // namespace

std::unique_ptr<StreamDecoder> NewGzipStreamDecoder(std::string name, uint64_t span_bytes, InflateEngine engine,
                                                    FineRanges* fine) {
  if (engine == InflateEngine::kIsal && IsalCheckpointsWork()) {
    return NewIsalGzipStreamDecoder(std::move(name), span_bytes, fine);
  }
  return std::make_unique<GzipStreamDecoder>(std::move(name), span_bytes, fine);
}

bool HaveIsal() {
#ifdef LAZYROOT_HAVE_ISAL
  return true;
#else
  return false;
#endif
}

std::unique_ptr<PointDecoder> NewGzipPointDecoder(const CheckpointTable* table, const ByteSource* blob,
                                                  std::string name, InflateEngine engine) {
#ifdef LAZYROOT_HAVE_ISAL
  if (engine == InflateEngine::kIsal) return std::make_unique<IsalPointDecoder>(table, blob, std::move(name));
#else
  (void)engine;
#endif
  return std::make_unique<GzipPointDecoder>(table, blob, std::move(name));
}

}  // namespace lazyroot
