#include "index/layer_index.h"

#include <zlib.h>

#include <algorithm>
#include <cstring>
#include <optional>
#include <system_error>
#include <thread>

#include "index/exception_status.h"
#include "index/limits.h"
#include "index/sha256.h"

namespace lazyroot {
namespace {

constexpr char kMagic[8] = {'L', 'Z', 'R', 'L', 'I', 'D', 'X', '\0'};
// Version 2 added the chunk digest section and replaced the CRC-32 with a
// SHA-256 of the file; version 3 the file digest section (and 16 header
// bytes); version 4 a SHA-256 per section (the header's own covers the
// others), so that a mount reads and checks the header, the checkpoints and
// the chunk digests only, and `diff` the header and the file digests. An
// older file is rebuilt from its blob (a cache).
constexpr uint32_t kVersion = 4;
constexpr size_t kHeaderSize = LayerIndex::kHeaderBytes;
constexpr size_t kFileDigestBytes = 40;  // u64 data offset + SHA-256
constexpr size_t kHeaderHashAt = 160;    // of the header, this field zero
constexpr size_t kEntriesHashAt = 208;   // of the entry section
constexpr size_t kMountHashAt = 240;     // of the checkpoint and chunk digest sections
constexpr size_t kFilesHashAt = 272;     // of the file digest section
constexpr uint32_t kFlagEntriesDeflated = 1;
// From this size on ReadCheckpoints hashes on a second thread (below it a
// thread costs about what it saves).
constexpr size_t kParallelHashBytes = 1 << 20;

void PutU32(std::string* s, size_t at, uint32_t v) {
  for (int i = 0; i < 4; ++i) (*s)[at + i] = static_cast<char>(v >> (8 * i));
}
void PutU64(std::string* s, size_t at, uint64_t v) {
  for (int i = 0; i < 8; ++i) (*s)[at + i] = static_cast<char>(v >> (8 * i));
}
uint32_t GetU32(const uint8_t* p) {
  uint32_t v = 0;
  for (int i = 3; i >= 0; --i) v = (v << 8) | p[i];
  return v;
}
uint64_t GetU64(const uint8_t* p) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = (v << 8) | p[i];
  return v;
}

void PutVarint(std::string* s, uint64_t v) {
  while (v >= 0x80) {
    s->push_back(static_cast<char>((v & 0x7f) | 0x80));
    v >>= 7;
  }
  s->push_back(static_cast<char>(v));
}
void PutBytes(std::string* s, std::string_view b) {
  PutVarint(s, b.size());
  s->append(b);
}

bool HexToRaw(const std::string& digest, uint8_t out[32]) {
  if (digest.size() != 71 || !digest.starts_with("sha256:")) return false;
  auto nib = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    return -1;
  };
  for (int i = 0; i < 32; ++i) {
    int hi = nib(digest[7 + 2 * i]), lo = nib(digest[8 + 2 * i]);
    if (hi < 0 || lo < 0) return false;
    out[i] = static_cast<uint8_t>(hi << 4 | lo);
  }
  return true;
}
std::string RawToDigest(const uint8_t* raw) { return "sha256:" + ToHex(std::span<const uint8_t>(raw, 32)); }

// Bounds-checked cursor over (a window of) the entries section. A read that
// runs past the window sets short(): with more of a streamed section to come,
// that means "inflate more and decode this entry again", not "corrupt".
class Reader {
 public:
  Reader(const uint8_t* p, size_t n) : p_(p), end_(p + n) {}
  bool Varint(uint64_t* v) {
    *v = 0;
    for (int shift = 0; shift < 64; shift += 7) {
      if (p_ >= end_) return Short();
      uint8_t b = *p_++;
      *v |= static_cast<uint64_t>(b & 0x7f) << shift;
      if ((b & 0x80) == 0) return true;
    }
    return false;
  }
  bool U32(uint32_t* v) {
    uint64_t x;
    if (!Varint(&x) || x > UINT32_MAX) return false;
    *v = static_cast<uint32_t>(x);
    return true;
  }
  // A length-prefixed string of at most `max` bytes.
  bool Bytes(std::string* s, size_t max) {
    uint64_t n;
    if (!Varint(&n) || n > max) return false;
    if (n > static_cast<uint64_t>(end_ - p_)) return Short();
    s->assign(reinterpret_cast<const char*>(p_), n);
    p_ += n;
    return true;
  }
  bool Byte(uint8_t* b) {
    if (p_ >= end_) return Short();
    *b = *p_++;
    return true;
  }
  // False, marking the window too short for what was asked.
  bool Short() {
    short_ = true;
    return false;
  }
  bool is_short() const { return short_; }
  bool done() const { return p_ == end_; }
  size_t remaining() const { return static_cast<size_t>(end_ - p_); }
  const uint8_t* position() const { return p_; }

 private:
  const uint8_t* p_;
  const uint8_t* end_;
  bool short_ = false;
};

void PutEntry(std::string* s, const TarEntry& e) {
  s->push_back(static_cast<char>(e.type));
  PutVarint(s, e.mode);
  PutVarint(s, e.uid);
  PutVarint(s, e.gid);
  PutVarint(s, (static_cast<uint64_t>(e.mtime_sec) << 1) ^ static_cast<uint64_t>(e.mtime_sec >> 63));  // zigzag
  PutVarint(s, e.mtime_nsec);
  PutVarint(s, e.dev_major);
  PutVarint(s, e.dev_minor);
  PutVarint(s, e.size);
  PutVarint(s, e.header_offset);
  PutVarint(s, e.data_offset);
  PutVarint(s, e.stored_size);
  PutBytes(s, e.path);
  PutBytes(s, e.link_target);
  PutBytes(s, e.uname);
  PutBytes(s, e.gname);
  PutVarint(s, e.sparse.size());
  for (const SparseExtent& x : e.sparse) {
    PutVarint(s, x.logical_offset);
    PutVarint(s, x.length);
  }
  PutVarint(s, e.xattrs.size());
  for (const auto& [k, v] : e.xattrs) {
    PutBytes(s, k);
    PutBytes(s, v);
  }
}

// The fewest bytes PutEntry can write: the type byte, eleven varints, four
// length-prefixed strings and two counts, each at least one byte. A count
// that could not fit its section at this size is a lie.
constexpr size_t kMinEntryBytes = 1 + 11 + 4 + 2;

// Decodes one entry. Counts and lengths come from a file that may be hostile:
// vectors grow by what was actually decoded (never sized by a count), and an
// entry must be one a layer could carry (index/limits.h's kernel limits), so
// a store file cannot smuggle in what the indexer would have refused.
// Returns a description of the first problem, empty on success.
std::string GetEntry(Reader& r, TarEntry* e) {
  uint8_t type;
  uint64_t zz, n;
  if (!r.Byte(&type) || type > static_cast<uint8_t>(EntryType::kFifo)) return "bad type";
  e->type = static_cast<EntryType>(type);
  if (!r.U32(&e->mode) || !r.U32(&e->uid) || !r.U32(&e->gid) || !r.Varint(&zz) || !r.U32(&e->mtime_nsec) ||
      !r.U32(&e->dev_major) || !r.U32(&e->dev_minor) || !r.Varint(&e->size) || !r.Varint(&e->header_offset) ||
      !r.Varint(&e->data_offset) || !r.Varint(&e->stored_size) || !r.Bytes(&e->path, Limits::kMaxPath) ||
      !r.Bytes(&e->link_target, Limits::kMaxPath) || !r.Bytes(&e->uname, SIZE_MAX) ||
      !r.Bytes(&e->gname, SIZE_MAX)) {  // owner names: no kernel limit, the section's bounds
    return "truncated or over a kernel limit";
  }
  if (e->type == EntryType::kSymlink && e->link_target.size() > Limits::kMaxSymlinkTarget) {
    return "symlink target of " + std::to_string(e->link_target.size()) + " bytes, over the kernel's " +
           std::to_string(Limits::kMaxSymlinkTarget);
  }
  e->mtime_sec = static_cast<int64_t>((zz >> 1) ^ (~(zz & 1) + 1));
  // Each extent takes at least two bytes, each xattr at least two.
  if (!r.Varint(&n) || (n > r.remaining() / 2 && !r.Short())) return "sparse count larger than its section";
  for (uint64_t i = 0; i < n; ++i) {
    SparseExtent x;
    if (!r.Varint(&x.logical_offset) || !r.Varint(&x.length)) return "truncated sparse map";
    e->sparse.push_back(x);
  }
  if (!r.Varint(&n) || (n > r.remaining() / 2 && !r.Short())) return "xattr count larger than its section";
  size_t xattr_bytes = 0;
  for (uint64_t i = 0; i < n; ++i) {
    std::string k, v;
    if (!r.Bytes(&k, Limits::kMaxXattrName) || !r.Bytes(&v, Limits::kMaxXattrValue)) {
      return "xattr " + std::to_string(i) + " truncated or over the kernel's name/value limits";
    }
    xattr_bytes += k.size() + v.size();
    if (xattr_bytes > Limits::kMaxXattrsPerEntry) {
      return "xattrs over the kernel's " + std::to_string(Limits::kMaxXattrsPerEntry) + " bytes per file";
    }
    e->xattrs.emplace_back(std::move(k), std::move(v));
  }
  return {};
}

// The entry section as a window moving forward over it: the file's bytes
// when stored, or inflated a chunk at a time when deflated, so a reader holds
// about one chunk (or its largest entry) whatever the section's size. The
// claimed inflated length (a 32-bit field any file can set) never sizes a
// buffer: the window grows by what zlib really produces.
class EntryWindow {
 public:
  static constexpr size_t kChunk = 64 << 10;

  // A stored section: all of it is in the window already.
  EntryWindow(const uint8_t* p, size_t n) : ext_(p), ext_len_(n), ended_(true) {}
  // A deflated section that must inflate to exactly `claimed` bytes.
  EntryWindow(const uint8_t* in, size_t in_len, uint64_t claimed) : claimed_(claimed), ended_(false) {
    // in_len > 4 GiB cannot be: the inflated size is a u32 and deflate shrank it.
    z_ok_ = in_len <= UINT32_MAX && inflateInit(&z_) == Z_OK;
    z_.next_in = const_cast<Bytef*>(in);
    z_.avail_in = static_cast<uInt>(in_len);
  }
  ~EntryWindow() {
    if (z_ok_) inflateEnd(&z_);
  }
  EntryWindow(const EntryWindow&) = delete;
  EntryWindow& operator=(const EntryWindow&) = delete;

  const uint8_t* data() const {
    return ext_ ? ext_ + pos_ : reinterpret_cast<const uint8_t*>(buf_.data()) + pos_;
  }
  size_t size() const { return (ext_ ? ext_len_ : buf_.size()) - pos_; }
  void Consume(size_t n) { pos_ += n; }
  // True once the window holds the rest of the section.
  bool ended() const { return ended_; }

  // Appends at least `want` more bytes to the window (fewer at the section's
  // end). False unless the section inflates to exactly the claimed length.
  bool More(size_t want) {
    if (ended_) return true;
    if (!z_ok_) return false;
    buf_.erase(0, pos_);  // what was consumed is not kept
    pos_ = 0;
    for (size_t got = 0; got < want;) {
      // Room for one byte more than claimed tells "exactly" from "longer".
      const size_t room = static_cast<size_t>(std::min<uint64_t>(want - got, claimed_ + 1 - produced_));
      const size_t have = buf_.size();
      buf_.resize(have + room);
      z_.next_out = reinterpret_cast<Bytef*>(buf_.data() + have);
      z_.avail_out = static_cast<uInt>(room);
      const int ret = inflate(&z_, Z_NO_FLUSH);  // Z_BUF_ERROR here: the input ended early
      const size_t n = room - z_.avail_out;
      buf_.resize(have + n);
      got += n;
      produced_ += n;
      if (produced_ > claimed_) return false;
      if (ret == Z_STREAM_END) {
        ended_ = true;
        return z_.avail_in == 0 && produced_ == claimed_;
      }
      if (ret != Z_OK) return false;
    }
    return true;
  }

 private:
  const uint8_t* ext_ = nullptr;
  size_t ext_len_ = 0;
  std::string buf_;
  size_t pos_ = 0;
  z_stream z_{};
  bool z_ok_ = false;
  uint64_t claimed_ = 0, produced_ = 0;
  bool ended_;
};

}  // namespace

std::string SparseContentPrefix(uint64_t size, const std::vector<SparseExtent>& sparse) {
  std::string s = "lazyroot sparse\n";
  const size_t at = s.size();
  s.resize(at + 16 + 16 * sparse.size());
  PutU64(&s, at, size);
  PutU64(&s, at + 8, sparse.size());
  for (size_t i = 0; i < sparse.size(); ++i) {
    PutU64(&s, at + 16 + 16 * i, sparse[i].logical_offset);
    PutU64(&s, at + 24 + 16 * i, sparse[i].length);
  }
  return s;
}

const FileDigest* FindFileDigest(std::span<const FileDigest> digests, uint64_t data_offset) {
  auto it = std::lower_bound(digests.begin(), digests.end(), data_offset,
                             [](const FileDigest& d, uint64_t off) { return d.data_offset < off; });
  return it != digests.end() && it->data_offset == data_offset ? &*it : nullptr;
}

namespace {

// *out holds the header space and the entries section: fills the header,
// appends the checkpoint and chunk digest sections and seals the file with
// its SHA-256.
void SealFile(const LayerIndex& h, uint64_t count, uint32_t flags, uint32_t raw_len, std::string* out) {
  std::memcpy(out->data(), kMagic, 8);
  PutU32(out, 8, kVersion);
  PutU32(out, 12, flags);
  uint8_t raw[32] = {};
  HexToRaw(h.blob_digest, raw);
  std::memcpy(out->data() + 16, raw, 32);
  std::memset(raw, 0, sizeof raw);
  HexToRaw(h.diff_id, raw);
  std::memcpy(out->data() + 48, raw, 32);
  PutU64(out, 80, h.blob_size);
  PutU64(out, 88, h.uncompressed_size);
  PutU64(out, 96, count);
  PutU32(out, 136, raw_len);
  const size_t entries_at = kHeaderSize;
  const size_t checkpoints_at = out->size();
  *out += h.checkpoints.Serialize();
  const size_t chunks_at = out->size();
  for (const Digest32& d : h.chunks.digests) out->append(reinterpret_cast<const char*>(d.data()), d.size());
  PutU64(out, 104, entries_at);
  PutU64(out, 112, checkpoints_at - entries_at);
  PutU64(out, 120, checkpoints_at);
  PutU64(out, 128, chunks_at - checkpoints_at);
  PutU32(out, 140, h.chunks.chunk_size);
  PutU64(out, 144, h.chunks.digests.size());
  PutU64(out, 152, chunks_at);
  const size_t files_at = out->size();
  for (const FileDigest& f : h.file_digests) {
    const size_t at = out->size();
    out->resize(at + 8);
    PutU64(out, at, f.data_offset);
    out->append(reinterpret_cast<const char*>(f.digest.data()), f.digest.size());
  }
  PutU64(out, 192, h.file_digests.size());
  PutU64(out, 200, files_at);
  ResealLayerIndexFile(std::span<uint8_t>(reinterpret_cast<uint8_t*>(out->data()), out->size()));
}

}  // namespace

void ResealLayerIndexFile(std::span<uint8_t> file) {
  if (file.size() < kHeaderSize) return;
  uint8_t* p = file.data();
  const uint64_t size = file.size();
  // The offsets the header gives, clamped to the file and put in order.
  const uint64_t c_off = std::clamp<uint64_t>(GetU64(p + 120), kHeaderSize, size);
  const uint64_t f_off = std::clamp<uint64_t>(GetU64(p + 200), c_off, size);
  auto put = [&](size_t at, uint64_t from, uint64_t to) {
    const Digest32 d = Sha256::Of(std::span<const uint8_t>(p + from, static_cast<size_t>(to - from)));
    std::memcpy(p + at, d.data(), d.size());
  };
  put(kEntriesHashAt, kHeaderSize, c_off);
  put(kMountHashAt, c_off, f_off);
  put(kFilesHashAt, f_off, size);
  std::memset(p + kHeaderHashAt, 0, 32);
  put(kHeaderHashAt, 0, kHeaderSize);
}

std::string LayerIndex::Serialize() const {
  std::string out(kHeaderSize, '\0');
  // The entries (mostly paths) deflate 3-5x; that is what keeps an index
  // under 2 % of an ordinary layer blob.
  std::string records;
  for (const TarEntry& e : entries) PutEntry(&records, e);
  std::string packed(compressBound(records.size()), '\0');
  uLongf packed_len = packed.size();
  uint32_t flags = 0, raw_len = 0;
  if (records.size() <= UINT32_MAX &&
      compress2(reinterpret_cast<Bytef*>(packed.data()), &packed_len, reinterpret_cast<const Bytef*>(records.data()),
                records.size(), 6) == Z_OK &&
      packed_len < records.size()) {
    flags = kFlagEntriesDeflated;
    raw_len = static_cast<uint32_t>(records.size());
    out.append(packed.data(), packed_len);
  } else {
    out += records;
  }
  SealFile(*this, entries.size(), flags, raw_len, &out);
  return out;
}

namespace {

// Where the sections of a file lie (validated by ParseHeader).
struct Layout {
  uint64_t count = 0;  // entries
  uint64_t e_len = 0, c_off = 0, c_len = 0, d_off = 0;
  uint64_t f_off = 0, f_count = 0;  // file digests
  uint64_t size = 0;                // of the file
};

// `bytes` is the file digest section, f_count records long (ParseHeader).
std::vector<FileDigest> DecodeFileDigests(std::span<const uint8_t> bytes, const Layout& layout) {
  std::vector<FileDigest> out(static_cast<size_t>(layout.f_count));  // bounded by the file's size (ParseHeader)
  const uint8_t* p = bytes.data();
  for (FileDigest& f : out) {
    f.data_offset = GetU64(p);
    std::memcpy(f.digest.data(), p + 8, 32);
    p += kFileDigestBytes;
  }
  return out;
}

// Magic, version and the header's length: what is said before the hash (an
// older format by name, not as a hash mismatch).
Status CheckMagicAndVersion(std::span<const uint8_t> bytes, const std::string& name) {
  auto bad = [&](const std::string& what) { return Status::Corruption("layer index " + name + ": " + what); };
  const uint8_t* p = bytes.data();
  if (bytes.size() < 12) return bad("truncated header");
  if (std::memcmp(p, kMagic, 8) != 0) return bad("not a lazyroot layer index (bad magic)");
  const uint32_t version = GetU32(p + 8);
  if (version == 1) return bad("written by an older lazyroot (format version 1, no chunk digests)");
  if (version == 2) return bad("written by an older lazyroot (format version 2, no file digests)");
  if (version == 3) return bad("written by an older lazyroot (format version 3, one checksum over the whole file)");
  if (version != kVersion) return bad("unsupported version " + std::to_string(version));
  if (bytes.size() < kHeaderSize) return bad("truncated header");
  return Status::Ok();
}

// The SHA-256 the header records at `at` for `section`. The header's own
// hash covers these fields, so a section checked here is the one the
// (checked) header was sealed with.
Status CheckSection(std::span<const uint8_t> header, size_t at, std::span<const uint8_t> section, const char* what,
                    const std::string& name) {
  const Digest32 d = Sha256::Of(section);
  if (std::memcmp(d.data(), header.data() + at, 32) != 0) {
    return Status::Corruption("layer index " + name + ": SHA-256 of the " + what + " does not match its header");
  }
  return Status::Ok();
}

// The file's header (its first kHeaderSize bytes, or all of a shorter file)
// against a file of file_size bytes: magic, version, the header's SHA-256,
// ownership, section bounds, and the shapes of the chunk digest and file
// digest sections. Reads no section. Fills the header fields of *idx (not
// the chunk digests: DecodeChunks) and *layout.
Status ParseHeader(std::span<const uint8_t> header, uint64_t file_size, const std::string& name,
                   const std::string& expected_blob_digest, LayerIndex* idx, Layout* layout) {
  auto bad = [&](const std::string& what) { return Status::Corruption("layer index " + name + ": " + what); };
  LAZYROOT_RETURN_IF_ERROR(CheckMagicAndVersion(header, name));
  if (file_size < kHeaderSize) return bad("truncated header");
  header = header.first(kHeaderSize);
  const uint8_t* p = header.data();
  {
    Sha256 hash;
    const uint8_t zero[32] = {};
    hash.Update(header.first(kHeaderHashAt));
    hash.Update(std::span<const uint8_t>(zero, 32));
    hash.Update(header.subspan(kHeaderHashAt + 32));
    const Digest32 d = hash.Finish();
    if (std::memcmp(d.data(), p + kHeaderHashAt, 32) != 0) return bad("SHA-256 of the header does not match it");
  }
  idx->blob_digest = RawToDigest(p + 16);
  idx->diff_id = RawToDigest(p + 48);
  if (!expected_blob_digest.empty() && idx->blob_digest != expected_blob_digest) {
    return bad("belongs to blob " + idx->blob_digest + ", not " + expected_blob_digest);
  }
  idx->blob_size = GetU64(p + 80);
  idx->uncompressed_size = GetU64(p + 88);
  layout->count = GetU64(p + 96);
  const uint64_t e_off = GetU64(p + 104);
  layout->e_len = GetU64(p + 112);
  layout->c_off = GetU64(p + 120);
  layout->c_len = GetU64(p + 128);
  layout->d_off = GetU64(p + 152);
  layout->f_count = GetU64(p + 192);
  layout->f_off = GetU64(p + 200);
  layout->size = file_size;
  const uint64_t size = file_size;
  if (e_off != kHeaderSize || layout->e_len > size - e_off || layout->c_off != e_off + layout->e_len ||
      layout->c_len > size - layout->c_off || layout->d_off != layout->c_off + layout->c_len) {
    return bad("section offsets out of bounds");
  }
  // A checkpoint table is about the blob's size at most: a point's window
  // (<= 32 KiB stored) needs a block boundary and, to be incompressible, about
  // as many bytes of the blob. A header declaring more (a sparse hole in the
  // file) would size the buffer a mount reads it into.
  if (layout->c_len / 4 > idx->blob_size + (1 << 20)) {
    return bad("checkpoint section of " + std::to_string(layout->c_len) + " bytes for a blob of " +
               std::to_string(idx->blob_size) + " bytes");
  }
  // The chunk table: its shape follows from the blob size and the chunk
  // size alone, and is checked against the file's size before any is kept.
  const uint32_t chunk_size = GetU32(p + 140);
  const uint64_t chunk_count = GetU64(p + 144);
  if (chunk_size < kMinChunkBytes || chunk_size > kMaxChunkBytes || (chunk_size & (chunk_size - 1)) != 0) {
    return bad("chunk size " + std::to_string(chunk_size) + " is not a power of two from 4 KiB to 1 MiB");
  }
  const uint64_t want = ChunkDigests::ChunkCount(idx->blob_size, chunk_size);
  if (chunk_count != want) {
    return bad(std::to_string(chunk_count) + " chunk digests for a blob of " + std::to_string(idx->blob_size) +
               " bytes in chunks of " + std::to_string(chunk_size) + " (want " + std::to_string(want) + ")");
  }
  if (layout->d_off > size || (size - layout->d_off) / 32 < chunk_count ||
      layout->f_off != layout->d_off + chunk_count * 32) {
    return bad("chunk digest section is not " + std::to_string(chunk_count) + " digests long");
  }
  // The file digest section ends the file. Its records are checked by the
  // readers that use them (ReadFileDigests; ForEachEntry against the
  // entries), not by ReadCheckpoints: a mount does not read them.
  if ((size - layout->f_off) % kFileDigestBytes != 0 || (size - layout->f_off) / kFileDigestBytes != layout->f_count) {
    return bad("file digest section is not " + std::to_string(layout->f_count) + " records long");
  }
  idx->chunks.chunk_size = chunk_size;
  idx->chunks.blob_size = idx->blob_size;
  return Status::Ok();
}

// `digests` is the chunk digest section (its length checked by ParseHeader).
void DecodeChunks(std::span<const uint8_t> digests, LayerIndex* idx) {
  idx->chunks.digests.resize(digests.size() / 32);  // bounded by the file's size
  if (!digests.empty()) std::memcpy(idx->chunks.digests.data(), digests.data(), digests.size());
}

// Reads the header through `read`: what is there of the first kHeaderSize
// bytes (a shorter file is refused by ParseHeader, naming its version first).
Result<std::span<const uint8_t>> ReadHeader(uint64_t file_size, const LayerIndexRangeReader& read) {
  return read(0, std::min<uint64_t>(file_size, kHeaderSize));
}

// A reader over a whole file in memory.
LayerIndexRangeReader SpanReader(std::span<const uint8_t> bytes, const std::string& name) {
  return [bytes, name](uint64_t offset, uint64_t length) -> Result<std::span<const uint8_t>> {
    if (offset > bytes.size() || length > bytes.size() - offset) {
      return Status::Corruption("layer index " + name + ": range beyond the file");
    }
    return bytes.subspan(static_cast<size_t>(offset), static_cast<size_t>(length));
  };
}

}  // namespace

std::optional<std::pair<uint64_t, uint64_t>> LayerIndex::MountRange(std::span<const uint8_t> header,
                                                                    uint64_t file_size) {
  LayerIndex idx;
  Layout layout;
  if (header.size() < kHeaderSize || !ParseHeader(header, file_size, "", "", &idx, &layout).ok()) return std::nullopt;
  return std::make_pair(layout.c_off, layout.f_off);
}

Result<LayerIndex> LayerIndex::ReadSummary(uint64_t file_size, const LayerIndexRangeReader& read,
                                           const std::string& name, const std::string& expected_blob_digest) {
  LAZYROOT_ASSIGN_OR_RETURN(std::span<const uint8_t> header, ReadHeader(file_size, read));
  LayerIndex idx;
  Layout layout;
  LAZYROOT_RETURN_IF_ERROR(ParseHeader(header, file_size, name, expected_blob_digest, &idx, &layout));
  return idx;
}

Result<CheckpointTable> LayerIndex::ReadCheckpoints(uint64_t file_size, const LayerIndexRangeReader& read,
                                                    const std::string& name, const std::string& expected_blob_digest,
                                                    std::string* diff_id, ChunkDigests* chunks) {
  LAZYROOT_ASSIGN_OR_RETURN(std::span<const uint8_t> header, ReadHeader(file_size, read));
  LayerIndex idx;
  Layout layout;
  LAZYROOT_RETURN_IF_ERROR(ParseHeader(header, file_size, name, expected_blob_digest, &idx, &layout));
  // The checkpoint and chunk digest sections, one range: all a mount reads
  // past the header (not the entries, not the file digests).
  LAZYROOT_ASSIGN_OR_RETURN(std::span<const uint8_t> mount, read(layout.c_off, layout.f_off - layout.c_off));
  if (mount.size() != layout.f_off - layout.c_off) {
    return Status::Corruption("layer index " + name + ": short read of its checkpoint section");
  }
  // What a mount waits for: the section's SHA-256 (4 ms for a large layer's
  // 7 MB of windows) runs on a second thread while the same bytes are
  // decoded here. Decoding unverified bytes is safe (every step is bounds
  // checked, as for any hostile file) and nothing decoded is returned unless
  // the hash matched; a hash mismatch is the error reported. The checkpoint
  // table's own crc32 is covered by the hash.
  Status hash = Status::Ok();
  std::thread hasher;
  auto check = [&] { return CheckSection(header, kMountHashAt, mount, "checkpoint and chunk digest sections", name); };
  if (mount.size() >= kParallelHashBytes) {
    try {
      hasher = std::thread([&] {
        try {
          hash = check();
        } catch (...) {
          hash = CurrentExceptionStatus("layer index " + name);
        }
      });
    } catch (const std::system_error&) {
      // No thread to be had: hash here, below.
    }
  }
  if (!hasher.joinable()) LAZYROOT_RETURN_IF_ERROR(check());
  std::optional<Result<CheckpointTable>> table;
  try {
    table.emplace(CheckpointTable::Parse(mount.first(static_cast<size_t>(layout.c_len)), name,
                                         /*crc_covered_by_caller=*/true));
    DecodeChunks(mount.subspan(static_cast<size_t>(layout.c_len)), &idx);
  } catch (...) {
    // The hasher reads `mount` and writes `hash`: join it before leaving.
    if (hasher.joinable()) hasher.join();
    throw;
  }
  if (hasher.joinable()) hasher.join();
  LAZYROOT_RETURN_IF_ERROR(hash);
  if (!table->ok()) return table->status();
  if (diff_id) *diff_id = idx.diff_id;
  if (chunks) *chunks = std::move(idx.chunks);
  return std::move(**table);
}

Result<CheckpointTable> LayerIndex::ParseCheckpoints(std::span<const uint8_t> bytes, const std::string& name,
                                                     const std::string& expected_blob_digest, std::string* diff_id,
                                                     ChunkDigests* chunks) {
  return ReadCheckpoints(bytes.size(), SpanReader(bytes, name), name, expected_blob_digest, diff_id, chunks);
}

Result<std::vector<FileDigest>> LayerIndex::ReadFileDigests(uint64_t file_size, const LayerIndexRangeReader& read,
                                                            const std::string& name,
                                                            const std::string& expected_blob_digest,
                                                            std::string* diff_id) {
  LAZYROOT_ASSIGN_OR_RETURN(std::span<const uint8_t> header, ReadHeader(file_size, read));
  LayerIndex idx;
  Layout layout;
  LAZYROOT_RETURN_IF_ERROR(ParseHeader(header, file_size, name, expected_blob_digest, &idx, &layout));
  LAZYROOT_ASSIGN_OR_RETURN(std::span<const uint8_t> files, read(layout.f_off, file_size - layout.f_off));
  if (files.size() != file_size - layout.f_off) {
    return Status::Corruption("layer index " + name + ": short read of its file digest section");
  }
  LAZYROOT_RETURN_IF_ERROR(CheckSection(header, kFilesHashAt, files, "file digest section", name));
  if (diff_id) *diff_id = idx.diff_id;
  // Ascending data offsets within the stream, so that a lookup can
  // binary-search them (ForEachEntry checks more: each names a regular entry).
  std::vector<FileDigest> out = DecodeFileDigests(files, layout);
  for (size_t i = 0; i < out.size(); ++i) {
    if (out[i].data_offset > idx.uncompressed_size || (i > 0 && out[i].data_offset <= out[i - 1].data_offset)) {
      return Status::Corruption("layer index " + name + ": file digest " + std::to_string(i) +
                                ": data offset out of order or beyond the stream");
    }
  }
  return out;
}

Result<std::vector<FileDigest>> LayerIndex::ParseFileDigests(std::span<const uint8_t> bytes, const std::string& name,
                                                             const std::string& expected_blob_digest,
                                                             std::string* diff_id) {
  return ReadFileDigests(bytes.size(), SpanReader(bytes, name), name, expected_blob_digest, diff_id);
}

namespace {

// ForEachEntry, also handing back the layout it validated (for Parse). Every
// section's SHA-256 is checked before the first entry.
Status WalkEntries(std::span<const uint8_t> bytes, const std::string& name, const std::string& expected_blob_digest,
                   LayerIndex* header, const std::function<Status(TarEntry&)>& fn, Layout* layout_out) {
  auto bad = [&](const std::string& what) { return Status::Corruption("layer index " + name + ": " + what); };
  LayerIndex idx;
  Layout layout;
  LAZYROOT_RETURN_IF_ERROR(
      ParseHeader(bytes.first(std::min(bytes.size(), kHeaderSize)), bytes.size(), name, expected_blob_digest, &idx, &layout));
  const uint64_t count = layout.count, e_len = layout.e_len;
  const uint8_t* p = bytes.data();
  const uint64_t e_off = kHeaderSize;
  const std::span<const uint8_t> head = bytes.first(kHeaderSize);
  LAZYROOT_RETURN_IF_ERROR(CheckSection(head, kEntriesHashAt, bytes.subspan(e_off, e_len), "entry section", name));
  LAZYROOT_RETURN_IF_ERROR(CheckSection(head, kMountHashAt, bytes.subspan(layout.c_off, layout.f_off - layout.c_off),
                                        "checkpoint and chunk digest sections", name));
  LAZYROOT_RETURN_IF_ERROR(CheckSection(head, kFilesHashAt, bytes.subspan(layout.f_off), "file digest section", name));
  DecodeChunks(bytes.subspan(layout.d_off, layout.f_off - layout.d_off), &idx);
  const uint32_t flags = GetU32(p + 12);
  if ((flags & ~kFlagEntriesDeflated) != 0) return bad("unknown flags");
  uint64_t entries_len = e_len;
  std::unique_ptr<EntryWindow> window;
  if (flags & kFlagEntriesDeflated) {
    entries_len = GetU32(p + 136);
    // deflate cannot expand more than ~1032:1; a larger claim is a lie.
    if (entries_len / 1032 > e_len) return bad("implausible entries size");
    window = std::make_unique<EntryWindow>(p + e_off, e_len, entries_len);
  } else if (GetU32(p + 136) != 0) {
    return bad("reserved field is not zero");
  } else {
    window = std::make_unique<EntryWindow>(p + e_off, e_len);
  }
  // For a deflated section this checks the claimed length; the section must
  // inflate to exactly that, which is checked as it streams.
  if (count > entries_len / kMinEntryBytes) {
    return bad("entry count " + std::to_string(count) + " larger than its section of " + std::to_string(entries_len) +
               " bytes can hold");
  }
  // The checkpoints before any entry: fn sees entries of a file whose every
  // part but the rest of the entry section has been checked.
  auto table = CheckpointTable::Parse(bytes.subspan(layout.c_off, layout.c_len), name, /*crc_covered_by_caller=*/true);
  if (!table.ok()) return table.status();
  idx.checkpoints = std::move(*table);
  if (header) *header = std::move(idx);
  const uint64_t uncompressed_size = header ? header->uncompressed_size : idx.uncompressed_size;
  EntryWindow& w = *window;
  // Entries lie in tar order, each at least one 512-byte header after the
  // previous one's data, within the stream. Besides catching a damaged file
  // this keeps a deflated section from holding millions of copies of one
  // entry (every copy would cost a few bytes of deflate, not 0.06).
  uint64_t next_header = 0;
  // File digests name regular entries only, in the same order: the next
  // one not yet matched to an entry.
  uint64_t next_file = 0;
  auto file_offset = [&](uint64_t k) { return GetU64(p + layout.f_off + k * kFileDigestBytes); };
  for (uint64_t i = 0; i < count; ++i) {
    TarEntry e;
    size_t used = 0;
    while (true) {
      Reader r(w.data(), w.size());
      std::string why = GetEntry(r, &e);
      if (why.empty()) {
        used = static_cast<size_t>(r.position() - w.data());
        break;
      }
      if (!r.is_short() || w.ended()) return bad("entry " + std::to_string(i) + ": " + why);
      // The entry runs past the window: inflate more and decode it again.
      // Doubling keeps a large entry (a long sparse map) linear to decode.
      e = TarEntry{};
      if (!w.More(std::max(EntryWindow::kChunk, w.size()))) return bad("entries section does not inflate");
    }
    w.Consume(used);
    if (e.header_offset < next_header || e.data_offset < e.header_offset || e.data_offset - e.header_offset < 512 ||
        e.stored_size > uncompressed_size || e.data_offset > uncompressed_size - e.stored_size) {
      return bad("entry " + std::to_string(i) + ": offsets out of tar order or beyond the stream");
    }
    next_header = e.data_offset + e.stored_size;
    if (next_file < layout.f_count && file_offset(next_file) <= e.data_offset) {
      if (file_offset(next_file) < e.data_offset || e.type != EntryType::kRegular) {
        return bad("file digest " + std::to_string(next_file) + " names no regular file's data");
      }
      ++next_file;
    }
    LAZYROOT_RETURN_IF_ERROR(fn(e));
  }
  if (next_file != layout.f_count) {
    return bad("file digest " + std::to_string(next_file) + " names no regular file's data");
  }
  if (layout_out) *layout_out = layout;
  if (w.size() == 0 && !w.More(1)) return bad("entries section does not inflate");
  if (w.size() != 0) return bad("trailing bytes in the entry section");
  return Status::Ok();
}

}  // namespace

Status LayerIndex::ForEachEntry(std::span<const uint8_t> bytes, const std::string& name,
                                const std::string& expected_blob_digest, LayerIndex* header,
                                const std::function<Status(TarEntry&)>& fn) {
  return WalkEntries(bytes, name, expected_blob_digest, header, fn, nullptr);
}

Result<LayerIndex> LayerIndex::Parse(std::span<const uint8_t> bytes, const std::string& name,
                                     const std::string& expected_blob_digest) {
  LayerIndex idx;
  std::vector<TarEntry> entries;
  // Grown entry by entry, not resized to the count: the vector stays
  // proportional to what was decoded even if the count lies.
  Layout layout;
  LAZYROOT_RETURN_IF_ERROR(WalkEntries(
      bytes, name, expected_blob_digest, &idx,
      [&](TarEntry& e) {
        entries.push_back(std::move(e));
        return Status::Ok();
      },
      &layout));
  idx.entries = std::move(entries);
  idx.file_digests = DecodeFileDigests(bytes.subspan(layout.f_off), layout);
  return idx;
}

struct LayerIndexWriter::Deflater {
  z_stream zs{};
  bool ok = false;
  Deflater() { ok = deflateInit(&zs, 6) == Z_OK; }
  ~Deflater() {
    if (ok) deflateEnd(&zs);
  }
};

namespace {
// Records are handed to deflate in batches of this size.
constexpr size_t kPendingBytes = 64 << 10;
}  // namespace

LayerIndexWriter::LayerIndexWriter() : z_(std::make_unique<Deflater>()), file_(kHeaderSize, '\0') {}
LayerIndexWriter::~LayerIndexWriter() = default;

Status LayerIndexWriter::Add(const TarEntry& e) {
  PutEntry(&pending_, e);
  ++count_;
  if (pending_.size() < kPendingBytes) return Status::Ok();
  raw_ += pending_.size();
  if (raw_ > UINT32_MAX) return Status::LimitExceeded("layer index: entry records over 4 GiB");
  if (!worker_) worker_ = std::make_unique<SerialWorker>();
  worker_->Post([this, batch = std::move(pending_)] {
    // Nothing may leave the worker's thread (std::terminate): out of
    // memory growing the file is this layer's error, reported by Finish.
    if (!deflated_.ok()) return;
    try {
      deflated_ = Deflate(batch, false);
    } catch (...) {
      deflated_ = CurrentExceptionStatus("layer index");
    }
  });
  pending_.clear();  // moved-from: make it empty for sure
  return Status::Ok();
}

Status LayerIndexWriter::Deflate(const std::string& records, bool finish) {
  if (!z_->ok) return Status::IoError("layer index: deflateInit failed");
  z_stream& zs = z_->zs;
  zs.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(records.data()));
  zs.avail_in = static_cast<uInt>(records.size());
  while (true) {
    // Grow by what deflate can emit for the input plus its flush, so the
    // loop runs once per batch.
    const size_t room = deflateBound(&zs, zs.avail_in) + 64;
    const size_t used = file_.size();
    file_.resize(used + room);
    zs.next_out = reinterpret_cast<Bytef*>(file_.data() + used);
    zs.avail_out = static_cast<uInt>(room);
    int ret = deflate(&zs, finish ? Z_FINISH : Z_NO_FLUSH);
    file_.resize(used + room - zs.avail_out);
    if (ret == Z_STREAM_ERROR) return Status::IoError("layer index: deflate failed");
    if (finish ? ret == Z_STREAM_END : (zs.avail_in == 0 && zs.avail_out > 0)) break;
  }
  return Status::Ok();
}

Result<std::string> LayerIndexWriter::Finish(const LayerIndex& header) {
  if (worker_) worker_->Wait();
  LAZYROOT_RETURN_IF_ERROR(deflated_);
  raw_ += pending_.size();
  if (raw_ > UINT32_MAX) return Status::LimitExceeded("layer index: entry records over 4 GiB");
  LAZYROOT_RETURN_IF_ERROR(Deflate(pending_, true));
  pending_.clear();
  std::string out = std::move(file_);
  SealFile(header, count_, kFlagEntriesDeflated, static_cast<uint32_t>(raw_), &out);
  return out;
}

}  // namespace lazyroot
