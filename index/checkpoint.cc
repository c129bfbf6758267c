#include "index/checkpoint.h"

#include <zlib.h>

#include <algorithm>
#include <cstring>
#include <limits>
#include <new>

namespace lazyroot {
namespace {

constexpr uint8_t kMagic[8] = {'L', 'Z', 'C', 'K', 'P', 'T', 0, 1};
constexpr size_t kHeaderBytes = 8 + 8 + 8 + 8 + 8;
constexpr size_t kPointFixedBytes = 8 + 8 + 1 + 3 + 4 + 4;
// Windows are small and written once per span: level 1 keeps the pull cheap
// while still shrinking a typical window about 3-4x.
constexpr int kWindowLevel = 1;
// Above any blob: a point's bit offset (in_offset x 8) and the offsets
// derived from it (Checkpoint::stored_data_offset) cannot wrap below it.
constexpr uint64_t kMaxCompressedBytes = uint64_t{1} << 60;

void PutU16(std::string* s, uint16_t v) {
  s->push_back(static_cast<char>(v & 0xff));
  s->push_back(static_cast<char>(v >> 8));
}
void PutU32(std::string* s, uint32_t v) {
  for (int i = 0; i < 4; ++i) s->push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}
void PutU64(std::string* s, uint64_t v) {
  for (int i = 0; i < 8; ++i) s->push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}

// A bounds-checked cursor over the serialised table; every failure names the offset.
class Cursor {
 public:
  Cursor(std::span<const uint8_t> b, const std::string& name) : b_(b), name_(name) {}
  size_t pos() const { return pos_; }
  size_t remaining() const { return b_.size() - pos_; }
  Status Need(size_t n, const char* what) const {
    if (remaining() < n) return Error(std::string("truncated ") + what);
    return Status::Ok();
  }
  uint64_t U64() { uint64_t v = 0; for (int i = 0; i < 8; ++i) v |= uint64_t{b_[pos_ + i]} << (8 * i); pos_ += 8; return v; }
  uint32_t U32() { uint32_t v = 0; for (int i = 0; i < 4; ++i) v |= uint32_t{b_[pos_ + i]} << (8 * i); pos_ += 4; return v; }
  uint8_t U8() { return b_[pos_++]; }
  uint16_t U16() { const uint16_t v = static_cast<uint16_t>(b_[pos_] | b_[pos_ + 1] << 8); pos_ += 2; return v; }
  std::span<const uint8_t> Bytes(size_t n) { auto s = b_.subspan(pos_, n); pos_ += n; return s; }
  Status Error(const std::string& what) const {
    return Status::Corruption(name_ + ": checkpoint table at byte " + std::to_string(pos_) + ": " + what);
  }

 private:
  std::span<const uint8_t> b_;
  const std::string& name_;
  size_t pos_ = 0;
};

}  // namespace

size_t CheckpointTable::FindPoint(uint64_t offset) const {
  auto it = std::upper_bound(points.begin(), points.end(), offset,
                             [](uint64_t off, const Checkpoint& p) { return off < p.out_offset; });
  return it == points.begin() ? 0 : static_cast<size_t>(it - points.begin()) - 1;
}

std::string CheckpointTable::Serialize() const {
  std::string s(reinterpret_cast<const char*>(kMagic), sizeof(kMagic));
  s.push_back(static_cast<char>(compression));
  s.push_back(static_cast<char>(made_by));
  s.push_back(static_cast<char>(fine_policy));
  s.append(5, '\0');
  PutU64(&s, compressed_size);
  PutU64(&s, uncompressed_size);
  PutU64(&s, points.size());
  for (const Checkpoint& p : points) {
    PutU64(&s, p.in_offset);
    PutU64(&s, p.out_offset);
    s.push_back(static_cast<char>(p.bits));
    s.push_back(static_cast<char>((p.fine ? 1 : 0) | (p.mid_block ? 2 : 0) | (p.stored_blocks.empty() ? 0 : 4)));
    s.append(2, '\0');
    PutU32(&s, p.window_size);
    PutU32(&s, static_cast<uint32_t>(p.window.size()));
    s += p.window;
    if (p.mid_block) PutU64(&s, p.header_bit);
    if (!p.stored_blocks.empty()) {
      PutU16(&s, static_cast<uint16_t>(p.stored_blocks.size()));
      for (uint16_t len : p.stored_blocks) PutU16(&s, len);
    }
  }
  uLong crc = crc32(0L, reinterpret_cast<const Bytef*>(s.data()), static_cast<uInt>(s.size()));
  PutU32(&s, static_cast<uint32_t>(crc));
  return s;
}

Result<CheckpointTable> CheckpointTable::Parse(std::span<const uint8_t> bytes, const std::string& name,
                                               bool crc_covered_by_caller) {
  Cursor c(bytes, name);
  LAZYROOT_RETURN_IF_ERROR(c.Need(kHeaderBytes + 4, "header"));
  // Check the crc first: any flipped byte is reported as such, not as whatever
  // field it happened to land in.
  if (!crc_covered_by_caller) {
    size_t body = bytes.size() - 4;
    uint32_t stored = 0;
    for (int i = 0; i < 4; ++i) stored |= uint32_t{bytes[body + i]} << (8 * i);
    uint32_t actual = static_cast<uint32_t>(crc32_z(0L, bytes.data(), body));
    if (stored != actual) {
      return Status::Corruption(name + ": checkpoint table of " + std::to_string(bytes.size()) +
                                " bytes: crc32 mismatch (truncated or corrupted)");
    }
  }
  if (std::memcmp(bytes.data(), kMagic, 7) != 0) return c.Error("bad magic");
  if (bytes[7] != kMagic[7]) return c.Error("unsupported version " + std::to_string(bytes[7]));
  c.Bytes(8);
  CheckpointTable t;
  uint8_t comp = c.U8();
  if (comp > static_cast<uint8_t>(Compression::kZstd)) return c.Error("unknown compression " + std::to_string(comp));
  t.compression = static_cast<Compression>(comp);
  const uint8_t made_by = c.U8();
  if (made_by > static_cast<uint8_t>(InflateEngine::kIsal) ||
      (made_by != 0 && t.compression != Compression::kGzip)) {
    return c.Error("unknown checkpoint pass " + std::to_string(made_by));
  }
  t.made_by = static_cast<InflateEngine>(made_by);
  t.fine_policy = c.U8();
  if (t.fine_policy > kMaxFinePolicy || (t.fine_policy != 0 && t.compression != Compression::kGzip)) {
    return c.Error("unknown fine point policy " + std::to_string(t.fine_policy));
  }
  c.Bytes(5);
  t.compressed_size = c.U64();
  t.uncompressed_size = c.U64();
  if (t.compressed_size > kMaxCompressedBytes) {
    return c.Error("compressed size " + std::to_string(t.compressed_size) + " beyond any blob");
  }
  uint64_t count = c.U64();
  if (count > (c.remaining() - 4) / kPointFixedBytes) return c.Error("point count " + std::to_string(count) + " exceeds the table");
  // Not reserved by the count: the vector grows with the points decoded.
  for (uint64_t i = 0; i < count; ++i) {
    LAZYROOT_RETURN_IF_ERROR(c.Need(kPointFixedBytes + 4, "checkpoint"));
    Checkpoint p;
    p.in_offset = c.U64();
    p.out_offset = c.U64();
    p.bits = c.U8();
    const uint8_t flags = c.U8();
    c.Bytes(2);
    p.window_size = c.U32();
    uint32_t stored = c.U32();
    std::string which = "checkpoint " + std::to_string(i) + ": ";
    if (p.bits > 7) return c.Error(which + "bits " + std::to_string(p.bits) + " > 7");
    // Tables before fine points wrote 0 here; a fine point needs a policy
    // that places them, and is never the first point (units start there).
    // A mid-block point is a fine point of a policy 2 (or later) table; a
    // stored-block point, a block boundary of a policy 3 table.
    if (flags > 7 || (flags != 0 && (t.fine_policy == 0 || i == 0)) ||
        ((flags & 2) != 0 && (t.fine_policy < kFinePolicyV2 || (flags & 1) == 0)) ||
        ((flags & 4) != 0 && (t.fine_policy < kFinePolicyV3 || (flags & 2) != 0))) {
      return c.Error(which + "flags " + std::to_string(flags));
    }
    p.fine = (flags & 1) != 0;
    p.mid_block = (flags & 2) != 0;
    if (p.window_size > kMaxWindowBytes) return c.Error(which + "window of " + std::to_string(p.window_size) + " bytes");
    if ((p.window_size == 0) != (stored == 0)) return c.Error(which + "window sizes disagree");
    // zlib never stores a window in more than compressBound of its size.
    if (stored > compressBound(p.window_size)) return c.Error(which + "stored window larger than its raw size allows");
    if (t.compression != Compression::kGzip && (p.bits != 0 || p.window_size != 0)) {
      return c.Error(which + "bits/window on a non-gzip table");
    }
    if (p.in_offset > t.compressed_size || p.out_offset > t.uncompressed_size) return c.Error(which + "offset beyond the blob");
    if (p.bits != 0 && p.in_offset == 0) return c.Error(which + "bits at offset 0");
    if (i == 0 && p.out_offset != 0) return c.Error(which + "first point not at offset 0");
    if (i > 0 && (p.out_offset <= t.points.back().out_offset || p.in_offset < t.points.back().in_offset)) {
      return c.Error(which + "offsets not increasing");
    }
    LAZYROOT_RETURN_IF_ERROR(c.Need(size_t{stored} + 4, "window"));
    auto w = c.Bytes(stored);
    p.window.assign(reinterpret_cast<const char*>(w.data()), w.size());
    if (p.mid_block) {
      LAZYROOT_RETURN_IF_ERROR(c.Need(8 + 4, "mid-block header offset"));
      p.header_bit = c.U64();
      // Before the point (a coded block's header, then at least one symbol
      // before it): what readers rely on to read it (at most
      // kMaxDeflateHeaderBytes from its byte, within the blob).
      if (p.in_offset == 0 || p.header_bit >= p.bit_offset()) {
        return c.Error(which + "mid-block header at bit " + std::to_string(p.header_bit) + " not before the point");
      }
    }
    if ((flags & 4) != 0) {
      LAZYROOT_RETURN_IF_ERROR(c.Need(2 + 4, "stored block count"));
      const uint16_t blocks = c.U16();
      if (blocks == 0 || blocks > kMaxStoredBlocks) return c.Error(which + std::to_string(blocks) + " stored blocks");
      LAZYROOT_RETURN_IF_ERROR(c.Need(size_t{blocks} * 2 + 4, "stored block lengths"));
      // What a reader serves from the blob as it is: inside the blob and the stream.
      uint64_t data_end = p.stored_data_offset(), out_end = p.out_offset;
      for (uint16_t k = 0; k < blocks; ++k) {
        const uint16_t len = c.U16();  // 0: a flush marker (an empty stored block) inside the run
        p.stored_blocks.push_back(len);
        data_end += (k == 0 ? 0 : 5) + len;
        out_end += len;
      }
      if (out_end == p.out_offset || p.stored_blocks.back() == 0) {
        return c.Error(which + "stored blocks ending empty");
      }
      if (data_end > t.compressed_size || out_end > t.uncompressed_size) {
        return c.Error(which + "stored blocks beyond the blob or the stream");
      }
    }
    t.points.push_back(std::move(p));
  }
  if (c.remaining() != 4) return c.Error(std::to_string(c.remaining() - 4) + " unexpected trailing bytes");
  if (t.compression != Compression::kNone && t.points.empty() && t.uncompressed_size != 0) {
    return c.Error("no checkpoints for a non-empty compressed stream");
  }
  return t;
}

uint64_t Checkpoint::StoredBytes() const {
  uint64_t n = 0;
  for (uint16_t len : stored_blocks) n += len;
  return n;
}

void Checkpoint::StoredAt(uint64_t out, uint64_t* blob_offset, uint64_t* left) const {
  uint64_t at = stored_data_offset(), from = out_offset;
  for (uint16_t len : stored_blocks) {
    if (out < from + len) {
      *blob_offset = at + (out - from);
      *left = from + len - out;
      return;
    }
    at += len + 5;  // the next block's header: 3 bits padded to a byte, LEN and NLEN
    from += len;
  }
  *blob_offset = at;
  *left = 0;
}

size_t PrimePoint(const CheckpointTable& table, uint64_t offset, bool mid_block_ok) {
  size_t i = table.FindPoint(offset);
  if (!mid_block_ok) {
    while (i > 0 && table.points[i].mid_block) --i;  // points[0] is never fine
  }
  return i;
}

Status PointDecoder::Skip(uint64_t n) {
  uint8_t scratch[16384];
  while (n > 0) {
    size_t step = static_cast<size_t>(std::min<uint64_t>(n, sizeof(scratch)));
    LAZYROOT_RETURN_IF_ERROR(Decode(std::span<uint8_t>(scratch, step)));
    n -= step;
  }
  return Status::Ok();
}

namespace {

// One deflate state per thread, reset for each window: compress2 allocates
// and clears ~270 KiB of state per call (an mmap and page faults each time),
// as much as compressing a 1-8 KiB mid-block window (rebuilding `large`'s
// index: window compression 5.5 % of the CPU, then 4.0 %). deflateReset is
// deflateEnd + deflateInit without the reallocation (zlib.h): the same
// bytes come out.
class WindowDeflater {
 public:
  WindowDeflater() {
    if (deflateInit(&z_, kWindowLevel) != Z_OK) throw std::bad_alloc();
  }
  ~WindowDeflater() { deflateEnd(&z_); }
  WindowDeflater(const WindowDeflater&) = delete;
  WindowDeflater& operator=(const WindowDeflater&) = delete;

  std::string Compress(std::span<const uint8_t> raw) {
    // Windows are <= 32 KiB (kMaxWindowBytes): one call with a
    // deflateBound buffer finishes the stream.
    if (deflateReset(&z_) != Z_OK) throw std::bad_alloc();
    std::string out(deflateBound(&z_, static_cast<uLong>(raw.size())), '\0');
    z_.next_in = const_cast<Bytef*>(raw.data());
    z_.avail_in = static_cast<uInt>(raw.size());
    z_.next_out = reinterpret_cast<Bytef*>(out.data());
    z_.avail_out = static_cast<uInt>(out.size());
    // Z_FINISH into a deflateBound buffer cannot stop short.
    if (deflate(&z_, Z_FINISH) != Z_STREAM_END) throw std::bad_alloc();
    out.resize(out.size() - z_.avail_out);
    return out;
  }

 private:
  z_stream z_{};
};

}  // namespace

std::string CompressWindow(std::span<const uint8_t> raw) {
  if (raw.empty()) return {};
  if (raw.size() > std::numeric_limits<uInt>::max() / 2) {
    // Not a window (they are <= 32 KiB); compress2 handles any size.
    uLongf len = compressBound(static_cast<uLong>(raw.size()));
    std::string out(len, '\0');
    if (compress2(reinterpret_cast<Bytef*>(out.data()), &len, raw.data(), static_cast<uLong>(raw.size()),
                  kWindowLevel) != Z_OK) {
      throw std::bad_alloc();
    }
    out.resize(len);
    return out;
  }
  thread_local WindowDeflater deflater;
  return deflater.Compress(raw);
}

Status ExpandWindow(const Checkpoint& point, const std::string& name, std::vector<uint8_t>* out) {
  out->resize(point.window_size);
  if (point.window_size == 0) return Status::Ok();
  uLongf len = point.window_size;
  int ret = uncompress(out->data(), &len, reinterpret_cast<const Bytef*>(point.window.data()),
                       static_cast<uLong>(point.window.size()));
  if (ret != Z_OK || len != point.window_size) {
    return Status::Corruption(name + ": checkpoint at compressed offset " + std::to_string(point.in_offset) +
                              ": stored window does not inflate to " + std::to_string(point.window_size) + " bytes");
  }
  return Status::Ok();
}

}  // namespace lazyroot
