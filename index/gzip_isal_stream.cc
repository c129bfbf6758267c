#include "index/gzip_isal_stream.h"

#include <zlib.h>

#include <algorithm>
#include <cstring>
#include <mutex>
#include <vector>

#include "index/checkpoint.h"
#include "index/fine_points.h"
#include "index/gzip_index.h"
#include "index/isal_midblock.h"

#ifdef LAZYROOT_HAVE_ISAL
#include <isa-l/igzip_lib.h>
#endif

namespace lazyroot {

#ifdef LAZYROOT_HAVE_ISAL
namespace {

// Where a checkpoint lands depends on where isal_inflate calls return (ISA-L
// decodes ahead as far as its input and output allow), so every call is
// placed by absolute stream offsets alone, never by how the bytes arrived:
// input is handed over in slices ending at multiples of kInSlice of the
// compressed stream, output room ends at multiples of kOutRoom of the
// uncompressed one (or where a checkpoint falls due). The same blob then
// gives the same table however it was fed (fsck compares a rebuilt index
// byte for byte).
constexpr size_t kInSlice = 256 << 10;
constexpr size_t kOutRoom = 256 << 10;
constexpr size_t kOutBufferBytes = 2 * kOutRoom;
// Room for the history of handed-out output (Flush): compacted when full.
constexpr size_t kHistBytes = 8 * kMaxWindowBytes;
// ISA-L keeps back at most a few bytes it cannot decode without more; more
// than a slice left over means it stopped making progress.
constexpr size_t kMaxCarry = kInSlice;

std::string IsalError(int ret) {
  switch (ret) {
    case ISAL_INVALID_BLOCK: return "invalid deflate block";
    case ISAL_INVALID_SYMBOL: return "invalid deflate symbol";
    case ISAL_INVALID_LOOKBACK: return "invalid distance too far back";
    case ISAL_INVALID_WRAPPER: return "incorrect header check";
    case ISAL_UNSUPPORTED_METHOD: return "unknown compression method";
    case ISAL_INCORRECT_CHECKSUM: return "incorrect data check (CRC-32/ISIZE)";
    case ISAL_NEED_DICT: return "needs a preset dictionary";
    default: return "ISA-L error " + std::to_string(ret);
  }
}

class IsalGzipStreamDecoder final : public StreamDecoder {
 public:
  IsalGzipStreamDecoder(std::string name, uint64_t span, FineRanges* fine)
      : name_(std::move(name)), span_(span), st_(std::make_unique<inflate_state>()) {
    out_.resize(kOutBufferBytes);
    hist_.resize(kHistBytes);
    table_.compression = Compression::kGzip;
    table_.made_by = InflateEngine::kIsal;
    placer_ = std::make_unique<PointPlacer>(name_, fine, &table_);
    mid_block_ = placer_->mid_block_enabled();
    pending_.reserve(kInSlice + 4096);
    StartMember();
  }
  IsalGzipStreamDecoder(const IsalGzipStreamDecoder&) = delete;
  IsalGzipStreamDecoder& operator=(const IsalGzipStreamDecoder&) = delete;

  Status Feed(std::span<const uint8_t> in, const OutputFn& on_output) override {
    LAZYROOT_RETURN_IF_ERROR(CheckUsable());
    Status st = FeedImpl(in, on_output);
    if (!st.ok()) dead_ = true;
    return st;
  }

  Status Finish(const OutputFn& on_output) override {
    LAZYROOT_RETURN_IF_ERROR(CheckUsable());
    // The last, short slice.
    Status st = RunSlice(on_output);
    if (!st.ok()) {
      dead_ = true;
      return st;
    }
    if (members_ == 0) return Status::Corruption(name_ + ": gzip: empty stream");
    if (!member_done_ || !pending_.empty()) {
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
  Status CheckUsable() const {
    if (dead_) return Status::Corruption(name_ + ": gzip decoder used after an error");
    if (finished_) return Status::InvalidArgument(name_ + ": gzip: used after Finish");
    return Status::Ok();
  }

  // Collects the input into slices that end at multiples of kInSlice and
  // decodes each one as it completes.
  Status FeedImpl(std::span<const uint8_t> in, const OutputFn& on_output) {
    total_in_ += in.size();
    while (!in.empty()) {
      const uint64_t slice_end = (total_in_ - in.size()) / kInSlice * kInSlice + kInSlice;
      const size_t take = static_cast<size_t>(std::min<uint64_t>(in.size(), slice_end - (total_in_ - in.size())));
      pending_.insert(pending_.end(), in.begin(), in.begin() + static_cast<ptrdiff_t>(take));
      in = in.subspan(take);
      if ((total_in_ - in.size()) % kInSlice == 0) LAZYROOT_RETURN_IF_ERROR(RunSlice(on_output));
    }
    return Status::Ok();
  }

  // Decodes what ISA-L kept back last time followed by the collected slice;
  // keeps back again what it does not take.
  Status RunSlice(const OutputFn& on_output) {
    std::vector<uint8_t>& data = pending_;
    const uint64_t at = carry_at_;
    LAZYROOT_RETURN_IF_ERROR(Run(data, at, on_output));
    const size_t used = static_cast<size_t>(st_->next_in - data.data());
    if (data.size() - used > kMaxCarry) {
      return Status::Corruption(name_ + ": gzip: ISA-L stopped taking input at compressed offset " +
                                std::to_string(at + used));
    }
    // What is kept back (a few bytes, as a rule) moves to the front, where
    // the next slice is collected behind it: the slice is not copied again.
    data.erase(data.begin(), data.begin() + static_cast<ptrdiff_t>(used));
    carry_at_ = at + used;
    st_->next_in = nullptr;
    st_->avail_in = 0;
    return Flush(on_output);
  }

  // Absolute compressed offset of st_->next_in.
  uint64_t InPos() const { return slice_at_ + static_cast<uint64_t>(st_->next_in - slice_); }

  // Decodes `data` (absolute offset `at`, at most kMaxCarry + kInSlice bytes)
  // until ISA-L takes no more of it; st_->next_in/avail_in say what is left.
  Status Run(std::span<const uint8_t> data, uint64_t at, const OutputFn& on_output) {
    slice_ = data.data();
    slice_len_ = data.size();
    slice_at_ = at;
    placer_->Input(data, at);  // kept only while a point waits for its probe
    st_->next_in = const_cast<uint8_t*>(slice_);
    st_->avail_in = static_cast<uint32_t>(data.size());
    for (;;) {
      const bool have_input = st_->avail_in > 0;
      if (member_done_) {
        if (!have_input) return Status::Ok();
        StartMember();  // more bytes after a member must be another member
      }
      if (st_->wrapper_flag == 0) {
        if (!have_input) return Status::Ok();
        if (!counted_) {
          // Junk or padding after the last member is refused here, where the
          // bytes are still ours to name (ISA-L would buffer a short run as
          // a partial header, and Finish could only call it truncated).
          if (st_->next_in[0] != 0x1f) {
            return Status::Corruption(name_ + ": gzip: the bytes at compressed offset " + std::to_string(InPos()) +
                                      (members_ == 0 ? " do not start with a gzip header"
                                                     : " after member " + std::to_string(members_) +
                                                           " are not a gzip header (junk after the stream)"));
          }
          ++members_;
          counted_ = true;
        }
        LAZYROOT_RETURN_IF_ERROR(ReadHeader());
        continue;
      }
      size_t room = kOutRoom - static_cast<size_t>(total_out_ % kOutRoom);
      if (out_.size() - out_len_ < room) LAZYROOT_RETURN_IF_ERROR(Flush(on_output));
      if (!poked_ && have_coarse_) {
        // Return where the checkpoint falls due, so the poke lands near it.
        const uint64_t due_at = coarse_out_ + span_;
        if (due_at > total_out_ && due_at - total_out_ < room) room = static_cast<size_t>(due_at - total_out_);
      }
      if (!poked_ && placer_->fine_enabled()) {
        // And where a fine point check falls due.
        const uint64_t check_at = placer_->next_check();
        if (check_at > total_out_ && check_at - total_out_ < room) room = static_cast<size_t>(check_at - total_out_);
      }
      if (mid_block_ && hdr_known_ && placer_->has_points()) {
        // And where a mid-block point would be due.
        const uint64_t mid_at = placer_->last_out() + kMidSpacing;
        if (mid_at > total_out_ && mid_at - total_out_ < room) room = static_cast<size_t>(mid_at - total_out_);
      }
      // The header step (PrepareHeaderStep): input only up to the byte
      // holding the block header's last bit, so that the call stops inside
      // that block, where it is poked before it can end.
      const bool header_step = header_step_;
      uint32_t held_back = 0;
      if (header_step) {
        header_step_ = false;
        const uint64_t cut = step_end_ > InPos() ? step_end_ - InPos() : 0;
        if (cut <= st_->avail_in) {
          held_back = st_->avail_in - static_cast<uint32_t>(cut);
          st_->avail_in = static_cast<uint32_t>(cut);
        }
      }
      st_->next_out = out_.data() + out_len_;
      st_->avail_out = static_cast<uint32_t>(room);
      const uint32_t avail_in = st_->avail_in;
      const int32_t bits_in = st_->read_in_length;
      const int block_state = st_->block_state;
      const int16_t tmp_in = st_->tmp_in_size;
      const int ret = isal_inflate(st_.get());
      const size_t produced = room - st_->avail_out;
      out_len_ += produced;
      total_out_ += produced;
      if (mid_block_) placer_->Output(std::span<const uint8_t>(out_.data() + out_len_ - produced, produced), total_out_ - produced);
      placer_->Advance(total_out_);
      if (header_step) {
        st_->avail_in += held_back;
        // Known only if the call stopped inside the block it began (the cut
        // leaves too few bits for an end-of-block code and another header).
        hdr_known_ = ret == ISAL_DECOMP_OK && st_->block_state == ISAL_BLOCK_CODED && st_->tmp_in_size == 0;
      }
      if (ret != ISAL_DECOMP_OK) {
        return Status::Corruption(name_ + ": gzip member " + std::to_string(members_) + " at compressed offset " +
                                  std::to_string(InPos()) + ": " + IsalError(ret));
      }
      if (st_->block_state == ISAL_BLOCK_FINISH) {
        if (poked_) {
          LAZYROOT_RETURN_IF_ERROR(AtForcedStop(on_output));
        } else {
          LAZYROOT_RETURN_IF_ERROR(AtMemberEnd());
        }
        continue;
      }
      if (mid_block_ && hdr_known_ && st_->block_state == ISAL_BLOCK_CODED && st_->tmp_in_size == 0) {
        LAZYROOT_RETURN_IF_ERROR(MaybeMidBlockPoint(on_output));
      }
      if (!poked_ && st_->bfinal == 0 &&
          (st_->block_state == ISAL_BLOCK_CODED || st_->block_state == ISAL_BLOCK_TYPE0)) {
        bool poke = Due();
        poke_fine_ = false;
        if (!poke && placer_->CheckDue(total_out_)) {
          // The tar parser must have seen every byte before this offset.
          LAZYROOT_RETURN_IF_ERROR(Flush(on_output));
          poke = poke_fine_ = placer_->WantFine(total_out_);
        }
        // Policy 2 stops at every block end it can inside a large file's
        // data: the next block's header offset is then known (mid-block
        // points need it). Not elsewhere: a stop costs two 32 KiB copies
        // and a header walk, +13 % of usr's pull CPU when every block had one.
        if (mid_block_ && !poke) {
          LAZYROOT_RETURN_IF_ERROR(Flush(on_output));  // the tar parser must have seen every byte before here
          poke = placer_->InRange(total_out_);
        }
        if (poke) {
          st_->bfinal = 1;  // stop at this block's end-of-block code
          st_->crc_flag = ISAL_GZIP_NO_HDR;  // and do not read the next block as a trailer there
          poked_ = true;
        }
      }
      const bool progressed = produced != 0 || st_->avail_in != avail_in || st_->read_in_length != bits_in ||
                              static_cast<int>(st_->block_state) != block_state || st_->tmp_in_size != tmp_in;
      if (!progressed) return Status::Ok();  // out of input, or needs more than is left
    }
  }

  // Policy 2, at a block boundary at bit `bitpos` (the state about to read
  // the header): if the header lies whole in this slice and is a coded
  // block's, the next call gets input only up to its end (the header step).
  void PrepareHeaderStep(uint64_t bitpos) {
    // ISA-L may hold whole bytes in its bit buffer: give them back.
    const uint32_t back = static_cast<uint32_t>(std::max<int32_t>(st_->read_in_length, 0) / 8);
    if (back > static_cast<size_t>(st_->next_in - slice_)) return;
    st_->next_in -= back;
    st_->avail_in += back;
    st_->read_in_length -= static_cast<int32_t>(8 * back);
    st_->read_in &= (uint64_t{1} << st_->read_in_length) - 1;
    const uint64_t first = bitpos / 8;
    if (first < slice_at_ || first >= slice_at_ + slice_len_) return;
    const std::span<const uint8_t> bytes(slice_ + (first - slice_at_), slice_len_ - (first - slice_at_));
    DeflateHeader h;
    if (!WalkDeflateHeader(bytes.first(std::min<size_t>(bytes.size(), kMaxDeflateHeaderBytes)), bitpos % 8, &h) ||
        !HeaderCutSafe(h, bitpos)) {
      return;
    }
    const size_t len = static_cast<size_t>((h.symbols_bit + 7) / 8);
    hdr_bytes_.assign(bytes.begin(), bytes.begin() + static_cast<ptrdiff_t>(len));
    hdr_bit_ = bitpos;
    step_end_ = first + len;
    header_step_ = true;
  }

  // A stop inside a coded block whose header is known: a mid-block point if
  // kMidSpacing of output passed since the last point, inside a large file.
  Status MaybeMidBlockPoint(const OutputFn& on_output) {
    const uint64_t ahead = static_cast<uint64_t>(st_->tmp_out_valid - st_->tmp_out_processed);
    const uint64_t out = total_out_ + ahead;  // the output the input position stands for
    const uint64_t unread = static_cast<uint64_t>(std::max<int32_t>(st_->read_in_length, 0));
    const uint64_t here = InPos() * 8;
    if (!placer_->has_points() || out < placer_->last_out() + kMidSpacing || unread > here ||
        here - unread <= hdr_bit_ || out - member_out_start_ < kMaxWindowBytes || ahead > kMaxWindowBytes ||
        st_->tmp_out_processed < 0 || static_cast<uint64_t>(st_->tmp_out_valid) > sizeof(st_->tmp_out_buffer)) {
      return Status::Ok();
    }
    // The tar parser must have seen every byte before this offset.
    LAZYROOT_RETURN_IF_ERROR(Flush(on_output));
    if (!placer_->InRange(total_out_)) return Status::Ok();
    const uint64_t bitpos = here - unread;
    Checkpoint p;
    p.in_offset = (bitpos + 7) / 8;
    p.bits = static_cast<uint8_t>(p.in_offset * 8 - bitpos);
    p.out_offset = out;
    p.fine = true;
    p.mid_block = true;
    p.header_bit = hdr_bit_;
    // The window: the last 32 KiB returned (all flushed to hist_) followed
    // by what ISA-L decoded ahead.
    const size_t from_hist = static_cast<size_t>(kMaxWindowBytes - ahead);
    window_.resize(kMaxWindowBytes);
    std::memcpy(window_.data(), hist_.data() + hist_len_ - from_hist, from_hist);
    std::memcpy(window_.data() + from_hist, st_->tmp_out_buffer + st_->tmp_out_processed, static_cast<size_t>(ahead));
    const bool prev_known = p.in_offset > slice_at_ && p.in_offset - 1 - slice_at_ < slice_len_;
    const uint8_t prev = prev_known ? slice_[p.in_offset - 1 - slice_at_] : 0;
    placer_->Add(std::move(p), window_, prev, prev_known, hdr_bytes_);
    placer_->Input(std::span<const uint8_t>(slice_, slice_len_), slice_at_);
    return Status::Ok();
  }

  void StartMember() {
    hdr_known_ = false;
    header_step_ = false;
    isal_inflate_reset(st_.get());
    st_->crc_flag = ISAL_GZIP;
    isal_gzip_header_init(&header_);  // kept across calls: a header may span Feeds
    member_done_ = false;
    poked_ = false;
    counted_ = false;
  }

  // The member header, parsed here rather than inside isal_inflate so that
  // the first deflate byte's offset is known (a member start is a checkpoint
  // without a window).
  Status ReadHeader() {
    const int ret = isal_read_gzip_header(st_.get(), &header_);
    if (ret < 0) {
      // Here ISAL_INCORRECT_CHECKSUM is the FHCRC, not the trailer.
      return Status::Corruption(name_ + ": gzip member " + std::to_string(members_) + " at compressed offset " +
                                std::to_string(InPos()) + ": " +
                                (ret == ISAL_INCORRECT_CHECKSUM ? std::string("header CRC-16 mismatch") : IsalError(ret)));
    }
    if (st_->wrapper_flag == 0) return Status::Ok();  // more header bytes to come
    if ((header_.flags & 0xe0) != 0) {  // reserved FLG bits: zlib rejects them too
      return Status::Corruption(name_ + ": gzip member " + std::to_string(members_) + " at compressed offset " +
                                std::to_string(InPos()) + ": unknown header flags set");
    }
    member_out_start_ = total_out_;
    if (Due()) {
      Checkpoint p;
      p.in_offset = InPos();
      p.out_offset = total_out_;
      placer_->Add(std::move(p), {}, 0, false);
      coarse_out_ = total_out_;
      have_coarse_ = true;
    }
    return Status::Ok();
  }

  bool Due() const { return !have_coarse_ || total_out_ - coarse_out_ >= span_; }

  // The poked block ended: record the checkpoint, then resume.
  Status AtForcedStop(const OutputFn& on_output) {
    poked_ = false;
    CopyWindow(&window_);
    const uint64_t unread = static_cast<uint64_t>(std::max<int32_t>(st_->read_in_length, 0));
    const uint64_t here = InPos() * 8;
    // tmp_in_size is 0 between blocks (it only buffers split headers); if it
    // is not, the position is unknown: resume without a checkpoint.
    const bool coarse = Due();
    if (mid_block_ && !coarse && !poke_fine_ && placer_->CheckDue(total_out_)) {
      // Policy 2 pokes every block as soon as it can, often before a fine
      // check falls due: the check is made at the block's end instead.
      LAZYROOT_RETURN_IF_ERROR(Flush(on_output));
      poke_fine_ = placer_->WantFine(total_out_);
    }
    if (!coarse && poke_fine_) {
      // The block may have run past the file's data: a fine point only
      // inside it (the tar parser must have seen every byte before here).
      LAZYROOT_RETURN_IF_ERROR(Flush(on_output));
      poke_fine_ = placer_->InRange(total_out_);
    }
    if (st_->tmp_in_size == 0 && unread <= here && (coarse || poke_fine_)) {
      const uint64_t bitpos = here - unread;
      Checkpoint p;
      p.in_offset = (bitpos + 7) / 8;
      p.bits = static_cast<uint8_t>(p.in_offset * 8 - bitpos);
      p.out_offset = total_out_;
      p.fine = !coarse;
      // The byte before the point, if this slice still holds it (ISA-L may
      // have read up to 8 bytes ahead into its bit buffer).
      const bool prev_known = p.in_offset > slice_at_ && p.in_offset - 1 - slice_at_ < slice_len_;
      const uint8_t prev = prev_known ? slice_[p.in_offset - 1 - slice_at_] : 0;
      placer_->Add(std::move(p), window_, prev, prev_known);
      placer_->Input(std::span<const uint8_t>(slice_, slice_len_), slice_at_);
      if (coarse) {
        coarse_out_ = total_out_;
        have_coarse_ = true;
      }
    }
    poke_fine_ = false;
    st_->bfinal = 0;
    st_->block_state = ISAL_BLOCK_NEW_HDR;
    st_->crc_flag = ISAL_GZIP;
    if (!window_.empty() &&
        isal_inflate_set_dict(st_.get(), window_.data(), static_cast<uint32_t>(window_.size())) != COMP_OK) {
      return Status::Corruption(name_ + ": gzip: ISA-L refused its window at compressed offset " +
                              std::to_string(InPos()));
    }
    hdr_known_ = false;
    if (mid_block_ && st_->tmp_in_size == 0 && unread <= here) PrepareHeaderStep(here - unread);
    return Status::Ok();
  }

  // A member ended with its CRC-32 and ISIZE checked by ISA-L.
  Status AtMemberEnd() {
    member_done_ = true;
    // ISA-L leaves nothing read ahead after a trailer; give back whole bytes if it does.
    const uint32_t back = static_cast<uint32_t>(std::max<int32_t>(st_->read_in_length, 0) / 8);
    if (back > 0) {
      if (static_cast<size_t>(st_->next_in - slice_) < back) {
        return Status::Corruption(name_ + ": gzip: ISA-L read past a member end at compressed offset " +
                                std::to_string(InPos()));
      }
      st_->next_in -= back;
      st_->avail_in += back;
    }
    return Status::Ok();
  }

  // The last min(32 KiB, output of this member) bytes: the tail of hist_ followed by out_.
  void CopyWindow(std::vector<uint8_t>* w) const {
    const size_t want = static_cast<size_t>(std::min<uint64_t>(kMaxWindowBytes, total_out_ - member_out_start_));
    const size_t from_out = std::min(want, out_len_);
    const size_t from_hist = want - from_out;
    w->resize(want);
    std::memcpy(w->data(), hist_.data() + hist_len_ - from_hist, from_hist);
    std::memcpy(w->data() + from_hist, out_.data() + out_len_ - from_out, from_out);
  }

  Status Flush(const OutputFn& on_output) {
    if (out_len_ == 0) return Status::Ok();
    LAZYROOT_RETURN_IF_ERROR(on_output(std::span<const uint8_t>(out_.data(), out_len_)));
    // hist_ is appended to and compacted to its last 32 KiB only when full:
    // policy 2 flushes at every block end inside a large file (~26 KiB of
    // output a flush on `large`), and moving 32 KiB each time was a copy
    // of more than the output itself.
    if (out_len_ >= kMaxWindowBytes) {
      std::memcpy(hist_.data(), out_.data() + out_len_ - kMaxWindowBytes, kMaxWindowBytes);
      hist_len_ = kMaxWindowBytes;
    } else {
      if (hist_len_ + out_len_ > hist_.size()) {
        const size_t keep = std::min<size_t>(hist_len_, kMaxWindowBytes - out_len_);
        std::memmove(hist_.data(), hist_.data() + hist_len_ - keep, keep);
        hist_len_ = keep;
      }
      std::memcpy(hist_.data() + hist_len_, out_.data(), out_len_);
      hist_len_ += out_len_;
    }
    out_len_ = 0;
    return Status::Ok();
  }

  std::string name_;
  uint64_t span_;
  std::unique_ptr<inflate_state> st_;  // ~100 KiB: off the stack
  isal_gzip_header header_{};
  bool dead_ = false;
  bool finished_ = false;
  bool member_done_ = false;  // the last member ended, trailer checked
  bool poked_ = false;        // bfinal set: the current block's end is a checkpoint
  bool poke_fine_ = false;    // ... a fine point (fine_points.h), unless a checkpoint is due there
  bool have_coarse_ = false;  // a checkpoint other than a fine point was placed
  uint64_t coarse_out_ = 0;   // the last one's output offset: the next is due span_ after it
  bool counted_ = false;      // members_ counts the current member
  uint64_t members_ = 0;
  uint64_t total_in_ = 0;     // bytes fed
  uint64_t total_out_ = 0;
  uint64_t member_out_start_ = 0;
  const uint8_t* slice_ = nullptr;  // the input ISA-L's next_in points into
  size_t slice_len_ = 0;
  uint64_t slice_at_ = 0;           // its absolute offset
  // The bytes ISA-L did not take from the last slice, followed by the fed
  // bytes of the slice being collected.
  std::vector<uint8_t> pending_;
  uint64_t carry_at_ = 0;  // their absolute offset
  std::vector<uint8_t> out_;   // decompressed, not yet handed to on_output
  size_t out_len_ = 0;
  // The last hist_len_ bytes handed out (window source: only its last
  // 32 KiB are read); kHistBytes of room.
  std::vector<uint8_t> hist_;
  size_t hist_len_ = 0;
  std::vector<uint8_t> window_;
  CheckpointTable table_;
  std::unique_ptr<PointPlacer> placer_;
  // Policy 2 (mid-block points): the header of the block the state is in,
  // when known (PrepareHeaderStep).
  bool mid_block_ = false;
  bool header_step_ = false;  // the next call is a header step, input cut at step_end_
  uint64_t step_end_ = 0;
  bool hdr_known_ = false;
  uint64_t hdr_bit_ = 0;
  std::vector<uint8_t> hdr_bytes_;
};

// Deterministic text-like bytes with random runs: dynamic, stored and
// unaligned block ends.
std::vector<uint8_t> ProbeData() {
  static const char* kWords[] = {"usr ", "lib ", "share ", "locale ", "\n", "x86_64 ", "tar ", "zran "};
  std::vector<uint8_t> out;
  uint32_t x = 12345;
  auto next = [&x] { return x = x * 1103515245u + 12345u; };
  while (out.size() < (320u << 10)) {
    const uint32_t run = 1 + (next() >> 8) % 6000;
    const bool noise = (next() >> 16) % 4 == 0;
    for (uint32_t i = 0; i < run; ++i) {
      if (noise) {
        out.push_back(static_cast<uint8_t>(next() >> 24));
      } else {
        for (const char* c = kWords[(next() >> 16) % 8]; *c; ++c) out.push_back(static_cast<uint8_t>(*c));
      }
    }
  }
  return out;
}

// mem_level 1 makes zlib end a block every 128 symbols: many boundaries.
bool GzipMember(std::span<const uint8_t> in, int level, int mem_level, std::vector<uint8_t>* out) {
  z_stream s{};
  if (deflateInit2(&s, level, Z_DEFLATED, 31, mem_level, Z_DEFAULT_STRATEGY) != Z_OK) return false;
  const size_t at = out->size();
  out->resize(at + deflateBound(&s, in.size()) + 64);
  s.next_in = const_cast<Bytef*>(in.data());
  s.avail_in = static_cast<uInt>(in.size());
  s.next_out = out->data() + at;
  s.avail_out = static_cast<uInt>(out->size() - at);
  const bool ok = deflate(&s, Z_FINISH) == Z_STREAM_END;
  out->resize(at + s.total_out);
  deflateEnd(&s);
  return ok;
}

// Two members (the first with many blocks), fed in odd chunks with a small
// span (the slices make it one ISA-L run); every checkpoint must
// resume with zlib (inflatePrime + inflateSetDictionary) to the same bytes.
bool Probe() {
  const std::vector<uint8_t> data = ProbeData();
  const size_t half = data.size() * 3 / 4 + 7;  // a long first member: stops every ~64 KiB
  std::vector<uint8_t> blob;
  if (!GzipMember(std::span(data).first(half), 6, 1, &blob) || !GzipMember(std::span(data).subspan(half), 1, 8, &blob)) {
    return false;
  }
  IsalGzipStreamDecoder d("isal probe", 4 << 10, nullptr);
  std::vector<uint8_t> got;
  OutputFn sink = [&](std::span<const uint8_t> o) {
    got.insert(got.end(), o.begin(), o.end());
    return Status::Ok();
  };
  for (size_t at = 0; at < blob.size(); at += 4093) {
    if (!d.Feed(std::span(blob).subspan(at, std::min<size_t>(4093, blob.size() - at)), sink).ok()) return false;
  }
  if (!d.Finish(sink).ok() || got != data) return false;
  auto table = std::make_shared<const CheckpointTable>(d.TakeCheckpoints());
  size_t with_window = 0;
  for (const Checkpoint& p : table->points) with_window += p.window_size != 0;
  // ISA-L decodes up to ~64 KiB ahead, so points are sparser than the span here.
  if (with_window < 2) return false;
  auto src = MemoryByteSource(blob, "isal probe");
  auto reader = RandomReader::Create(table, NewGzipPointDecoder(table.get(), src.get(), "isal probe", InflateEngine::kZlib));
  std::vector<uint8_t> buf(2048);
  for (const Checkpoint& p : table->points) {
    size_t n = 0;
    if (!reader->Read(p.out_offset, buf, &n).ok()) return false;
    if (n != std::min<uint64_t>(buf.size(), data.size() - p.out_offset) ||
        !std::equal(buf.begin(), buf.begin() + static_cast<ptrdiff_t>(n), data.begin() + static_cast<ptrdiff_t>(p.out_offset))) {
      return false;
    }
  }
  return true;
}

}  // namespace

std::unique_ptr<StreamDecoder> NewIsalGzipStreamDecoder(std::string name, uint64_t span_bytes, FineRanges* fine) {
  return std::make_unique<IsalGzipStreamDecoder>(std::move(name), std::max<uint64_t>(span_bytes, 1), fine);
}

bool IsalCheckpointsWork() {
  static const bool works = Probe();
  return works;
}

#else  // !LAZYROOT_HAVE_ISAL

std::unique_ptr<StreamDecoder> NewIsalGzipStreamDecoder(std::string, uint64_t, FineRanges*) { return nullptr; }
bool IsalCheckpointsWork() { return false; }

#endif

}  // namespace lazyroot
